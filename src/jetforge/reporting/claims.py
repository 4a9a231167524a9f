"""The claims verdict: does our run support each headline claim of each paper?

A claim is transcribed once, in ``resources/reference/{paper}.yaml`` under ``claims``, as a
comparison of two rows of one of our tables (never as a number we type in)::

    - id: finetuned-beats-supervised
      claim: Fine-tuning the RS3L space beats training from scratch on the same labels
      source: Table II; abstract
      paper_numbers: "1325 ± 31 vs 834 ± 11 (ε_H = 0.3)"
      table: table2               # results/tables/{paper}/table2.csv, or "hadfork/probes"
      metric: rej@0.3
      a: {setup: "floating-all-n*", pick: last}
      b: {setup: "supervised-all-n*", pick: last}
      expect: greater             # greater | less | similar (then `tolerance`)
      scale: log                  # compare log(a / b): rejections and other ratios

A side selects rows by ``column: fnmatch pattern``; ``pick: first | last`` keeps one of the
matches (table order), otherwise every matching row is one seed (e.g. ``random init i*``);
``value: x`` compares with a constant (chance level, a paper's stated number). A row with
``{metric}_std`` and ``n_repeats`` columns already carries its seeds' mean and spread.

The verdict (../shared/PAPERS.md) is computed from the seeds: the effect ``a - b`` (or
``log(a/b)``) with its standard error ``sqrt(s_a²/n_a + s_b²/n_b)`` and Welch's degrees of
freedom; ``reproduced`` when the effect has the claimed sign and its 95 % two-sided Student
t interval excludes zero, ``not reproduced`` when the interval lies wholly on the other
side, ``inconclusive at this scale`` otherwise -- and always when a side has a single seed
(no spread measured). Why t and not 2σ: with the two or three seeds a CPU run affords, the
spread itself is a guess (two seeds: t = 12.7 for one degree of freedom), and a verdict must
not claim more than the seeds show. A ``similar`` claim is reproduced when the whole
interval lies within ``tolerance`` of zero, not reproduced when it lies wholly outside.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jetforge.reporting.table_io import write_table

#: two-sided confidence of the interval a verdict rests on
CONFIDENCE = 0.95
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN = (
    "reproduced", "not reproduced", "inconclusive at this scale", "not run in this config",
)  # fmt: skip
EXPECT = ("greater", "less", "similar")
SIDE_KEYS = frozenset({"pick", "value", "table"})
CLAIM_KEYS = frozenset({"id", "claim", "source", "paper_numbers", "table", "metric", "a", "b",
                        "expect", "scale", "tolerance", "paper"})  # fmt: skip


class ClaimError(ValueError):
    """A claim's spec does not fit the table it reads (row or column missing)."""


@dataclass(frozen=True)
class Sample:
    """Mean, spread (ddof=1) and number of seeds of one side; ``n = inf`` for a constant."""

    mean: float
    std: float
    n: float

    def text(self) -> str:
        if math.isinf(self.n):
            return f"{self.mean:.4g}"
        spread = f" ± {self.std:.2g}" if self.n > 1 else ""
        return f"{self.mean:.4g}{spread} ({int(self.n)} seed{'s' if self.n != 1 else ''})"


def table_path(paper: str, table: str) -> str:
    """``table2`` -> results/tables/{paper}/table2.csv; ``hadfork/probes`` under results/tables."""
    rel = table if "/" in table else f"{paper}/{table}"
    return f"results/tables/{rel}.csv"


def claim_tables(claim: Mapping[str, Any]) -> list[str]:
    """The table files a claim reads (both sides)."""
    paper = claim["paper"]
    sides = [claim.get("a", {}), claim.get("b", {})]
    tables = [s.get("table", claim["table"]) for s in sides if "value" not in s]
    return list(dict.fromkeys(table_path(paper, t) for t in tables))


def spec_errors(claim: Mapping[str, Any]) -> list[str]:
    """What is wrong with a claim's spec, before any table is read."""
    where = f"claim {claim.get('paper')}/{claim.get('id')}"
    errs = [f"{where}: missing {k!r}" for k in ("id", "claim", "table", "metric", "a", "b",
                                                   "expect") if k not in claim]  # fmt: skip
    errs += [f"{where}: unknown key {k!r}" for k in sorted(set(claim) - CLAIM_KEYS)]
    if claim.get("expect") not in EXPECT:
        errs.append(f"{where}: expect must be one of {list(EXPECT)}, got {claim.get('expect')!r}")
    if claim.get("expect") == "similar" and "tolerance" not in claim:
        errs.append(f"{where}: a 'similar' claim needs a tolerance (the effect allowed)")
    if claim.get("scale", "linear") not in ("linear", "log"):
        errs.append(f"{where}: scale must be linear or log")
    for side in ("a", "b"):
        if not isinstance(claim.get(side, {}), Mapping):
            errs.append(f"{where}: {side} must be a mapping column -> pattern")
    return errs


def _select(frame: pd.DataFrame, side: Mapping[str, Any], path: str) -> pd.DataFrame:
    rows = frame
    for col, pattern in side.items():
        if col in SIDE_KEYS:
            continue
        if col not in frame.columns:
            raise ClaimError(f"{path}: no column {col!r}; columns: {list(frame.columns)}")
        keep = [fnmatch.fnmatchcase(str(v), str(pattern)) for v in rows[col]]
        rows = rows[np.asarray(keep, dtype=bool)]
    if rows.empty:
        raise ClaimError(f"{path}: no row matches {dict(side)}")
    pick = side.get("pick", "all")
    if pick == "first":
        return rows.iloc[:1]
    if pick == "last":
        return rows.iloc[-1:]
    return rows


def side_sample(side: Mapping[str, Any], metric: str, frame: pd.DataFrame | None,
                path: str) -> Sample:  # fmt: skip
    """One side of a claim as a :class:`Sample` (see the module docstring)."""
    if "value" in side:
        return Sample(float(side["value"]), 0.0, math.inf)
    assert frame is not None
    rows = _select(frame, side, path)
    if metric not in rows.columns:
        raise ClaimError(f"{path}: no column {metric!r}; columns: {list(rows.columns)}")
    values = rows[metric].astype(float).to_numpy()
    if len(rows) == 1 and f"{metric}_std" in rows.columns and "n_repeats" in rows.columns:
        n = float(rows["n_repeats"].iloc[0])
        return Sample(float(values[0]), float(rows[f"{metric}_std"].iloc[0]), n)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return Sample(float(np.mean(values)), std, float(len(values)))


def _term(s: Sample, log: bool) -> float:
    if math.isinf(s.n):
        return 0.0
    rel = s.std / abs(s.mean) if log and s.mean else s.std
    return rel * rel / s.n


def effect_and_error(a: Sample, b: Sample, log: bool) -> tuple[float, float | None]:
    """``a - b`` (or ``log(a/b)``) and its standard error; None where a side has one seed
    (log scale: the relative spreads, the delta method)."""
    if log:
        if a.mean <= 0 or b.mean <= 0:
            raise ClaimError(f"log scale needs positive values, got {a.mean} and {b.mean}")
        effect = math.log(a.mean / b.mean)
    else:
        effect = a.mean - b.mean
    if any(s.n < 2 for s in (a, b)):
        return effect, None
    return effect, math.sqrt(_term(a, log) + _term(b, log))


def welch_dof(a: Sample, b: Sample, log: bool) -> float:
    """Welch–Satterthwaite degrees of freedom of the difference (inf: exact, e.g. two
    constants or zero spread on both sides)."""
    terms = [(_term(s, log), s.n) for s in (a, b) if not math.isinf(s.n)]
    den = sum(v * v / (n - 1) for v, n in terms if v > 0)
    return math.inf if den == 0 else sum(v for v, _ in terms) ** 2 / den


def critical_value(dof: float) -> float:
    """Half-width of the two-sided ``CONFIDENCE`` interval in standard errors."""
    from scipy.stats import norm, t

    q = 0.5 + CONFIDENCE / 2
    return float(norm.ppf(q) if math.isinf(dof) else t.ppf(q, dof))


def verdict(effect: float, error: float | None, expect: str, tolerance: float = 0.0,
            dof: float = math.inf) -> str:  # fmt: skip
    """The computed verdict (module docstring); non-finite numbers are inconclusive."""
    if error is None or not (math.isfinite(effect) and math.isfinite(error)):
        return INCONCLUSIVE
    z = critical_value(dof) * error
    if expect == "similar":
        if abs(effect) + z <= tolerance:
            return REPRODUCED
        return NOT_REPRODUCED if abs(effect) - z > tolerance else INCONCLUSIVE
    signed = effect if expect == "greater" else -effect
    if error == 0.0:
        return REPRODUCED if signed > 0 else NOT_REPRODUCED if signed < 0 else INCONCLUSIVE
    if signed >= z:
        return REPRODUCED
    return NOT_REPRODUCED if signed <= -z else INCONCLUSIVE


def evaluate(claim: Mapping[str, Any], available: Iterable[str] | None = None) -> dict[str, Any]:
    """One row of the claims table. ``available``: the table files this config produces
    (a claim reading any other is ``not run in this config``); None = read what exists."""
    row = {k: claim.get(k, "") for k in ("paper", "id", "claim", "source", "paper_numbers")}
    row.update(table=claim["table"], metric=claim["metric"], expect=claim["expect"])
    paths = claim_tables(claim)
    have = set(available) if available is not None else {p for p in paths if Path(p).exists()}
    missing = [p for p in paths if p not in have]
    if missing:
        return {**row, "ours": "", "effect": None, "uncertainty": None, "n_sigma": None,
                "verdict": NOT_RUN, "note": f"needs {', '.join(missing)}"}  # fmt: skip
    frames = {p: pd.read_csv(p) for p in paths}
    samples = []
    for side in ("a", "b"):
        spec = claim[side]
        path = table_path(claim["paper"], spec.get("table", claim["table"]))
        try:
            samples.append(side_sample(spec, claim["metric"], frames.get(path), path))
        except ClaimError as exc:  # e.g. a row the small config does not run
            return {**row, "ours": "", "effect": None, "uncertainty": None, "n_sigma": None,
                    "verdict": NOT_RUN, "note": str(exc)}  # fmt: skip
    a, b = samples
    log = claim.get("scale", "linear") == "log"
    effect, error = effect_and_error(a, b, log)
    dof = welch_dof(a, b, log)
    result = verdict(effect, error, claim["expect"], float(claim.get("tolerance", 0.0)), dof)
    sigma = None if not error else effect / error
    note = "one seed on a side: no spread measured" if error is None else ""
    return {**row, "ours": f"{a.text()} vs {b.text()}", "effect": effect, "uncertainty": error,
            "n_sigma": sigma, "verdict": result, "note": note}  # fmt: skip


COLUMNS = ["paper", "id", "claim", "source", "paper_numbers", "table", "metric", "expect",
           "ours", "effect", "uncertainty", "n_sigma", "verdict", "note"]  # fmt: skip


def claims_frame(claims: Sequence[Mapping[str, Any]], available: Iterable[str] | None
                 ) -> pd.DataFrame:  # fmt: skip
    have = None if available is None else list(available)
    return pd.DataFrame([evaluate(c, have) for c in claims], columns=COLUMNS)


def _display(frame: pd.DataFrame) -> pd.DataFrame:
    def num(x: Any) -> str:
        return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3g}"

    return pd.DataFrame({
        "Paper": frame["paper"], "Claim": frame["claim"], "Source": frame["source"],
        "Paper's numbers": frame["paper_numbers"], "Ours (a vs b)": frame["ours"],
        "Effect": frame["effect"].map(num), "± (1σ)": frame["uncertainty"].map(num),
        "Verdict": frame["verdict"], "Note": frame["note"],
    })  # fmt: skip


def write_claims(frame: pd.DataFrame, out: Mapping[str, str], title: str) -> None:
    """The claims table as csv (every number), md and tex (what a reader scans)."""
    counts = frame["verdict"].value_counts()
    tally = ", ".join(f"{counts.get(v, 0)} {v}" for v in (REPRODUCED, NOT_REPRODUCED,
                                                          INCONCLUSIVE, NOT_RUN))  # fmt: skip
    notes = [
        (f"Verdicts computed from the seeds of our tables: an effect counts when its "
         f"{CONFIDENCE:.0%} two-sided Welch t interval (standard error sqrt(s_a²/n_a + "
         "s_b²/n_b)) excludes zero; 'inconclusive at this scale' otherwise or when a side has "
         "one seed. Effect = a − b, or ln(a/b) for ratio metrics. Claims and their table rows: "
         "resources/reference/{paper}.yaml (`claims`)."),
        f"Tally: {tally}.",
    ]
    write_table(frame, dict(out), title, notes, display=_display(frame))
