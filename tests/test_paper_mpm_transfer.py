"""MPM Fig. 5 right (kind cross_dataset_rejection, Golling et al., arXiv:2401.13537 §V E):
classifiers fine-tuned on RODEM, scored on the JetClass test split."""

from __future__ import annotations

import copy
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from jetforge.config import ConfigError, load_config, validate_config
from jetforge.evaluation.robustness import save_classifier
from jetforge.io.h5 import write_jet_dataset
from jetforge.jets.featuresets import PTETAPHI_FEATURES
from jetforge.models.registry import build_backbone
from jetforge.paper_outputs import run
from jetforge.paper_outputs.mpm_transfer import cross_rejection
from jetforge.training.finetune import Classifier
from jetforge.workflow import targets as T

PROCS = ["qcd_zjet", "hbb_zh", "tbqq_tt"]


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_config("config/config.yaml")


def _split(path: Path, n: int = 90) -> None:
    """A ptetaphi split: top jets (process 2) have their hardest particle's log p_T raised."""
    rng = np.random.default_rng(0)
    proc = np.arange(n) % 3
    x = rng.normal(size=(n, 6, 3)).astype(np.float32)
    x[proc == 2, :, 0] += 3.0
    cols = {"pt": np.full(n, 600.0), "eta": np.zeros(n), "phi": np.zeros(n),
            "mass": np.zeros(n), "n2": np.zeros(n), "label": proc, "process": proc,
            "variant": np.zeros(n), "pair_id": np.arange(n), "chunk": np.zeros(n),
            "event": np.arange(n), "parton_pid": np.zeros(n)}  # fmt: skip
    attrs = {"feature_names": PTETAPHI_FEATURES, "feature_set": "ptetaphi",
             "feature_standardisation": {}, "class_names": PROCS, "process_names": PROCS,
             "variant_names": ["nominal"], "dataset": "jetclass", "split": "test"}  # fmt: skip
    write_jet_dataset(path, x, np.ones((n, 6), bool), cols, attrs)


def _classifier(path: Path, mode: str, n_train: int, repeat: int,
                trained_on: str | None = None) -> str:  # fmt: skip
    """An (untrained) saved classifier on the 3 ptetaphi columns, and its predictions file."""
    bcfg = {"name": "normformer", "dim": 4, "n_blocks": 1, "n_heads": 1, "mlp_dim": 4,
            "in_dim": 3}  # fmt: skip
    torch.manual_seed(repeat)
    model = Classifier(build_backbone(bcfg), frozen=mode == "fixed", n_out=1, hidden=[],
                       dropout=0.0)  # fmt: skip
    model.saved_config = {"mode": mode, "backbone_cfg": bcfg}
    path.mkdir(parents=True)
    save_classifier(path / "model.pt", model, trained_on)
    with h5py.File(path / "predictions.h5", "w") as f:
        f.attrs.update({"task": "rodem_top", "mode": mode, "n_train": n_train, "repeat": repeat})
    return str(path / "predictions.h5")


def test_rejection_on_the_other_dataset(tmp_path, monkeypatch):
    """The saved classifier scores the other split's signal and background jets only; a
    score that ranks every top jet above every QCD jet gives the floor 1/ε_B = N_QCD."""
    split = tmp_path / "test.h5"
    _split(split)
    pred = _classifier(tmp_path / "a", "fixed", 40, 0)
    untrained = cross_rejection(pred, str(split), "tbqq_tt", "qcd_zjet")
    assert (untrained["mode"], untrained["n_train"], untrained["n_test"]) == ("fixed", 40, 60)
    assert untrained["rejection"] > 0
    from jetforge.training import finetune

    def ranked(model, h5, rows, dev, chunk=1024):  # the top jets' raised log p_T
        assert isinstance(model, Classifier)
        with h5py.File(h5, "r") as f:
            return f["particles"][np.sort(rows), :, 0].mean(1)

    monkeypatch.setattr(finetune, "predict", ranked)
    assert cross_rejection(pred, str(split), "tbqq_tt", "qcd_zjet")["rejection"] == 30.0


def test_fig5b_draws_each_mode(cfg, tmp_path, monkeypatch):
    split = tmp_path / "test.h5"
    _split(split)
    preds = [
        _classifier(tmp_path / f"{m}{n}{r}", m, n, r)
        for m in ("fixed", "floating", "supervised")
        for n in (40, 120)
        for r in (0, 1)
    ]
    out = {"png": str(tmp_path / "fig5b.png"), "pdf": str(tmp_path / "fig5b.pdf")}
    run("paper_figures", cfg, "mpm", "mpm", "fig5b", {"predictions": preds, "test": [str(split)]},
        out)  # fmt: skip
    assert Path(out["png"]).stat().st_size > 1000


def test_fig5b_reads_jetclass_as_ptetaphi_and_is_checked(cfg):
    from jetforge.paper_outputs import declared

    fig = next(d for d in declared(cfg) if d.experiment == "mpm" and d.name == "fig5b")
    ins = fig.kind.inputs(cfg, "mpm", fig.spec)
    assert ins["test"] == ["results/datasets/jetclass/as_ptetaphi/n128/test.h5"]
    assert T.task_files(cfg, "mpm", "rodem_top")["train"] == (
        "results/datasets/rodem/as_ptetaphi/n128/train.h5")  # fmt: skip
    assert len(ins["predictions"]) == 6  # 3 modes x 1 labelled size x 2 repeats
    c = copy.deepcopy(cfg)
    c["experiments"]["mpm"]["paper_figures"]["fig5b"]["background"] = "qcd_dijet"
    with pytest.raises(ConfigError, match="background: 'qcd_dijet' is not a process of dataset"):
        validate_config(c)


def test_a_classifier_is_refused_on_other_columns(tmp_path):
    """model.pt records the training file's columns: the same three columns in another
    order (which would be scored by position, silently wrong) are refused by name."""
    split = tmp_path / "test.h5"
    _split(split)
    pred = _classifier(tmp_path / "a", "fixed", 40, 0, trained_on=str(split))
    assert cross_rejection(pred, str(split), "tbqq_tt", "qcd_zjet")["n_test"] == 60
    with h5py.File(split, "a") as f:
        f.attrs["feature_names"] = list(reversed(PTETAPHI_FEATURES))
    with pytest.raises(ValueError, match="was trained on features"):
        cross_rejection(pred, str(split), "tbqq_tt", "qcd_zjet")
