"""Loader worker processes (``workers`` / config ``loader_workers``): same batches as the
in-process loader (contents, order, skip-ahead), shared memory that is never overwritten
while a batch uses it, clean shutdown (no child process or file descriptor left, also
after an early close, an exception or a killed worker), errors with the file name.

A worker takes about 0.2 s of CPU to start (once per sampler, again after an epoch that
ended early), so these tests use few samplers with workers.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from jetforge.training.data import (
    JetSampler,
    LoaderWorkerError,
    PairSampler,
    buffer_segments,
    resolve_loader_workers,
)
from jetforge.training.h5loader import WorkerPool, read_segments
from jetforge.training.multi_data import MultiPairSampler
from jetforge.training.pretrain import run_pretrain

sys.path.insert(0, str(Path(__file__).parent))
from test_cells_tracks import write_hadfork
from test_training import EXP, _history, _Kill, _kill_after, write_format4

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts child processes and fds in /proc"
)


def _children() -> set[int]:
    """PIDs of this process's children, running or zombie."""
    me, out = os.getpid(), set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.add(int(d))
    return out


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _fields(batch: object) -> list[torch.Tensor]:
    return [v for v in vars(batch).values() if v is not None]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        len(fa := _fields(x)) == len(fb := _fields(y))
        and all(u.dtype == v.dtype and torch.equal(u, v) for u, v in zip(fa, fb, strict=True))
        for x, y in zip(a, b, strict=True)
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("loader")
    return {
        "tagged": write_format4(
            d / "tagged.h5", {"qcd_zjet": 23, "hbb_zh": 19, "wqq_wjet": 5}, tag_rows=True
        ),
        "fork": write_hadfork(d / "fork.h5", {"qq": 9, "gg": 8, "tautau": 5}, tag_rows=True),
    }


@pytest.fixture(autouse=True)
def _reaped():
    """Every test leaves no child process and no open file descriptor behind."""
    kids, fds = _children(), _fds()
    yield
    assert multiprocessing.active_children() == []
    assert _children() - kids == set(), "loader workers left running (or unreaped)"
    assert _fds() - fds == set(), "file descriptors leaked"


@pytest.fixture
def pools(monkeypatch: pytest.MonkeyPatch) -> list[WorkerPool]:
    """The worker pools started (proves the worker path ran)."""
    started: list[WorkerPool] = []

    class Counted(WorkerPool):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            started.append(self)

    monkeypatch.setattr("jetforge.training.data.WorkerPool", Counted)
    return started


def _pairs(path: Path, **kw: object) -> PairSampler:
    kw = {"block_pairs": 3, "buffer_blocks": 2, **kw}
    return PairSampler(str(path), ["qcd_zjet", "hbb_zh"], ["seed", "fsr_up"], 5, seed=7, **kw)


def _cells(path: Path, **kw: object) -> JetSampler:
    rows = np.arange(0, 44, 1)
    return JetSampler(str(path), rows, rows % 2, 6, seed=3, block_rows=4, buffer_blocks=2,
                      inputs=("particles", "cells"), **kw)  # fmt: skip


def _multi(path: Path, **kw: object) -> MultiPairSampler:
    return MultiPairSampler(str(path), ["qq", "gg", "tautau"], ["fork_b"], 4, seed=5,
                            block_pairs=2, buffer_blocks=3, **kw)  # fmt: skip


# ----------------------------------------------------------------------------- same batches


@pytest.mark.parametrize(
    "make, file", [(_pairs, "tagged"), (_cells, "fork"), (_multi, "fork")],
    ids=["PairSampler", "JetSampler-cells", "MultiPairSampler"],
)  # fmt: skip
@pytest.mark.parametrize("drop_last", [True, False])
def test_workers_yield_the_batches_of_the_thread_loader(
    files: dict[str, Path],
    pools: list[WorkerPool],
    make,
    file: str,
    drop_last: bool,
) -> None:
    path = files[file]
    with make(path, drop_last=drop_last) as ref, make(path, drop_last=drop_last, workers=2) as w:
        assert len(ref) > 4  # several buffers, batches inside one and across two
        for epoch, start in ((0, 0), (1, 3)):
            want = list(ref.epoch(epoch, start_batch=start))
            assert len(want) == len(ref) - start
            assert _same(list(w.epoch(epoch, start_batch=start)), want), (epoch, start)
    with make(path, drop_last=drop_last, prefetch=False) as sync:
        assert _same(list(sync.epoch(1, start_batch=3)), want)
    assert [len(p) for p in pools] == [2]  # one pool for all epochs of the sampler


def test_two_epochs_read_at_once(files: dict[str, Path], pools: list[WorkerPool]) -> None:
    """A second generator of the same sampler gets workers of its own."""
    with _pairs(files["tagged"]) as ref, _pairs(files["tagged"], workers=2) as w:
        a, b = w.epoch(0), w.epoch(1, start_batch=2)
        got = [x for pair in zip(a, b, strict=False) for x in pair]
        pairs = zip(ref.epoch(0), ref.epoch(1, start_batch=2), strict=False)
        want = [x for pair in pairs for x in pair]
        assert _same(got, want) and len(pools) == 2
        assert [len(p) for p in pools] == [2, 2]


def test_worker_batches_hold_the_rows_they_claim(files: dict[str, Path]) -> None:
    """Independent of the loader code: tracks and cells of each batch are the stored rows
    (tagged in track 0 / cell 0), cut after the batch's last real entry."""
    path = files["fork"]
    with h5py.File(path) as f:
        t, tm, c, cm = (f[k][:] for k in ("particles", "mask", "cells", "cells_mask"))
    with _cells(path, workers=3) as s:
        seen = []
        for b in s.epoch(2, start_batch=1):
            r = b.x[:, 0, 4].long().numpy()
            for x, m, full, full_m in ((b.x, b.mask, t, tm), (b.cells, b.cells_mask, c, cm)):
                n = int(np.flatnonzero(full_m[r].any(0))[-1]) + 1
                assert torch.equal(x, torch.from_numpy(full[r][:, :n]))
                assert torch.equal(m, torch.from_numpy(full_m[r][:, :n]))
            assert torch.equal(b.y, torch.from_numpy((r % 2).astype(np.float32)))
            seen += r.tolist()
    assert len(seen) == len(set(seen)) == 44 - 6


def test_buffer_segments_cover_each_batch_once() -> None:
    sizes = np.array([4, 7, 2, 9])
    # batches of 5 from batch 1: [5,10) [10,15) [15,20), last item 21 dropped
    got = [buffer_segments(j, sizes, 5, 4, 1).tolist() for j in range(4)]
    assert got == [
        [],  # items 0..3: before batch 1
        [[1, 6, 1], [6, 7, 0]],  # batch 1 (items 5..9) inside, batch 2 (10..14) starts
        [[0, 2, 0]],  # items 11, 12 of batch 2
        [[0, 2, 0], [2, 7, 1]],  # rest of batch 2, batch 3 inside; item 21 dropped
    ]


def test_read_segments_trims_whole_batches_only(files: dict[str, Path]) -> None:
    with h5py.File(files["tagged"]) as f:
        m = f["mask"][:]
        rows = np.array([3, 40, 3, 17])
        arrays, layout = read_segments(f, [rows], ["particles"], np.array([[0, 2, 1], [2, 4, 0]]))
        assert [a.shape[:2] for a in arrays] == [
            (2, int(np.flatnonzero(m[[3, 40]].any(0))[-1]) + 1),
        ] * 2 + [(2, m.shape[1])] * 2
        assert [lay[0] % 64 for lay in layout] == [0] * 4
        assert np.array_equal(arrays[0][:, 0, -1], [3, 40])


def test_shared_memory_is_reused_once_batches_are_dropped(
    files: dict[str, Path], pools: list[WorkerPool]
) -> None:
    """Slots hold one buffer each. While the caller keeps every batch, each buffer gets
    its own (the batches stay intact: see the tests above); once they are dropped, the
    next epoch releases all but a few, and a few suffice when batches are not kept.
    Batches of 3 pairs = buffers of 3 pairs."""
    kw = {"block_pairs": 3, "buffer_blocks": 1, "workers": 2}
    args = (str(files["tagged"]), ["qcd_zjet", "hbb_zh"], ["seed"], 3, 1)
    with PairSampler(*args, **kw) as s:
        kept = list(s.epoch(0))
        assert len(kept) == 14 and len(pools[0].slots) == 13  # the first is read here
        del kept
        for _ in s.epoch(1):
            pass
        assert len(pools[0].slots) <= 2 + 2  # the others released
    with PairSampler(*args, **kw) as s:
        for e in range(2):
            for _ in s.epoch(e):
                pass
        assert len(pools[1].slots) <= 2 + 2  # in flight + the batches being consumed


# ----------------------------------------------------------------------------- shutdown


def test_workers_stop_at_close_or_at_once_when_an_epoch_ends_early(
    files: dict[str, Path],
) -> None:
    before = _children()
    with _pairs(files["tagged"], workers=2) as s:
        list(s.epoch(0))
        workers = _children() - before
        assert len(workers) == 2  # kept for the next epoch ...
        it = s.epoch(1)
        next(it)
        assert _children() - before == workers  # ... and used by it
        it.close()
        assert _children() == before  # an epoch closed early: stopped and reaped at once
        next(iter(s.epoch(0)))  # an abandoned generator: the same when it is collected
        assert _children() == before
        list(s.epoch(2))
        assert len(_children() - before) == 2
    assert _children() == before  # sampler closed


def test_worker_exception_names_the_file(files: dict[str, Path], tmp_path: Path) -> None:
    path = shutil.copy(files["tagged"], tmp_path / "gone.h5")
    with _pairs(Path(path), workers=1, shuffle=False) as s:
        os.remove(path)  # this process keeps reading its open handle, a new worker cannot
        with pytest.raises(LoaderWorkerError, match=r"gone\.h5") as err:
            list(s.epoch(0))
        assert "failed reading buffer 1" in str(err.value)


def test_corrupted_chunk_in_a_worker_and_in_this_process(
    files: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "corrupt.h5"
    shutil.copy(files["tagged"], path)
    with h5py.File(path, "a") as f:  # checksummed particles, then garble the last chunk
        x = f["particles"][:]
        del f["particles"]
        ds = f.create_dataset("particles", data=x, chunks=(5, *x.shape[1:]), fletcher32=True)
        info = ds.id.get_chunk_info(ds.id.get_num_chunks() - 1)
        n = ds.shape[0]
    with open(path, "r+b") as raw:
        raw.seek(info.byte_offset + 8)
        raw.write(b"\xff" * 64)
    rows = np.arange(n)
    kw = dict(shuffle=False, block_rows=10, buffer_blocks=2)
    with JetSampler(str(path), rows, rows % 2, 8, seed=0, workers=2, **kw) as s:
        match = r"(?s)corrupt\.h5: OSError.*worker traceback.*read_rows"
        with pytest.raises(LoaderWorkerError, match=match) as err:
            list(s.epoch(0))
        assert f"buffer {(n - 1) // 20} of" in str(err.value)  # the last one
    with JetSampler(str(path), rows, rows % 2, 8, seed=0, **kw) as s:
        with pytest.raises(OSError) as err:
            list(s.epoch(0))
        assert any("corrupt.h5" in n for n in getattr(err.value, "__notes__", []))


def test_a_killed_worker_is_reported(files: dict[str, Path]) -> None:
    before = _children()
    with _pairs(files["tagged"], workers=1, block_pairs=1, buffer_blocks=1) as s:
        it = s.epoch(0)
        next(it)
        (pid,) = _children() - before
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(LoaderWorkerError, match=r"exited with code -9 .*tagged\.h5"):
            for _ in it:
                time.sleep(0.01)


# ----------------------------------------------------------------------------- config


def test_resolve_loader_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JETFORGE_LOADER_WORKERS", raising=False)
    assert resolve_loader_workers(None, "cpu") == resolve_loader_workers("auto", "cpu") == 0
    assert 1 <= resolve_loader_workers("auto", "cuda") <= 4
    assert resolve_loader_workers(3, "cpu") == resolve_loader_workers("3", "cuda") == 3
    monkeypatch.setenv("JETFORGE_LOADER_WORKERS", "2")
    assert resolve_loader_workers("auto", "cpu") == 2
    assert resolve_loader_workers(0, "cpu") == 0  # the config wins over the environment
    for bad in (-1, 1.5, "many", True):
        with pytest.raises(ValueError, match="loader_workers"):
            resolve_loader_workers(bad, "cpu")


class _SmallBuffers(PairSampler):
    """Pre-training pairs in buffers of 4, so that the workers get several."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, block_pairs=2, buffer_blocks=2, **kw)  # type: ignore[arg-type]


def test_pretrain_with_workers_resumes_bit_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pools: list[WorkerPool]
) -> None:
    """Reference without workers; a run with 2 workers killed mid-epoch and resumed with
    1 (``loader_workers`` is not part of the run key) ends with the same weights."""
    monkeypatch.setattr("jetforge.training.pretrain.PairSampler", _SmallBuffers)
    h5 = str(write_format4(tmp_path / "pre.h5", {"qcd_zjet": 20, "hbb_zh": 20}, seed=1))
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _pretrain_kill_resume(h5, tmp_path)
    finally:
        torch.set_num_threads(n_threads)
    assert [len(p) for p in pools] == [2, 1]  # epochs 1 and 2 (killed), 2 (resumed)


def _pretrain_kill_resume(h5: str, tmp_path: Path) -> None:
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    exp = {**EXP, "pretrain": {**EXP["pretrain"], "epochs": 2}}
    run_pretrain(h5, str(ref), exp, "all", repeat=0, seed=11, device="cpu")

    def with_workers(n: int) -> dict:
        return {**exp, "pretrain": {**exp["pretrain"], "loader_workers": n}}

    with pytest.raises(_Kill):
        run_pretrain(h5, str(killed), with_workers(2), "all", repeat=0, seed=11, device="cpu",
                     after_step=_kill_after(7))  # fmt: skip
    run_pretrain(h5, str(killed), with_workers(1), "all", repeat=0, seed=11, device="cpu")
    a, b = (torch.load(p / "model.pt", weights_only=False) for p in (ref, killed))
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert _history(ref / "history.csv") == _history(killed / "history.csv")
