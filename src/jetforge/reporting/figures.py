"""Figures of the RS3L reproduction (paper Figs. 2-6), each written as PNG and PDF.

Each function reads training outputs (data contract format 5) and writes
``{out_stem}.png`` and ``{out_stem}.pdf`` atomically, so a killed job never leaves a
half-drawn figure that Snakemake would take as done. Styles follow the paper: fine-tunings
in reds (dark = fixed backbone, light = floating), fully-supervised in blues, N_2 in black,
Higgs jets in magenta; bands are the standard deviation over repeated trainings. The
house style (mplhep, "Simulation" label) comes from :mod:`jetforge.reporting.style`;
distributions and the corner plot are drawn with seaborn, histograms with mplhep.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import h5py
import matplotlib.pyplot as plt
import mplhep as hep
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from jetforge.evaluation.metrics import roc
from jetforge.reporting.style import apply_style, save_figure
from jetforge.reporting.style import label as simulation_label
from jetforge.reporting.tables import (
    N2_SETUP,
    NOMINAL,
    PredictionFormatError,
    decode_names,
    load_predictions,
    parse_setup_id,
    setup_label,
    tagger_score,
)

__all__ = [
    "corner_figure",
    "pretrain_history_figure",
    "roc_figure",
    "save_figure",
    "score_ratio_figure",
    "tsne_figure",
]

PathLike = str | os.PathLike[str]

VARIANT_LABELS = {
    NOMINAL: "Nominal (Pythia 8)",
    "seed": "Seed",
    "fsr_up": "FSR up",
    "fsr_down": "FSR down",
    "alt_shower": "Alt. shower (Vincia)",
}
CATEGORY_COLORS = {  # also the legend order
    "Higgs": "#d6249f",  # magenta, as in the paper
    "W": "#7b3294",
    "Signal": "#e31a1c",
    "QCD": "#1f78b4",
    "QCD quark": "#1f78b4",
    "QCD gluon": "#33a02c",
    "QCD (other)": "#999999",
}
SHOWER_COLORS = {NOMINAL: "#1f78b4", "alt_shower": "#ff7f00"}


# --------------------------------------------------------------------------- styles


def _setup_styles(setup_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Colour by mode (paper Fig. 6), shade by training size, line style by augset."""
    styles: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[tuple[int, str, str]]] = {}
    for sid in setup_ids:
        s = parse_setup_id(sid)
        if s is None:
            styles[sid] = {"color": "black", "ls": "--"}
        else:
            groups.setdefault(s.mode, []).append((s.n_train, s.augset, sid))
    cmaps = {
        "fixed": ("Reds", 0.75, 0.95),
        "floating": ("Reds", 0.35, 0.6),
        "lora": ("Purples", 0.5, 0.9),
        "supervised": ("Blues", 0.4, 0.95),
    }
    augset_ls = ["-", "-.", ":", (0, (5, 1))]
    for mode, members in groups.items():
        name, lo, hi = cmaps[mode]
        cmap = plt.get_cmap(name)
        sizes = sorted({n for n, _, _ in members})
        augsets = sorted({a for _, a, _ in members}, key=lambda a: (a != "all", a))
        for n, augset, sid in members:
            frac = sizes.index(n) / max(1, len(sizes) - 1)
            styles[sid] = {
                "color": cmap(lo + (hi - lo) * frac),
                "ls": augset_ls[augsets.index(augset) % len(augset_ls)],
            }
    return styles


def _pretty_class(name: str) -> str:
    low = name.lower()
    if low.startswith("qcd"):
        return "QCD"
    if low.startswith("h"):
        return "Higgs"
    if low.startswith("w"):
        return "W"
    return name


def _category(is_qcd: np.ndarray, parton_pid: np.ndarray, signal_names: np.ndarray) -> np.ndarray:
    """Per-jet display category: QCD split into quark / gluon by the matched parton.

    ``parton_pid`` 21 is a gluon and |pid| 1-5 a quark (data contract 4); other jets keep
    the (prettified) name of their signal process.
    """
    pid = np.abs(parton_pid.astype(np.int64))
    qcd = np.where(
        pid == 21, "QCD gluon", np.where((pid >= 1) & (pid <= 5), "QCD quark", "QCD (other)")
    )
    return np.where(is_qcd, qcd, signal_names).astype(object)


# --------------------------------------------------------------------------- Fig. 6: ROC


def _rejection_curve(scores: np.ndarray, labels: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Background rejection 1/FPR interpolated onto a grid of signal efficiencies (TPR).

    Repeats have different thresholds, so they are only averageable on a common TPR grid.
    For tied TPR the smallest FPR is kept (the best working point reaching that TPR).
    Below one background jet (FPR < 1/N_bkg, where the table metric ``rejection_at`` floors
    the FPR) the rejection is unmeasured and left NaN, not drawn as a spike or plateau.
    """
    fpr, tpr, _ = roc(scores, labels)
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    order = np.lexsort((fpr, tpr))
    tpr, fpr = tpr[order], fpr[order]
    tpr_u, first = np.unique(tpr, return_index=True)
    fpr_u = np.maximum.accumulate(fpr[first])
    f = np.interp(grid, tpr_u, fpr_u)
    floor = 1.0 / max(1, int((np.asarray(labels) == 0).sum()))
    ok = f >= floor * (1.0 - 1e-9)
    return np.where(ok, 1.0 / np.where(ok, f, 1.0), np.nan)


def roc_figure(setups: Mapping[str, Sequence[PathLike]], out_stem: PathLike, title: str) -> None:
    """Paper Fig. 6: background rejection vs signal efficiency on nominal jets only.

    One curve per setup: the mean over repeats, with a band of ± one standard deviation
    (computed on a common signal-efficiency grid). The ``"n2"`` setup is drawn from the
    ``n2`` column with score -N_2 (low N_2 = two-prong = signal-like).
    """
    grid = np.linspace(0.01, 1.0, 199)
    styles = _setup_styles(list(setups))
    apply_style()
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    ymax = 1.0
    order = [s for s in setups if s != N2_SETUP] + ([N2_SETUP] if N2_SETUP in setups else [])
    for sid in order:
        files = list(setups[sid])
        if not files:
            raise ValueError(f"setup {sid!r}: no prediction files given")
        curves = []
        for path in files:
            preds = load_predictions(path, ["n2" if sid == N2_SETUP else "score", "label"])
            nom = preds.nominal()
            curves.append(
                _rejection_curve(
                    tagger_score(preds, sid, nom), preds["label"][nom].astype(np.int64), grid
                )
            )
        # plain mean: a point is drawn only where every repeat lets background through,
        # so the low-efficiency end is not an average over a varying subset of repeats
        arr = np.vstack(curves)
        mean = arr.mean(axis=0)
        std = arr.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
        ymax = max(ymax, float(np.nanmax(mean, initial=1.0)))
        st = styles[sid]
        label = setup_label(sid) + (f" [{len(curves)}×]" if sid != N2_SETUP else "")
        ax.plot(grid, mean, color=st["color"], ls=st["ls"], lw=1.6, label=label)
        if len(curves) > 1:
            lo = np.clip(mean - std, 1.0, None)
            ax.fill_between(grid, lo, mean + std, color=st["color"], alpha=0.25, lw=0)
    ax.set_yscale("log")
    ax.set_ylim(1.0, 2.0 * ymax)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(r"Signal efficiency $\varepsilon_\mathrm{S}$")
    ax.set_ylabel(r"Background rejection $1/\varepsilon_\mathrm{B}$")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    _corner_note(ax, "nominal jets only\nband: ±1 std over repeats", 0.98, 0.97, "top", 8)
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    simulation_label(ax, rlabel=title)
    save_figure(fig, out_stem)


def _corner_note(ax: Any, text: str, x: float, y: float, va: str, size: float) -> None:
    """A grey, right-aligned remark in axes coordinates (what a band or selection means)."""
    ax.text(x, y, text, ha="right", va=va, transform=ax.transAxes, fontsize=size, color="0.3")


@contextlib.contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    """Silence 'mean of empty slice' where no repeat reaches a TPR (NaN is the answer)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# --------------------------------------------------------------------------- Fig. 2


def _read_history(
    path: PathLike, required: Sequence[str] = ("epoch", "loss")
) -> dict[str, np.ndarray]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        fields = reader.fieldnames or []
    if not rows:
        raise PredictionFormatError(f"{path}: empty history")
    missing = [c for c in required if c not in fields]
    if missing:
        raise PredictionFormatError(f"{path}: history lacks column(s) {missing} (format 5)")

    def num(x: str | None) -> float:
        try:
            return float(x) if x not in (None, "") else math.nan
        except ValueError:
            return math.nan

    return {c: np.array([num(r.get(c)) for r in rows]) for c in fields}


class _Bands:
    """Mean over repeated pre-trainings with a ±1 std band, on the epochs every repeat
    reached (a resumed or shorter run does not distort the average)."""

    def __init__(self, hists: list[dict[str, np.ndarray]]) -> None:
        self.hists = hists
        epochs = sorted(
            set.intersection(*[set(h["epoch"][np.isfinite(h["epoch"])]) for h in hists])
        )
        if not epochs:
            raise PredictionFormatError("history files share no epoch")
        self.epochs = epochs

    def stack(self, col: str) -> np.ndarray:
        out = []
        for h in self.hists:
            idx = {e: i for i, e in enumerate(h["epoch"])}  # last row of an epoch wins
            out.append([h[col][idx[e]] if col in h else math.nan for e in self.epochs])
        return np.array(out, dtype=np.float64)

    def band(self, ax: Any, col: str, **kw: Any) -> None:
        arr = self.stack(col)
        with _quiet_nan_warnings():
            mean = np.nanmean(arr, axis=0)
            std = np.nanstd(arr, axis=0, ddof=1) if len(arr) > 1 else np.zeros_like(mean)
        ep = np.array(self.epochs)
        (line,) = ax.plot(ep, mean, marker="o", ms=3, **kw)
        if len(arr) > 1:
            ax.fill_between(ep, mean - std, mean + std, color=line.get_color(), alpha=0.25, lw=0)


def pretrain_history_figure(history_csvs: Sequence[PathLike], out_stem: PathLike) -> None:
    """Paper Fig. 2 plus the loss curves: pre-training convergence vs epoch.

    Top: mean cosine similarity of positive pairs (nominal, augmented) per class; middle:
    cosine similarity between the class-mean vectors (starts near 1, goes negative as the
    classes separate without labels); bottom: training and validation NT-Xent loss.
    Lines are the mean over repeated pre-trainings, bands ± one std; only epochs present in
    every repeat are drawn so a resumed or shorter run does not distort the average.
    """
    if not history_csvs:
        raise ValueError("no history files given")
    hists = [_read_history(p, ("epoch", "loss", "val_loss", "cos_class_means"))
             for p in history_csvs]  # fmt: skip
    if not any(c.startswith("cos_pos_") for c in hists[0]):
        raise PredictionFormatError(
            f"{history_csvs[0]}: history lacks column(s) ['cos_pos_<class>']"
        )
    bands = _Bands(hists)
    band = bands.band
    classes = [c[len("cos_pos_") :] for c in hists[0] if c.startswith("cos_pos_")]
    apply_style()
    fig, axes = plt.subplots(
        3, 1, figsize=(6.4, 8.4), sharex=True, gridspec_kw={"height_ratios": [1.2, 1, 1]}
    )
    for cls in classes:
        pretty = _pretty_class(cls)
        band(axes[0], f"cos_pos_{cls}", color=CATEGORY_COLORS.get(pretty), label=pretty)
    axes[0].set_ylabel(r"$\langle\cos\theta\rangle$ positive pairs")
    axes[0].legend(frameon=False, fontsize=9)
    repeats = f"{len(hists)} repeat{'s' if len(hists) != 1 else ''}, band ±1 std"
    simulation_label(axes[0], rlabel=repeats)
    fig.suptitle("RS3L pre-training convergence")
    band(axes[1], "cos_class_means", color="0.2")
    axes[1].axhline(0.0, color="0.6", lw=0.8, ls=":")
    axes[1].set_ylabel(
        r"$\cos\theta(\langle z\rangle_\mathrm{sig}, \langle z\rangle_\mathrm{QCD})$"
    )
    band(axes[2], "loss", color="#1f78b4", label="training")
    band(axes[2], "val_loss", color="#e31a1c", ls="--", label="validation")
    axes[2].set_ylabel("NT-Xent loss")
    axes[2].legend(frameon=False, fontsize=9)
    axes[2].set_xlabel("Epoch")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.align_ylabels(axes)
    save_figure(fig, out_stem)


def loss_history_figure(
    history_csvs: Sequence[PathLike], out_stem: PathLike, title: str = ""
) -> None:
    """Pre-training loss vs epoch for methods without pair diagnostics: the total loss
    (training, validation) on top, every other logged loss term of the validation below;
    mean over repeats with a ±1 std band."""
    if not history_csvs:
        raise ValueError("no history files given")
    hists = [_read_history(p) for p in history_csvs]
    bands = _Bands(hists)
    not_losses = ("val_loss", "val_effective_rank")  # the rank has its own scale
    terms = [c for c in hists[0] if c.startswith("val_") and c not in not_losses]
    apply_style()
    fig, axes = plt.subplots(2 if terms else 1, 1, figsize=(6.4, 7.2 if terms else 4.6),
                             sharex=True, squeeze=False)  # fmt: skip
    top = axes[0, 0]
    bands.band(top, "loss", color="#1f78b4", label="training")
    if "val_loss" in hists[0]:
        bands.band(top, "val_loss", color="#e31a1c", ls="--", label="validation")
    top.set_ylabel("pre-training loss")
    top.legend(frameon=False, fontsize=9)
    repeats = f"{len(hists)} repeat{'s' if len(hists) != 1 else ''}, band ±1 std"
    simulation_label(top, rlabel=repeats)
    if title:
        fig.suptitle(title)
    if terms:
        for t in terms:
            bands.band(axes[1, 0], t, label=t.removeprefix("val_"))
        axes[1, 0].set_ylabel("validation loss terms")
        axes[1, 0].legend(frameon=False, fontsize=8, ncol=2)
    axes[-1, 0].set_xlabel("Epoch")
    for ax in axes[:, 0]:
        ax.grid(True, alpha=0.3)
    save_figure(fig, out_stem)


# --------------------------------------------------------------------------- embeddings


def _read_embeddings(path: PathLike, columns: Sequence[str]) -> dict[str, Any]:
    """``z``, the requested ``jets/`` columns and the name attrs of an embeddings file.

    Name attributes are looked up on the file root, then on the ``jets`` group, since
    format 5 only says the file carries "the jets/... columns of the split".
    """
    path = str(path)
    with h5py.File(path, "r") as f:
        missing = [k for k in ["z", *[f"jets/{c}" for c in columns]] if k not in f]
        if missing:
            raise PredictionFormatError(f"{path}: missing dataset(s) {missing} (format 5)")
        out: dict[str, Any] = {"z": np.asarray(f["z"][()], dtype=np.float64)}
        for c in columns:
            out[c] = np.asarray(f[f"jets/{c}"][()])
        for attr in ("class_names", "process_names", "variant_names"):
            src = f.attrs if attr in f.attrs else f["jets"].attrs
            if attr not in src:
                raise PredictionFormatError(f"{path}: missing attr {attr!r}")
            out[attr] = decode_names(src[attr])
    if out["z"].ndim != 2 or any(out[c].shape[0] != out["z"].shape[0] for c in columns):
        raise PredictionFormatError(f"{path}: z must be [N, D] with jets/* of length N")
    return out


def _embedding_categories(emb: Mapping[str, Any]) -> np.ndarray:
    classes = np.array(emb["class_names"], dtype=object)[emb["label"].astype(np.int64)]
    procs = np.array(emb["process_names"], dtype=object)[emb["process"].astype(np.int64)]
    is_qcd = np.array(
        [
            str(c).lower().startswith("qcd") or str(p).lower().startswith("qcd")
            for c, p in zip(classes, procs, strict=True)
        ],
        dtype=bool,
    )
    names = np.array([_pretty_class(str(p)) for p in procs], dtype=object)
    return _category(is_qcd, emb["parton_pid"], names)


def _scatter_by(
    ax: Any,
    xy: np.ndarray,
    groups: np.ndarray,
    colors: Mapping[str, str],
    labels: Mapping[str, str],
    rng: np.random.Generator,
    s: float = 6,
) -> None:
    """A seaborn scatter by group, points in random order so no group is systematically
    drawn on top; the legend gives each group's jet count."""
    order = rng.permutation(len(xy))
    fallback = plt.get_cmap("tab10")
    known = list(colors)
    present = sorted(
        dict.fromkeys(groups[order]),
        key=lambda g: (known.index(g) if g in known else len(known), str(g)),
    )
    names = {g: f"{labels.get(g, g)} ({int((groups == g).sum())})" for g in present}
    palette = {names[g]: colors.get(g, fallback(i % 10)) for i, g in enumerate(present)}
    df = pd.DataFrame(
        {"x": xy[order, 0], "y": xy[order, 1], "group": [names[g] for g in groups[order]]}
    )
    sns.scatterplot(
        data=df,
        x="x",
        y="y",
        hue="group",
        hue_order=list(palette),
        palette=palette,
        s=s,
        alpha=0.6,
        linewidth=0,
        rasterized=True,
        ax=ax,
    )
    ax.legend(frameon=False, fontsize=8, loc="best", markerscale=1.5)


def tsne_figure(embedding_h5: PathLike, out_stem: PathLike, n_jets: int, seed: int) -> None:
    """Paper Fig. 5: 2-d t-SNE of the RS3L space, by jet class and by shower program.

    Jets are drawn as (nominal, alt_shower) pairs of the same hard event where the file
    has both, so the right panel compares the two shower programs on identical partons; a
    single t-SNE (fixed ``random_state``) is shared by both panels. The left panel shows
    the nominal jets by class (QCD split into quark / gluon); the right one all drawn jets
    by shower. Embeddings are L2-normalised first because the contrastive loss only sees
    directions (cosine similarity), not norms.
    """
    from sklearn.manifold import TSNE

    emb = _read_embeddings(embedding_h5, ["label", "process", "variant", "parton_pid"])
    with h5py.File(embedding_h5, "r") as f:
        pair_id = np.asarray(f["jets/pair_id"][()]) if "jets/pair_id" in f else None
    vnames = emb["variant_names"]
    var = emb["variant"].astype(np.int64)
    nom_idx = np.flatnonzero(var == vnames.index(_reference_variant(vnames)))
    if nom_idx.size == 0:
        raise PredictionFormatError(f"{embedding_h5}: no nominal jets")
    alt_idx = (
        np.flatnonzero(var == vnames.index("alt_shower"))
        if "alt_shower" in vnames
        else np.array([], dtype=np.int64)
    )
    rng = np.random.default_rng(seed)
    if alt_idx.size and pair_id is not None:
        common = np.intersect1d(pair_id[nom_idx], pair_id[alt_idx])
        pick = rng.choice(common, size=min(len(common), max(1, n_jets // 2)), replace=False)
        sel = np.concatenate(
            [nom_idx[np.isin(pair_id[nom_idx], pick)], alt_idx[np.isin(pair_id[alt_idx], pick)]]
        )
    else:
        pool = np.concatenate([nom_idx, alt_idx])
        sel = rng.choice(pool, size=min(len(pool), n_jets), replace=False)
    sel = np.sort(sel)
    if sel.size < 5:
        raise ValueError(f"{embedding_h5}: only {sel.size} jets for t-SNE")

    z = emb["z"][sel]
    z = z / np.clip(np.linalg.norm(z, axis=1, keepdims=True), 1e-12, None)
    perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3.0)))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)

    cats = _embedding_categories(emb)[sel]
    ref = _reference_variant(vnames)
    is_nom = var[sel] == vnames.index(ref)
    shower = np.where(is_nom, NOMINAL, "alt_shower").astype(object)
    apply_style()
    panels = 2 if alt_idx.size else 1  # the shower panel only where there is another shower
    fig, axes = plt.subplots(1, panels, figsize=(6.0 * panels, 5.6), sharex=True, sharey=True,
                             squeeze=False)  # fmt: skip
    _scatter_by(axes[0, 0], xy[is_nom], cats[is_nom], CATEGORY_COLORS, {}, rng)
    simulation_label(axes[0, 0], rlabel=f"{VARIANT_LABELS.get(ref, ref)} jets by class")
    if panels == 2:
        _scatter_by(axes[0, 1], xy, shower, SHOWER_COLORS,
                    {NOMINAL: "Pythia 8 (nominal)", "alt_shower": "Vincia (alt. shower)"}, rng)
        axes[0, 1].set_title("Jets by shower program", loc="right")
    for ax in axes[0]:
        ax.set_xlabel("t-SNE dimension 1 (a.u.)")
        ax.set_ylabel("t-SNE dimension 2 (a.u.)")
        ax.grid(True, alpha=0.2)
    fig.suptitle(
        f"t-SNE of the {emb['z'].shape[1]}-d representation "
        f"({len(sel)} jets, perplexity {perplexity:.0f}, seed {seed})"
    )
    save_figure(fig, out_stem)


def _reference_variant(vnames: Sequence[str]) -> str:
    """The variant a figure draws: ``nominal`` where the dataset has shower variants, else
    the first (``fork_a`` of hadronization-fork pairs, the only one of single-jet sets)."""
    if not vnames:
        raise PredictionFormatError("no variant_names")
    return NOMINAL if NOMINAL in vnames else vnames[0]


def _nominal_classes(embedding_h5: PathLike) -> tuple[np.ndarray, list[str]]:
    """(z of the nominal jets, their pretty class names), QCD first so it is drawn under."""
    emb = _read_embeddings(embedding_h5, ["label", "variant"])
    vnames = emb["variant_names"]
    nom = emb["variant"].astype(np.int64) == vnames.index(_reference_variant(vnames))
    if not nom.any():
        raise PredictionFormatError(f"{embedding_h5}: no nominal jets")
    names = [_pretty_class(n) for n in emb["class_names"]]
    return emb["z"][nom], [names[int(c)] for c in emb["label"].astype(np.int64)[nom]]


def _corner_palette(classes: Sequence[str]) -> dict[str, str]:
    """QCD blue, signal classes in the paper's reds / magentas, QCD listed first."""
    sig = ["#e31a1c", "#d6249f", "#ff7f00", "#7b3294"]
    order = sorted(dict.fromkeys(classes), key=lambda c: c != "QCD")
    return {c: "#1f78b4" if c == "QCD" else sig[i % len(sig)] for i, c in enumerate(order)}


def _annotate_correlations(
    grid: Any, df: pd.DataFrame, cols: list[str], palette: Mapping[str, str]
) -> None:
    """Pearson ρ of each class in each lower panel, computed on all its nominal jets."""
    for i, j in zip(*np.tril_indices(len(cols), -1), strict=True):
        ax = grid.axes[i, j]
        for k, (cls, color) in enumerate(palette.items()):
            sub = df.loc[df["class"] == cls, [cols[j], cols[i]]]
            r = sub.corr().iloc[0, 1] if len(sub) > 2 else math.nan
            ax.text(
                0.04,
                0.95 - 0.12 * k,
                f"ρ={r:+.2f}",
                transform=ax.transAxes,
                fontsize=7,
                va="top",
                color=color,
                bbox={"facecolor": "white", "alpha": 0.6, "lw": 0, "pad": 0.5},
            )


def corner_figure(embedding_h5: PathLike, out_stem: PathLike, max_points: int = 1500) -> None:
    """Paper Fig. 4: pairwise distributions of the D RS3L features, QCD vs signal class.

    A seaborn corner ``PairGrid``: diagonal, normalised step histograms per class (all
    nominal jets); lower triangle, scatter of at most ``max_points`` jets per class
    (rasterised to keep the PDF small) with each class's Pearson correlation computed on
    *all* its nominal jets. Nominal jets only, so the correlations describe the space,
    not the shower variations.
    """
    z, classes = _nominal_classes(embedding_h5)
    d = z.shape[1]
    cols = [f"$z_{{{i}}}$ (a.u.)" for i in range(d)]
    df = pd.DataFrame(z, columns=cols).assign(**{"class": classes})
    palette = _corner_palette(classes)
    counts = df["class"].value_counts()

    def thin_scatter(
        x: pd.Series, y: pd.Series, color: Any = None, label: Any = None, **kw: Any
    ) -> None:
        keep = np.random.default_rng(0).permutation(len(x))[:max_points]
        plt.scatter(
            x.iloc[keep], y.iloc[keep], s=2.0, alpha=0.4, color=color, lw=0, rasterized=True
        )

    apply_style()
    grid = sns.PairGrid(
        df,
        vars=cols,
        hue="class",
        hue_order=list(palette),
        palette=palette,
        corner=True,
        height=1.6,
        diag_sharey=False,
    )
    grid.map_diag(
        sns.histplot, stat="density", common_norm=False, element="step", fill=False, bins=30, lw=1.3
    )
    grid.map_lower(thin_scatter)
    lo, hi = np.nanpercentile(z, 0.5, axis=0), np.nanpercentile(z, 99.5, axis=0)
    hi = np.where(hi > lo, hi, lo + 1.0)
    for i in range(d):
        for j in range(i + 1):
            grid.axes[i, j].set_xlim(lo[j], hi[j])
            if i != j:
                grid.axes[i, j].set_ylim(lo[i], hi[i])
            # seaborn drops the top/right spines of a corner plot: drop their ticks too
            grid.axes[i, j].tick_params(labelsize=6, which="both", top=False, right=False)
    _annotate_correlations(grid, df, cols, palette)
    handles = [
        Line2D([], [], color=palette[c], lw=2, label=f"{c} ({int(counts[c])})") for c in palette
    ]
    grid.figure.legend(
        handles=handles,
        loc="upper right",
        bbox_to_anchor=(0.97, 0.9),
        frameon=False,
        fontsize=11,
        title=f"RS3L space: {d} features, nominal jets\nρ = Pearson correlation per class",
        title_fontsize=11,
    )
    simulation_label(grid.axes[0, 0], fontsize=9)
    save_figure(grid.figure, out_stem)


# --------------------------------------------------------------------------- Fig. 3


def _variation_panels(variant_names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Ratio panels: one per variation, FSR up/down together as a band (paper Fig. 3)."""
    others = [v for v in variant_names if v != NOMINAL]
    panels: list[tuple[str, list[str]]] = []
    for v in others:
        if v in ("fsr_up", "fsr_down"):
            fsr = [x for x in ("fsr_up", "fsr_down") if x in others]
            if ("FSR", fsr) not in panels:
                panels.append(("FSR", fsr))
        else:
            panels.append((VARIANT_LABELS.get(v, v).split(" (")[0], [v]))
    return panels


def score_ratio_figure(pred_files: Sequence[PathLike], out_stem: PathLike) -> None:
    """Paper Fig. 3 style: tagger-score distribution per jet class, with variant/nominal.

    Top: normalised score distribution of nominal jets per category (signal; QCD quark /
    gluon from ``parton_pid``). Below, one panel per shower variation (FSR up/down drawn
    as a band) with the ratio of the varied to the nominal distribution per category; a
    ratio near 1 means the tagger is insensitive to that part of the simulation. Repeats
    (several ``pred_files``) are pooled, each repeat weighing equally.
    """
    if not pred_files:
        raise ValueError("no prediction files given")
    preds = [load_predictions(p, ["score", "label", "parton_pid"]) for p in pred_files]
    vnames = preds[0].variant_names
    for p in preds[1:]:
        if p.variant_names != vnames:
            raise PredictionFormatError(f"{p.path}: variant_names differ from {preds[0].path}")
    score = np.concatenate([tagger_score(p, "score") for p in preds])
    label = np.concatenate([p["label"] for p in preds]).astype(np.int64)
    pid = np.concatenate([p["parton_pid"] for p in preds]).astype(np.int64)
    var = np.concatenate([p["variant"] for p in preds]).astype(np.int64)
    sig_name = np.where(np.abs(pid) == 25, "Higgs", np.where(np.abs(pid) == 24, "W", "Signal"))
    cats = _category(label == 0, pid, sig_name)
    edges = np.linspace(min(0.0, score.min()), max(1.0, score.max()), 26)
    rlabel = f"{len(preds)} repeat{'s' if len(preds) != 1 else ''} pooled"
    variant_ratio_figure(score, cats, var, vnames, edges, "Tagger score (signal probability)",
                         "Tagger output and shower variations", rlabel, out_stem)  # fmt: skip


def variant_ratio_figure(
    x: np.ndarray, cats: np.ndarray, var: np.ndarray, vnames: Sequence[str], edges: np.ndarray,
    xlabel: str, title: str, rlabel: str, out_stem: PathLike,
) -> None:  # fmt: skip
    """RS3L Fig. 3 layout for any per-jet quantity ``x``: its normalised distribution per
    category on nominal jets (top), and below one panel per shower variation with the ratio
    varied / nominal per category (FSR up and down as a band). A ratio near 1 means the
    quantity does not care which shower made the jet."""
    order = [
        c
        for c in ("Higgs", "W", "Signal", "QCD quark", "QCD gluon", "QCD (other)")
        if (cats == c).any()
    ]
    colors = CATEGORY_COLORS

    def hist(mask: np.ndarray) -> np.ndarray:
        h, _ = np.histogram(x[mask], bins=edges, density=mask.any())
        return h if mask.any() else np.full(len(edges) - 1, np.nan)

    nom = var == list(vnames).index(NOMINAL)
    panels = _variation_panels(vnames)
    apply_style()
    fig, axes = plt.subplots(
        1 + len(panels),
        1,
        figsize=(6.4, 4.2 + 1.3 * len(panels)),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [3.0] + [1.0] * len(panels)},
    )
    top = axes[0, 0]
    nominal_h = {}
    for c in order:
        nominal_h[c] = hist(nom & (cats == c))
        hep.histplot(nominal_h[c], edges, ax=top, histtype="step", color=colors[c], lw=1.6,
                     label=f"{c} ({int((nom & (cats == c)).sum())})")  # fmt: skip
    top.set_yscale("log")
    top.set_ylabel("Normalised jets / unit")
    top.legend(frameon=False, fontsize=8, title="nominal jets", title_fontsize=8)
    simulation_label(top, rlabel=rlabel)
    fig.suptitle(title)
    for (name, members), ax in zip(panels, axes[1:, 0], strict=True):
        _ratio_panel(ax, name, members, order, nominal_h, hist, var, cats, vnames, edges)
    axes[-1, 0].set_xlabel(xlabel)
    axes[-1, 0].set_xlim(edges[0], edges[-1])
    fig.align_ylabels(axes[:, 0])
    save_figure(fig, out_stem)


def _ratio_panel(ax: Any, name: str, members: list[str], order: list[str],
                 nominal_h: Mapping[str, np.ndarray], hist: Any, var: np.ndarray,
                 cats: np.ndarray, vnames: Sequence[str], edges: np.ndarray) -> None:  # fmt: skip
    colors = CATEGORY_COLORS
    for c in order:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = [
                np.where(nominal_h[c] > 0,
                         hist((var == list(vnames).index(v)) & (cats == c)) / nominal_h[c],
                         np.nan)  # fmt: skip
                for v in members
            ]
        if len(ratios) == 2:
            ax.stairs(np.fmax(*ratios), edges, baseline=np.fmin(*ratios), fill=True,
                      color=colors[c], alpha=0.35)  # fmt: skip
        for r, ls in zip(ratios, ("-", "--"), strict=False):
            hep.histplot(r, edges, ax=ax, histtype="step", color=colors[c], lw=1.0, ls=ls)
    ax.axhline(1.0, color="0.3", lw=0.8)
    if len(members) == 2:
        _corner_note(ax, "band: up (solid) to down (dashed)", 0.99, 0.05, "bottom", 7)
    ax.set_ylim(0.0, 2.0)
    ax.set_ylabel(f"{name} / nom.", fontsize=9)
    ax.grid(True, alpha=0.3)
