"""jBOT's paper outputs (Tsoi & Rankin, arXiv:2601.11719): Tables 2-4 and Figs. 3-9 built
from a small synthetic JetNet-like run (a tiny ViT, made-up prediction files), the binary
task with a list of background processes, and the spec checks before any job."""

from __future__ import annotations

import copy
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import sklearn.manifold
import torch

from jetforge import experiment as X
from jetforge.config import ConfigError, load_config, validate_config
from jetforge.paper_outputs import find, output_inputs, run, sub_config
from jetforge.reporting import style
from jetforge.workflow import targets as T

PROCS = ["zjet_g", "zjet_q", "tbqq_tt", "wqq_wjet", "zqq_zjet"]  # JetNet order


def write_jetnet(path: Path, n_per: int, seed: int) -> None:
    """Format-4 file with (etarel, phirel, ptrel, mask) particles; classes differ in their
    angular spread so probes and scores have something to find."""
    rng = np.random.default_rng(seed)
    P, xs, ms, proc = 12, [], [], []
    for i, _ in enumerate(PROCS):
        for _ in range(n_per):
            n = int(rng.integers(10, P + 1))
            x = np.zeros((P, 4), np.float32)
            x[:n, :2] = rng.normal(0, 0.05 * (1 + i), (n, 2))
            pt = rng.exponential(1.0, n)
            x[:n, 2] = np.sort(pt / pt.sum())[::-1]
            x[:n, 3] = 1
            xs.append(x)
            ms.append(np.arange(P) < n)
            proc.append(i)
    N = len(xs)
    with h5py.File(path, "w") as f:
        f.create_dataset("particles", data=np.stack(xs))
        f.create_dataset("mask", data=np.stack(ms))
        g = f.create_group("jets")
        g.create_dataset("process", data=np.asarray(proc, np.int8))
        g.create_dataset("label", data=np.asarray(proc, np.int8))
        g.create_dataset("variant", data=np.zeros(N, np.int8))
        for k in ("pair_id", "event", "chunk", "parton_pid"):
            g.create_dataset(k, data=np.arange(N, dtype=np.int64))
        for k in ("pt", "eta", "phi", "mass", "n2"):
            g.create_dataset(k, data=rng.random(N).astype(np.float32))
        f.attrs["feature_names"] = ["etarel", "phirel", "ptrel", "mask"]
        f.attrs["class_names"] = ["gluon", "quark", "tbqq", "wqq", "zqq"]
        f.attrs["process_names"] = PROCS
        f.attrs["variant_names"] = ["nominal"]
        f.attrs["dataset"] = "jetnet"
        f.attrs["split"] = path.stem


def save_vit(path: Path, seed: int) -> None:
    from jetforge.models.registry import build_backbone, save_backbone

    torch.manual_seed(seed)
    cfg = {"name": "vit", "size": "S", "d_model": 8, "n_blocks": 1, "n_heads": 2, "in_dim": 4}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_backbone(path, build_backbone(cfg), cfg, feature_names=["etarel", "phirel", "ptrel",
                                                                 "mask"])  # fmt: skip
    hist = pd.DataFrame({"epoch": [1, 2], "loss": [3.0, 2.0], "loss_cls": [1.0, 0.8],
                         "loss_part": [2.0, 1.2], "loss_koleo": [0.5, 0.4],
                         "entropy_teacher": [1.0, 2.0], "entropy_student": [1.1, 2.1],
                         "centre_cls_norm": [0.3, 0.6],
                         "centre_part_norm": [0.2, 0.5]})  # fmt: skip
    hist.assign(**{f"val_{c}": hist[c] for c in hist if c != "epoch"}).to_csv(
        path.with_name("history.csv"), index=False)  # fmt: skip


def fake_predictions(config: dict, experiment: str, rng: np.random.Generator) -> None:
    """Prediction files for every fine-tuning of the grid: scores that know the label, the
    fine-tuned ones a little better (so the gain rows have a sign to check)."""
    from jetforge.training.data import select_labelled_rows
    from jetforge.training.finetune import task_classes, write_predictions
    from jetforge.training.selection import select_class_rows

    exp = config["experiments"][experiment]
    for run_ in X.finetune_grid(exp):
        task = exp["finetune"]["tasks"][run_["task"]]
        test = T.task_files(config, experiment, run_["task"])["test"]
        classes, sig, bkg = task_classes(task)
        rows, y = (select_labelled_rows(test, sig, bkg, None) if classes is None
                   else select_class_rows(test, classes, None))  # fmt: skip
        sharp = 2.0 if run_["mode"] == "floating" else 1.0
        if classes is None:
            s = 1 / (1 + np.exp(-(sharp * (2 * y - 1) + rng.normal(size=y.size))))
        else:
            logit = rng.normal(size=(y.size, len(classes)))
            logit[np.arange(y.size), y] += sharp
            s = np.exp(logit) / np.exp(logit).sum(1, keepdims=True)
        out = Path(T.prediction_path(experiment, run_))
        out.parent.mkdir(parents=True, exist_ok=True)
        write_predictions(out, test, rows, s, y, {"task": run_["task"]})


def save_classifier_of(config: dict, experiment: str, task: str) -> None:
    """The classifier (tiny ViT + head) a floating fine-tuning of ``task`` stores beside its
    largest-size predictions, as run_finetune does."""
    from jetforge.evaluation.robustness import save_classifier
    from jetforge.models.registry import build_backbone
    from jetforge.training.finetune import Classifier

    cfg = {"name": "vit", "size": "S", "d_model": 8, "n_blocks": 1, "n_heads": 2, "in_dim": 4}
    torch.manual_seed(7)
    model = Classifier(build_backbone(cfg), frozen=False, n_out=5, hidden=[], dropout=0.0)
    model.saved_config = {"mode": "floating", "backbone_cfg": cfg}
    runs = [r for r in X.finetune_grid(config["experiments"][experiment], task)
            if r["mode"] == "floating" and r["repeat"] == 0]  # fmt: skip
    run_ = max(runs, key=lambda r: r["n_train"])
    save_classifier(T.classifier_path(T.prediction_path(experiment, run_)), model)


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_config("config/config.yaml")


@pytest.fixture(scope="module")
def world(cfg, tmp_path_factory) -> tuple[Path, dict]:
    """results/ of a tiny jBOT run: data, two pre-trainings per experiment, predictions."""
    root = tmp_path_factory.mktemp("jbot")
    c = copy.deepcopy(cfg)
    jb = c["experiments"]["jbot"]
    jb["finetune"]["n_train"] = [10, 40]
    jb["finetune"]["tasks"]["top_vs_qcd"]["grid"] = [{"n_train": [10, 30]}]
    jb["probe"] = {"k": 5, "n_jets": 1000, "random_inits": 2}
    jb["paper_figures"]["fig6"]["n_jets"] = 40
    c["experiments"]["jbot_anomaly"]["anomaly"]["k"] = 5
    c["experiments"]["jbot_anomaly"]["anomaly"]["gmm_components"] = 2
    c["experiments"]["jbot_anomaly"]["pretrain"]["repeats"] = 2
    cwd = Path.cwd()
    try:
        import os

        os.chdir(root)
        Path("results/datasets/jetnet").mkdir(parents=True)
        write_jetnet(Path("results/datasets/jetnet/train.h5"), 24, 1)
        write_jetnet(Path("results/datasets/jetnet/test.h5"), 24, 2)
        from jetforge.training.pretrain import SNAPSHOT

        for e in ("jbot", "jbot_anomaly"):
            for i, m in enumerate(T.pretrained_models(c, e)):
                save_vit(Path(m), 10 * i + len(e))
                for n in c["experiments"][e]["pretrain"]["snapshot_epochs"]:  # Fig. 6
                    save_vit(Path(m).parent / SNAPSHOT.format(epoch=n), 100 * n + i)
        fake_predictions(c, "jbot", np.random.default_rng(0))
        save_classifier_of(c, "jbot", "five_class")  # Fig. 6's after-fine-tuning column
    finally:
        os.chdir(cwd)
    return root, c


def build(world, section: str, name: str, monkeypatch) -> dict[str, Path]:
    root, c = world
    monkeypatch.chdir(root)
    d = find(c, section, "jbot", name)
    ext = ("csv", "md", "tex") if section == "tables" else ("png", "pdf")
    out = {x: str(root / "out" / f"{name}.{x}") for x in ext}
    (root / "out").mkdir(exist_ok=True)
    run(section, sub_config(c, d), d.experiment, d.paper, d.name,
        output_inputs(c, section, "jbot", name), out)  # fmt: skip
    return {k: Path(v) for k, v in out.items()}


def test_table2_probes_finetunes_gains_and_paper_column(world, monkeypatch):
    out = build(world, "tables", "table2", monkeypatch)
    df = pd.read_csv(out["csv"]).set_index("setup")
    for s in ("jbot:knn", "jbot:knn_cosine", "jbot:linear", "jbot:knn_random",
              "jbot:floating-default-n10", "jbot:supervised-default-n40", "jbot:gain-n10"):
        assert s in df.index, s
    assert df.loc["jbot:knn", "n_repeats"] == 2 and df.loc["jbot:knn_random", "n_repeats"] == 2
    assert {f"auc_{c}" for c in "qgWZt"} <= set(df.columns)
    # the paper's number beside ours, matched by probe / mode, size and fraction
    assert df.loc["jbot:knn", "paper_accuracy"] == pytest.approx(0.7102)
    assert df.loc["jbot:floating-default-n10", "paper_accuracy"] == pytest.approx(0.7425)
    assert df.loc["jbot:supervised-default-n40", "paper_accuracy"] == pytest.approx(0.7431)
    assert np.isnan(df.loc["jbot:knn_cosine", "paper_accuracy"])
    gain = df.loc["jbot:floating-default-n10", "accuracy"] - df.loc[
        "jbot:supervised-default-n10", "accuracy"]  # fmt: skip
    assert df.loc["jbot:gain-n10", "accuracy"] == pytest.approx(gain)
    md = out["md"].read_text()
    assert "stand-in of JetNet" in md and "Acc. paper" in md


def test_table3_binary_with_list_background(world, monkeypatch):
    out = build(world, "tables", "table3", monkeypatch)
    df = pd.read_csv(out["csv"]).set_index("setup")
    assert {"accuracy", "auc", "eff_s@0.1", "eff_s@0.01"} <= set(df.columns)
    ft = df.loc["jbot:floating-default-n30"]
    assert 0.5 < ft["auc"] <= 1 and 0 <= ft["eff_s@0.01"] <= ft["eff_s@0.1"] <= 1
    assert df.loc["jbot:linear", "paper_eff_s@0.01"] == pytest.approx(0.2408)
    assert "t vs g + q" in out["md"].read_text() or "t vs q + g" in out["md"].read_text()


def test_table4_anomaly_and_figures(world, monkeypatch):
    out = build(world, "tables", "table4", monkeypatch)
    df = pd.read_csv(out["csv"]).set_index("setup")
    assert {"knn", "cosine_knn", "mahalanobis", "gmm", "knn-best"} <= set(df.index)
    assert df.loc["knn", "n_repeats"] == 2 and df.loc["knn-best", "n_repeats"] == 1
    assert df.loc["gmm", "paper_auc_combined"] == pytest.approx(0.8155)
    assert (df[["auc_W", "auc_Z", "auc_t", "auc_combined"]].to_numpy() > 0).all()
    assert "LGAE" in out["md"].read_text()
    monkeypatch.setattr(style, "save_figure", _png_only)  # drawing tested, not PDF writing
    monkeypatch.setattr(sklearn.manifold, "TSNE", _FastTSNE)  # t-SNE itself is sklearn's
    for name in ("fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9"):
        figs = build(world, "paper_figures", name, monkeypatch)
        assert figs["png"].stat().st_size > 1000 and figs["pdf"].exists(), name


class _FastTSNE:
    """Stand-in for sklearn's t-SNE in the figure test: the first two principal axes."""

    def __init__(self, n_components: int = 2, **kwargs) -> None:
        self.n = n_components

    def fit_transform(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64) - np.mean(z, 0)
        return (z @ np.linalg.svd(z, full_matrices=False)[2][: self.n].T).astype(np.float32)


def _png_only(fig, out_stem) -> list[Path]:
    """A fast stand-in for style.save_figure: low-resolution PNG, and an empty PDF."""
    import matplotlib.pyplot as plt

    assert style.has_label(fig)
    paths = [Path(f"{out_stem}.png"), Path(f"{out_stem}.pdf")]
    fig.savefig(paths[0], dpi=30)
    paths[1].write_bytes(b"")
    plt.close(fig)
    return paths


def test_cls_attention_matches_the_fused_attention():
    """Fig. 5's recomputed weights reproduce the block's own (fused) attention output for
    the [CLS] query: proj(self-weight * v_CLS + sum_i w_i v_i)."""
    from jetforge.models.vit import ParticleViT
    from jetforge.paper_outputs.jbot_figures import cls_attention

    torch.manual_seed(0)
    vit = ParticleViT(in_dim=4, d_model=8, n_blocks=2, n_heads=2).eval()
    x, mask = torch.randn(3, 6, 4), torch.arange(6)[None] < torch.tensor([[6], [4], [2]])
    w = torch.as_tensor(cls_attention(vit, x, mask))  # [B, H, particles]
    assert w.shape[:2] == (3, 2) and (w[2, :, 2:] == 0).all()  # padding gets no attention
    seen: dict = {}
    attn = vit.blocks[-1].attn
    hook = attn.register_forward_hook(lambda m, a, o: seen.update(h=a[0], o=o))
    with torch.no_grad():
        vit(x, mask)
        hook.remove()
        B, T_, _ = seen["h"].shape
        v = attn.qkv(seen["h"]).view(B, T_, 3, 2, 4)[:, :, 2].permute(0, 2, 1, 3)  # [B,H,T,hd]
        self_w = 1 - w.sum(-1, keepdim=True)
        assert (self_w >= 0).all()
        o = self_w * v[:, :, 0] + torch.einsum("bht,bhtd->bhd", w, v[:, :, 1:])
        torch.testing.assert_close(attn.proj(o.reshape(B, 8)), seen["o"][:, 0],
                                   rtol=1e-4, atol=1e-5)  # fmt: skip


def test_list_background_pools_processes(world):
    from jetforge.training.data import select_labelled_rows
    from jetforge.training.finetune import task_classes

    root, _ = world
    h5 = str(root / "results/datasets/jetnet/test.h5")
    rows, y = select_labelled_rows(h5, "tbqq_tt", ["zjet_q", "zjet_g"], None)
    assert rows.size == 72 and int(y.sum()) == 24
    assert task_classes({"signal": "t", "background": ["q", "g"]})[2] == ["q", "g"]
    with pytest.raises(ValueError, match="must not be among"):
        select_labelled_rows(h5, "tbqq_tt", ["tbqq_tt", "zjet_g"], None)


@pytest.mark.parametrize(
    ("where", "change", "message"),
    [
        ("jbot_anomaly", {"anomaly": {"signals": ["hv_dark"]}}, "'hv_dark' is not a process"),
        ("jbot_anomaly", {"pretrain": {"processes": ["zjet_q", "tbqq_tt"]}},
         "are in pretrain.processes"),
        ("jbot", {"tables": {"table3": {"kind": "jbot_classification", "task": "top_vs_qcd"}}},
         "efficiencies"),
        ("jbot", {"tables": {"table2": {"kind": "jbot_classification", "task": "nope"}}},
         "is not a fine-tuning task"),
        ("jbot", {"paper_figures": {"fig7": {"kind": "jbot_roc", "panels": ["jbot/nope"]}}},
         "not experiment/task"),
        ("jbot", {"paper_figures": {"fig6": {"kind": "jbot_tsne", "epochs": [0, 3]}}},
         r"epochs: \[3\] of 'jbot' are neither its pretrain.epochs nor in its"),
        ("jbot", {"paper_figures": {"fig6": {"kind": "jbot_tsne",
                                             "finetuned": {"jbot": "nope"}}}},
         "finetuned: 'nope' is not a fine-tuning task of 'jbot'"),
        ("jbot", {"paper_figures": {"fig6": {"kind": "jbot_tsne",
                                             "finetuned": {"jbot_anomaly": "five_class"}}}},
         "finetuned: 'jbot_anomaly' is not a row of this figure"),
        ("jbot", {"finetune": {"tasks": {"t": {"signal": "tbqq_tt",
                                               "background": ["zjet_q", "ghost"]}}}},
         "'ghost' is not a process"),
    ],
)
def test_bad_specs_refused_before_any_job(cfg, where, change, message):
    c = copy.deepcopy(cfg)
    for key, val in change.items():
        if key == "pretrain":
            c["experiments"][where]["pretrain"].update(val)
        elif key == "anomaly":
            c["experiments"][where]["anomaly"].update(val)
        elif key == "finetune":
            c["experiments"][where]["finetune"]["tasks"].update(val["tasks"])
        else:
            c["experiments"][where][key].update(val)
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(c)
    assert f"experiments.{where}" in str(err.value)


def test_paper_config_declares_every_output(cfg):
    c = load_config("config/config.yaml", "config/paper/jbot.yaml")
    have = {d.stem for d in __import__("jetforge.paper_outputs").paper_outputs.declared(c)
            if d.paper == "jbot"}  # fmt: skip
    want = {f"results/tables/jbot/table{n}" for n in (2, 3, 4)}
    want |= {f"results/figures/jbot/fig{n}" for n in range(3, 10)}
    assert want <= have
    assert c["experiments"]["jbot_anomaly"]["pretrain"]["repeats"] == 10
    assert len(c["experiments"]["jbot"]["finetune"]["scan"]["lr"]) == 6


def test_anomaly_score_names_are_the_implemented_ones() -> None:
    """The config check's list (driver env, no torch) is the scores the jobs implement."""
    from jetforge.evaluation import ANOMALY_SCORES
    from jetforge.evaluation.anomaly import SCORES

    assert tuple(SCORES) == ANOMALY_SCORES
