"""JP-JEPA's paper outputs (Letellier, Vacheret, Jurie, arXiv:2606.14813) on synthetic
prediction files: Table 1's S/(S+B) rejections, Table 2's transfer columns, calibration
(ECE, log loss, entropy), the test-time robustness protocol with a saved classifier, the
checks that refuse a bad declaration, and the engine's step budget, cosine floor and
no-decay groups, and App. C's effective rank and PPE."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from jetforge.config import load_config
from jetforge.evaluation import calibration as C
from jetforge.evaluation.robustness import (
    Perturbation,
    evaluate_perturbed,
    group_errors,
    load_classifier,
    perturb,
    perturbations,
    save_classifier,
)
from jetforge.evaluation.ssl_metrics import (
    effective_rank,
    effective_rank_centred,
    pretraining_percent_error,
)
from jetforge.paper_outputs import declaration_errors, find, run
from jetforge.paper_outputs.jpjepa import class_rejections, setup_label
from jetforge.training.engine import EngineConfig, _lr_lambda, _split_no_decay, fit

CLASSES = ["qcd_zjet", "hbb_zh", "hcc_zh", "hgg_zh", "h4q_zh", "hlvqq_zh", "zqq_zjet",
           "wqq_wjet", "tbqq_tt", "tblv_tt"]  # fmt: skip


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_config("config/config.yaml")


def _write(path: Path, score: np.ndarray, label: np.ndarray, **attrs: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["score"], f["label"] = score.astype(np.float32), label.astype(np.int8)
        f.attrs.update(attrs)


def _multiclass(accuracy: float, seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = np.arange(n) % 10
    guess = np.where(rng.random(n) < accuracy, label, (label + 1) % 10)
    score = rng.random((n, 10)) * 0.2
    score[np.arange(n), guess] += 1.0
    return score / score.sum(1, keepdims=True), label


def _grid_files(cfg: dict, root: Path) -> None:
    """Synthetic predictions for every fine-tuning job of the default jpjepa grid:
    fine-tuned better than scratch on every task."""
    from jetforge import experiment as X
    from jetforge.workflow import targets as T

    exp = cfg["experiments"]["jpjepa"]
    for k, r in enumerate(X.finetune_grid(exp)):
        good = r["mode"] == "floating"
        path = root / T.prediction_path("jpjepa", r)
        if r["task"] == "jetclass10":
            score, label = _multiclass(0.7 if good else 0.4, k)
            _write(path, score, label, classes=CLASSES)
        else:
            rng = np.random.default_rng(k)
            label = np.arange(300) % 2
            score = 1 / (1 + np.exp(-(label - 0.5) * (3 if good else 1) - rng.normal(0, 1, 300)))
            _write(path, score, label, signal="s", background="b")


def test_ece_log_loss_and_entropy_match_hand_values() -> None:
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.55, 0.45]])
    y = np.array([0, 1, 1, 0])
    # K=10: bins (0.8, 0.9] holds 0.9 and 0.8 (acc 1, conf 0.85); (0.5, 0.6]: 0.6, 0.55
    # (acc 0.5, conf 0.575) -> ECE = 0.5 * 0.15 + 0.5 * 0.075
    assert C.expected_calibration_error(p, y, bins=10) == pytest.approx(0.1125)
    assert C.log_loss(p, y) == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.55])))
    assert C.prediction_entropy(np.array([0.5]))[0] == pytest.approx(math.log(2))
    assert C.calibration_metrics(p[:, 1], y)["ece"] == C.expected_calibration_error(p, y)
    with pytest.raises(ValueError, match="labels"):
        C.log_loss(p, np.array([0, 1, 2, 0]))


def test_class_rejection_uses_signal_over_signal_plus_background() -> None:
    # class 1 vs background 0: raw p1 ranks the background jet above a signal jet, the
    # ratio p1 / (p1 + p0) does not (the third class's share is ignored)
    score = np.array([[0.10, 0.45, 0.45], [0.01, 0.40, 0.59], [0.50, 0.45, 0.05]])
    label = np.array([1, 1, 0])
    out = class_rejections(score, label, ["b", "s", "x"], "b", {"s": 0.5})
    assert out["rej_s"] == pytest.approx(1.0)  # floored at one background jet: perfect
    assert np.isnan(class_rejections(score, label, ["b", "s", "x"], "b", {"x": 0.5})["rej_x"])
    assert setup_label("floating-default-n200") == "JP-JEPA fine-tuned (n=200)"


def test_tables_and_figures_from_the_default_grid(cfg, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _grid_files(cfg, tmp_path)
    built = {}
    for name in ("table1", "table2", "calibration"):
        d = find(cfg, "tables", "jpjepa", name)
        out = {e: str(tmp_path / f"{name}.{e}") for e in ("csv", "md", "tex")}
        run(
            "tables",
            cfg,
            d.experiment,
            "jpjepa",
            name,
            d.kind.inputs(cfg, d.experiment, d.spec),
            out,
        )
        built[name] = pd.read_csv(out["csv"])
    t1 = built["table1"].set_index("setup")
    assert t1.loc["floating-default-n200", "acc"] > t1.loc["supervised-default-n200", "acc"] + 0.2
    assert {"rej_hlvqq_zh", "rej_tblv_tt", "acc_std", "n_repeats"} <= set(t1.columns)
    md = (tmp_path / "table1.md").read_text()
    assert "[0.858]" in md and "hlvqq_zh Rej99" in md and "tblv_tt Rej99.5" in md
    t2 = built["table2"].set_index("setup")
    assert t2.loc["floating-default", "top_auc"] > t2.loc["supervised-default", "top_auc"]
    assert {"qg_rej@0.3", "top_n_train"} <= set(t2.columns)
    assert "[363]" in (tmp_path / "table2.md").read_text()
    cal = built["calibration"]
    assert (cal["ece"] >= 0).all() and (cal["mean_entropy"] > 0).all()
    for name in ("fig2f",):
        d = find(cfg, "paper_figures", "jpjepa", name)
        out = {e: str(tmp_path / f"{name}.{e}") for e in ("png", "pdf")}
        run("paper_figures", cfg, d.experiment, "jpjepa", name,
            d.kind.inputs(cfg, d.experiment, d.spec), out)  # fmt: skip
        assert Path(out["png"]).stat().st_size > 1000


def _fill_inputs(inputs: dict[str, list[str]], root: Path, rank: dict[str, float]) -> None:
    """Synthetic prediction files (and probe tables) for every file an output reads: the
    experiment named in a path decides how good its classifier is (``rank``, default 0.5)."""
    for k, path in enumerate(p for files in inputs.values() for p in files):
        exp = path.split("/")[2]
        if path.endswith("probes.csv"):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"embedding": ["output", "pooled", "output"],
                          "encoder": ["pre-trained r0", "pre-trained r0", "random init"],
                          "effective_rank": [10 * rank.get(exp, 0.5), 99.0, 1.0],
                          "auc_emb": [0.9, 0.5, 0.99]}
                         ).to_csv(root / path, index=False)  # fmt: skip
        elif "/jetclass10/" in path:
            score, label = _multiclass(rank.get(exp, 0.5), k)
            _write(root / path, score, label, classes=CLASSES)
        else:
            rng = np.random.default_rng(k)
            label = np.arange(300) % 2
            logit = (label - 0.5) * 4 * rank.get(exp, 0.5) + rng.normal(0, 1, 300)
            score = 1 / (1 + np.exp(-logit))
            _write(root / path, score, label, signal="s", background="b")


def test_tables_3_to_5_and_fig2g_from_their_variant_experiments(cfg, tmp_path, monkeypatch) -> None:
    """Tables 3-5 read one row per variant experiment (single seeds say so, paper numbers
    in brackets by experiment); Fig. 2(g) divides JP-JEPA Small's fine-tuned rejections by
    jpjepa's ParT from scratch."""
    monkeypatch.chdir(tmp_path)
    rank = {"jpjepa_abl_koleo": 0.8, "jpjepa_abl_nokoleo": 0.4, "jpjepa_small": 0.9}
    built = {}
    for section, name in [("tables", "table3"), ("tables", "table4"), ("tables", "table5"),
                          ("paper_figures", "fig2g"), ("paper_figures", "fig2e")]:  # fmt: skip
        d = find(cfg, section, "jpjepa", name)
        inputs = d.kind.inputs(cfg, d.experiment, d.spec)
        _fill_inputs(inputs, tmp_path, rank)
        exts = ("csv", "md", "tex") if section == "tables" else ("png", "pdf")
        out = {e: str(tmp_path / f"{name}.{e}") for e in exts}
        run(section, cfg, d.experiment, "jpjepa", name, inputs, out)
        built[name] = out
    t3 = pd.read_csv(built["table3"]["csv"]).set_index("experiment")
    assert t3.loc["jpjepa_abl_koleo", "effective_rank"] == pytest.approx(8.0)
    acc = t3["jetclass10_acc"]
    assert acc["jpjepa_abl_koleo"] > acc["jpjepa_abl_nokoleo"]
    md3 = Path(built["table3"]["md"]).read_text()
    assert "Single-seed rows" in md3 and "[0.8411]" in md3 and "[77.5074]" in md3
    assert "regularizer=sigreg, lambda_reg=0.05, subset=0.1" in md3  # pretrain.subset
    assert "jpjepa_abl_koleo: pre-trained (jpjepa_abl_koleo) on the first 10 % of each" in md3
    t4 = pd.read_csv(built["table4"]["csv"])
    assert list(t4["variant"]) == ["steps=10", "steps=30", "steps=100"]
    assert Path(built["fig2e"]["png"]).stat().st_size > 1000  # with the 10 % star
    t5 = pd.read_csv(built["table5"]["csv"])
    assert list(t5["variant"]) == ["epochs=5", "epochs=10"] and "qg_rej@0.3" in t5
    assert list(t5["n_repeats"]) == [2, 1]
    assert Path(built["fig2g"]["png"]).stat().st_size > 1000
    inputs = find(cfg, "paper_figures", "jpjepa", "fig2g")
    files = inputs.kind.inputs(cfg, inputs.experiment, inputs.spec)["predictions"]
    assert {f.split("/")[2] + "/" + f.split("/")[4] for f in files} == {
        "jpjepa/supervised", "jpjepa_small/floating"}


def test_bad_declarations_are_refused_before_any_job(cfg) -> None:
    bad = copy.deepcopy(cfg)
    jp = bad["experiments"]["jpjepa"]
    jp["tables"]["robustness"]["groups"]["pid"].append("part_isTau")
    jp["tables"]["table1"]["class_efficiencies"]["qcd_zjet"] = 0.5
    jp["tables"]["table2"]["tasks"] = ["top", "nope"]
    jp["paper_figures"]["fig3a"]["panel"] = "columns"
    jp["paper_figures"]["fig2g"]["finetuned"] = "jpjepa_abl_koleo"
    bad["experiments"]["jpjepa_abl_koleo"]["finetune"]["modes"] = ["supervised"]
    errs = "\n".join(declaration_errors(bad))
    assert "part_isTau" in errs and "not read by the backbone" in errs
    assert "class_efficiencies: 'qcd_zjet'" in errs
    assert "task 'nope'" in errs and "panel: 'columns'" in errs
    assert "finetuned: experiment 'jpjepa_abl_koleo' must fine-tune" in errs
    assert not declaration_errors(cfg)


class _Toy(nn.Module):
    """Classifier-like: masked mean of feature 0 and of the particle count -> 2 logits."""

    inputs = ("particles",)
    n_out = 2

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.float()
        mean0 = (x[..., 0] * m).sum(1) / m.sum(1).clamp(min=1)
        return torch.stack([mean0, m.sum(1) / 10], dim=1)


def test_perturbations_zero_columns_and_drop_particles(tmp_path) -> None:
    feats = ["a", "b", "c"]
    perts = perturbations(feats, {"ab": ["a", "b"]}, [0.5])
    assert [(p.kind, p.name) for p in perts] == [("none", "none"), ("single", "a"),
        ("single", "b"), ("single", "c"), ("group", "ab"), ("particles", "0.5")]  # fmt: skip
    assert group_errors({"g": ["a", "z"]}, feats) and not group_errors({"g": ["c"]}, feats)
    x = np.ones((4, 6, 3), np.float32)
    mask = np.ones((4, 6), bool)
    mask[0, 1:] = False
    xz, mz = perturb(x, mask, Perturbation("group", "ab", (0, 1)), np.random.default_rng(0))
    assert (xz[..., :2] == 0).all() and (xz[..., 2] == 1).all() and (mz == mask).all()
    _, md = perturb(x, mask, Perturbation("particles", "0.9", fraction=0.9),
                    np.random.default_rng(1))  # fmt: skip
    assert md.any(axis=1).all() and md.sum() < mask.sum() and not (md & ~mask).any()
    h5 = tmp_path / "test.h5"
    rng = np.random.default_rng(2)
    with h5py.File(h5, "w") as f:
        f["particles"] = rng.normal(1.0, 0.1, (20, 8, 3)).astype(np.float32)
        f["mask"] = np.ones((20, 8), bool)
    out = evaluate_perturbed(_Toy(), str(h5), np.arange(20), perts, seed=3)
    assert not np.allclose(out["single:a"], out["none:none"])
    assert np.allclose(out["single:b"], out["none:none"])
    assert not np.allclose(out["particles:0.5"], out["none:none"])


def test_step_budget_cosine_floor_and_no_decay_groups(tmp_path) -> None:
    cfg = EngineConfig.from_dict({"epochs": 1, "lr": 1e-3, "schedule": "cosine",
                                  "min_lr": 1e-6, "steps": 7, "tensorboard": False})  # fmt: skip
    f = _lr_lambda(cfg, 7)
    assert f(0) == pytest.approx(1.0) and f(7) == pytest.approx(1e-3)
    model = nn.Sequential(nn.Linear(2, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    model.register_parameter("cls_token", nn.Parameter(torch.zeros(1, 1, 4)))
    groups = _split_no_decay(model, [{"params": list(model.parameters()), "lr": 1e-3}])
    free = {id(p) for p in groups[1]["params"]}
    assert groups[1]["weight_decay"] == 0.0 and id(model.cls_token) in free
    assert {id(model[0].weight), id(model[2].weight)} == {id(p) for p in groups[0]["params"]}

    def batches(epoch: int, start: int):
        for _ in range(start, 3):
            yield _B(torch.randn(4, 2))

    state = fit(model, [{"params": list(model.parameters())}],
                lambda m, b: {"loss": m[2](m[1](m[0](b.x))).pow(2).mean()}, batches, 3, cfg,
                torch.device("cpu"), tmp_path / "ck.pt", tmp_path / "h.csv")  # fmt: skip
    assert state.step == 7 and state.epoch == 3  # 3 + 3 + 1 of the budget


class _B:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def to(self, device: object, non_blocking: bool = False) -> _B:
        return self

    def __len__(self) -> int:
        return self.x.shape[0]


def test_effective_rank_is_uncentred_as_app_c2_and_ppe() -> None:
    z = np.random.default_rng(0).normal(size=(400, 8))
    assert effective_rank(z) == pytest.approx(effective_rank_centred(z), rel=0.02)
    assert effective_rank(z + 5.0) < 0.6 * effective_rank_centred(z + 5.0)  # offset counts
    assert pretraining_percent_error(np.eye(8)) == pytest.approx(0.0, abs=1e-9)
    assert pretraining_percent_error(np.ones((8, 8))) > 50


def _tiny_part(names: list[str]) -> tuple[nn.Module, dict]:
    from jetforge.models.part import ParticleTransformer
    from jetforge.training.finetune import Classifier

    cfg = dict(name="part", in_dim=len(names), feature_names=names, embed_dims=[16, 32, 16],
               pair_embed_dims=[8, 8], num_heads=2, num_layers=1, num_cls_layers=1,
               dropout=0.0, attn_dropout=0.0, activation_dropout=0.0,
               fourvec_features={"log_pt": "part_pt_log", "eta": "part_deta",
                                 "phi": "part_dphi"})  # fmt: skip
    backbone = ParticleTransformer(**{k: v for k, v in cfg.items() if k != "name"})
    model = Classifier(backbone, n_out=3, hidden=[8], dropout=0.5)
    model.saved_config = {"backbone_cfg": cfg, "mode": "floating", "lora": {}}
    return model, cfg


def test_saved_classifier_predicts_as_the_trained_one(tmp_path) -> None:
    torch.manual_seed(0)
    model, _ = _tiny_part(["part_pt_log", "part_deta", "part_dphi", "part_charge"])
    save_classifier(tmp_path / "model.pt", model)
    back = load_classifier(tmp_path / "model.pt")
    x, mask = torch.randn(5, 7, 4), torch.ones(5, 7, dtype=torch.bool)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x, mask), back(x, mask), atol=1e-6)


def test_robustness_table_from_saved_classifiers(tmp_path, monkeypatch) -> None:
    """The robustness kind end to end: the grid's saved classifiers on a format-4 test
    split, every removal a row, seeds aggregated, the PID-style group refused when the
    backbone lacks a member."""
    from jetforge import experiment as X
    from jetforge.workflow import targets as T

    monkeypatch.chdir(tmp_path)
    names = ["part_pt_log", "part_deta", "part_dphi", "part_charge"]
    procs = ["qcd_zjet", "hbb_zh", "tbqq_tt"]
    ft = {"tasks": {"t": {"classes": procs}}, "n_train": [10],
          "modes": ["floating", "supervised"], "repeats": 2}  # fmt: skip
    exp = {"dataset": "d", "backbone": {"name": "part", "feature_names": names},
           "pretrain": {"method": "jepa"}, "finetune": ft}  # fmt: skip
    cfg = {"seed": 1, "datasets": {"d": {"kind": "single", "features": "part17"}},
           "experiments": {"e": exp}}  # fmt: skip
    spec = {
        "kind": "robustness",
        "task": "t",
        "fractions": [0.5],
        "groups": {"pid": ["part_charge"]},
    }
    test = Path(T.task_files(cfg, "e", "t")["test"])
    test.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with h5py.File(test, "w") as f:
        f["particles"] = rng.normal(0, 1, (30, 6, 4)).astype(np.float32)
        f["mask"] = np.ones((30, 6), bool)
        f["jets/process"] = (np.arange(30) % 3).astype(np.int8)
        f["jets/variant"] = np.zeros(30, np.int8)
        f.attrs.update(feature_names=names, class_names=["qcd", "hbb", "tbqq"],
                       process_names=procs, variant_names=["nominal"])  # fmt: skip
    for k, run_ in enumerate(X.finetune_grid(cfg["experiments"]["e"], "t")):
        torch.manual_seed(k)
        model, _ = _tiny_part(names)
        pred = Path(T.prediction_path("e", run_))
        _write(pred, np.full((30, 3), 1 / 3), np.arange(30) % 3, classes=procs)
        save_classifier(pred.with_name("model.pt"), model)
    from jetforge.paper_outputs.jpjepa import ROBUSTNESS

    assert not ROBUSTNESS.check(cfg, "e", spec)
    assert "part_isMuon" in " ".join(
        ROBUSTNESS.check(cfg, "e", {**spec, "groups": {"pid": ["part_isMuon"]}})
    )
    from jetforge.paper_outputs import OutputJob

    out = {e: str(tmp_path / f"rob.{e}") for e in ("csv", "md", "tex")}
    ROBUSTNESS.build(
        OutputJob(cfg, "e", "jpjepa", "robustness", spec, ROBUSTNESS.inputs(cfg, "e", spec), out)
    )
    table = pd.read_csv(out["csv"])
    assert set(table["dropped_kind"]) == {"none", "single", "group", "particles", "single_mean"}
    assert len(table) == 2 * (1 + 4 + 1 + 1 + 1) and (table["n_repeats"] == 2).all()
    assert table["acc"].between(0, 1).all()
