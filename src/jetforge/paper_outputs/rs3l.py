"""RS3L's tables and figures (Harris et al., arXiv:2403.07066).

Tables: rejection (II, IV) and the Wasserstein distance of the tagger output between shower
variants (III, V), from one fine-tuning task's prediction files with the N_2 baseline row
first. Figures: pre-training history (Fig. 2), the most discriminating RS3L feature and N_2
per shower variant (Fig. 3a, b), corner plot (4), t-SNE (5), ROC (6) and ROC per QCD flavour
for floating and fixed fine-tunings (7). Kinds that are not RS3L-specific (history, corner,
t-SNE, ROC) are registered under generic names for every paper to use."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jetforge import experiment as X
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.workflow import targets as T


def task_predictions(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    """Every prediction file of the spec's task, as the job's one input list."""
    files = T.predictions_for(config, experiment, spec["task"])
    return {"predictions": [p for fs in files.values() for p in fs]}


def _task_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    tasks = (config["experiments"][experiment].get("finetune") or {}).get("tasks", {})
    if spec.get("task") not in tasks:
        return [f"task: {spec.get('task')!r} is not a fine-tuning task; tasks: {sorted(tasks)}"]
    return []


def _rejection_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = _task_errors(config, experiment, spec)
    if not spec.get("efficiencies"):
        errs.append("efficiencies: a rejection table needs the signal efficiencies it quotes, "
                    "e.g. [0.3, 0.5, 0.7]")  # fmt: skip
    return errs


def _setups(job: OutputJob) -> dict[str, list[str]]:
    """Setup id -> prediction files, N_2 first (it is stored in every prediction file)."""
    setups = {X.setup_id(r): [] for r in X.finetune_grid(job.exp, job.spec["task"])}
    for run in X.finetune_grid(job.exp, job.spec["task"]):
        setups[X.setup_id(run)].append(T.prediction_path(job.experiment, run))
    missing = [p for files in setups.values() for p in files if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"{job.name}: prediction files missing: {missing}")
    return {"n2": next(iter(setups.values())), **setups}


def _title(job: OutputJob) -> str:
    return f"{job.paper} {job.name}: {job.spec['kind']} on {job.spec['task']}"


def build_rejection(job: OutputJob) -> None:
    from jetforge.reporting.tables import rejection_table

    rejection_table(_setups(job), list(job.spec["efficiencies"]), job.reference(),
                    job.out["csv"], job.out["md"], _title(job))  # fmt: skip


def build_wasserstein(job: OutputJob) -> None:
    from jetforge.reporting.tables import wasserstein_table

    ds = job.config["datasets"][job.exp["dataset"]]
    variants = list(ds["shower"]["variants"])[1:]
    wasserstein_table(_setups(job), variants, job.reference(), job.out["csv"], job.out["md"],
                      _title(job))  # fmt: skip


TASK_KEYS = frozenset({"task"})
REJECTION = OutputKind(task_predictions, build_rejection, _rejection_errors,
                       TASK_KEYS | {"efficiencies"})  # fmt: skip
WASSERSTEIN = OutputKind(task_predictions, build_wasserstein, _task_errors, TASK_KEYS)


# --------------------------------------------------------------------------- figures


def _augset(job_or_cfg: dict, spec: dict) -> str:
    return str(spec.get("augset") or next(iter(X.augsets(job_or_cfg))))


def embedding_input(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    """The probe-test embedding of pre-training r0 of the spec's augset (default: first)."""
    aug = _augset(config["experiments"][experiment], spec)
    return {"embedding": [T.embedding_path(config, experiment, aug)]}


def history_input(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    aug = _augset(config["experiments"][experiment], spec)
    return {"history": T.pretrain_histories(config, experiment, aug)}


def _augset_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    sets = X.augsets(config["experiments"][experiment])
    if "augset" in spec and spec["augset"] not in sets:
        return [f"augset: {spec['augset']!r} is not a pre-training augset; have {sorted(sets)}"]
    return []


def _feature_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = _augset_errors(config, experiment, spec)
    if spec.get("feature") not in ("space", "n2"):
        errs.append(f"feature: must be 'space' (the most discriminating embedding dimension) or "
                    f"'n2', got {spec.get('feature')!r}")  # fmt: skip
    return errs


def most_discriminating(z: np.ndarray, is_signal: np.ndarray) -> tuple[int, float]:
    """The embedding dimension that best separates signal from QCD (largest |AUC - 0.5|),
    as RS3L Fig. 3 shows "the most discriminating dimension"; returns it and its AUC."""
    from jetforge.evaluation.metrics import auc

    aucs = [auc(z[:, d], is_signal.astype(np.int64)) for d in range(z.shape[1])]
    best = int(np.argmax(np.abs(np.asarray(aucs) - 0.5)))
    return best, float(aucs[best])


def build_variant_feature(job: OutputJob) -> None:
    """RS3L Fig. 3: (a) the most discriminating of the eight RS3L features, (b) N_2; per
    jet category on nominal jets, with varied / nominal ratios per shower variation."""
    from jetforge.reporting import figures as F

    emb = F._read_embeddings(job.inputs["embedding"][0],
                             ["label", "process", "parton_pid", "variant", "n2"])  # fmt: skip
    cats = F._embedding_categories(emb)
    nominal = emb["variant"] == emb["variant_names"].index("nominal")
    qcd = np.array([str(c).startswith("QCD") for c in cats])
    if job.spec["feature"] == "n2":
        x, xlabel = emb["n2"].astype(np.float64), r"$N_2$"
        note = "N_2 of the jets (no training)"
    else:
        dim, a = most_discriminating(emb["z"][nominal], ~qcd[nominal])
        x, xlabel = emb["z"][:, dim], f"RS3L feature {dim} (of {emb['z'].shape[1]})"
        note = f"signal vs QCD AUC {a:.3f} on nominal jets"
    finite = np.isfinite(x)
    lo, hi = np.percentile(x[finite & nominal], [0.5, 99.5])
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
    keep = finite & (x >= edges[0]) & (x <= edges[-1])
    F.variant_ratio_figure(x[keep], cats[keep], emb["variant"][keep], emb["variant_names"],
                           edges, xlabel, f"{job.paper} {job.name}: {note}",
                           "alt_shower = Vincia (stand-in for Herwig 7)", job.stem)  # fmt: skip


def build_history(job: OutputJob) -> None:
    from jetforge.workflow.experiments import history_figure

    history_figure(job.experiment, job.exp, job.inputs["history"], job.out["png"])


def build_corner(job: OutputJob) -> None:
    from jetforge.reporting.figures import corner_figure

    corner_figure(job.inputs["embedding"][0], job.stem)


def build_tsne(job: OutputJob) -> None:
    from jetforge.reporting.figures import tsne_figure

    n = int(job.exp.get("tsne_jets", 600))
    tsne_figure(job.inputs["embedding"][0], job.stem, n_jets=n, seed=job.seed)


def build_roc(job: OutputJob) -> None:
    from jetforge.reporting.figures import roc_figure

    roc_figure(_setups(job), job.stem, title=f"{job.experiment}: {job.spec['task']}")


#: QCD jets by the flavour of their matched parton (RS3L Fig. 7 splits by QCD subprocess)
FLAVOURS = {"light quark (u, d, s)": (1, 2, 3), "c quark": (4,), "b quark": (5,), "gluon": (21,)}


def _last_setup_of(job: OutputJob, mode: str) -> list[str]:
    setups = [s for s in _setups(job) if s.startswith(f"{mode}-")]
    if not setups:
        raise ValueError(f"{job.name}: task {job.spec['task']!r} has no {mode!r} fine-tunings")
    return _setups(job)[setups[-1]]


def build_roc_by_flavour(job: OutputJob) -> None:
    """RS3L Fig. 7: ROC of the fine-tuned tagger against each QCD flavour separately, one
    panel per mode (top floating, bottom fixed), largest labelled size, mean ± std over
    repeats on nominal jets. Our QCD is Z+jet with the parton's flavour from the hard
    process; the paper's subprocesses also split gluon splittings (g→qq̄, g→bb̄), which our
    truth labels do not record."""
    import matplotlib.pyplot as plt

    from jetforge.reporting import figures as F
    from jetforge.reporting.style import apply_style, save_figure
    from jetforge.reporting.style import label as simulation_label
    from jetforge.reporting.tables import load_predictions

    modes = list(job.spec.get("modes", ["floating", "fixed"]))
    grid = np.linspace(0.01, 1.0, 199)
    apply_style()
    fig, axes = plt.subplots(len(modes), 1, figsize=(6.4, 4.4 * len(modes)), squeeze=False)
    for mode, ax in zip(modes, axes[:, 0], strict=True):
        files = _last_setup_of(job, mode)
        for (name, pids), color in zip(FLAVOURS.items(), plt.cm.tab10.colors, strict=False):
            curves = []
            for path in files:
                p = load_predictions(path, ["score", "label", "parton_pid"])
                nom, lab = p.nominal(), p["label"].astype(np.int64)
                bkg = (lab == 0) & np.isin(np.abs(p["parton_pid"]), pids)
                keep = nom & ((lab == 1) | bkg)
                if bkg[nom].sum() >= 5:
                    curves.append(F._rejection_curve(p["score"][keep], lab[keep], grid))
            if curves:
                arr = np.vstack(curves)
                mean = arr.mean(axis=0)
                ax.plot(grid, mean, color=color, lw=1.6, label=f"H vs {name} [{len(curves)}×]")
                if len(curves) > 1:
                    std = arr.std(axis=0, ddof=1)
                    ax.fill_between(grid, np.clip(mean - std, 1, None), mean + std, color=color,
                                    alpha=0.25, lw=0)  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlim(0, 1)
        ax.set_xlabel(r"Signal efficiency $\varepsilon_\mathrm{S}$")
        ax.set_ylabel(r"Background rejection $1/\varepsilon_\mathrm{B}$")
        ax.legend(loc="upper right", fontsize=8, frameon=False)
        ax.grid(True, alpha=0.3)
        simulation_label(ax, rlabel=f"{mode} backbone, {Path(files[0]).parts[-3]}")
    save_figure(fig, job.stem)


EMBEDDING_KEYS = frozenset({"augset"})
VARIANT_FEATURE = OutputKind(embedding_input, build_variant_feature, _feature_errors,
                             EMBEDDING_KEYS | {"feature"}, heavy=True)  # fmt: skip
HISTORY = OutputKind(history_input, build_history, _augset_errors, EMBEDDING_KEYS)
CORNER = OutputKind(embedding_input, build_corner, _augset_errors, EMBEDDING_KEYS)
TSNE = OutputKind(embedding_input, build_tsne, _augset_errors, EMBEDDING_KEYS, heavy=True)
ROC = OutputKind(task_predictions, build_roc, _task_errors, TASK_KEYS)
ROC_BY_FLAVOUR = OutputKind(task_predictions, build_roc_by_flavour, _task_errors,
                            TASK_KEYS | {"modes"})  # fmt: skip
