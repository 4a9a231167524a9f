"""Mean ± std over pre-training seeds, the rank per metric, and which differences are
significant over seeds.

The statistics are the claims table's (:mod:`jetforge.reporting.claims`): the difference
of two entries' seed means with its standard error ``sqrt(s_a²/n_a + s_b²/n_b)``, Welch's
degrees of freedom and the two-sided 95 % Student t interval. Why t and not 2σ: with the
two or three seeds a CPU run affords, the spread is itself a guess and a ranking must not
claim more than the seeds show. Each entry is compared with the best entry of the metric:
``best``, ``n.s.`` (its interval includes no difference: tied with the best at this
scale), or ``worse`` (significantly worse). Ranks are by the mean alone (1 = best; ties
share the lower rank) and say nothing about significance; the ``vs best`` column does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from jetforge.reporting.claims import (
    INCONCLUSIVE,
    REPRODUCED,
    Sample,
    effect_and_error,
    verdict,
    welch_dof,
)
from jetforge.reporting.table_io import mean_std_by

#: metrics where less is better: distances between variants, AUC lost, cost
LOWER_IS_BETTER = ("w_", "drop_auc_loss", "pretrain_")
#: record keys that identify a run, not a metric; keys starting ``n_`` are jet counts
ID_KEYS = ("entry", "label", "repeat")
COUNT_PREFIX = "n_"
BEST, TIED, WORSE = "best", "n.s.", "worse"


def higher_is_better(metric: str) -> bool:
    return not metric.startswith(LOWER_IS_BETTER)


def metric_names(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every numeric metric any record holds, in first-seen order."""
    names: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k in ID_KEYS or k.startswith(COUNT_PREFIX):
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                names.setdefault(k, None)
    return list(names)


def summarise(records: Sequence[Mapping[str, Any]], metrics: Sequence[str] | None = None
              ) -> pd.DataFrame:  # fmt: skip
    """One row per entry (config order): ``{m}``, ``{m}_std`` (ddof=1), ``n_repeats``,
    ``{m}_rank`` and ``{m}_vs_best`` for each metric. A metric an entry does not measure
    (a baseline without pre-training has no probe of its own) is NaN, ranked nowhere."""
    if not records:
        raise ValueError("no leaderboard records to aggregate")
    metrics = list(metrics) if metrics is not None else metric_names(records)
    long = pd.DataFrame([{k: r.get(k, np.nan) for k in ("entry", "label", *metrics)}
                         for r in records])  # fmt: skip
    long[metrics] = long[metrics].astype(float)
    out = mean_std_by(long, ["entry", "label"], metrics)
    for m in metrics:
        out[f"{m}_rank"] = ranks(out[m], higher_is_better(m))
        out[f"{m}_vs_best"] = versus_best(out, m)
    return out


def ranks(means: pd.Series, higher: bool) -> pd.Series:
    """Rank by mean, 1 = best, ties share the lower rank; NaN where the mean is NaN."""
    return means.rank(ascending=not higher, method="min")


def _sample(row: Mapping[str, Any], metric: str) -> Sample:
    return Sample(float(row[metric]), float(row[f"{metric}_std"]), float(row["n_repeats"]))


def compare(better: Sample, other: Sample) -> str:
    """Whether ``better`` (the higher mean, in the metric's better direction already
    signed) is significantly ahead of ``other``: ``worse`` for ``other`` when it is,
    ``n.s.`` otherwise (also when a side has one seed: no spread measured)."""
    effect, error = effect_and_error(better, other, log=False)
    result = verdict(effect, error, "greater", dof=welch_dof(better, other, log=False))
    return WORSE if result == REPRODUCED else TIED if result == INCONCLUSIVE else BEST


def versus_best(summary: pd.DataFrame, metric: str) -> pd.Series:
    """Per entry: ``best``, ``n.s.`` or ``worse`` against the best entry (empty where the
    entry has no value)."""
    means = summary[metric]
    out = pd.Series([""] * len(summary), index=summary.index, dtype=object)
    if means.notna().sum() == 0:
        return out
    sign = 1.0 if higher_is_better(metric) else -1.0
    best = (sign * means).idxmax()
    b = _sample(summary.loc[best], metric)
    b_signed = Sample(sign * b.mean, b.std, b.n)
    for i, row in summary.iterrows():
        if i == best:
            out[i] = BEST
        elif not math.isnan(row[metric]):
            o = _sample(row, metric)
            out[i] = compare(b_signed, Sample(sign * o.mean, o.std, o.n))
    return out


def significant_pairs(summary: pd.DataFrame, metric: str) -> list[tuple[str, str]]:
    """Every ordered pair (a, b) of entry labels where a is significantly better than b."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    rows = [r for _, r in summary.iterrows() if not math.isnan(r[metric])]
    pairs = []
    for a in rows:
        for b in rows:
            if a["entry"] == b["entry"] or sign * a[metric] <= sign * b[metric]:
                continue
            sa, sb = _sample(a, metric), _sample(b, metric)
            signed = (Sample(sign * sa.mean, sa.std, sa.n), Sample(sign * sb.mean, sb.std, sb.n))
            if compare(*signed) == WORSE:
                pairs.append((str(a["label"]), str(b["label"])))
    return pairs
