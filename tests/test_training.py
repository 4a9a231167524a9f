"""Data loading, training engine (resume, divergence), pre-training / fine-tuning / export.

Small format-4 files are written by :func:`write_format4`; everything runs on CPU in a
few seconds with a shrunken backbone.
"""

from __future__ import annotations

import copy
import csv
import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from jetforge.models.edgeconv import EdgeConvNet
from jetforge.models.registry import load_backbone
from jetforge.training.data import (
    JetSampler,
    PairSampler,
    select_labelled_rows,
    select_pairs,
    split_pairs,
    subsample,
)
from jetforge.training.embed import export_embeddings
from jetforge.training.engine import EngineConfig, NonFiniteLossError, fit
from jetforge.training.finetune import run_finetune
from jetforge.training.pretrain import run_pretrain

VARIANTS = ["nominal", "seed", "fsr_up", "fsr_down", "alt_shower"]
PROCESSES = ["qcd_zjet", "hbb_zh", "wqq_wjet"]
CLASSES = ["qcd", "hbb", "wqq"]
F = 15


def write_format4(
    path: Path, n_events: dict[str, int], P: int = 12, seed: int = 0, tag_rows: bool = False
) -> Path:
    """A format-4 dataset: per hard event V contiguous rows (variant order), random jets.

    Classes differ by a shift of one feature so that supervised training can learn;
    variants of an event are noisy copies of its nominal jet so that contrastive pairs
    share information. With ``tag_rows`` the last feature of particle 0 holds the row
    index, letting tests recover which rows a batch contains.
    """
    rng = np.random.default_rng(seed)
    V = len(VARIANTS)
    xs, ms, cols = (
        [],
        [],
        {k: [] for k in ("process", "variant", "label", "pair_id", "event", "chunk", "parton_pid")},
    )
    pair = 0
    for p_idx, proc in enumerate(PROCESSES):
        for ev in range(n_events.get(proc, 0)):
            n_real = int(rng.integers(2, P + 1))
            base = rng.normal(size=(P, F)).astype(np.float32)
            base[:, p_idx] += 1.5
            for v in range(V):
                x = base + 0.1 * rng.normal(size=(P, F)).astype(np.float32) * (v > 0)
                n_v = max(1, min(P, n_real + int(rng.integers(-1, 2)) * (v > 0)))
                m = np.arange(P) < n_v
                xs.append(np.where(m[:, None], x, 0).astype(np.float32))
                ms.append(m)
                for k, val in (
                    ("process", p_idx),
                    ("variant", v),
                    ("label", p_idx),
                    ("pair_id", pair),
                    ("event", ev),
                    ("chunk", 0),
                    ("parton_pid", (21, 25, 24)[p_idx]),
                ):
                    cols[k].append(val)
            pair += 1
    x = np.stack(xs)
    if tag_rows:
        x[:, 0, -1] = np.arange(len(x))
    N = len(x)
    with h5py.File(path, "w") as f:
        f.create_dataset("particles", data=x, chunks=(min(N, 7), P, F))
        f.create_dataset("mask", data=np.stack(ms), chunks=(min(N, 7), P))
        g = f.create_group("jets")
        for k, dt in (
            ("process", np.int8),
            ("variant", np.int8),
            ("label", np.int8),
            ("pair_id", np.int64),
            ("event", np.int32),
            ("chunk", np.int32),
            ("parton_pid", np.int32),
        ):
            g.create_dataset(k, data=np.asarray(cols[k], dt))
        for k in ("pt", "eta", "phi", "mass", "n2"):
            g.create_dataset(k, data=rng.random(N).astype(np.float32))
        f.attrs["feature_names"] = [f"f{i}" for i in range(F)]
        f.attrs["class_names"] = CLASSES
        f.attrs["process_names"] = PROCESSES
        f.attrs["variant_names"] = VARIANTS
        f.attrs["dataset"] = "test"
        f.attrs["split"] = path.stem
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("data")
    return {
        "tagged": write_format4(
            d / "tagged.h5", {"qcd_zjet": 13, "hbb_zh": 11, "wqq_wjet": 5}, tag_rows=True
        ),
        "pretrain": write_format4(d / "pretrain.h5", {"qcd_zjet": 20, "hbb_zh": 20}, seed=1),
        "finetune": write_format4(
            d / "finetune.h5", {"qcd_zjet": 12, "hbb_zh": 12, "wqq_wjet": 8}, seed=2
        ),
        "test": write_format4(d / "test.h5", {"qcd_zjet": 6, "hbb_zh": 6, "wqq_wjet": 4}, seed=3),
    }


EXP = {
    "backbone": {
        "name": "edgeconv",
        "embed": [16, 16],
        "k": 4,
        "n_conv": 2,
        "conv_dim": 16,
        "encoder": [16, 8],
    },
    "pretrain": {
        "method": "simclr",
        "processes": ["qcd_zjet", "hbb_zh"],
        "augsets": {"all": VARIANTS[1:], "seed": ["seed"]},
        "tau": 0.1,
        "batch_size": 8,
        "epochs": 2,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "val_fraction": 0.2,
        "checkpoint_every": 3,
    },
    "finetune": {
        "epochs": 2,
        "batch_size": 16,
        "lr": 1e-3,
        "lr_backbone": 1e-4,
        "checkpoint_every": 4,
        "tasks": {
            "hbb_vs_qcd": {"signal": "hbb_zh", "background": "qcd_zjet"},
            "wqq_vs_qcd": {"signal": "wqq_wjet", "background": "qcd_zjet"},
        },
    },
}


# ----------------------------------------------------------------------------- data


def _rows(x: torch.Tensor) -> list[int]:
    return [int(r) for r in x[:, 0, -1]]


def test_pair_sampler_pairs_selection_and_determinism(files: dict[str, Path]) -> None:
    path = str(files["tagged"])
    V = len(VARIANTS)
    aug = ["fsr_up", "alt_shower"]
    s = PairSampler(
        path,
        ["qcd_zjet", "hbb_zh"],
        aug,
        batch_size=5,
        seed=7,
        drop_last=False,
        block_pairs=3,
        buffer_blocks=2,
    )
    assert s.pairs.tolist() == list(range(24))  # wqq pairs 24..28 excluded
    with h5py.File(path) as f:
        proc = f["jets/process"][:]
    seen, aug_seen = [], set()
    batches = list(s.epoch(0))
    assert len(batches) == len(s) == 5
    for b in batches:
        ra, rb = _rows(b.x_a), _rows(b.x_b)
        assert all(r % V == 0 for r in ra)  # nominal view
        assert [r // V for r in ra] == [r // V for r in rb]  # same hard event
        aug_seen |= {VARIANTS[r % V] for r in rb}
        assert b.labels.tolist() == [int(proc[r]) for r in ra]
        assert b.m_a.shape == b.x_a.shape[:2] and b.m_a.dtype == torch.bool
        seen += [r // V for r in ra]
    assert sorted(seen) == list(range(24))  # every pair exactly once per epoch
    assert aug_seen == set(aug)
    again = list(s.epoch(0))
    assert all(torch.equal(a.x_b, b.x_b) for a, b in zip(batches, again, strict=True))
    other = list(s.epoch(1))
    assert [_rows(b.x_b) for b in other] != [_rows(b.x_b) for b in batches]
    resumed = list(s.epoch(1, start_batch=3))
    assert [_rows(b.x_b) for b in resumed] == [_rows(b.x_b) for b in other[3:]]
    s.close()


def test_pair_sampler_drop_last_and_split(files: dict[str, Path]) -> None:
    path = str(files["tagged"])
    pairs = select_pairs(path, ["qcd_zjet", "hbb_zh"])
    tr, va = split_pairs(pairs, 0.25, seed=1)
    assert len(set(tr) & set(va)) == 0 and len(tr) + len(va) == 24 and len(va) == 6
    with PairSampler(path, ["qcd_zjet"], ["seed"], 4, seed=0, pairs=tr) as s:
        assert len(s) == len(tr) // 4
        assert all(b.x_a.shape[0] == 4 for b in s.epoch(0))
    with pytest.raises(ValueError, match="'nope'"):
        PairSampler(path, ["qcd_zjet"], ["nope"], 4, seed=0)


def test_labelled_rows_and_jet_sampler(files: dict[str, Path]) -> None:
    path = str(files["tagged"])
    V = len(VARIANTS)
    rows, labels = select_labelled_rows(path, "wqq_wjet", "qcd_zjet", ["nominal", "seed"])
    with h5py.File(path) as f:
        proc, var = f["jets/process"][:], f["jets/variant"][:]
    assert set(var[rows]) == {0, 1} and set(proc[rows]) == {0, 2}
    assert (labels == (proc[rows] == 2)).all() and len(rows) == 2 * (13 + 5)
    sub, sub_y = subsample(rows, labels, 20, seed=3)
    assert np.array_equal(sub, subsample(rows, labels, 20, seed=3)[0]) and len(np.unique(sub)) == 20
    with pytest.raises(ValueError, match="n_train=999"):
        subsample(rows, labels, 999, seed=3)
    with JetSampler(path, sub, sub_y, 6, seed=0, block_rows=4, buffer_blocks=2) as s:
        got = [(r, float(y)) for b in s.epoch(2) for r, y in zip(_rows(b.x), b.y, strict=True)]
        assert sorted(r for r, _ in got) == sorted(sub.tolist())
        assert all(y == float(proc[r] == 2) for r, y in got)
        assert all(var[r] in (0, 1) and r // V >= 0 for r, _ in got)
        assert [_rows(b.x) for b in s.epoch(2, start_batch=2)] == [
            _rows(b.x) for b in list(s.epoch(2))[2:]
        ]


# ----------------------------------------------------------------------------- engine


class _Batches:
    """In-memory batches for engine tests: deterministic in (epoch, batch)."""

    def __init__(self, x: torch.Tensor, m: torch.Tensor, y: torch.Tensor, bs: int) -> None:
        self.x, self.m, self.y, self.bs = x, m, y, bs

    def __call__(self, epoch: int, start: int):
        from jetforge.training.data import JetBatch

        perm = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(epoch))
        for i in range(start, math.ceil(len(self.x) / self.bs)):
            sel = perm[i * self.bs : (i + 1) * self.bs]
            yield JetBatch(self.x[sel], self.m[sel], self.y[sel])


class _Clf(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = EdgeConvNet(
            in_dim=F, embed=(32, 32), k=4, n_conv=2, conv_dim=32, encoder=(16, 8)
        )
        self.head = torch.nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x, m)).squeeze(-1)


def _bce(model: torch.nn.Module, b) -> dict[str, torch.Tensor]:
    return {"loss": torch.nn.functional.binary_cross_entropy_with_logits(model(b.x, b.mask), b.y)}


def test_overfit_64_jets(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 10, F, generator=g)
    m = torch.arange(10)[None] < torch.randint(3, 11, (64, 1), generator=g)
    y = (torch.rand(64, generator=g) < 0.5).float()  # random labels: pure memorisation
    torch.manual_seed(0)
    model = _Clf()
    cfg = EngineConfig(epochs=60, lr=3e-3, checkpoint_every=10_000)
    state = fit(
        model,
        [{"params": list(model.parameters())}],
        _bce,
        _Batches(x, m, y, 32),
        2,
        cfg,
        torch.device("cpu"),
        tmp_path / "ck.pt",
        tmp_path / "h.csv",
    )
    first, last = state.history[0]["loss"], state.history[-1]["loss"]
    assert last < first / 5, f"loss fell only from {first:.3f} to {last:.3f}"
    with open(tmp_path / "h.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 60 and list(rows[0])[:3] == ["epoch", "step", "loss"]


def test_non_finite_loss_names_step_and_keeps_checkpoint(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 6, F, generator=g), (torch.rand(40, generator=g) < 0.5).float()
    m = torch.ones(40, 6, dtype=torch.bool)
    torch.manual_seed(0)
    model = _Clf()
    calls = {"n": 0}

    def loss(model: torch.nn.Module, b) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        out = _bce(model, b)
        if calls["n"] == 7:
            out["loss"] = out["loss"] * float("nan")
        return out

    ck = tmp_path / "ck.pt"
    with pytest.raises(NonFiniteLossError, match=r"step 7\b"):
        fit(
            model,
            [{"params": list(model.parameters())}],
            loss,
            _Batches(x, m, y, 8),
            5,
            EngineConfig(epochs=3, lr=1e-3, checkpoint_every=2),
            torch.device("cpu"),
            ck,
            tmp_path / "h.csv",
        )
    saved = torch.load(ck, weights_only=True)
    assert saved["state"]["step"] == 6  # last good checkpoint survives
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


# ----------------------------------------------------------------------------- stages


class _Kill(RuntimeError):
    pass


def _kill_after(n: int):
    def hook(state) -> None:
        if state.step == n:
            raise _Kill(f"simulated kill after step {n}")

    return hook


def _history(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in [k for k in r if k.endswith("_per_s")]:  # throughput: wall-clock timings
            r.pop(k)
    return rows


def test_pretrain_resume_after_kill_is_bit_identical(
    files: dict[str, Path], tmp_path: Path
) -> None:
    h5 = str(files["pretrain"])
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_pretrain(h5, str(ref), EXP, "all", repeat=0, seed=11, device="cpu")
    # 32 training pairs / batch 8 = 4 steps per epoch; kill mid-epoch 2, 1 step after a checkpoint
    with pytest.raises(_Kill):
        run_pretrain(
            h5, str(killed), EXP, "all", repeat=0, seed=11, device="cpu", after_step=_kill_after(7)
        )
    assert (killed / "checkpoint.pt").exists() and not (killed / "model.pt").exists()
    run_pretrain(h5, str(killed), EXP, "all", repeat=0, seed=11, device="cpu")
    a, b = (
        torch.load(ref / "model.pt", weights_only=False),
        torch.load(killed / "model.pt", weights_only=False),
    )
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert _history(ref / "history.csv") == _history(killed / "history.csv")
    # a different repeat is a different run
    other = tmp_path / "other"
    run_pretrain(h5, str(other), EXP, "all", repeat=1, seed=11, device="cpu")
    c = torch.load(other / "model.pt", weights_only=False)
    assert not all(torch.equal(a["state_dict"][k], c["state_dict"][k]) for k in a["state_dict"])


def test_pretrain_snapshots_survive_a_kill_bit_identical(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """pretrain.snapshot_epochs (jBOT Fig. 6): the backbone after 0, 1 and 2 epochs, each
    written before its epoch's checkpoint, so a killed-and-resumed run has the same files."""
    from jetforge.training.pretrain import SNAPSHOT

    exp = copy.deepcopy(EXP)
    exp["pretrain"]["snapshot_epochs"] = [0, 1, 2]
    h5 = str(files["pretrain"])
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_pretrain(h5, str(ref), exp, "all", repeat=0, seed=11, device="cpu")
    with pytest.raises(_Kill):  # mid-epoch 2 (4 steps per epoch): epoch 1's snapshot exists
        run_pretrain(
            h5, str(killed), exp, "all", repeat=0, seed=11, device="cpu", after_step=_kill_after(6)
        )
    assert (killed / SNAPSHOT.format(epoch=1)).exists()
    assert not (killed / SNAPSHOT.format(epoch=2)).exists()
    run_pretrain(h5, str(killed), exp, "all", repeat=0, seed=11, device="cpu")
    states = {}
    for n in (0, 1, 2):
        a = torch.load(ref / SNAPSHOT.format(epoch=n), weights_only=True)
        b = torch.load(killed / SNAPSHOT.format(epoch=n), weights_only=True)
        assert a["feature_names"] == b["feature_names"] and a["method"] == "simclr"
        for k in a["state_dict"]:
            assert torch.equal(a["state_dict"][k], b["state_dict"][k]), (n, k)
        states[n] = a["state_dict"]
    final = torch.load(ref / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(final[k], states[2][k]) for k in final)  # 2 = the last epoch
    assert not all(torch.equal(states[0][k], states[1][k]) for k in final)


def test_pretrain_outputs(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "pt"
    run_pretrain(str(files["pretrain"]), str(out), EXP, "seed", repeat=0, seed=5, device="cpu")
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    assert list(rows[0]) == [
        "epoch",
        "step",
        "loss",
        "val_loss",
        "val_effective_rank",
        "lr",
        "cos_pos_qcd",
        "cos_pos_hbb",
        "cos_class_means",
        "jets_per_s",
        "loader_jets_per_s",
        "step_jets_per_s",
    ]
    assert all(math.isfinite(float(v)) for r in rows for v in r.values())
    assert -1 <= float(rows[-1]["cos_class_means"]) <= 1
    model, payload = load_backbone(out / "model.pt")
    assert payload["backbone_cfg"]["in_dim"] == F and payload["variants"] == ["seed"]
    assert isinstance(model, EdgeConvNet) and model.embed_dim == 8
    # a checkpoint from another config is not resumed (the run starts afresh and finishes)
    exp2 = copy.deepcopy(EXP)
    exp2["pretrain"]["lr"] = 2e-3
    run_pretrain(str(files["pretrain"]), str(out), exp2, "seed", repeat=0, seed=5, device="cpu")
    with open(out / "history.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2


@pytest.fixture(scope="module")
def pretrained(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pre")
    run_pretrain(str(files["pretrain"]), str(out), EXP, "all", repeat=0, seed=3, device="cpu")
    return out / "model.pt"


@pytest.mark.parametrize("mode", ["fixed", "floating", "lora", "supervised"])
def test_finetune_modes_write_predictions(
    files: dict[str, Path], pretrained: Path, tmp_path: Path, mode: str
) -> None:
    out = tmp_path / "predictions.h5"
    pre = str(pretrained) if mode != "supervised" else None
    run_finetune(
        str(files["finetune"]),
        str(files["test"]),
        str(out),
        EXP,
        "wqq_vs_qcd",
        mode,
        "all",
        n_train=64,
        repeat=0,
        seed=1,
        pretrained=pre,
        device="cpu",
    )
    with h5py.File(out) as f, h5py.File(files["test"]) as t:
        proc = t["jets/process"][:]
        keep = np.isin(proc, [0, 2])
        assert f["score"].dtype == np.float32 and f["label"].dtype == np.int8
        assert len(f["score"]) == keep.sum() == 5 * (6 + 4)
        assert ((f["score"][:] >= 0) & (f["score"][:] <= 1)).all()
        assert np.array_equal(f["label"][:], (proc[keep] == 2).astype(np.int8))
        for c in ("variant", "process", "parton_pid", "pair_id", "n2"):
            assert np.array_equal(f[c][:], t[f"jets/{c}"][:][keep]), c
        assert list(f.attrs["variant_names"]) == VARIANTS
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "history.csv").exists()
    saved = torch.load(tmp_path / "model.pt", weights_only=True)  # the columns it reads
    with h5py.File(files["finetune"]) as f:
        assert saved["feature_names"] == [str(n) for n in f.attrs["feature_names"]]
    if mode == "fixed":  # frozen backbone: weights identical to the pre-trained ones
        ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
        pre_sd = torch.load(pretrained, weights_only=False)["state_dict"]
        assert all(torch.equal(ck[f"backbone.{k}"], v) for k, v in pre_sd.items())
    if mode == "lora":  # base weights frozen (stored as parametrization originals), B trained
        ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
        pre_sd = torch.load(pretrained, weights_only=False)["state_dict"]
        for k, v in pre_sd.items():
            key = f"backbone.{k}"
            if key not in ck:  # an adapted linear weight
                head, _, name = key.rpartition(".")
                key = f"{head}.parametrizations.{name}.original"
            assert torch.equal(ck[key], v), key
        bs = [v for k, v in ck.items() if k.endswith(".B")]
        assert bs and any(b.abs().sum() > 0 for b in bs)


def test_finetune_resume_and_argument_errors(
    files: dict[str, Path], pretrained: Path, tmp_path: Path
) -> None:
    args = (str(files["finetune"]), str(files["test"]))
    kw = dict(
        exp_cfg=EXP,
        task="hbb_vs_qcd",
        mode="floating",
        augset="seed",
        n_train=48,
        repeat=0,
        seed=2,
        pretrained=str(pretrained),
        device="cpu",
    )
    run_finetune(*args, str(tmp_path / "a" / "predictions.h5"), **kw)
    with pytest.raises(_Kill):
        run_finetune(*args, str(tmp_path / "b" / "predictions.h5"), **kw, after_step=_kill_after(5))
    run_finetune(*args, str(tmp_path / "b" / "predictions.h5"), **kw)
    with (
        h5py.File(tmp_path / "a" / "predictions.h5") as fa,
        h5py.File(tmp_path / "b" / "predictions.h5") as fb,
    ):
        assert np.array_equal(fa["score"][:], fb["score"][:])
    with pytest.raises(ValueError, match="supervised"):
        run_finetune(*args, str(tmp_path / "c.h5"), **{**kw, "mode": "supervised"})
    with pytest.raises(ValueError, match="needs a pre-trained"):
        run_finetune(*args, str(tmp_path / "c.h5"), **{**kw, "pretrained": None})
    with pytest.raises(ValueError, match="n_train=100000"):
        run_finetune(*args, str(tmp_path / "c.h5"), **{**kw, "n_train": 100000})


def test_export_embeddings(files: dict[str, Path], pretrained: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb" / "test.h5"
    export_embeddings(str(pretrained), str(files["test"]), str(out), device="cpu")
    model, _ = load_backbone(pretrained)
    with h5py.File(out) as f, h5py.File(files["test"]) as t:
        assert f["z"].shape == (t["particles"].shape[0], 8) and f["z"].dtype == np.float32
        assert set(f["jets"]) == set(t["jets"])
        assert np.array_equal(f["jets/pair_id"][:], t["jets/pair_id"][:])
        with torch.no_grad():
            z = model(torch.from_numpy(t["particles"][:5]), torch.from_numpy(t["mask"][:5]))
        assert np.allclose(f["z"][:5], z.numpy(), atol=1e-5)
        assert list(f.attrs["variant_names"]) == VARIANTS


def test_finetune_validation_early_stopping_and_scan(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """val_fraction draws validation jets beside (not instead of) the n_train ones;
    patience stops and restores the best epoch; a scan keeps the lowest validation loss."""
    ft = {**EXP["finetune"], "epochs": 6, "val_fraction": 0.25, "patience": 1,
          "scan": {"lr": [1e-3, 1e-12]}}  # fmt: skip
    exp = {**EXP, "finetune": ft}
    out = tmp_path / "predictions.h5"
    args = (str(files["finetune"]), str(files["test"]), str(out), exp, "hbb_vs_qcd",
            "supervised", "seed", 36, 0, 1, None, "cpu")  # fmt: skip
    run_finetune(*args)
    scan = pd.read_csv(tmp_path / "scan.csv")
    assert list(scan["lr"]) == [1e-3, 1e-12] and scan["selected"].sum() == 1
    chosen = scan[scan["selected"]].iloc[0]
    assert chosen["val_loss"] == scan["val_loss"].min()
    for i in (0, 1):
        hist = pd.read_csv(tmp_path / f"history_p{i}.csv")
        losses = hist["val_loss"].to_numpy()
        best = int(np.argmin(losses))
        # stopped exactly `patience` epochs after the best one, or ran out of epochs
        assert len(losses) == min(6, best + 2)
        assert scan["best_epoch"][i] == best + 1
    with h5py.File(out) as f:
        assert f.attrs["n_val"] == 9 and f.attrs["val_loss"] == pytest.approx(chosen["val_loss"])
    # the trained-on jets do not depend on whether validation jets are drawn
    plain = {**EXP, "finetune": {**EXP["finetune"], "epochs": 1}}
    from jetforge.training.finetune import _labelled_subsets

    seed_of = lambda *k: hash(k) % 1000  # noqa: E731
    a = _labelled_subsets(str(files["finetune"]), None, "hbb_zh", "qcd_zjet", ["nominal"], 10,
                          plain["finetune"], seed_of, "t")  # fmt: skip
    b = _labelled_subsets(str(files["finetune"]), None, "hbb_zh", "qcd_zjet", ["nominal"], 10,
                          ft, seed_of, "t")  # fmt: skip
    assert np.array_equal(a[0][0], b[0][0]) and a[1] is None
    assert b[1] is not None and not np.isin(b[1][0], b[0][0]).any()
    with pytest.raises(ValueError, match="val_fraction"):
        run_finetune(*args[:3], {**EXP, "finetune": {**ft, "val_fraction": 0}}, *args[4:])


def test_balance_pairs_gives_each_process_the_rarest_count(files: dict[str, Path]) -> None:
    from jetforge.training.data import balance_pairs, select_pairs

    h5 = str(files["tagged"])
    pairs = select_pairs(h5, ["qcd_zjet", "hbb_zh", "wqq_wjet"])
    kept = balance_pairs(h5, pairs, seed=1)
    with h5py.File(h5) as f:
        proc = f["jets/process"][:][kept * len(VARIANTS)]
    assert np.bincount(proc).tolist() == [5, 5, 5]
    assert np.isin(kept, pairs).all() and np.array_equal(kept, np.sort(kept))
    assert np.array_equal(kept, balance_pairs(h5, pairs, seed=1))
