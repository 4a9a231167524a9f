"""One look for every figure: mplhep's HEP style, a "Simulation" label, PNG + PDF output.

Every figure function of jetforge calls :func:`apply_style` before creating its figure,
:func:`label` on its first axes, and :func:`save_figure` at the end. The label is
mplhep's generic experiment label with no experiment name (``exp=""``), reading
"Simulation": our jets are generated stand-ins of the papers' samples, never collider
data, so no CMS/ATLAS branding and no luminosity. The fonts (TeX Gyre Heros) ship with
``mplhep_data``; nothing is downloaded, so figures render on machines without network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mplhep as hep
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text

from jetforge.io.atomic import atomic_path

PathLike = str | os.PathLike[str]
SIMULATION = "Simulation"

#: mplhep's ROOT-like style (ticks inside on all sides, minor ticks, Helvetica-like font),
#: scaled to our figure sizes: mplhep sizes its fonts for 10-inch figures, ours are ~6.
STYLE: dict[str, Any] = {
    **hep.style.ROOT,
    "figure.figsize": (6.4, 4.8),
    "font.size": 11,
    "axes.titlesize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.linewidth": 1.0,
    "xtick.major.size": 6,
    "xtick.minor.size": 3,
    "ytick.major.size": 6,
    "ytick.minor.size": 3,
    "grid.alpha": 0.4,
    "mathtext.fontset": "dejavusans",  # TeX Gyre Heros lacks some math glyphs (\langle)
    "savefig.dpi": 150,
}


def apply_style() -> None:
    """Set the house style on matplotlib's rcParams (idempotent; call before plotting).

    Global rcParams rather than a context manager because seaborn's figure-level
    functions (pairplot) create their figure inside the call.
    """
    plt.style.use(STYLE)


def label(ax: Axes, rlabel: str = "", fontsize: float | None = None) -> tuple[Text, ...]:
    """Draw "Simulation" above the top-left corner of ``ax``; ``rlabel`` on the right.

    ``rlabel`` is the place for the sample ("our stand-in of JetClass", "√s = 13 TeV") —
    the title of a figure goes to ``fig.suptitle`` so the two never overlap.
    """
    size = fontsize if fontsize is not None else plt.rcParams["font.size"]
    texts = hep.label.exp_label(exp="", llabel=SIMULATION, rlabel=rlabel, com=None, loc=0,
                                ax=ax, fontsize=size)
    return tuple(t for t in texts if t is not None)


def figure_texts(fig: Figure) -> Iterator[str]:
    """Every string drawn on ``fig`` (figure, axes and legend texts, titles): what a test
    searches for the "Simulation" label."""
    for t in fig.findobj(Text):
        if t.get_visible() and t.get_text():
            yield t.get_text()


def has_label(fig: Figure) -> bool:
    """Whether ``fig`` carries the "Simulation" label."""
    return any(SIMULATION in t for t in figure_texts(fig))


def save_figure(fig: Figure, out_stem: PathLike) -> list[Path]:
    """Write ``fig`` to ``{out_stem}.png`` and ``.pdf`` atomically, then close it.

    A figure drawn without :func:`label` (e.g. by a caller outside this package) gets it
    here on its first axes, so no jetforge figure leaves unmarked as simulation. The suffix
    is appended to the string (not ``with_suffix``) so stems like ``roc_eff0.5`` stay whole.
    """
    if fig.axes and not has_label(fig):
        label(fig.axes[0])
    written = []
    try:
        for ext in ("png", "pdf"):
            path = Path(f"{os.fspath(out_stem)}.{ext}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
            written.append(path)
    finally:
        plt.close(fig)
    return written
