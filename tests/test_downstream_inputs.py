"""One input path for every backbone: probes, fine-tuning and embedding export on
hadronization-fork files (tracks + calorimeter cells, Rieck et al.), and the single
pre-training driver (``pretrain.variants``).

The tracks + cells backbone declares ``inputs = ("particles", "cells")``; the generic
downstream code must then read ``cells``/``cells_mask`` as well and pass them in that
order, while particle-only backbones keep reading ``particles``/``mask`` only. Synthetic
files in the hadfork layout come from ``test_cells_tracks.write_hadfork``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from jetforge.evaluation.probes import embed_rows, embed_views
from jetforge.models.cells_tracks import CellsTracksNet, fit_normalisation
from jetforge.models.registry import backbone_inputs, build_backbone, load_backbone, save_backbone
from jetforge.training.data import JetSampler, iter_rows
from jetforge.training.embed import export_embeddings
from jetforge.training.finetune import Classifier, run_finetune
from jetforge.training.pretrain import run_pretrain

sys.path.insert(0, str(Path(__file__).parent))
from test_cells_tracks import (
    CELL_NAMES,
    EXP,
    PROCESSES,
    SMALL,
    TRACK_NAMES,
    write_hadfork,
)
from test_training import write_format4

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hadfork_down")
    return {
        "train": write_hadfork(d / "train.h5", {"qq": 16, "gg": 16, "tautau": 8}, seed=1),
        "test": write_hadfork(d / "test.h5", {"qq": 5, "gg": 5, "tautau": 4}, seed=2),
        "tagged": write_hadfork(d / "tagged.h5", {"qq": 6, "gg": 5, "tautau": 3}, tag_rows=True),
    }


def _raw(path: Path, rows: np.ndarray) -> list[torch.Tensor]:
    """Tracks, track mask, cells, cell mask of ``rows`` as stored (untrimmed)."""
    with h5py.File(path) as f:
        keys = ("particles", "mask", "cells", "cells_mask")
        return [torch.from_numpy(f[k][:][rows]) for k in keys]


def _fitted_backbone(path: Path) -> CellsTracksNet:
    torch.manual_seed(0)
    bb = build_backbone(SMALL)
    with h5py.File(path) as f:
        arrays = [f[k][:] for k in ("particles", "mask", "cells", "cells_mask")]
    fit_normalisation(bb, *arrays)
    return bb.eval()


def _repadded(src: Path, dst: Path, extra_t: int, extra_c: int, seed: int) -> Path:
    """``src`` with longer padding of tracks and cells and garbage in every padded slot."""
    rng = np.random.default_rng(seed)
    with h5py.File(src) as f, h5py.File(dst, "w") as g:
        for k in f.attrs:
            g.attrs[k] = f.attrs[k]
        f.copy(f["jets"], g, "jets")
        for vals, mask, extra, layer in (("particles", "mask", extra_t, None),
                                         ("cells", "cells_mask", extra_c, 3)):  # fmt: skip
            x, m = f[vals][:], f[mask][:]
            n, p, nf = x.shape
            x2 = (100 * rng.random((n, p + extra, nf))).astype(np.float32)
            if layer is not None:  # padded cells still need a valid layer index
                x2[..., layer] = rng.integers(0, 6, (n, p + extra))
            m2 = np.zeros((n, p + extra), bool)
            x2[:, :p][m], m2[:, :p] = x[m], m
            g.create_dataset(vals, data=x2)
            g.create_dataset(mask, data=m2)
    return dst


def test_backbones_declare_their_inputs() -> None:
    assert backbone_inputs(CellsTracksNet) == ("particles", "cells")
    assert backbone_inputs(SMALL) == ("particles", "cells")
    assert backbone_inputs({"name": "edgeconv"}) == ("particles",)
    clf = Classifier(build_backbone(SMALL), n_out=3)
    assert clf.inputs == ("particles", "cells") and backbone_inputs(clf) == clf.inputs


def test_jet_sampler_and_iter_rows_deliver_the_cells_of_the_same_jets(
    files: dict[str, Path],
) -> None:
    path = str(files["tagged"])
    rows = np.arange(0, 28, 3)
    with JetSampler(path, rows, np.zeros(rows.size), 4, seed=0,
                    inputs=("particles", "cells")) as s:  # fmt: skip
        seen = []
        for b in s.epoch(0):
            r = b.x[:, 0, 4].long()
            assert torch.equal(b.cells[:, 0, 0].long(), r), "cells of other jets"
            assert len(b.inputs) == 4 and b.inputs[2] is b.cells
            seen += r.tolist()
    assert sorted(seen) == rows.tolist()
    with JetSampler(path, rows, np.zeros(rows.size), 4, seed=0) as s:  # default: particles
        b = next(iter(s.epoch(0)))
        assert b.cells is None and len(b.inputs) == 2
    with h5py.File(path) as f:
        out = list(iter_rows(f, rows, 4, ("particles", "cells")))
        assert [len(o) for o in out] == [5, 5, 5]
        for r, t, _tm, c, _cm in out:
            assert torch.equal(t[:, 0, 4].long(), torch.from_numpy(r))
            assert torch.equal(c[:, 0, 0].long(), torch.from_numpy(r))


def test_probe_embeddings_use_tracks_and_cells_and_ignore_padding(
    files: dict[str, Path], tmp_path: Path
) -> None:
    path = files["train"]
    bb = _fitted_backbone(path)
    save_backbone(tmp_path / "model.pt", bb, {**SMALL, "track_dim": 5, "cell_dim": 4},
                  feature_names=TRACK_NAMES, cells_feature_names=CELL_NAMES)  # fmt: skip
    rows = np.array([17, 3, 3, 60, 0, 41])  # any order, duplicates allowed
    z = embed_rows(tmp_path / "model.pt", str(path), rows, chunk=4)
    with torch.no_grad():
        want = bb(*_raw(path, rows)).numpy()
    assert z.shape == (6, 8) and z.dtype == np.float32
    np.testing.assert_allclose(z, want, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(z[1], z[2])
    # the pooled representation too (Rieck et al. §5.5 input of the anomaly autoencoder)
    x = embed_rows(bb, str(path), rows, represent=True)
    with torch.no_grad():
        np.testing.assert_allclose(x, bb.represent(*_raw(path, rows)).numpy(), atol=1e-5)
    # both views from one pass are the two single-view embeddings
    both = embed_views(bb, str(path), rows, ("output", "pooled"), chunk=4)
    np.testing.assert_allclose(both["output"], z, atol=1e-5)
    np.testing.assert_allclose(both["pooled"], x, atol=1e-5)
    with pytest.raises(ValueError, match="unknown embedding views"):
        embed_views(bb, str(path), rows, ("cls",))
    # padding (longer, with garbage in every padded slot) never changes the embedding,
    # nor does which other jets share the chunk
    padded = _repadded(path, tmp_path / "padded.h5", extra_t=5, extra_c=9, seed=3)
    for chunk in (1, 5, 1024):
        np.testing.assert_allclose(
            embed_rows(bb, str(padded), rows, chunk=chunk), z, rtol=0, atol=1e-5
        )
    # the cells are really read: without them the embedding changes
    nocells = tmp_path / "nocells.h5"
    with h5py.File(path) as f, h5py.File(nocells, "w") as g:
        for k in ("particles", "mask", "jets"):
            f.copy(f[k], g, k)
        for k in f.attrs:
            if k != "cells_feature_names":
                g.attrs[k] = f.attrs[k]
    z_tracks = embed_rows(bb, str(nocells), rows)
    assert np.isfinite(z_tracks).all()
    assert np.abs(z_tracks - z).max() > 1e-3
    # a model trained on other cell columns is refused
    other_cells = ["E", "eta", "phi", "layer"]
    save_backbone(tmp_path / "other.pt", bb, {**SMALL, "track_dim": 5, "cell_dim": 4},
                  feature_names=TRACK_NAMES, cells_feature_names=other_cells)  # fmt: skip
    with pytest.raises(ValueError, match="cell features"):
        embed_rows(tmp_path / "other.pt", str(path), rows)


def test_probe_table_on_a_hadfork_model(files: dict[str, Path], tmp_path: Path) -> None:
    """The workflow's probe step (k-NN + linear on frozen y, vs a random init) runs on a
    pre-trained tracks + cells backbone."""
    from jetforge.evaluation.probe_table import probe_table

    run_pretrain(str(files["train"]), str(tmp_path / "pre"), EXP, None, 0, 3, "cpu")
    exp = {**EXP, "dataset": "hadfork_test", "probe": {"k": 5, "n_jets": 100}}
    rows = probe_table(
        "hadfork_test", exp, [str(tmp_path / "pre" / "model.pt")], str(files["train"]),
        str(files["test"]), str(tmp_path / "probe.csv"), str(tmp_path / "probe.md"), seed=0,
    )  # fmt: skip
    names = ["pre-trained r0", "random init i0", "random init i1", "random init i2",
             "random init (mean of 3)"]
    # the 8-d output y, then the pooled 128-d x (Rieck et al. Fig. 3a)
    assert [(r["embedding"], r["encoder"]) for r in rows] == [
        (view, name) for view in ("output", "pooled") for name in names
    ]
    # the 8-d y can use at most its 8 directions; the 128-d x is not bounded by them
    assert 1 <= rows[0]["effective_rank"] <= 8 and rows[5]["effective_rank"] >= 1
    rand, mean = rows[1:4], rows[4]
    # the random draws differ (different seeds), the mean row averages them and its error is
    # their sample standard deviation
    assert len({r["linear_auc"] for r in rand}) > 1
    assert mean["knn_auc"] == pytest.approx(np.mean([r["knn_auc"] for r in rand]))
    assert mean["linear_acc_err"] == pytest.approx(np.std([r["linear_acc"] for r in rand], ddof=1))
    assert all(0 <= r["knn_acc"] <= 1 and 0 <= r["linear_acc"] <= 1 for r in rows)
    assert rows[0]["n_train"] == 40 and rows[0]["n_test"] == 14  # fork_a jets
    bb = load_backbone(str(tmp_path / "pre" / "model.pt"))[0]
    for r in rows:  # AUC_emb lies in [(D + 1) / 2D, 1] and the effective rank in [1, D]
        D = bb.embed_dim if r["embedding"] == "output" else bb.width
        assert (D + 1) / (2 * D) - 1e-9 <= r["auc_emb"] <= 1 + 1e-9
        assert 1 <= r["effective_rank"] <= D + 1e-9
    assert "AUC_emb" in (tmp_path / "probe.md").read_text()
    for r in rows[:4] + rows[5:9]:  # binomial standard error of the accuracy on 14 test jets
        assert r["knn_acc_err"] == pytest.approx(np.sqrt(r["knn_acc"] * (1 - r["knn_acc"]) / 14))


FT = {
    "epochs": 2, "batch_size": 8, "lr": 1e-3, "lr_backbone": 1e-4, "checkpoint_every": 3,
    "tasks": {"three": {"classes": ["qq", "gg", "tautau"]}},
}  # fmt: skip


@pytest.fixture(scope="module")
def pretrained(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hadfork_pre")
    run_pretrain(str(files["train"]), str(out), EXP, None, repeat=0, seed=5, device="cpu")
    return out / "model.pt"


@pytest.mark.parametrize("mode", ["floating", "supervised"])
def test_finetune_three_classes_on_tracks_and_cells(
    files: dict[str, Path], pretrained: Path, tmp_path: Path, mode: str
) -> None:
    out = tmp_path / "predictions.h5"
    exp = {**EXP, "finetune": FT}
    run_finetune(
        str(files["train"]), str(files["test"]), str(out), exp, "three", mode, "none", 30, 0, 1,
        str(pretrained) if mode == "floating" else None, "cpu",
    )  # fmt: skip
    with h5py.File(out) as f, h5py.File(files["test"]) as t:
        s, y = f["score"][:], f["label"][:]
        proc = t["jets/process"][:]
        assert s.shape == (proc.size, 3) and s.dtype == np.float32  # both forks predicted
        np.testing.assert_allclose(s.sum(1), 1.0, rtol=1e-5)
        assert np.array_equal(y, proc) and list(f.attrs["classes"]) == PROCESSES
        assert list(f.attrs["train_variants"]) == ["fork_a"]
        test_rows = np.arange(proc.size)
    # the written scores are the trained classifier applied to the stored tracks + cells
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    backbone = build_backbone({**SMALL, "track_dim": 5, "cell_dim": 4})
    clf = Classifier(backbone, n_out=3)
    clf.load_state_dict(ck)
    with torch.no_grad():
        want = torch.softmax(clf.eval()(*_raw(files["test"], test_rows)), -1).numpy()
    np.testing.assert_allclose(s, want, rtol=0, atol=1e-5)
    # the input standardisation: pre-trained one kept, or fitted for the from-scratch net
    if mode == "floating":
        pre, _ = load_backbone(pretrained)
        assert torch.equal(backbone.track_scale, pre.track_scale)
    else:
        assert not torch.equal(backbone.track_scale, torch.ones(5)), "supervised: not fitted"
    assert float(backbone.cell_scale[3]) == 1.0


def test_export_embeddings_of_a_hadfork_model(
    files: dict[str, Path], pretrained: Path, tmp_path: Path
) -> None:
    out = tmp_path / "emb.h5"
    export_embeddings(str(pretrained), str(files["test"]), str(out), device="cpu", chunk=7)
    model, _ = load_backbone(pretrained)
    with h5py.File(out) as f:
        z = f["z"][:]
        assert f.attrs["method"] == "hadfork_contrastive"
    with torch.no_grad():
        want = model.eval()(*_raw(files["test"], np.arange(z.shape[0]))).numpy()
    np.testing.assert_allclose(z, want, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- one driver


class _RowRecorder(nn.Module):
    """A ``"jets"`` method that records the row tags of the jets it sees (train / val)."""

    sampler = "jets"
    seen: dict[bool, list[int]] = {}

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    @classmethod
    def from_config(cls, backbone: nn.Module, cfg: object) -> _RowRecorder:
        return cls(backbone)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        self.seen.setdefault(self.training, []).extend(int(r) for r in x[:, 0, -1])
        return {"loss": 1e-6 * self.backbone(x, mask).pow(2).mean()}


@pytest.mark.parametrize("variants", [None, "nominal", "all"])
def test_single_jet_methods_nominal_or_all_variants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variants: str | None
) -> None:
    from jetforge.generation.seeds import derive_seed
    from jetforge.methods import METHODS

    monkeypatch.setitem(METHODS, "row_recorder", _RowRecorder)
    monkeypatch.setattr(_RowRecorder, "seen", {})
    h5 = write_format4(tmp_path / "d.h5", {"qcd_zjet": 12, "hbb_zh": 10}, tag_rows=True)
    V, n_pairs, seed = 5, 22, 7
    pcfg = {"method": "row_recorder", "processes": None, "batch_size": 4, "epochs": 1,
            "lr": 1e-3, "val_fraction": 0.25, "checkpoint_every": 100}  # fmt: skip
    if variants is not None:
        pcfg["variants"] = variants
    bcfg = {"name": "edgeconv", "embed": [8], "k": 2, "n_conv": 1, "conv_dim": 8, "encoder": [4]}
    exp = {"backbone": bcfg, "pretrain": pcfg}
    run_pretrain(str(h5), str(tmp_path / "out"), exp, None, 0, seed, "cpu")
    train, val = (sorted(_RowRecorder.seen.get(k, [])) for k in (True, False))
    assert len(train) % 4 == 0 and len(val) >= 2  # drop_last for training only
    if variants == "all":
        assert {r % V for r in train} == set(range(V))
        # validation is split by pair: no variant of a validation jet is trained on
        assert not {r // V for r in train} & {r // V for r in val}
        assert len(val) % V == 0 and len(train) > (n_pairs * V - len(val)) - 4
    else:
        assert {r % V for r in train + val} == {0}  # nominal jets only
        # the historical split: one uniform draw per nominal jet, in row order
        rng = np.random.default_rng(derive_seed("pretrain", "val-split", base=seed))
        assert val == list(np.flatnonzero(rng.random(n_pairs) < 0.25) * V)
    _, payload = load_backbone(tmp_path / "out" / "model.pt")
    assert payload["variants"] == (
        ["nominal", "seed", "fsr_up", "fsr_down", "alt_shower"] if variants == "all"
        else ["nominal"]
    )  # fmt: skip
    with pytest.raises(ValueError, match="pretrain.variants"):
        bad = {**exp, "pretrain": {**pcfg, "variants": "some"}}
        run_pretrain(str(h5), str(tmp_path / "bad"), bad, None, 0, seed, "cpu")


def test_eval_chunk_caps_attention_heavy_backbones():
    """Inference on calorimeter cells is chunked small enough not to blow memory; the
    cap reaches through the fine-tuning classifier; other backbones keep the chunk."""
    from torch import nn

    from jetforge.models.registry import eval_chunk
    from jetforge.training.finetune import Classifier

    class Heavy(nn.Module):
        max_eval_jets = 32
        embed_dim = 4

    assert eval_chunk(Heavy(), 1024) == 32 and eval_chunk(Heavy(), 8) == 8
    assert eval_chunk(nn.Linear(2, 2), 1024) == 1024
    assert eval_chunk(Classifier(Heavy(), frozen=False, n_out=1), 1024) == 32


def test_backbones_declare_their_data_preprocessing(files, monkeypatch):
    """A backbone says what it needs from the data (``config_for_data``) and fits what it
    must on the training jets (``fit_preprocessing``); ``build_backbone_for`` knows no
    backbone class. A toy backbone registered under a new name is built the same way."""
    from torch import nn

    from jetforge.models import BACKBONES
    from jetforge.models.registry import build_backbone_for

    calls: dict[str, object] = {}

    class Toy(nn.Module):
        inputs = ("particles", "cells")

        def __init__(self, width: int, n_cells_features: int) -> None:
            super().__init__()
            self.lin = nn.Linear(width, n_cells_features)

        @classmethod
        def config_for_data(cls, cfg, h5_path):
            from jetforge.training.data import CellsInfo

            return {**cfg, "n_cells_features": CellsInfo.read(h5_path).n_features}

        def fit_preprocessing(self, h5_path, rows, norm_jets):
            calls["fit"] = (h5_path, None if rows is None else len(rows), norm_jets)

    monkeypatch.setitem(BACKBONES, "toy", Toy)
    net, cfg = build_backbone_for({"name": "toy", "width": 3}, str(files["train"]), None, 7)
    assert cfg == {"name": "toy", "width": 3, "n_cells_features": 4}
    assert isinstance(net, Toy) and calls["fit"] == (str(files["train"]), None, 7)
    # the tracks + cells transformer sizes its two inputs from the file and fits its
    # normalisation; particle-only backbones get in_dim
    ct, ct_cfg = build_backbone_for({"name": "cells_tracks", **SMALL}, str(files["train"]))
    assert (ct_cfg["track_dim"], ct_cfg["cell_dim"]) == (5, 4) and "in_dim" not in ct_cfg


def test_random_probe_baseline_takes_input_preprocessing_not_batchnorm_statistics():
    from jetforge.evaluation.probe_table import input_preprocessing
    from jetforge.models.registry import build_backbone

    vit = build_backbone({"name": "vit", "size": "S", "in_dim": 4,
                          "input_shift": [1.0, 2.0, 3.0, 4.0],
                          "input_scale": [1.0] * 4})  # fmt: skip
    assert set(input_preprocessing(vit)) == {"input_shift", "input_scale"}
    part = build_backbone({"name": "part", "size": "mini", "in_dim": 15})
    assert not any("running" in k or "num_batches" in k for k in input_preprocessing(part))
    assert any("running_mean" in k for k, _ in part.named_buffers())


def test_probe_table_reads_the_probe_metric_and_iterations(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``probe.metric`` and ``probe.linear_max_iter`` reach the k-NN and linear probes (jBOT's
    authors probe with Euclidean distances on the raw [CLS]); unset, cosine and the
    logistic regression's own cap."""
    import jetforge.evaluation.probes as probes
    from jetforge.evaluation.probe_table import probe_table

    seen: list[tuple[str, object]] = []
    knn, lin = probes.knn_probe, probes.linear_probe

    def spy_knn(*a, **kw):
        seen.append(("knn", kw["metric"]))
        return knn(*a, **kw)

    def spy_lin(*a, **kw):
        seen.append(("linear", kw.get("max_iter")))
        return lin(*a, **kw)

    monkeypatch.setattr(probes, "knn_probe", spy_knn)
    monkeypatch.setattr(probes, "linear_probe", spy_lin)
    run_pretrain(str(files["train"]), str(tmp_path / "pre"), EXP, None, 0, 3, "cpu")
    model = [str(tmp_path / "pre" / "model.pt")]
    for probe, want in [({}, {("knn", "cosine"), ("linear", None)}),
                        ({"metric": "euclidean", "linear_max_iter": 500},
                         {("knn", "euclidean"), ("linear", 500)})]:  # fmt: skip
        seen.clear()
        exp = {**EXP, "dataset": "hadfork_test",
               "probe": {"k": 5, "n_jets": 100, "random_inits": 1, **probe}}  # fmt: skip
        probe_table("hadfork_test", exp, model, str(files["train"]), str(files["test"]),
                    str(tmp_path / "probe.csv"), str(tmp_path / "probe.md"), seed=0)  # fmt: skip
        assert set(seen) == want
