"""The one writer of result tables: a pandas DataFrame to ``.csv``, ``.md`` and ``.tex``.

Every table of the reproductions (RS3L Tables II-V, the fine-tuning scans, the probe
tables) leaves through :func:`write_table`, so the three formats never drift apart: the CSV
is the machine-readable record (full precision, blank for a missing value), the Markdown is
what a reader opens first (title line, table, note), and the LaTeX is a booktabs table with
the title as caption, ready to paste next to the paper's. Writes are atomic
(:mod:`jetforge.io.atomic`) so a killed job never leaves a half table Snakemake takes as done.

Aggregation over repeated trainings lives here too (:func:`mean_std_by`), because "mean ±
std over repeats" is the one statistic every table quotes and must be computed one way.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from jetforge.io.atomic import write_text

PathLike = str | os.PathLike[str]
FORMATS = ("csv", "md", "tex")

# LaTeX specials first, then the unicode our cells use (pdflatex has no glyph for them)
_TEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
}  # fmt: skip
_TEX_UNICODE = {
    "±": r"$\pm$", "ε": r"$\varepsilon$", "×": r"$\times$", "—": "---", "–": "--",
    "∞": r"$\infty$", "≥": r"$\geq$", "≤": r"$\leq$", "ρ": r"$\rho$", "→": r"$\to$",
    "−": "-", "η": r"$\eta$", "σ": r"$\sigma$", "Δ": r"$\Delta$", "·": r"$\cdot$",
}  # fmt: skip
_TEX_RE = re.compile("|".join(re.escape(k) for k in [*_TEX_SPECIALS, *_TEX_UNICODE]))


def table_paths(stem_or_paths: PathLike | Mapping[str, PathLike] | Sequence[PathLike]
                ) -> dict[str, Path]:
    """``{"csv": ..., "md": ..., "tex": ...}`` from a stem, a mapping or a list of paths.

    A stem gets the suffix appended to the string (``results/tables/rs3l/table2`` ->
    ``table2.csv``), not ``with_suffix``, so stems containing dots stay whole. Given paths
    (the workflow's ``out_csv, out_md``), a missing format goes next to the CSV with the
    CSV's stem: the rules declare csv and md, and the ``.tex`` rides along.
    """
    if isinstance(stem_or_paths, (str, os.PathLike)):
        stem = os.fspath(stem_or_paths)
        return {ext: Path(f"{stem}.{ext}") for ext in FORMATS}
    if isinstance(stem_or_paths, Mapping):
        given = {str(k): Path(v) for k, v in stem_or_paths.items()}
    else:
        given = {Path(p).suffix.lstrip("."): Path(p) for p in stem_or_paths}
    unknown = sorted(set(given) - set(FORMATS))
    if unknown or "csv" not in given:
        raise ValueError(f"table paths need a .csv and only {FORMATS}; got {sorted(given)}")
    csv_path = given["csv"]
    base = os.fspath(csv_path)[: -len(".csv")] if csv_path.suffix == ".csv" else os.fspath(csv_path)
    return {ext: given.get(ext, Path(f"{base}.{ext}")) for ext in FORMATS}


_NUMERIC_RE = re.compile(r"^\(?[-+−]?(\d|\.\d|∞|nan$)")


def column_alignment(display: pd.DataFrame) -> list[str]:
    """``"r"`` for a column whose filled cells all read as numbers ("380 ± 4",
    "(8.63 ± 0.23)e-04", "0.812"), else ``"l"``: numbers line up on their last digit."""
    out = []
    for c in display.columns:
        cells = [str(x) for x in display[c] if x is not None and str(x) not in ("", "—", "–")]
        numeric = bool(cells) and all(_NUMERIC_RE.match(x) for x in cells)
        out.append("r" if numeric else "l")
    return out


def _notes(note: str | Sequence[str] | None) -> list[str]:
    if note is None or note == "":
        return []
    return [note] if isinstance(note, str) else [n for n in note if n]


def to_markdown(display: pd.DataFrame, title: str, note: str | Sequence[str] | None) -> str:
    """``## title``, a blank line, the pipe table, then each note as its own paragraph."""
    align = ["right" if a == "r" else "left" for a in column_alignment(display)]
    body = display.to_markdown(index=False, tablefmt="pipe", disable_numparse=True,
                               colalign=align)
    parts = [f"## {title}", "", body, ""]
    for n in _notes(note):
        parts += [n, ""]
    return "\n".join(parts)


def tex_escape(text: object) -> str:
    """LaTeX-safe text: specials escaped, the unicode of our cells turned into math."""
    s = "" if text is None else str(text)
    return _TEX_RE.sub(lambda m: _TEX_SPECIALS.get(m[0]) or _TEX_UNICODE[m[0]], s)


def to_latex(display: pd.DataFrame, title: str, note: str | Sequence[str] | None,
             label: str | None = None) -> str:
    """A booktabs ``table`` (``\\toprule``/``\\midrule``/``\\bottomrule``) with the title as
    caption and the note as a small paragraph under the tabular.

    Cells are escaped here rather than by the Styler so headers, cells and caption follow
    one rule; numeric columns are right-aligned, text left-aligned.
    """
    esc = display.astype(object).where(display.notna(), "").map(tex_escape)
    esc.columns = [tex_escape(c) for c in display.columns]
    align = "".join(column_alignment(display))
    tex = esc.style.hide(axis="index").to_latex(
        caption=tex_escape(title), label=label, hrules=True, column_format=align,
        position_float="centering",
    )
    notes = _notes(note)
    if notes:
        text = r"\par\smallskip{\footnotesize " + " ".join(tex_escape(n) for n in notes) + "}\n"
        tex = tex.replace("\\end{table}", text + "\\end{table}")
    return tex


def write_table(
    data: pd.DataFrame,
    stem_or_paths: PathLike | Mapping[str, PathLike] | Sequence[PathLike],
    title: str,
    note: str | Sequence[str] | None = None,
    display: pd.DataFrame | None = None,
    float_format: str = "{:.3f}",
) -> dict[str, Path]:
    """Write one table as ``.csv`` (``data``), ``.md`` and ``.tex`` (``display``).

    ``data`` is the machine-readable frame: every number at full precision, missing values
    blank. ``display`` is the human one (e.g. "380 ± 4" cells with the paper's value in the
    next column); without it ``data`` is shown with floats as ``float_format``. ``note``
    (one string or several paragraphs) says what the numbers are: data, scale, repeats and
    deviations from the paper. Returns the written paths by format.
    """
    if data.empty and not len(data.columns):
        raise ValueError(f"table {title!r}: no columns to write")
    paths = table_paths(stem_or_paths)
    shown = display if display is not None else _format_floats(data, float_format)
    write_text(paths["csv"], data.to_csv(index=False, na_rep="", lineterminator="\n"))
    write_text(paths["md"], to_markdown(shown, title, note))
    write_text(paths["tex"], to_latex(shown, title, note))
    return paths


def _format_floats(df: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """Floats as ``fmt`` (blank when missing); everything else as its ``str``."""

    def cell(x: object) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return ""
        return fmt.format(x) if isinstance(x, float) else str(x)

    return df.astype(object).map(cell)


def mean_std_by(long: pd.DataFrame, by: str | Sequence[str], values: Sequence[str]
                ) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and count of ``values`` over the repeats of each group.

    ``long`` has one row per repeated training; the result one row per group (in order of
    first appearance), with columns ``{v}``, ``{v}_std`` and ``n_repeats``. ddof=1 because a
    handful of repeats estimates the training-to-training spread, the paper's "± std of
    repeated trainings"; a single repeat gets std 0 (no spread measured), not NaN.
    """
    keys = [by] if isinstance(by, str) else list(by)
    grouped = long.groupby(keys, sort=False, dropna=False)
    agg = grouped[list(values)].agg([_mean, _std])
    size = grouped.size()
    out = pd.DataFrame(index=agg.index)
    for v in values:
        out[v] = agg[(v, "_mean")]
        out[f"{v}_std"] = agg[(v, "_std")].mask(size <= 1, 0.0)
    out["n_repeats"] = size
    return out.reset_index()


def _mean(s: pd.Series) -> float:
    """numpy's mean (a NaN repeat makes the mean NaN rather than being skipped)."""
    return float(s.mean(skipna=False))


def _std(s: pd.Series) -> float:
    """numpy's ``std(ddof=1)``: the same two-pass sum, so the digits match the old tables."""
    return float(s.std(ddof=1, skipna=False)) if len(s) > 1 else 0.0
