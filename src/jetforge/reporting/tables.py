"""Results tables of the RS3L reproduction (paper Tables II-V), ours next to the paper's.

Every table is computed from the fine-tuning / supervised prediction files (data contract
format 5), one file per repeated training, so the spread over repeats is the same
"standard deviation of repeated trainings" the paper quotes. Our training sets are ~1000x
smaller than the paper's, so the paper columns are there to compare *trends* (fixed vs
floating vs supervised, seed vs Herwig), not values; how our setups are matched to paper
rows is described in ``resources/reference/rs3l.yaml`` and implemented in ``paper_rows``.

The helpers that read prediction files and name setups live here too; ``figures`` reuses
them so tables and figures can never disagree on what "nominal" or "N_2" means.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import pandas as pd

from jetforge.evaluation.metrics import rejection_at, wasserstein
from jetforge.reporting.table_io import mean_std_by, write_table

NOMINAL = "nominal"
N2_SETUP = "n2"
PAPER = "arXiv:2403.07066"
MODES = ("fixed", "floating", "lora", "supervised")
_SETUP_RE = re.compile(r"^(?P<mode>fixed|floating|lora|supervised)-(?P<augset>.+)-n(?P<n>\d+)$")

PathLike = str | os.PathLike[str]


class PredictionFormatError(ValueError):
    """A prediction or embedding file does not follow data contract format 5.

    A ValueError subclass so callers can catch it generically, but named so a broken
    training output is told apart from a bad argument in workflow logs.
    """


# --------------------------------------------------------------------------- reading


def decode_names(raw: Any) -> list[str]:
    """HDF5 string-list attribute -> list of str (h5py returns bytes or str objects)."""
    if isinstance(raw, (str, bytes)):
        raw = [raw]
    return [x.decode() if isinstance(x, bytes) else str(x) for x in raw]


@dataclass(frozen=True)
class Predictions:
    """The columns of one prediction file that a table or figure needs."""

    path: str
    arrays: dict[str, np.ndarray]
    variant_names: list[str]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def variant_mask(self, name: str) -> np.ndarray:
        """Boolean mask of the jets of variant ``name``; raises if the file lacks it."""
        if name not in self.variant_names:
            raise PredictionFormatError(
                f"{self.path}: variant {name!r} not in attr variant_names {self.variant_names}"
            )
        return self.arrays["variant"] == self.variant_names.index(name)

    def nominal(self) -> np.ndarray:
        """Mask of the nominal-shower jets: the paper quotes rejections on these only.
        Datasets without shower variants have their reference variant first (``fork_a`` of
        hadronization-fork pairs), which then plays the nominal's part."""
        ref = NOMINAL if NOMINAL in self.variant_names else self.variant_names[0]
        return self.variant_mask(ref)


def load_predictions(path: PathLike, fields: Iterable[str]) -> Predictions:
    """Read ``fields`` (plus ``variant``) from a format-5 predictions file.

    Checks everything a table silently depends on, so a malformed training output fails
    here with the file name instead of producing a plausible-looking wrong number: each
    dataset exists and is 1-d with a common length, ``variant_names`` names a nominal
    variant, and at least one jet is nominal.
    """
    path = str(path)
    need = list(dict.fromkeys([*fields, "variant"]))
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise PredictionFormatError(f"{path}: cannot open as HDF5 ({err})") from err
    with f:
        missing = [k for k in need if k not in f]
        if missing:
            raise PredictionFormatError(
                f"{path}: missing dataset(s) {missing}; format 5 predictions need {need}"
            )
        if "variant_names" not in f.attrs:
            raise PredictionFormatError(f"{path}: missing attr 'variant_names'")
        names = decode_names(f.attrs["variant_names"])
        arrays = {k: np.asarray(f[k][()]) for k in need}
    lengths = {k: a.shape for k, a in arrays.items()}
    if any(a.ndim != 1 for a in arrays.values()) or len({a.shape for a in arrays.values()}) != 1:
        raise PredictionFormatError(f"{path}: datasets must be 1-d of equal length, got {lengths}")
    preds = Predictions(path, arrays, names)
    if not names:
        raise PredictionFormatError(f"{path}: empty attr 'variant_names'")
    if not preds.nominal().any():
        raise PredictionFormatError(f"{path}: no jets of the reference variant ({names[0]!r} "
                                    f"unless 'nominal' is among {names})")  # fmt: skip
    return preds


def tagger_score(preds: Predictions, setup_id: str, mask: np.ndarray | None = None) -> np.ndarray:
    """Signal-like-is-high score of a setup: the network output, or -N_2 for the N_2 row.

    Low N_2 means two-prong, i.e. signal-like, hence the sign. Jets whose N_2 is not
    finite (too few constituents) are given the least signal-like score rather than being
    dropped, so efficiencies keep the full jet count as denominator.
    """
    if setup_id == N2_SETUP:
        s = -preds["n2"].astype(np.float64)
        bad = ~np.isfinite(s)
        if bad.any():
            s[bad] = (s[~bad].min() if (~bad).any() else 0.0) - 1.0
    else:
        s = preds["score"].astype(np.float64)
        if not np.isfinite(s).all():
            raise PredictionFormatError(f"{preds.path}: non-finite values in 'score'")
    return s if mask is None else s[mask]


# --------------------------------------------------------------------------- naming


@dataclass(frozen=True)
class Setup:
    """A training setup parsed from our id ``"{mode}-{augset}-n{n_train}"``."""

    mode: str
    augset: str
    n_train: int


def parse_setup_id(setup_id: str) -> Setup | None:
    """Parse a setup id; ``None`` for the N_2 baseline row. Raises on anything else."""
    if setup_id == N2_SETUP:
        return None
    m = _SETUP_RE.match(setup_id)
    if m is None:
        raise ValueError(
            f"setup id {setup_id!r} is not '{{mode}}-{{augset}}-n{{n_train}}' with mode in "
            f"{MODES}, nor {N2_SETUP!r}"
        )
    return Setup(m["mode"], m["augset"], int(m["n"]))


def setup_label(setup_id: str) -> str:
    """Human label in the paper's style, e.g. ``Fine-tuned (n=2000, floating, all)``."""
    s = parse_setup_id(setup_id)
    if s is None:
        return "N_2"
    if s.mode == "supervised":
        return f"Fully-supervised (n={s.n_train}, {s.augset})"
    return f"Fine-tuned (n={s.n_train}, {s.mode}, {s.augset})"


def _norm_augset(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


# --------------------------------------------------------------------------- reference


def paper_rows(setup_ids: Iterable[str], reference: Mapping[str, Any]) -> dict[str, str | None]:
    """Match our setup ids to paper row labels by (mode, augset, size rank).

    Our sizes are far below the paper's, so within each (mode, augset) group the k-th
    smallest of ours is matched to the k-th smallest of the paper's; "n2" matches the
    paper's N_2 row; ``reference["overrides"]`` wins over the rule. See the header of
    resources/reference/rs3l.yaml for worked examples.
    """
    ids = list(setup_ids)
    out: dict[str, str | None] = dict.fromkeys(ids)
    paper: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for label, row in reference.get("rows", {}).items():
        st = row.get("setup", {})
        if st.get("mode") == N2_SETUP:
            if N2_SETUP in out:
                out[N2_SETUP] = label
            continue
        key = (st["mode"], _norm_augset(st["augset"]))
        paper.setdefault(key, []).append((int(st["n_train"]), label))
    ours: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for sid in ids:
        s = parse_setup_id(sid)
        if s is not None:
            ours.setdefault((s.mode, _norm_augset(s.augset)), []).append((s.n_train, sid))
    for key, members in ours.items():
        candidates = sorted(paper.get(key, []))
        for rank, (_, sid) in enumerate(sorted(members)):
            out[sid] = candidates[rank][1] if rank < len(candidates) else None
    for sid, label in (reference.get("overrides") or {}).items():
        if sid in out:
            if label is not None and label not in reference.get("rows", {}):
                raise KeyError(f"override {sid!r} -> {label!r}: no such paper row")
            out[sid] = label
    return out


def _paper_cell(
    reference: Mapping[str, Any] | None, row: str | None, column: float | str
) -> tuple[float | None, float | None]:
    """(value, uncertainty) of a paper cell; column keys compare as floats when numeric."""
    if reference is None or row is None:
        return None, None
    entry = reference["rows"][row]

    def pick(d: Mapping[Any, Any]) -> float | None:
        for k, v in d.items():
            same = (
                math.isclose(float(k), float(column), abs_tol=1e-9)
                if isinstance(column, float)
                else str(k) == str(column)
            )
            if same:
                return None if v is None else float(v)
        return None

    return pick(entry.get("values", {})), pick(entry.get("uncertainties", {}))


def _check_metric(reference: Mapping[str, Any] | None, metric: str) -> None:
    if reference is not None and reference.get("metric", metric) != metric:
        raise ValueError(
            f"reference table {reference.get('id', '?')} holds {reference.get('metric')!r}, "
            f"not {metric!r}: pass the matching table (II/IV rejection, III/V wasserstein)"
        )


# --------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1) over repeats; std 0 for a single repeat.

    ddof=1 because a handful of repeats estimates the training-to-training spread, which
    is what the paper's "± std of repeated trainings" means.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    if v.size == 1:
        return float(v[0]), 0.0
    with np.errstate(invalid="ignore"):
        return float(v.mean()), float(v.std(ddof=1))


def _files_of(setups: Mapping[str, Sequence[PathLike]], sid: str) -> list[str]:
    files = [str(p) for p in setups[sid]]
    if not files:
        raise ValueError(f"setup {sid!r}: no prediction files given")
    return files


# --------------------------------------------------------------------------- formatting


def _fmt_plain(mean: float | None, std: float | None) -> str:
    """``380 ± 4``-style cell, as in Tables II/IV.

    Rejections >= 1 are quoted to the std's first significant digit (integers once the
    std reaches 1, like the paper); a missing std (a single repeat, the paper's N_2) shows
    the value alone, to three significant digits unless it is a whole number.
    """
    if mean is None:
        return ""
    if not math.isfinite(mean):
        return "∞" if mean > 0 else str(mean)
    if std is None or not math.isfinite(std):
        return f"{mean:.0f}" if float(mean).is_integer() else f"{mean:.3g}"
    decimals = 0 if std >= 1 or std == 0 else min(3, -math.floor(math.log10(std)))
    if std == 0 and abs(mean) < 10 and not float(mean).is_integer():
        decimals = 1
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _fmt_sci(mean: float | None, std: float | None) -> str:
    """``(8.63 ± 0.23)e-04``-style cell with a common exponent, as in Tables III/V."""
    if mean is None:
        return ""
    if not math.isfinite(mean):
        return str(mean)
    if mean == 0:
        return "0" if std is None else f"0 ± {std:.2g}"
    exp = math.floor(math.log10(abs(float(f"{mean:.2e}"))))  # exponent after rounding
    m = mean / 10**exp
    if std is None:
        return f"{m:.2f}e{exp:+03d}"
    return f"({m:.2f} ± {std / 10**exp:.2f})e{exp:+03d}"


def _source_note(reference: Mapping[str, Any] | None) -> str:
    if reference is None:
        return "No paper reference given."
    return (
        f"Paper: {PAPER}, Table {reference.get('id', '?')}; paper rows are matched to ours "
        "by (mode, augset, size rank) because our training sets are ~1000x smaller "
        "(resources/reference/rs3l.yaml): compare trends, not values."
    )


def _md_std(row: Mapping[str, Any], key: str) -> float | None:
    """The std to print: none for a single repeat, where a spread is not measured."""
    return row[key] if row["n_repeats"] > 1 else None


def _eff_key(eff: float) -> str:
    return f"{eff:g}"


# --------------------------------------------------------------------------- tables


def _table_rows(
    setups: Mapping[str, Sequence[PathLike]],
    per_file: Callable[[str, str], dict[str, float]],
    reference: Mapping[str, Any] | None,
    paper_cols: Mapping[str, float | str],
) -> list[dict[str, Any]]:
    """One row per setup: ours as mean ± std over its repeats, the paper's cells beside.

    ``per_file(setup_id, path)`` gives the metrics of one repeat; they are stacked in a
    long frame (one row per prediction file) and reduced by ``mean_std_by`` (groupby-agg,
    ddof=1). ``paper_cols`` maps our metric column to the paper column key it sits next to.
    """
    rows_map = paper_rows(setups, reference) if reference is not None else {}
    long = pd.DataFrame(
        [{"setup": sid, **per_file(sid, path)} for sid in setups for path in _files_of(setups, sid)]
    )
    stats = mean_std_by(long, "setup", list(paper_cols)).set_index("setup")
    rows: list[dict[str, Any]] = []
    for sid in setups:
        paper_row = rows_map.get(sid)
        row: dict[str, Any] = {"setup": sid, "label": setup_label(sid),
                               "n_repeats": int(stats.at[sid, "n_repeats"]), "paper_row": paper_row}
        for col, key in paper_cols.items():
            row[col] = float(stats.at[sid, col])
            row[f"{col}_std"] = float(stats.at[sid, f"{col}_std"])
            row[f"paper_{col}"], row[f"paper_{col}_unc"] = _paper_cell(reference, paper_row, key)
        rows.append(row)
    return rows


def _csv_frame(rows: list[dict[str, Any]], metrics: Sequence[str]) -> pd.DataFrame:
    """The machine-readable frame: ours (mean, std) per metric, then the paper's columns."""
    columns = ["setup", "label", "n_repeats"]
    columns += [c for m in metrics for c in (m, f"{m}_std")]
    columns += ["paper_row"] + [c for m in metrics for c in (f"paper_{m}", f"paper_{m}_unc")]
    return pd.DataFrame(rows, columns=columns)


def _display_frame(
    rows: list[dict[str, Any]],
    headers: Mapping[str, tuple[str, str]],
    fmt: Callable[[float | None, float | None], str],
) -> pd.DataFrame:
    """The human frame: "mean ± std" cells, each metric's paper cell in the next column."""
    out = []
    for r in rows:
        cells = {"Setup": f"{r['label']} [{r['n_repeats']}×]"}
        for m, (ours, paper) in headers.items():
            cells[ours] = fmt(r[m], _md_std(r, f"{m}_std"))
            cells[paper] = fmt(r[f"paper_{m}"], r[f"paper_{m}_unc"])
        cells["Paper row"] = r["paper_row"] or "—"
        out.append(cells)
    return pd.DataFrame(out)


def _nominal_rejections(effs: Sequence[float]) -> Callable[[str, str], dict[str, float]]:
    def per_file(sid: str, path: str) -> dict[str, float]:
        preds = load_predictions(path, ["n2", "label"] if sid == N2_SETUP else ["score", "label"])
        nom = preds.nominal()
        scores = tagger_score(preds, sid, nom)
        labels = preds["label"][nom].astype(np.int64)
        if not ((labels == 1).any() and (labels == 0).any()):
            raise PredictionFormatError(f"{path}: nominal jets lack signal or background")
        return {f"rej@{_eff_key(e)}": float(rejection_at(scores, labels, e)) for e in effs}

    return per_file


def rejection_table(
    setups: Mapping[str, Sequence[PathLike]],
    efficiencies: Sequence[float],
    reference: Mapping[str, Any] | None,
    out_csv: PathLike,
    out_md: PathLike,
    title: str,
) -> list[dict[str, Any]]:
    """Background rejection 1/eps_B at fixed signal efficiencies (RS3L Tables II, IV).

    ``setups`` maps our setup id (or "n2") to its prediction files, one per repeat.
    Rejections are computed on nominal jets only, as in the paper, then averaged over
    repeats. ``reference`` is one table from ``load_reference`` (or None). Writes
    ``out_csv`` (machine-readable, one row per setup), ``out_md`` and the ``.tex`` next to
    the CSV (``table_io.write_table``); returns the rows.
    """
    _check_metric(reference, "rejection")
    effs = [float(e) for e in efficiencies]
    cols = {f"rej@{_eff_key(e)}": e for e in effs}
    rows = _table_rows(setups, _nominal_rejections(effs), reference, cols)
    headers = {f"rej@{k}": (f"1/ε_B @ ε_S={k} (ours)", f"@ ε_S={k} (paper)")
               for k in map(_eff_key, effs)}
    notes = [
        ("Ours: QCD rejection 1/ε_B at signal efficiency ε_S on nominal jets only, "
         "mean ± std (ddof=1) over the [n×] repeated trainings; N_2 uses score = −N_2."),
        _source_note(reference),
    ]
    write_table(_csv_frame(rows, list(cols)), {"csv": out_csv, "md": out_md}, title, notes,
                display=_display_frame(rows, headers, _fmt_plain))
    return rows


def _variant_distances(variants: Sequence[str]) -> Callable[[str, str], dict[str, float]]:
    def per_file(sid: str, path: str) -> dict[str, float]:
        preds = load_predictions(path, ["n2"] if sid == N2_SETUP else ["score"])
        values = preds["n2"].astype(np.float64) if sid == N2_SETUP else tagger_score(preds, sid)
        nominal = values[preds.nominal()]
        nominal = nominal[np.isfinite(nominal)]
        out = {}
        for v in variants:
            other = values[preds.variant_mask(v)]
            other = other[np.isfinite(other)]
            if other.size == 0:
                raise PredictionFormatError(f"{path}: no jets of variant {v!r}")
            out[f"w_{v}"] = float(wasserstein(nominal, other))
        return out

    return per_file


def wasserstein_table(
    setups: Mapping[str, Sequence[PathLike]],
    variants: Sequence[str],
    reference: Mapping[str, Any] | None,
    out_csv: PathLike,
    out_md: PathLike,
    title: str,
) -> list[dict[str, Any]]:
    """Wasserstein distance of the score distribution, nominal vs each variant (Tables III, V).

    As in the paper the distance is taken over the whole test sample, signal and
    background together, so it measures how much the *tagger output* moves when only the
    shower changes. The N_2 row uses the raw N_2 distribution. Mean ± std over repeats.
    """
    _check_metric(reference, "wasserstein")
    variants = [str(v) for v in variants]
    if NOMINAL in variants:
        raise ValueError("variants are compared to the nominal; do not list 'nominal'")
    cols = {f"w_{v}": v for v in variants}
    rows = _table_rows(setups, _variant_distances(variants), reference, cols)
    names = (reference or {}).get("column_labels", {})
    headers = {f"w_{v}": (f"{v} (ours)", f"{names.get(v, v)} (paper)") for v in variants}
    notes = [
        ("Ours: 1-d Wasserstein distance between the tagger-output distributions of nominal "
         "and varied jets over the whole test sample (signal + background), mean ± std "
         "(ddof=1) over the [n×] repeats; the N_2 row uses the raw N_2 distribution. "
         "Our alt_shower (Vincia) stands in for the paper's Herwig 7."),
        _source_note(reference),
    ]
    write_table(_csv_frame(rows, list(cols)), {"csv": out_csv, "md": out_md}, title, notes,
                display=_display_frame(rows, headers, _fmt_sci))
    return rows
