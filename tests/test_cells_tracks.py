"""Tracks + cells backbone, fork-pair sampler and contrastive pre-training (Rieck et al.).

Synthetic files in exactly the hadfork layout (data contract 4, V = 2 variants
``fork_a``/``fork_b`` interleaved by pair; tracks in ``particles``/``mask``; cells in
``cells``/``cells_mask`` with attr ``cells_feature_names``) stand in for the real
dataset; a small backbone keeps everything on CPU in seconds.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from jetforge.evaluation.probes import embed_rows
from jetforge.methods import HadforkContrastive, nt_xent
from jetforge.models.cells_tracks import CellsTracksNet, delta_r, proximity_mask
from jetforge.models.registry import build_backbone, load_backbone
from jetforge.training.data import DatasetInfo
from jetforge.training.engine import EngineConfig, fit
from jetforge.training.multi_data import (
    CellsInfo,
    MultiPairBatch,
    MultiPairSampler,
    check_same_frame,
)
from jetforge.training.pretrain import method_sampler, run_pretrain

TRACK_NAMES = ["pt", "deta", "dphi", "d0", "z0"]
CELL_NAMES = ["E", "deta", "dphi", "layer"]
CLASSES = ["q", "g", "tau"]
PROCESSES = ["qq", "gg", "tautau"]
VARIANTS = ["fork_a", "fork_b"]
SMALL = {
    "name": "cells_tracks", "width": 32, "n_blocks": 2, "n_heads": 4, "out_hidden": 16,
    "r_edge": 0.15,
}


def make_view(rng: np.random.Generator, n: int, T: int, C: int, min_real: int = 1):
    """Random raw jets: tracks (p_T, Δη, Δφ, d0, z0) and cells (E, Δη, Δφ, layer)."""
    t = np.zeros((n, T, 5), np.float32)
    c = np.zeros((n, C, 4), np.float32)
    nt = rng.integers(min_real, T + 1, n)
    nc = rng.integers(min_real, C + 1, n)
    tm, cm = np.arange(T) < nt[:, None], np.arange(C) < nc[:, None]
    t[..., 0] = rng.exponential(10.0, (n, T)) + 1.0
    t[..., 1:3] = rng.normal(0, 0.15, (n, T, 2))
    t[..., 3:5] = rng.normal(0, 0.05, (n, T, 2))
    c[..., 0] = rng.exponential(3.0, (n, C)) + 0.1
    c[..., 1:3] = rng.normal(0, 0.15, (n, C, 2))
    c[..., 3] = rng.integers(0, 6, (n, C))
    return t * tm[..., None], tm, c * cm[..., None], cm


def fork(rng: np.random.Generator, t, tm, c, cm):
    """The other hadronization of the same shower: positions/energies jittered."""
    t, c = t.copy(), c.copy()
    t[..., :3] *= 1 + 0.05 * rng.normal(size=t[..., :3].shape).astype(np.float32)
    c[..., :3] *= 1 + 0.05 * rng.normal(size=c[..., :3].shape).astype(np.float32)
    return t * tm[..., None], tm, c * cm[..., None], cm


def write_hadfork(
    path: Path, n_pairs: dict[str, int], T: int = 6, C: int = 10, seed: int = 0,
    tag_rows: bool = False, cells: bool = True,
) -> Path:
    """A hadfork-layout file; with ``tag_rows`` z0 of track 0 and E of cell 0 hold the row."""
    rng = np.random.default_rng(seed)
    views: list[tuple] = []
    cols: dict[str, list] = {k: [] for k in ("process", "variant", "label", "pair_id", "event")}
    pair = 0
    for p, proc in enumerate(PROCESSES):
        a = make_view(rng, n_pairs.get(proc, 0), T, C)
        b = fork(rng, *a)
        for i in range(n_pairs.get(proc, 0)):
            for v, view in enumerate((a, b)):
                views.append(tuple(x[i] for x in view))
                for k, val in (("process", p), ("variant", v), ("label", p), ("pair_id", pair),
                               ("event", i)):
                    cols[k].append(val)
            pair += 1
    t, tm, c, cm = (np.stack(x) for x in zip(*views, strict=True))
    N = len(t)
    if tag_rows:
        t[:, 0, 4] = np.arange(N)
        c[:, 0, 0] = np.arange(N)
    with h5py.File(path, "w") as f:
        f.create_dataset("particles", data=t, chunks=(min(N, 5), T, 5))
        f.create_dataset("mask", data=tm, chunks=(min(N, 5), T))
        if cells:
            f.create_dataset("cells", data=c, chunks=(min(N, 5), C, 4))
            f.create_dataset("cells_mask", data=cm, chunks=(min(N, 5), C))
            f.attrs["cells_feature_names"] = CELL_NAMES
        g = f.create_group("jets")
        for k, dt in (("process", np.int8), ("variant", np.int8), ("label", np.int8),
                      ("pair_id", np.int64), ("event", np.int32)):
            g.create_dataset(k, data=np.asarray(cols[k], dt))
        g.create_dataset("chunk", data=np.zeros(N, np.int32))
        g.create_dataset("parton_pid", data=np.zeros(N, np.int32))
        for k in ("pt", "eta", "phi", "mass", "n2"):
            g.create_dataset(k, data=rng.random(N).astype(np.float32))
        f.attrs["feature_names"] = TRACK_NAMES
        f.attrs["class_names"] = CLASSES
        f.attrs["process_names"] = PROCESSES
        f.attrs["variant_names"] = VARIANTS
        f.attrs["dataset"], f.attrs["split"] = "hadfork_test", path.stem
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


def _tensors(*arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def _small(**kw: object) -> CellsTracksNet:
    torch.manual_seed(0)
    return build_backbone({**SMALL, **kw}).eval()


# ----------------------------------------------------------------------------- backbone


def test_parameter_counts_match_table1() -> None:
    m = CellsTracksNet()
    n = {k: sum(p.numel() for p in getattr(m, k).parameters())
         for k in ("layer_embed", "cell_mlp", "track_mlp", "head")}
    n["transformer"] = sum(
        p.numel() for mod in (m.in_norm, m.blocks, m.out_norm) for p in mod.parameters()
    )
    assert n == {"layer_embed": 24, "cell_mlp": 17_536, "track_mlp": 17_280, "head": 8_776,
                 "transformer": 199_424}
    assert m.embed_dim == 8 and m.width == 128


def test_proximity_mask_matches_explicit_delta_r() -> None:
    g = torch.Generator().manual_seed(3)
    eta = torch.randn(2, 9, generator=g) * 0.2
    phi = torch.randn(2, 9, generator=g) * 0.2
    phi[0, 0] = math.pi - 0.01  # wrap-around neighbours: Δφ = 0.02, not 2π - 0.02
    phi[0, 1] = -math.pi + 0.01
    eta[0, 1] = eta[0, 0]
    valid = torch.rand(2, 9, generator=g) < 0.7
    valid[0, :2] = True
    mask = proximity_mask(eta, phi, valid, 0.1)
    for b in range(2):
        for i in range(9):
            for j in range(9):
                dphi = (float(phi[b, i] - phi[b, j]) + math.pi) % (2 * math.pi) - math.pi
                dr = math.hypot(float(eta[b, i] - eta[b, j]), dphi)
                want = i == j or (bool(valid[b, i]) and bool(valid[b, j]) and dr < 0.1)
                assert bool(mask[b, i, j]) == want, (b, i, j)
    assert abs(float(delta_r(eta, phi)[0, 0, 1]) - 0.02) < 1e-5
    assert bool(mask[0, 0, 1])


def _one_jet() -> tuple[torch.Tensor, ...]:
    """Track 0 at the origin, cell 0 near it (ΔR 0.05), cell 1 far (ΔR 0.42), cell 2 padded."""
    t = torch.tensor([[[12.0, 0.0, 0.0, 0.01, -0.02], [3.0, 0.31, -0.3, 0.0, 0.1]]])
    tm = torch.tensor([[True, True]])
    c = torch.tensor([[[4.0, 0.03, 0.04, 1.0], [2.0, -0.3, 0.3, 4.0], [0.0, 0.0, 0.0, 0.0]]])
    cm = torch.tensor([[True, True, False]])
    return t, tm, c, cm


def test_first_layer_sees_only_proximity_neighbours() -> None:
    m = _small(r_edge=0.1)
    t, tm, c, cm = _one_jet()
    with torch.no_grad():
        h0, _ = m.nodes(t, tm, c, cm, n_blocks=1)
        far = c.clone()
        far[0, 1, 0] = 50.0  # far cell: other energy, other layer, still > r_edge away
        far[0, 1, 3] = 0.0
        far[0, 1, 1] = -0.25
        h_far, _ = m.nodes(t, tm, far, cm, n_blocks=1)
        near = c.clone()
        near[0, 0, 0] = 50.0
        h_near, _ = m.nodes(t, tm, near, cm, n_blocks=1)
    # node order: tracks (0, 1), then cells (2, 3, 4)
    assert torch.equal(h0[0, 0], h_far[0, 0]), "track 0 sees a cell beyond r_edge"
    assert not torch.allclose(h_far[0, 3], h0[0, 3]), "the changed node itself must change"
    assert not torch.allclose(h_near[0, 0], h0[0, 0], atol=1e-6), "near cell must be seen"
    # after all blocks + pooling the far cell matters (it is part of the jet)
    with torch.no_grad():
        assert not torch.allclose(m(t, tm, c, cm), m(t, tm, far, cm))
    # with full attention (r_edge null) the far cell is seen in the first layer
    full = _small(r_edge=None)
    with torch.no_grad():
        h_full, _ = full.nodes(t, tm, c, cm, n_blocks=1)
        h_full_far, _ = full.nodes(t, tm, far, cm, n_blocks=1)
        assert not torch.allclose(h_full[0, 0], h_full_far[0, 0])


def test_padding_never_matters() -> None:
    m = _small()
    rng = np.random.default_rng(1)
    t, tm, c, cm = _tensors(*make_view(rng, 5, 6, 10))
    with torch.no_grad():
        ref = m(t, tm, c, cm)
        # pad twice as long, with garbage (incl. NaN-free huge values) in the padded slots
        t2 = torch.cat([t, 1e3 * torch.rand(5, 6, 5)], 1)
        c2 = torch.cat([c, 1e3 * torch.rand(5, 10, 4)], 1)
        c2[..., 3] = c2[..., 3].clamp(0, 5).round()
        t2[:, :6][~tm], c2[:, :10][~cm] = 7.0, 3.0  # garbage inside the original padding too
        tm2 = torch.cat([tm, torch.zeros(5, 6, dtype=torch.bool)], 1)
        cm2 = torch.cat([cm, torch.zeros(5, 10, dtype=torch.bool)], 1)
        out = m(t2, tm2, c2, cm2)
        alone = torch.cat(
            [m(t[i : i + 1], tm[i : i + 1], c[i : i + 1], cm[i : i + 1]) for i in range(5)]
        )
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(alone, ref, rtol=0, atol=1e-5)


def test_permutation_invariance() -> None:
    m = _small()
    rng = np.random.default_rng(2)
    t, tm, c, cm = _tensors(*make_view(rng, 4, 6, 10))
    pt, pc = torch.randperm(6), torch.randperm(10)
    with torch.no_grad():
        torch.testing.assert_close(
            m(t[:, pt], tm[:, pt], c[:, pc], cm[:, pc]), m(t, tm, c, cm), rtol=0, atol=1e-5
        )


def test_bad_inputs_fail_loudly() -> None:
    m = _small()
    t, tm, c, cm = _one_jet()
    c[0, 0, 3] = 6.0
    with pytest.raises(ValueError, match="cell layer index"):
        m(t, tm, c, cm)
    with pytest.raises(ValueError, match="out of range"):
        CellsTracksNet(track_dim=3)
    with pytest.raises(ValueError, match="different frames"):
        check_same_frame(TRACK_NAMES, ["E", "eta", "phi", "layer"], [1, 2], [1, 2])
    check_same_frame(TRACK_NAMES, CELL_NAMES, [1, 2], [1, 2])


# ----------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hadfork")
    return {
        "tagged": write_hadfork(d / "tagged.h5", {"qq": 9, "gg": 8, "tautau": 4}, tag_rows=True),
        "train": write_hadfork(d / "train.h5", {"qq": 16, "gg": 16, "tautau": 8}, seed=1),
        "nocells": write_hadfork(d / "nocells.h5", {"qq": 5, "gg": 5}, seed=2, cells=False),
    }


def test_sampler_pairs_fork_a_with_fork_b_and_delivers_cells(files: dict[str, Path]) -> None:
    path = str(files["tagged"])
    assert CellsInfo.read(path).feature_names == CELL_NAMES
    s = MultiPairSampler(path, PROCESSES, ["fork_b"], 4, seed=5, drop_last=False)
    batches = list(s.epoch(0))
    seen = []
    for b in batches:
        rows_a = b.tracks_a[:, 0, 4].long()
        rows_b = b.tracks_b[:, 0, 4].long()
        assert (rows_a % 2 == 0).all(), "view a must be fork_a (variant 0)"
        assert torch.equal(rows_b, rows_a + 1), "view b must be fork_b of the same pair"
        assert torch.equal(b.cells_a[:, 0, 0].long(), rows_a)  # cells of the same jets
        assert torch.equal(b.cells_b[:, 0, 0].long(), rows_b)
        assert b.cells_a.shape[-1] == 4 and len(b) == 2 * rows_a.numel()
        seen += rows_a.tolist()
    assert sorted(seen) == list(range(0, 42, 2))  # every pair once per epoch
    with h5py.File(path) as f:
        lab = f["jets/label"][:]
    for b in batches:
        rows = b.tracks_a[:, 0, 4].long().numpy()
        assert torch.equal(b.labels, torch.from_numpy(lab[rows]).long())
    # deterministic and resumable: batch order is a function of (seed, epoch)
    again = list(s.epoch(0, start_batch=2))
    assert [x.tracks_a[:, 0, 4].tolist() for x in again] == [
        x.tracks_a[:, 0, 4].tolist() for x in batches[2:]
    ]
    s.close()


def test_nt_xent_pairs_the_two_forks_of_one_shower(files: dict[str, Path]) -> None:
    table = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))

    class PairIdBackbone(torch.nn.Module):
        """y = a fixed random vector of the jet's pair id (row tag // 2)."""

        def forward(self, t, tm, c, cm):
            return table[(t[:, 0, 4].long() // 2)]

    method = HadforkContrastive(PairIdBackbone(), tau=0.1)
    with MultiPairSampler(str(files["tagged"]), PROCESSES, ["fork_b"], 8, seed=1) as s:
        b = next(iter(s.epoch(0)))
    y = table[b.tracks_a[:, 0, 4].long() // 2]
    loss = method(b)["loss"]
    torch.testing.assert_close(loss, nt_xent(y, y, 0.1))
    assert float(loss) < 0.5 * float(nt_xent(y, y.roll(1, 0), 0.1))


def test_file_without_cells_still_runs(files: dict[str, Path]) -> None:
    info = CellsInfo.read(str(files["nocells"]))
    assert not info.present and info.n_features == 4
    with MultiPairSampler(str(files["nocells"]), ["qq", "gg"], ["fork_b"], 4, seed=0) as s:
        b = next(iter(s.epoch(0)))
    assert not b.cells_mask_a.any()
    y = _small()(*b.view("a"))
    assert torch.isfinite(y).all()


# ----------------------------------------------------------------------------- training


class _Batches:
    def __init__(self, views: list[torch.Tensor], bs: int) -> None:
        self.views, self.bs = views, bs

    def __call__(self, epoch: int, start: int):
        n = self.views[0].shape[0]
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        for k in range(start, n // self.bs):
            i = perm[k * self.bs : (k + 1) * self.bs]
            yield MultiPairBatch(*(v[i] for v in self.views), torch.zeros(len(i), dtype=torch.long))


def overfit_views(n_pairs: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """64 jets = 32 fork pairs, as tensors in MultiPairBatch field order."""
    rng = np.random.default_rng(seed)
    a = make_view(rng, n_pairs, 6, 10, min_real=3)
    return _tensors(*a, *fork(rng, *a))


def test_contrastive_overfits_64_jets(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HadforkContrastive(build_backbone(SMALL), tau=0.1)
    state = fit(
        model, [{"params": list(model.parameters())}], lambda m, b: m(b),
        _Batches(overfit_views(), 16), 2, EngineConfig(epochs=30, lr=3e-3, checkpoint_every=10_000),
        torch.device("cpu"), tmp_path / "ck.pt", tmp_path / "h.csv",
    )
    first, last = state.history[0]["loss"], state.history[-1]["loss"]
    assert last < first / 5, f"NT-Xent fell only from {first:.3f} to {last:.3f}"


EXP = {
    "backbone": SMALL,
    "pretrain": {
        "method": "hadfork_contrastive", "processes": None, "augset": None, "tau": 0.1,
        "batch_size": 8, "epochs": 2, "lr": 1e-3, "val_fraction": 0.2, "checkpoint_every": 3,
        "norm_jets": 1000,
    },
}


def _history(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in [k for k in r if k.endswith("_per_s")]:  # throughput: wall-clock timings
            r.pop(k)
    return rows


class _Kill(RuntimeError):
    pass


@pytest.mark.parametrize("method", ["hadfork_contrastive", "ae_vicreg"])
def test_pretrain_resume_after_kill_is_bit_identical(
    files: dict[str, Path], tmp_path: Path, method: str
) -> None:
    h5 = str(files["train"])
    exp = {**EXP, "pretrain": {**EXP["pretrain"], "method": method}}
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_pretrain(h5, str(ref), exp, None, repeat=0, seed=11, device="cpu")

    def kill(state) -> None:
        if state.step == 5:  # 32 train pairs / 8 = 4 steps per epoch: mid-epoch 2
            raise _Kill("simulated kill")

    with pytest.raises(_Kill):
        run_pretrain(h5, str(killed), exp, None, repeat=0, seed=11, device="cpu", after_step=kill)
    assert (killed / "checkpoint.pt").exists() and not (killed / "model.pt").exists()
    run_pretrain(h5, str(killed), exp, None, repeat=0, seed=11, device="cpu")
    a, b = (torch.load(p / "model.pt", weights_only=False) for p in (ref, killed))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert _history(ref / "history.csv") == _history(killed / "history.csv")
    hist = _history(ref / "history.csv")[-1]
    assert {"val_loss", "cos_pos_q", "cos_pos_g", "cos_neg", "cos_class_means"} <= set(hist)
    assert a["method"] == method and a["cells_feature_names"] == CELL_NAMES


def test_saved_model_embeds_raw_files(files: dict[str, Path], tmp_path: Path) -> None:
    h5 = str(files["train"])
    run_pretrain(h5, str(tmp_path), EXP, None, repeat=0, seed=3, device="cpu")
    model, payload = load_backbone(tmp_path / "model.pt")
    assert payload["backbone_cfg"]["track_dim"] == 5 and payload["backbone_cfg"]["cell_dim"] == 4
    assert not torch.equal(model.track_scale, torch.ones(5)), "normalisation was not fitted"
    assert float(model.cell_scale[3]) == 1.0 and float(model.cell_shift[3]) == 0.0
    rows = np.array([7, 2, 2, 30])
    z = embed_rows(model, h5, rows)
    x = embed_rows(model, h5, rows, represent=True)
    assert z.shape == (4, 8) and x.shape == (4, 32) and np.isfinite(z).all()
    np.testing.assert_array_equal(z[1], z[2])
    n = DatasetInfo.read(h5).n_rows
    assert embed_rows(model, h5, np.arange(n)).shape == (n, 8)


def test_registry_and_wrong_method(files: dict[str, Path], tmp_path: Path) -> None:
    # pair methods train on tracks + cells pairs here, on particle pairs elsewhere
    for m in ("hadfork_contrastive", "ae_vicreg", "simclr"):
        assert method_sampler(m, ("particles", "cells")) == "multi_pairs"
        assert method_sampler(m, ("particles",)) == "pairs"
    with pytest.raises(ValueError, match="tracks \\+ cells"):  # single-jet methods do not
        run_pretrain(
            str(files["train"]), str(tmp_path),
            {**EXP, "pretrain": {**EXP["pretrain"], "method": "jbot"}}, None, repeat=0, seed=0,
            device="cpu",
        )
