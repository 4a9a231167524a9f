"""The cross-method leaderboard (jetforge.leaderboard): aggregation statistics with known
inputs, the config block's checks, and the protocol + table end to end on toy jets."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from toyfiles import write_toy_file

from jetforge.config import ConfigError, load_config, validate_config
from jetforge.leaderboard import aggregate as A
from jetforge.leaderboard import plan

REPO = Path(__file__).resolve().parents[1]


def _records(values: dict[str, list[float]], metric: str = "knn_auc") -> list[dict]:
    return [{"entry": e, "label": e.upper(), "repeat": i, metric: v}
            for e, vs in values.items() for i, v in enumerate(vs)]  # fmt: skip


# ---------------------------------------------------------------- aggregation (statistics)


def test_mean_std_rank_and_significance_known_inputs():
    """a beats c far outside the seeds' spread (t interval excludes 0: 'worse'); b is
    below a by less than its spread ('n.s.'); ranks by mean; std is ddof=1."""
    s = A.summarise(_records({"a": [0.90, 0.91, 0.92], "b": [0.86, 0.93, 0.80],
                              "c": [0.70, 0.71, 0.72]}))  # fmt: skip
    s = s.set_index("entry")
    assert s.loc["a", "knn_auc"] == pytest.approx(0.91)
    assert s.loc["a", "knn_auc_std"] == pytest.approx(0.01)
    assert list(s["knn_auc_rank"]) == [1.0, 2.0, 3.0]
    assert list(s["knn_auc_vs_best"]) == [A.BEST, A.TIED, A.WORSE]
    assert list(s["n_repeats"]) == [3, 3, 3]


def test_welch_matches_scipy():
    """Our verdict is scipy's Welch test at 95 % two-sided, on both sides of the edge."""
    from scipy.stats import ttest_ind

    rng = np.random.default_rng(0)
    for shift in np.linspace(0.0, 0.05, 11):
        a, b = 0.9 + 0.01 * rng.standard_normal(3), 0.9 - shift + 0.01 * rng.standard_normal(3)
        if a.mean() < b.mean():
            a, b = b, a
        s = A.summarise(_records({"a": list(a), "b": list(b)})).set_index("entry")
        p = ttest_ind(a, b, equal_var=False).pvalue
        assert (s.loc["b", "knn_auc_vs_best"] == A.WORSE) == (p < 0.05), (shift, p)


def test_lower_is_better_metrics_and_missing_values():
    """Wasserstein distances and cost rank ascending; an entry without a metric (a
    baseline that does not measure it) is NaN, unranked and not compared."""
    recs = _records({"a": [0.01, 0.011], "b": [0.05, 0.052]}, "w_mean")
    recs += [{"entry": "c", "label": "C", "repeat": 0, "knn_auc": 0.5},
             {"entry": "c", "label": "C", "repeat": 1, "knn_auc": 0.6}]  # fmt: skip
    s = A.summarise(recs).set_index("entry")
    assert s.loc["a", "w_mean_rank"] == 1 and s.loc["b", "w_mean_rank"] == 2
    assert s.loc["a", "w_mean_vs_best"] == A.BEST and s.loc["b", "w_mean_vs_best"] == A.WORSE
    assert np.isnan(s.loc["c", "w_mean"]) and np.isnan(s.loc["c", "w_mean_rank"])
    assert s.loc["c", "w_mean_vs_best"] == ""
    assert A.higher_is_better("knn_auc") and not A.higher_is_better("pretrain_cpu_s")


def test_one_seed_is_never_significant_and_counts_are_not_metrics():
    recs = _records({"a": [0.9], "b": [0.1]})
    recs[0]["n_probe_test"] = 500
    s = A.summarise(recs).set_index("entry")
    assert s.loc["b", "knn_auc_vs_best"] == A.TIED  # no spread measured
    assert "n_probe_test" not in s.columns


def test_significant_pairs():
    s = A.summarise(_records({"a": [0.90, 0.91, 0.92], "b": [0.89, 0.90, 0.91],
                              "c": [0.70, 0.71, 0.72]}))  # fmt: skip
    assert sorted(A.significant_pairs(s, "knn_auc")) == [("A", "C"), ("B", "C")]


# ---------------------------------------------------------------------- config and plan


def test_default_and_paper_blocks_compare_like_with_like():
    """>= 6 pre-trained objective/augmentation entries plus both baselines; every entry
    runs on the same backbone, budget and fine-tuning; seeds >= 2 (paper file >= 3)."""
    for files, min_seeds in ((["config/config.yaml"], 2),
                             (["config/config.yaml", "config/paper/leaderboard.yaml"], 3)):
        cfg = load_config(*(REPO / f for f in files))
        lb = cfg["leaderboard"]
        assert plan.seeds(lb) >= min_seeds
        pre = [e for e in lb["entries"] if plan.baseline_of(lb, e) is None]
        assert len(pre) >= 6
        assert {plan.baseline_of(lb, e) for e in lb["entries"]} >= set(plan.BASELINES)
        exps = [plan.experiment(lb, e) for e in lb["entries"]]
        for x in exps:
            assert x["backbone"] == exps[0]["backbone"] and x["backbone"]["name"] == "part"
            assert (x["pretrain"]["steps"], x["pretrain"]["batch_size"]) == (
                lb["budget"]["steps"], lb["budget"]["batch_size"])
            assert x["finetune"] == exps[0]["finetune"]
            assert x["pretrain"]["processes"] == list(lb["classes"])
        assert len(plan.metrics_files(cfg)) == len(lb["entries"]) * plan.seeds(lb)
        from jetforge.workflow.targets import all_targets

        assert "results/tables/leaderboard.md" in all_targets(cfg)


@pytest.mark.parametrize("change, message", [
    (lambda lb: lb.update(anomaly="hbb_zh"), "leaderboard.anomaly: 'hbb_zh' is one of the classes"),
    (lambda lb: lb["entries"].update(x={"method": "byol"}), "leaderboard.entries.x.method: 'byol'"),
    (lambda lb: lb["entries"].update(x={"method": "simclr", "augset": ["herwig"]}),
     "leaderboard.entries.x.augset: ['herwig'] are not variants"),
    (lambda lb: lb["entries"].update(x={"baseline": "supervised", "method": "simclr"}),
     "leaderboard.entries.x: give exactly one of 'method'"),
    (lambda lb: lb.update(seeds=1), "leaderboard.seeds: 1"),
    (lambda lb: lb["budget"].update(steps=0.5), "leaderboard.budget.steps: 0.5"),
    (lambda lb: lb["finetune"].update(n_train=[100, 5000]), "n_train=5000"),
    (lambda lb: lb.update(dataset="nope"), "leaderboard.dataset: 'nope' is not a dataset"),
    (lambda lb: lb.update(colour="red"), "leaderboard: unknown key 'colour'"),
])  # fmt: skip
def test_bad_leaderboard_values_refused_before_any_job(default_config, change, message):
    cfg = copy.deepcopy(default_config)
    change(cfg["leaderboard"])
    with pytest.raises(ConfigError) as exc:
        validate_config(cfg)
    assert message in str(exc.value)


# ------------------------------------------------------------ protocol + table, toy jets

PROCS = ("qcd_zjet", "hbb_zh", "wqq_wjet")
VARIANTS = ("nominal", "seed", "fsr_up")


def write_resim(path: Path, n_per: int, seed: int) -> str:
    """Format-4 toy re-simulated file: three processes told apart by their particles'
    spread, three variants per hard event (rows in variant order), RS3L features."""
    from test_jbot import rs3l_jets

    xs, ms, proc = [], [], []
    for k in range(len(PROCS)):
        x, m = (t.numpy() for t in rs3l_jets(n_per, 12, seed=seed + k))
        x[..., 4:6] *= 1.0 + 0.8 * k  # deta, dphi: wider for H, wider still for W
        rng = np.random.default_rng(seed + 10 * k)
        views = [x] + [np.where(m[..., None], x * (1 + 0.05 * rng.standard_normal(x.shape)), x)
                       for _ in VARIANTS[1:]]  # fmt: skip
        xs.append(np.stack(views, 1).reshape(-1, *x.shape[1:]))
        ms.append(np.repeat(m, len(VARIANTS), axis=0))
        proc += [k] * (n_per * len(VARIANTS))
    write_toy_file(path, np.concatenate(xs), np.concatenate(ms), np.asarray(proc, np.int8),
                   PROCS, VARIANTS, jet_value=1.0)  # fmt: skip
    return str(path)


def tiny_block(default_config: dict) -> dict:
    lb = copy.deepcopy(default_config["leaderboard"])
    lb["backbone"].update(embed_dims=[8, 16, 8], pair_embed_dims=[4, 4], num_heads=2,
                          num_layers=1)  # fmt: skip
    lb.update(seeds=2, budget={"steps": 3, "batch_size": 16}, probe={"k": 5, "n_jets": 60},
              robustness={"drop_fraction": 0.5, "n_jets": 40})  # fmt: skip
    lb["finetune"].update(n_train=[20, 40], epochs=1, batch_size=16)
    lb["entries"] = {e: lb["entries"][e] for e in ("simclr_fsr", "supervised", "random_init")}
    lb["entries"]["simclr_fsr"]["augset"] = ["fsr_up"]
    return lb


def test_protocol_and_table_end_to_end(tmp_path, default_config, one_thread):
    """Each (entry, seed) job's metrics hold what its kind measures; the table ranks,
    marks and states budget and data; both figures carry the Simulation label."""
    from jetforge.leaderboard.protocol import run_entry
    from jetforge.leaderboard.report import build

    files = {"pretrain": write_resim(tmp_path / "pre.h5", 40, 0),
             "probe_train": write_resim(tmp_path / "ft.h5", 40, 100),
             "probe_test": write_resim(tmp_path / "te.h5", 30, 200)}  # fmt: skip
    lb = tiny_block(default_config)
    paths = []
    for entry in lb["entries"]:
        for r in range(plan.seeds(lb)):
            paths.append(str(tmp_path / plan.metrics_path(entry, r)))
            run_entry(lb, entry, r, 7, files, paths[-1], device="cpu")
    recs = {(d["entry"], d["repeat"]): d
            for d in (json.loads(Path(p).read_text()) for p in paths)}  # fmt: skip
    ssl, sup, rand = recs[("simclr_fsr", 0)], recs[("supervised", 0)], recs[("random_init", 1)]
    assert {"knn_auc", "linear_auc", "anomaly_auc", "eff_rank", "ft_auc_n40", "w_fsr_up",
            "drop_auc_loss"} <= set(ssl) and ssl["pretrain_cpu_s"] > 0  # fmt: skip
    assert "knn_auc" not in sup and "ft_auc_n20" in sup and "w_seed" in sup
    assert "ft_auc_n20" not in rand and 0.0 <= rand["anomaly_auc"] <= 1.0
    assert recs[("simclr_fsr", 0)]["knn_auc"] != recs[("simclr_fsr", 1)]["knn_auc"]  # seeds

    out = {k: str(tmp_path / v) for k, v in plan.output_paths().items()}
    ds = default_config["datasets"]["rs3l"]
    summary = build(paths, lb, ds, out)
    csv = pd.read_csv(out["csv"])
    assert list(csv["entry"]) == list(lb["entries"]) and set(csv["n_repeats"]) == {2}
    assert {"knn_auc_rank", "knn_auc_vs_best", "ft_auc_n40_std"} <= set(csv.columns)
    md = Path(out["md"]).read_text()
    assert "3 optimizer steps × batch 16" in md and "Vincia standing in for Herwig 7" in md
    assert "± " in md and "[1]" in md and "—" in md  # baselines leave their other metrics
    assert Path(out["tex"]).read_text().count("\\pm") > 5
    assert summary.loc[summary["entry"] == "supervised", "ft_auc_n20_rank"].notna().all()
    for fig in plan.FIGURES:
        assert Path(out[f"{fig}_png"]).stat().st_size > 0 and Path(out[f"{fig}_pdf"]).exists()
