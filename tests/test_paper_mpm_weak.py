"""MPM's weak supervision (Golling et al., arXiv:2401.13537 §V F, Fig. 6): the mixed-sample
draw, the significance improvement, the table and figure kinds on synthetic predictions,
and the declarations refused before any job."""

from __future__ import annotations

import copy
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from jetforge.config import ConfigError, load_config, validate_config
from jetforge.paper_outputs import find, run
from jetforge.paper_outputs.mpm_weak import significance_improvement
from jetforge.training import finetune
from jetforge.training.weak import weak_subsets
from jetforge.workflow import targets as T


@pytest.fixture(scope="module")
def cfg() -> dict:
    return load_config("config/config.yaml")


def _jets(n_bkg: int = 300, n_sig: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(n_bkg + n_sig, dtype=np.int64) * 3  # not 0..n: rows are file rows
    truth = np.zeros(rows.size, np.int8)
    truth[np.random.default_rng(0).choice(rows.size, n_sig, replace=False)] = 1
    return rows, truth


def test_weak_draw_labels_samples_not_truth():
    rows, truth = _jets()
    is_sig = dict(zip(rows.tolist(), truth.tolist(), strict=True))
    (tr, lab), (vr, vlab) = weak_subsets(rows, truth, 100, 30, 0.2, seed=7)
    t = np.array([is_sig[r] for r in tr])
    assert tr.size == 130 and np.all(np.diff(tr) > 0)
    assert t.sum() == 30 and np.all(lab[t == 1] == 1)  # every signal jet in sample 1
    assert (lab[t == 0] == 1).sum() == 50 and (lab == 0).sum() == 50  # background halved
    v = np.array([is_sig[r] for r in vr])
    assert vr.size == 20 + 6 and v.sum() == 6 and np.all(vlab[v == 1] == 1)  # same fraction
    assert not set(tr) & set(vr)
    # switching validation off never changes the training jets; the seed does
    (tr0, lab0), val0 = weak_subsets(rows, truth, 100, 30, 0.0, seed=7)
    assert val0 is None and np.array_equal(tr0, tr) and np.array_equal(lab0, lab)
    assert not np.array_equal(weak_subsets(rows, truth, 100, 30, 0.0, seed=8)[0][0], tr)
    # N = 0: two pure background samples (the null point, SI ~ 1)
    (tz, lz), _ = weak_subsets(rows, truth, 100, 0, 0.0, seed=7)
    assert sum(is_sig[r] for r in tz) == 0 and lz.sum() == 50


@pytest.mark.parametrize(("n_train", "n_sig", "message"), [
    (290, 10, "needs 348 background jets"),
    (100, 110, "needs 132 signal jets"),
])  # fmt: skip
def test_weak_draw_refuses_too_few_jets(n_train, n_sig, message):
    rows, truth = _jets()
    with pytest.raises(ValueError, match=message):
        weak_subsets(rows, truth, n_train, n_sig, 0.2, seed=0, what="task t")


def test_finetune_draw_is_weak_for_a_weak_task(monkeypatch):
    import jetforge.training.data as data

    rows, truth = _jets()
    monkeypatch.setattr(data, "select_labelled_rows", lambda *a, **k: (rows, truth))
    (tr, lab), val = finetune._labelled_subsets(
        "x.h5", None, "tbqq_tt", "qcd_zjet", ["nominal"], 100, {"val_fraction": 0.0},
        lambda *k: 3, "t", 30,
    )  # fmt: skip
    assert val is None and tr.size == 130 and lab.sum() == 80


def test_weak_finetuning_predicts_with_true_labels(tmp_path):
    from test_training import EXP, write_format4

    train = write_format4(tmp_path / "train.h5", {"qcd_zjet": 12, "hbb_zh": 8}, seed=2)
    test = write_format4(tmp_path / "test.h5", {"qcd_zjet": 6, "hbb_zh": 6}, seed=3)
    task = {"signal": "hbb_zh", "background": "qcd_zjet", "weak": {"n_signal": 4}}
    exp = {**EXP, "finetune": {**EXP["finetune"], "epochs": 1, "tasks": {"weak": task}}}
    out = tmp_path / "predictions.h5"
    finetune.run_finetune(str(train), str(test), str(out), exp, "weak", "supervised", "none",
                          8, 0, 1, None, "cpu")  # fmt: skip
    with h5py.File(out) as f, h5py.File(test) as t:
        procs = list(t.attrs["process_names"])
        truth = f["process"][:] == procs.index("hbb_zh")
        assert np.array_equal(f["label"][:], truth.astype(np.int8)) and 0 < truth.sum() < truth.size
    history = pd.read_csv(tmp_path / "history.csv")
    assert len(history) == 1


def test_significance_improvement_is_the_papers_ratio():
    label = np.array([1] * 10 + [0] * 100)
    score = np.concatenate([np.r_[np.full(8, 0.9), np.full(2, 0.1)],
                            np.r_[np.full(4, 0.9), np.full(96, 0.1)]])  # fmt: skip
    assert significance_improvement(score, label) == pytest.approx(0.8 / np.sqrt(0.04))
    # no background passing: floored at one jet, not infinite
    assert significance_improvement(np.where(label == 1, 0.9, 0.1), label) == pytest.approx(10.0)


def _prediction(path: Path, mode: str, n_train: int, quality: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    label = (np.arange(400) < 100).astype(np.int8)
    score = np.clip(0.5 + quality * (label - 0.5) + rng.normal(0, 0.2, 400), 0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["score"], f["label"] = score.astype(np.float32), label
        f.attrs.update({"mode": mode, "n_train": n_train, "signal": "tbqq_tt",
                        "background": "qcd_zjet"})  # fmt: skip


def test_weak_table_and_figure_on_synthetic_predictions(cfg, tmp_path):
    d = find(cfg, "tables", "mpm", "weak_supervision")
    inputs = d.kind.inputs(cfg, d.experiment, d.spec)
    tasks = cfg["experiments"]["mpm"]["finetune"]["tasks"]
    assert set(inputs) == {t for t, s in tasks.items() if "weak" in s} and len(inputs) >= 2
    assert inputs == {t: [p for fs in T.predictions_for(cfg, "mpm", t).values() for p in fs]
                      for t in inputs}  # fmt: skip
    made: dict[str, list[str]] = {}
    for i, (task, files) in enumerate(inputs.items()):
        made[task] = []
        for j, p in enumerate(files):
            mode = Path(p).parts[-5]
            quality = 0.1 * (i + 1) * (2 if mode == "floating" else 1)
            _prediction(tmp_path / p, mode, int(Path(p).parts[-3][1:]), quality, 10 * i + j)
            made[task].append(str(tmp_path / p))
    out = {e: str(tmp_path / f"weak.{e}") for e in ("csv", "md", "tex")}
    run("tables", cfg, "mpm", "mpm", "weak_supervision", made, out)
    data = pd.read_csv(out["csv"])
    n_values = sorted(int(tasks[t]["weak"]["n_signal"]) for t in inputs)
    assert list(data["n_signal"][data["mode"] == "floating"]) == n_values  # sorted by N
    assert list(dict.fromkeys(data["mode"])) == ["fixed", "floating", "supervised"]
    fl, sup = (data[data["mode"] == m].set_index("n_signal") for m in ("floating", "supervised"))
    assert (fl["sic"] > sup["sic"]).all() and (fl["auc"] > sup["auc"]).all()
    assert set(data["n_repeats"]) == {cfg["experiments"]["mpm"]["finetune"]["repeats"]}
    assert "ε_S/√ε_B" in Path(out["md"]).read_text()
    f = find(cfg, "paper_figures", "mpm", "fig6")
    fig = {e: str(tmp_path / f"fig6.{e}") for e in ("png", "pdf")}
    run("paper_figures", cfg, f.experiment, "mpm", "fig6", made, fig)
    assert Path(fig["png"]).stat().st_size > 1000 and Path(fig["pdf"]).exists()


def _weak(c: dict) -> dict:
    return c["experiments"]["mpm"]["finetune"]["tasks"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: _weak(c)["jetclass10"].update(weak={"n_signal": 5}), "needs a binary task"),
    (lambda c: _weak(c)["weak_top_n40"].update(weak={"n_signal": 100000}),
     r"weak.n_signal: 100000 signal \(tbqq_tt\) jets"),
    (lambda c: _weak(c)["weak_top_n40"].update(grid=[{"n_train": [10**6]}]),
     "n_train=1000000 background jets"),
    (lambda c: _weak(c)["weak_top_n40"].update(grid=[{"n_train": [100]}]),
     "must differ only in weak.n_signal"),
    (lambda c: c["experiments"]["mpm"]["tables"]["weak_supervision"].update(tasks=["jetclass10"]),
     "'jetclass10' is not a weak task"),
    (lambda c: c["experiments"]["mpm"]["paper_figures"]["fig6"].update(threshold=1.5),
     r"threshold: 1.5 must be a number in \(0, 1\)"),
])  # fmt: skip
def test_bad_weak_declarations_are_refused_before_any_job(cfg, edit, message):
    c = copy.deepcopy(cfg)
    edit(c)
    with pytest.raises(ConfigError, match=message):
        validate_config(c)


def test_paper_config_declares_fig6():
    c = load_config("config/config.yaml", "config/paper/mpm.yaml")
    everything = T.all_targets(c)
    assert "results/figures/mpm/fig6.png" in everything
    assert "results/tables/mpm/weak_supervision.csv" in everything
