"""The claims verdict (jetforge.reporting.claims): computed from seeds, never asserted."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from jetforge.papers import PAPERS
from jetforge.reporting import claims as C
from jetforge.reporting.reference import load_claims, reference_path


def _table(tmp_path: Path, name: str, rows: list[dict]) -> str:
    path = tmp_path / "results" / "tables" / "p" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _claim(**kw) -> dict:
    base = dict(paper="p", id="c", claim="a beats b", table="t", metric="m",
                a={"setup": "a"}, b={"setup": "b"}, expect="greater")  # fmt: skip
    return {**base, **kw}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_clear_effect_is_reproduced_and_reversed_is_not(in_tmp):
    _table(in_tmp, "t", [
        {"setup": "a", "m": 10.0, "m_std": 0.1, "n_repeats": 5},
        {"setup": "b", "m": 5.0, "m_std": 0.1, "n_repeats": 5},
    ])  # fmt: skip
    assert C.evaluate(_claim())["verdict"] == C.REPRODUCED
    assert C.evaluate(_claim(expect="less"))["verdict"] == C.NOT_REPRODUCED


def test_spread_larger_than_effect_is_inconclusive(in_tmp):
    _table(in_tmp, "t", [
        {"setup": "a", "m": 10.0, "m_std": 8.0, "n_repeats": 3},
        {"setup": "b", "m": 9.0, "m_std": 8.0, "n_repeats": 3},
    ])  # fmt: skip
    row = C.evaluate(_claim())
    assert row["verdict"] == C.INCONCLUSIVE
    assert row["uncertainty"] == pytest.approx(math.sqrt(2 * 64 / 3))


def test_single_seed_is_inconclusive_whatever_the_effect(in_tmp):
    _table(in_tmp, "t", [{"setup": "a", "m": 100.0}, {"setup": "b", "m": 1.0}])
    row = C.evaluate(_claim())
    assert row["verdict"] == C.INCONCLUSIVE and "one seed" in row["note"]


def test_rows_matching_a_pattern_are_the_seeds(in_tmp):
    _table(in_tmp, "t", [
        {"encoder": "pre-trained r0", "auc": 0.80}, {"encoder": "pre-trained r1", "auc": 0.82},
        {"encoder": "random init i0", "auc": 0.60}, {"encoder": "random init i1", "auc": 0.61},
        {"encoder": "random init (mean of 2)", "auc": 0.605},
    ])  # fmt: skip
    claim = _claim(metric="auc", a={"encoder": "pre-trained r*"}, b={"encoder": "random init i*"})
    row = C.evaluate(claim)
    assert row["effect"] == pytest.approx(0.81 - 0.605)
    assert "2 seeds" in row["ours"]


def test_pick_last_and_constant_side_and_log_scale(in_tmp):
    _table(in_tmp, "t", [
        {"setup": "floating-all-n100", "m": 2.0, "m_std": 0.0, "n_repeats": 3},
        {"setup": "floating-all-n900", "m": 40.0, "m_std": 1.0, "n_repeats": 3},
    ])  # fmt: skip
    claim = _claim(a={"setup": "floating-*", "pick": "last"}, b={"value": 20.0}, scale="log")
    row = C.evaluate(claim)
    assert row["effect"] == pytest.approx(math.log(2.0))
    assert row["verdict"] == C.REPRODUCED


def test_similar_needs_the_whole_interval_inside_the_tolerance(in_tmp):
    rows = [{"setup": "a", "m": 0.562, "m_std": 0.002, "n_repeats": 4},
            {"setup": "b", "m": 0.568, "m_std": 0.002, "n_repeats": 4}]  # fmt: skip
    _table(in_tmp, "t", rows)
    assert C.evaluate(_claim(expect="similar", tolerance=0.02))["verdict"] == C.REPRODUCED
    assert C.evaluate(_claim(expect="similar", tolerance=0.001))["verdict"] == C.NOT_REPRODUCED


def test_two_seeds_need_a_t_interval_not_two_sigma():
    a, b = C.Sample(10.0, 1.0, 2), C.Sample(7.0, 1.0, 2)
    effect, err = C.effect_and_error(a, b, log=False)
    assert effect / err == pytest.approx(3.0)  # 3 standard errors ...
    dof = C.welch_dof(a, b, log=False)
    assert dof == pytest.approx(2.0)
    assert C.verdict(effect, err, "greater", dof=dof) == C.INCONCLUSIVE  # ... t(2) = 4.30
    assert C.verdict(effect, err, "greater", dof=math.inf) == C.REPRODUCED


def test_table_not_produced_is_reported_not_run(in_tmp):
    row = C.evaluate(_claim(), available=[])
    assert row["verdict"] == C.NOT_RUN and "results/tables/p/t.csv" in row["note"]


def test_missing_row_or_column_is_not_run_naming_the_file(in_tmp):
    """A row or column the table lacks (e.g. a setup the small config does not train) is
    reported, with the file, as not run in this config; the claims job does not fail."""
    path = _table(in_tmp, "t", [{"setup": "a", "m": 1.0}])
    row = C.evaluate(_claim())
    assert row["verdict"] == C.NOT_RUN and "no row matches" in row["note"]
    assert "results/tables/p/t.csv" in row["note"]
    row = C.evaluate(_claim(metric="x", b={"value": 0}))
    assert row["verdict"] == C.NOT_RUN and "no column 'x'" in row["note"]
    with pytest.raises(C.ClaimError, match="no row matches"):
        C.side_sample({"setup": "b"}, "m", pd.read_csv(path), path)


def test_every_transcribed_claim_is_well_formed():
    """Each paper's claims parse, and each reads a table of its own paper or an experiment."""
    seen = 0
    for paper in PAPERS:
        if not reference_path(paper).exists():
            continue
        for claim in load_claims(paper):
            assert C.spec_errors(claim) == [], claim
            assert all(t.startswith("results/tables/") for t in C.claim_tables(claim))
            seen += 1
    assert seen >= 5


def test_written_table_has_verdict_tally(in_tmp):
    _table(in_tmp, "t", [{"setup": "a", "m": 1.0}, {"setup": "b", "m": 0.5}])
    frame = C.claims_frame([_claim()], available=None)
    out = {k: str(in_tmp / f"claims.{k}") for k in ("csv", "md", "tex")}
    C.write_claims(frame, out, "claims")
    md = Path(out["md"]).read_text()
    assert "Tally: 0 reproduced" in md and "inconclusive at this scale" in md
    assert list(pd.read_csv(out["csv"]).columns) == C.COLUMNS
