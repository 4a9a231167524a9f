"""``pretrain.init_backbone`` (Rieck et al., arXiv:2503.11632 §5.4, Fig. 8 "AE (gtag)" /
"AE (tautag)"): a pre-training that starts from a fine-tuned backbone, frozen, and trains
only the method's fresh parts; its config check, its bit-exact resume and its place in the
DAG (rule ``pretrain`` waits for the named fine-tuning's ``model.pt``)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from jetforge.config import _init_backbone_errors, compose_config
from jetforge.evaluation.robustness import save_classifier
from jetforge.models.registry import build_backbone_for
from jetforge.training.finetune import Classifier
from jetforge.training.init_backbone import finetuned_backbone_state
from jetforge.training.pretrain import run_pretrain

sys.path.insert(0, str(Path(__file__).parent))
from test_cells_tracks import SMALL, write_hadfork
from test_workflow import _snakemake

pytestmark = pytest.mark.usefixtures("one_thread")

KEY = "experiments.hadfork_ae_gtag"


@pytest.fixture(scope="module")
def tiny() -> dict:
    return compose_config(["config/config.yaml", "config/tiny.yaml"])


def _errs(cfg: dict, **init) -> str:
    exp = copy.deepcopy(cfg["experiments"]["hadfork_ae_gtag"])
    exp["pretrain"]["init_backbone"].update(init)
    return "\n".join(_init_backbone_errors(cfg, KEY, exp))


def test_config_check_refuses_a_run_the_grid_does_not_hold(tiny: dict) -> None:
    assert _errs(tiny) == ""
    at = f"config key {KEY}.pretrain.init_backbone"
    assert f"{at}.experiment: 'nope' is not an experiment that fine-tunes" in _errs(
        tiny, experiment="nope")  # fmt: skip
    assert f"{at}.task: 'qg' is not a fine-tuning task of experiments.hadfork; its tasks: " \
           "['gtag', 'tautag']" in _errs(tiny, task="qg")  # fmt: skip
    assert f"{at}.mode: 'fixed' is not in experiments.hadfork's fine-tuning grid of task " \
           "'gtag', which has mode ['lora', 'supervised']" in _errs(tiny, mode="fixed")  # fmt: skip
    assert f"{at}.mode: 'lora' gives no plain backbone" in _errs(tiny, mode="lora")
    assert f"{at}.n_train: 999 is not in experiments.hadfork's fine-tuning grid of task " \
           "'gtag', which has n_train [10]; use one of them or add it to " \
           "experiments.hadfork.finetune" in _errs(tiny, n_train=999)  # fmt: skip
    assert f"{at}.repeat: 3 is not in" in _errs(tiny, repeat=3)
    assert f"{at}.augset: 'all' is not in" in _errs(tiny, augset="all")


def test_config_check_refuses_another_backbone_or_method(tiny: dict) -> None:
    exp = copy.deepcopy(tiny["experiments"]["hadfork_ae_gtag"])
    exp["backbone"] = {**exp["backbone"], "width": 16}
    assert (f"config key {KEY}.backbone: differs from experiments.hadfork.backbone, whose "
            "fine-tuned backbone pretrain.init_backbone loads; make them equal") in \
        _init_backbone_errors(tiny, KEY, exp)  # fmt: skip
    exp = copy.deepcopy(tiny["experiments"]["hadfork_ae_gtag"])
    exp["pretrain"]["method"] = "hadfork_contrastive"
    (err,) = _init_backbone_errors(tiny, KEY, exp)
    assert "method 'hadfork_contrastive' cannot start from a fine-tuned backbone" in err


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A fork-pair file and a fine-tuning ``model.pt`` of a supervised classifier on it
    (weights perturbed so they differ from any fresh initialisation)."""
    d = tmp_path_factory.mktemp("init_backbone")
    h5 = str(write_hadfork(d / "train.h5", {"qq": 12, "gg": 12, "tautau": 4}, seed=4))
    torch.manual_seed(123)
    backbone, bb_cfg = build_backbone_for(SMALL, h5, None, 1000)
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.1 * torch.randn_like(p))
    clf = Classifier(backbone)
    clf.saved_config = {"backbone_cfg": bb_cfg, "mode": "supervised", "lora": {}}
    save_classifier(d / "model.pt", clf)
    return h5, str(d / "model.pt")


def _exp(path: str) -> dict:
    return {"backbone": SMALL, "pretrain": {
        "method": "ae_vicreg", "processes": None, "batch_size": 8, "epochs": 2, "lr": 1e-2,
        "val_fraction": 0.2, "checkpoint_every": 3, "norm_jets": 1000, "decoder_hidden": [16],
        "snapshot_epochs": [0],
        "init_backbone": {"experiment": "e", "task": "t", "mode": "supervised", "n_train": 1},
        "init_backbone_path": path}}  # fmt: skip


def test_hybrid_loads_the_finetuned_backbone_and_trains_only_the_compressor(
    finetuned: tuple[str, str], tmp_path: Path
) -> None:
    h5, model_pt = finetuned
    run_pretrain(h5, str(tmp_path), _exp(model_pt), None, repeat=0, seed=7, device="cpu")
    tuned = finetuned_backbone_state(model_pt, torch.load(model_pt)["backbone_cfg"])
    start = torch.load(tmp_path / "snapshots/epoch0.pt")["state_dict"]  # before step 1
    end = torch.load(tmp_path / "model.pt")["state_dict"]
    assert start.keys() == end.keys() == tuned.keys()
    for k in tuned:
        if k.startswith("head."):  # the compressor x -> y: fresh, then trained
            assert not torch.equal(start[k], tuned[k]), k
            assert not torch.equal(end[k], start[k]), k
        else:  # transformer, input MLPs, standardisation: exactly the fine-tuned ones
            assert torch.equal(start[k], tuned[k]) and torch.equal(end[k], tuned[k]), k
    assert any(k.startswith("head.") for k in tuned)


class _Kill(RuntimeError):
    pass


def test_hybrid_resume_after_kill_is_bit_identical(
    finetuned: tuple[str, str], tmp_path: Path
) -> None:
    h5, model_pt = finetuned
    exp = _exp(model_pt)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_pretrain(h5, str(ref), exp, None, repeat=0, seed=7, device="cpu")

    def kill(state) -> None:
        if state.step == 3:  # mid-epoch 2 (2 steps per epoch of 22 training pairs / 8)
            raise _Kill("simulated kill")

    with pytest.raises(_Kill):
        run_pretrain(h5, str(killed), exp, None, repeat=0, seed=7, device="cpu", after_step=kill)
    assert not (killed / "model.pt").exists()
    run_pretrain(h5, str(killed), exp, None, repeat=0, seed=7, device="cpu")
    a, b = (torch.load(p / "model.pt")["state_dict"] for p in (ref, killed))
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_another_backbone_in_the_model_file_is_refused(finetuned: tuple[str, str]) -> None:
    _, model_pt = finetuned
    cfg = {**torch.load(model_pt)["backbone_cfg"], "width": 16}
    with pytest.raises(ValueError, match=r"differs from this experiment's in \['width'\]"):
        finetuned_backbone_state(model_pt, cfg)


def test_dag_runs_the_named_finetuning_before_the_hybrid_pretraining(tmp_path: Path) -> None:
    target = "results/pretrain/hadfork_ae_gtag/default/r0/model.pt"
    res = _snakemake(tmp_path, "-n", target)
    assert res.returncode == 0, res.stderr[-3000:]
    source = "results/finetune/hadfork/gtag/supervised/default/n10/r0/model.pt"
    jobs = res.stdout.split("rule ")
    (pretrain,) = [j for j in jobs if j.startswith("pretrain:") and target in j]
    assert source in pretrain.split("output:")[0]  # an input of the hybrid's pre-training
    assert any(j.startswith("finetune:") and source in j.split("log:")[0] for j in jobs)
