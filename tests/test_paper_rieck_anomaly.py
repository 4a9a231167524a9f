"""Rieck et al. §5.5 dark-jet anomaly kinds (jetforge.paper_outputs.rieck_anomaly) on
synthetic embeddings and samples: the scores separate what differs, the resampling follows
the SM (p_T, η), bad specs are refused before any job, the table/figure are written."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jetforge.config import read_config_file
from jetforge.paper_outputs import OutputJob, declaration_errors
from jetforge.paper_outputs import rieck_anomaly as RA

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    return read_config_file(REPO / "config" / "config.yaml")


def _sm_like(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """Jets on a 3-d subspace of a 16-d space; ``shift`` adds an off-subspace component."""
    basis = np.linalg.qr(np.random.default_rng(7).normal(size=(16, 16)))[0]
    z = rng.normal(size=(n, 3)) @ basis[:3] + 0.05 * rng.normal(size=(n, 16))
    return z + shift * rng.normal(size=(n, 1)) * basis[5]


@pytest.fixture
def one_thread():
    """Tiny MLP steps: thread start-up dominates on a shared machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_cosine_ae_score_separates_off_manifold_jets_only(one_thread):
    rng = np.random.default_rng(0)
    sm_train, sm_test = _sm_like(rng, 1000), _sm_like(rng, 400)
    dark = {"far": _sm_like(rng, 400, shift=3.0), "same": _sm_like(rng, 400)}
    scores = RA.ssl_ae_scores(sm_train, sm_test, dark, {"epochs": 10, "batch_size": 128}, 1)
    auc = RA.aucs(scores)
    assert set(auc) == {"far", "same"}
    assert auc["far"] > 0.8
    assert 0.4 < auc["same"] < 0.6
    assert np.isnan(RA.aucs({"sm": scores["sm"], "none": np.zeros(0)})["none"])
    assert RA.auc_stat_error(0.5, 10**6, 10**6) < 1e-3 < RA.auc_stat_error(0.5, 20, 20)


def test_dark_samples_follow_the_sm_pt_eta_and_split_disjointly():
    rng = np.random.default_rng(1)
    sm = np.stack([60 + rng.exponential(40, 5000), rng.uniform(-2, 2, 5000)], 1)
    n = 6000
    dark = {"rows": np.arange(n) * 2,  # fork_a rows of a pair layout
            "pt_eta": np.stack([60 + rng.exponential(80, n), rng.uniform(-2, 2, n)], 1),
            "process": np.where(np.arange(n) % 2 == 0, "dark_a", "dark_c").astype(object)}
    out = RA.dark_samples(sm, dark, {"A": "dark_a", "C": "dark_c"}, n_test=300, seed=3)
    for label, (test, rest) in out.items():
        assert test.size == 300 and rest.size > 50
        assert not set(test) & set(rest)
        picked = np.concatenate([test, rest]) // 2
        med = np.median(dark["pt_eta"][picked, 0])
        assert abs(med - np.median(sm[:, 0])) < 6.0, label  # the dark median is ~115 before
    with pytest.raises(ValueError, match="no 'dark_x' jets"):
        RA.dark_samples(sm, dark, {"X": "dark_x"}, 10, 0)


def test_default_declaration_is_accepted(config):
    assert not [e for e in declaration_errors(config) if "anomaly" in e or "dark" in e]
    assert RA.settings(config["experiments"]["hadfork"])["representation"] == "x"


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda c: c["experiments"]["hadfork"]["anomaly"].update(dark_dataset="nope"),
     "anomaly.dark_dataset: 'nope' is not a dataset"),
    (lambda c: c["experiments"]["hadfork"]["anomaly"].update(models={"C": "hadfork_dark_x"}),
     "anomaly.models.C: 'hadfork_dark_x' is not a process of dataset 'hadfork_dark'"),
    (lambda c: c["experiments"]["hadfork"]["anomaly"].update(
        dark_dataset="hadfork", models={"C": "hadfork_gg"}),
     "anomaly.models.C: 'hadfork_gg' is not a dark-jet process"),
    (lambda c: c["datasets"]["hadfork_dark"]["chunks"]["test"].pop("hadfork_dark_b"),
     "anomaly.models.B: dataset 'hadfork_dark' generates no 'hadfork_dark_b' chunks"),
    (lambda c: c["experiments"]["hadfork"]["anomaly"].update(representation="z"),
     "anomaly.representation: 'z'"),
    (lambda c: c["experiments"]["hadfork"]["anomaly"].update(supervised={"model": "E"}),
     "anomaly.supervised.model: 'E'"),
    (lambda c: c["experiments"]["hadfork"]["anomaly"].update(cosine_ae={"epoch": 3}),
     "anomaly.cosine_ae: unknown key(s) ['epoch']"),
])  # fmt: skip
def test_bad_anomaly_spec_is_refused_before_any_job(config, edit, needle):
    cfg = copy.deepcopy(config)
    edit(cfg)
    errs = declaration_errors(cfg)
    assert any(needle in e and "experiments.hadfork.tables.dark_jets" in e for e in errs), errs


def _fake_study(first_only: bool = False) -> dict:
    rng = np.random.default_rng(2)
    long = [{"setup": "SSL+AE", "model": m, "seed": f"r0-ae{s}", "auc": 0.6 + 0.1 * i + 0.01 * s}
            for i, m in enumerate("ABCD") for s in range(3)]  # fmt: skip
    long += [{"setup": "FSV", "model": "C", "seed": f"s{s}", "auc": 0.55, "n_train": 20}
             for s in range(2)]  # fmt: skip
    scores = {"sm": rng.normal(size=200), **{m: rng.normal(0.5, size=40) for m in "ABCD"}}
    return {"long": pd.DataFrame(long), "scores": scores,
            "fsv_scores": {"sm": rng.normal(size=200), "C": rng.normal(0.2, size=40)},
            "n_sm_train": 500, "n_sm_test": 200, "n_dark": dict.fromkeys("ABCD", 40),
            "n_fsv_train": 20, "n_fsv_pool": 25, "n_pretrain": 1, "n_ae_seeds": 3}  # fmt: skip


def test_table_and_figure_are_written(config, tmp_path, monkeypatch):
    monkeypatch.setattr(RA, "run_study", lambda *a, **k: _fake_study())
    base = dict(config=config, experiment="hadfork", paper="rieck", inputs={})
    out = {e: str(tmp_path / f"dark_jets.{e}") for e in ("csv", "md", "tex")}
    RA.build_table(OutputJob(name="dark_jets", spec={"kind": "rieck_dark_jets"}, out=out,
                             **base))  # fmt: skip
    table = pd.read_csv(out["csv"])
    assert {"auc", "auc_std", "n_repeats", "paper_auc", "auc_stat_err"} <= set(table.columns)
    # 200 SM vs 40 dark jets at AUC 0.81: Hanley-McNeil error ~0.036
    assert 0.02 < table["auc_stat_err"].iloc[2] < 0.06
    fsv = table[table["setup"] == "FSV"].iloc[0]
    assert fsv["model"] == "C" and fsv["n_repeats"] == 2
    ssl_c = table[(table["setup"] == "SSL+AE") & (table["model"] == "C")].iloc[0]
    assert ssl_c["auc"] == pytest.approx(0.81) and ssl_c["n_repeats"] == 3
    md = Path(out["md"]).read_text()
    assert "FSV (dashed in Fig. 9)" in md and "drawn (Fig. 9)" in md
    fig = {e: str(tmp_path / f"fig9.{e}") for e in ("png", "pdf")}
    RA.build_figure(OutputJob(name="fig9", spec={"kind": "rieck_anomaly_roc"}, out=fig,
                              **base))  # fmt: skip
    assert Path(fig["png"]).stat().st_size > 5000


def test_jet_mass_reference_rows(tmp_path):
    import h5py

    for name, masses in (("sm", np.linspace(10, 50, 40)), ("dark", np.linspace(40, 80, 40))):
        with h5py.File(tmp_path / f"{name}.h5", "w") as f:
            f["jets/mass"] = masses
    rows = RA._mass_rows(str(tmp_path / "sm.h5"), np.arange(40), str(tmp_path / "dark.h5"),
                         {"A": (np.arange(20, 40), np.zeros(0, int)),
                          "B": (np.zeros(0, int), np.zeros(0, int))})  # fmt: skip
    assert rows[0]["setup"] == "jet mass" and rows[0]["auc"] > 0.95
    assert np.isnan(rows[1]["auc"])
