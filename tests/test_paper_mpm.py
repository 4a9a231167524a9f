"""MPM's paper outputs (Golling et al., arXiv:2401.13537): Table I across the variant
experiments, Fig. 3's accuracy-vs-labels figure, the quantized-input rows, the shared
tokenizer and the checks that refuse a bad declaration before any job."""

from __future__ import annotations

import copy
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from jetforge.config import ConfigError, load_config, validate_config
from jetforge.methods.mpm import MPM
from jetforge.methods.mpm_tokenizer import VQVAE, KMeansTokenizer
from jetforge.models.normformer import NormformerNet
from jetforge.models.registry import load_backbone, save_backbone
from jetforge.paper_outputs import find, run
from jetforge.paper_outputs.mpm import variant_of
from jetforge.workflow import targets as T

CLASSES = ["qcd_zjet", "hbb_zh", "hcc_zh", "hgg_zh", "h4q_zh", "hlvqq_zh", "zqq_zjet",
           "wqq_wjet", "tbqq_tt", "tblv_tt"]  # fmt: skip


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_config("config/config.yaml")


def _predictions(path: Path, accuracy: float, mode: str, n_train: int, repeat: int,
                 seed: int) -> None:  # fmt: skip
    """A ten-class predictions file whose argmax is right for ``accuracy`` of 500 jets."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 10, 500)
    right = np.arange(500) < round(accuracy * 500)
    guess = np.where(right, label, (label + 1) % 10)
    score = rng.random((500, 10)).astype(np.float32) * 0.1
    score[np.arange(500), guess] = 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["score"], f["label"] = score, label.astype(np.int8)
        f.attrs.update({"task": "jetclass10", "mode": mode, "augset": "none",
                        "n_train": n_train, "repeat": repeat, "classes": CLASSES})  # fmt: skip


def test_table1_rows_are_variants_beside_the_papers_numbers(cfg, tmp_path):
    d = find(cfg, "tables", "mpm", "table1")
    inputs = d.kind.inputs(cfg, d.experiment, d.spec)
    rows = d.spec["experiments"]
    assert len(rows) == 8 and all(len(inputs[e]) == 2 for e in rows)
    made: dict[str, list[str]] = {}
    truth = {e: 0.3 + 0.02 * i for i, e in enumerate(rows)}
    for e in rows:
        made[e] = []
        for r, p in enumerate(inputs[e]):
            path = tmp_path / p
            _predictions(path, truth[e] + 0.01 * r, "fixed", 800, r, hash(e) % 1000 + r)
            made[e].append(str(path))
    split = tmp_path / "train.h5"
    with h5py.File(split, "w") as f:
        f["mask"] = np.ones((123, 4), dtype=bool)
    made["pretrain_split"] = [str(split)]
    out = {ext: str(tmp_path / f"table1.{ext}") for ext in ("csv", "md", "tex")}
    run("tables", cfg, d.experiment, "mpm", "table1", made, out)
    table = pd.read_csv(out["csv"])
    assert list(table["experiment"]) == rows
    for e, row in zip(rows, table.itertuples(), strict=True):
        assert row.accuracy == pytest.approx(truth[e] + 0.005, abs=1e-9)
        assert row.n_repeats == 2 and row.accuracy_std > 0
    head_vq = table[(table.ordering == "head") & (table.inputs == "continuous")
                    & (table.target == "vqvae")]  # fmt: skip
    assert head_vq["paper_accuracy"].item() == pytest.approx(0.568)
    quant_km = table[(table.inputs == "quantized") & (table.target == "kmeans")]
    assert quant_km["paper_accuracy"].item() == pytest.approx(0.493)
    md = Path(out["md"]).read_text()
    assert "123 jets" in md and "stand-in of JetClass" in md and "56.8 %" in md


def test_each_table1_row_is_its_own_variant(cfg):
    rows = find(cfg, "tables", "mpm", "table1").spec["experiments"]
    variants = {tuple(variant_of(cfg["experiments"][e]).values()) for e in rows}
    assert len(variants) == 8
    assert ("head", "quantized", "vqvae") in variants and ("backbone", "continuous",
                                                            "regression") in variants


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["experiments"]["mpm_t1_none_vqvae"]["pretrain"].update(ordering="head"),
         "are the same variant"),
        (lambda c: c["experiments"]["mpm"]["tables"]["table1"].update(task="nope"),
         "'nope' is not a fine-tuning task of experiment"),
        (lambda c: c["experiments"]["mpm_t1_head_kmeans"]["finetune"].update(modes=["floating"]),
         "runs no 'fixed' fine-tuning"),
        (lambda c: c["experiments"]["mpm_t1_none_vqvae"].update(tokenizer_from="mpm"),
         "whose tokenizer this experiment uses"),
        (lambda c: c["experiments"]["mpm"]["paper_figures"]["fig3"].update(metric="rejection"),
         "rejection needs a binary task"),
    ],
)
def test_bad_mpm_declarations_are_refused_before_any_job(cfg, edit, message):
    c = copy.deepcopy(cfg)
    edit(c)
    with pytest.raises(ConfigError, match=message):
        validate_config(c)


def test_shared_tokenizer_and_study_rows_in_the_dag(cfg):
    assert T.pretrain_inputs(cfg, "mpm_t1_none_vqvae")["tokenizer"] == (
        "results/pretrain/mpm_t1_head_vqvae/tokenizer.pt")  # fmt: skip
    assert "tokenizer" not in T.pretrain_inputs(cfg, "mpm_t1_head_regression")
    everything = T.all_targets(cfg)
    assert "results/tables/mpm/table1.md" in everything
    assert "results/figures/mpm/fig3.png" in everything
    assert not any(p.startswith("results/tables/mpm_t1_") for p in everything)


def test_paper_config_declares_every_mpm_output():
    c = load_config("config/config.yaml", "config/paper/mpm.yaml")
    everything = T.all_targets(c)
    for p in ("results/tables/mpm/table1.md", "results/figures/mpm/fig3.png",
              "results/figures/mpm/fig4.png", "results/figures/mpm/fig5a.png"):  # fmt: skip
        assert p in everything
    assert c["experiments"]["mpm_t1_head_vqvae"]["pretrain_from"] == "mpm"


@pytest.mark.parametrize("kind", ["kmeans", "vqvae"])
def test_quantized_inputs_mask_code_vectors_and_survive_the_model_file(kind, tmp_path):
    torch.manual_seed(0)
    x = torch.randn(3, 9, 5)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[:, 6:] = False
    if kind == "kmeans":
        tok = KMeansTokenizer(5, 8).fit_(np.random.default_rng(0).normal(size=(200, 5)), seed=0)
    else:
        tok = VQVAE(5, dim=16, n_blocks=1, n_heads=2, latent_dim=3, n_codes=8, dropout=0.0)
    bb = NormformerNet(5, 16, 1, 2, 32, 0.0)
    model = MPM(bb, tok, target=kind, head_heads=2, inputs="quantized")
    assert model.mask_vector.numel() == (5 if kind == "kmeans" else 3) == bb.code_dim
    model(x, mask)["loss"].backward()
    assert model.backbone.input_tokenizer is not None
    assert all(p.grad is None for p in model.backbone.input_tokenizer.parameters())
    # particles with the same token reach the backbone as the same vector
    q = bb.quantize(x, mask)
    ids = tok.targets(x, mask)
    same = (ids[0, :, None] == ids[0, None, :]) & mask[0, :, None] & mask[0, None, :]
    assert torch.allclose(q[0][:, None].expand(-1, 9, -1)[same], q[0][None].expand(9, -1, -1)[same])
    cfg = {"name": "normformer", "in_dim": 5, "dim": 16, "n_blocks": 1, "n_heads": 2,
           "mlp_dim": 32, "dropout": 0.0, **model.backbone_cfg_updates}  # fmt: skip
    save_backbone(tmp_path / "model.pt", bb, cfg)
    again, _ = load_backbone(tmp_path / "model.pt")
    bb.eval(), again.eval()
    assert torch.allclose(bb(x, mask), again(x, mask))


def test_fig3_draws_each_mode(cfg, tmp_path):
    d = find(cfg, "paper_figures", "mpm", "fig3")
    files = []
    for i, (mode, n, r) in enumerate([(m, n, r) for m in ("fixed", "floating", "supervised")
                                      for n in (200, 800) for r in (0, 1)]):  # fmt: skip
        p = tmp_path / f"{mode}_{n}_{r}.h5"
        _predictions(p, 0.2 + 0.1 * (n == 800), mode, n, r, i)
        files.append(str(p))
    out = {"png": str(tmp_path / "fig3.png"), "pdf": str(tmp_path / "fig3.pdf")}
    run("paper_figures", cfg, d.experiment, "mpm", "fig3", {"predictions": files}, out)
    assert Path(out["png"]).stat().st_size > 1000 and Path(out["pdf"]).exists()


def test_jet_mass_and_pt_from_constituents():
    from jetforge.paper_outputs.mpm_figures import jet_mass_pt

    # two massless particles back to back in x (mass 2, p_T 0) and one along y (mass 0)
    p4 = {"E": np.array([[1.0, 1.0], [3.0, 0.0]]), "px": np.array([[1.0, -1.0], [0.0, 0.0]]),
          "py": np.array([[0.0, 0.0], [3.0, 0.0]]), "pz": np.zeros((2, 2))}  # fmt: skip
    mass, pt = jet_mass_pt(p4)
    assert mass == pytest.approx([2.0, 0.0]) and pt == pytest.approx([0.0, 3.0])


def test_fig2_decodes_both_tokenizers(cfg, tmp_path):
    from jetforge.methods.mpm_tokenizer import save_tokenizer

    rng = np.random.default_rng(1)
    n, P = 40, 6
    p3 = rng.normal(size=(n, P, 3)) * 50
    x = np.concatenate([np.linalg.norm(p3, axis=-1, keepdims=True), p3], -1).astype(np.float32)
    split = tmp_path / "test.h5"
    with h5py.File(split, "w") as f:
        f["particles"], f["mask"] = x, np.ones((n, P), bool)
        for k in ("pt", "eta", "phi"):
            f[f"jets/{k}"] = rng.normal(size=n)
        f.attrs["feature_set"] = "kinematic4"
    km = KMeansTokenizer(4, 8).fit_(x.reshape(-1, 4), seed=0)
    vq = VQVAE(4, dim=16, n_blocks=1, n_heads=2, latent_dim=3, n_codes=8, dropout=0.0)
    toks = [str(tmp_path / "km.pt"), str(tmp_path / "vq.pt")]
    save_tokenizer(toks[0], km)
    save_tokenizer(toks[1], vq.eval())
    out = {"png": str(tmp_path / "fig2.png"), "pdf": str(tmp_path / "fig2.pdf")}
    run("paper_figures", cfg, "mpm", "mpm", "fig2", {"tokenizers": toks, "test": [str(split)]},
        out)  # fmt: skip
    assert Path(out["png"]).stat().st_size > 1000


def test_fig8_one_panel_per_signal(cfg, tmp_path):
    rng = np.random.default_rng(2)
    emb = tmp_path / "emb.h5"
    procs = ["qcd_zjet", "hbb_zh", "tbqq_tt"]
    with h5py.File(emb, "w") as f:
        proc = np.repeat(np.arange(3), 20)
        f["z"] = rng.normal(size=(60, 5)).astype(np.float32) + proc[:, None]
        f["jets/process"] = proc.astype(np.int8)
        f.attrs["process_names"] = procs
    out = {"png": str(tmp_path / "fig8.png"), "pdf": str(tmp_path / "fig8.pdf")}
    run("paper_figures", cfg, "mpm", "mpm", "fig8", {"embedding": [str(emb)]}, out)
    assert Path(out["png"]).stat().st_size > 1000
