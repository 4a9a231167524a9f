"""JP-JEPA's figures (Letellier, Vacheret, Jurie, arXiv:2606.14813): Fig. 2 (t-SNE of the
frozen embedding by label, jet energy and p_T; effective rank during pre-training;
accuracy vs labelled jets; per-class rejection relative to ParT from scratch) and Fig. 3
(robustness to removed inputs; entropy of the predictions).

Figures draw from files other rules make (embeddings, histories, prediction files, the
robustness table), so none of them trains or loads a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jetforge import experiment as X
from jetforge.lazy import lazy_module
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.paper_outputs import jpjepa as J
from jetforge.workflow import targets as T

if TYPE_CHECKING:
    import h5py
else:  # imported on first use: the config check (driver env) imports this module
    h5py = lazy_module("h5py")

MODE_STYLE = {
    "floating": ("tab:blue", "--"),
    "supervised": ("tab:orange", "-"),
    "fixed": ("tab:green", ":"),
    "lora": ("tab:purple", "-."),
}
TSNE_COLORS = ("label", "energy", "pt")
PANELS = ("single", "group", "particles")


def _figure(figsize: tuple[float, float] = (6.4, 4.8)) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style

    apply_style()
    return plt.subplots(figsize=figsize)


def _save(fig: Any, ax: Any, job: OutputJob, rlabel: str) -> None:
    from jetforge.reporting.style import label, save_figure

    label(ax, rlabel=rlabel)
    save_figure(fig, job.stem)


def _augset(job_or_exp: Any, spec: Mapping[str, Any]) -> str:
    exp = job_or_exp.exp if isinstance(job_or_exp, OutputJob) else job_or_exp
    return str(spec.get("augset") or next(iter(X.augsets(exp))))


# ------------------------------------------------------------------ Fig. 2(a)-(c)


def _tsne_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    aug = _augset(config["experiments"][experiment], spec)
    return {"embedding": [T.embedding_path(config, experiment, aug)]}


def _tsne_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    if spec.get("color") not in TSNE_COLORS:
        return [f"color: {spec.get('color')!r} must be one of {list(TSNE_COLORS)}"]
    return []


def jet_energy(pt: np.ndarray, eta: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """E = sqrt(m² + (p_T cosh η)²) of each jet (GeV)."""
    return np.sqrt(mass.astype(np.float64) ** 2 + (pt * np.cosh(eta)) ** 2)


def build_tsne(job: OutputJob) -> None:
    """One t-SNE (fixed seed, so panels a-c show the same map) of up to ``n_jets`` jets
    drawn evenly from the classes, coloured by ``color``."""
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    path = job.inputs["embedding"][0]
    with h5py.File(path, "r") as f:
        z = np.asarray(f["z"][()], np.float64)
        jets = {k: np.asarray(f[f"jets/{k}"][()]) for k in ("label", "pt", "eta", "mass")}
        names = [x.decode() if isinstance(x, bytes) else str(x) for x in f.attrs["class_names"]]
    rng = np.random.default_rng(job.seed)
    n = int(job.spec.get("n_jets", 1000))
    per = max(1, n // max(1, len(np.unique(jets["label"]))))
    sel = np.sort(
        np.concatenate(
            [
                rng.permutation(np.flatnonzero(jets["label"] == c))[:per]
                for c in np.unique(jets["label"])
            ]
        )
    )
    xy = TSNE(
        2, random_state=job.seed, init="pca", perplexity=min(30.0, (sel.size - 1) / 3)
    ).fit_transform(z[sel])
    fig, ax = _figure((6.4, 5.6))
    color = job.spec["color"]
    if color == "label":
        for c in np.unique(jets["label"][sel]):
            m = jets["label"][sel] == c
            ax.scatter(
                xy[m, 0],
                xy[m, 1],
                s=5,
                alpha=0.7,
                label=names[int(c)],
                rasterized=True,
                color=plt.get_cmap("tab10")(int(c) % 10),
            )
        ax.legend(frameon=False, fontsize=7, markerscale=2, ncol=2)
    else:
        v = jets["pt"] if color == "pt" else jet_energy(jets["pt"], jets["eta"], jets["mass"])
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=v[sel], s=5, cmap="viridis", rasterized=True)
        fig.colorbar(sc, ax=ax, label=f"jet {'$p_T$' if color == 'pt' else 'energy'} [GeV]")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])
    _save(fig, ax, job, f"frozen [CLS], {sel.size} jets")


# ------------------------------------------------------------------ Fig. 2(d)


def _rank_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    aug = _augset(config["experiments"][experiment], spec)
    return {"histories": T.pretrain_histories(config, experiment, aug)}


def build_rank(job: OutputJob) -> None:
    """``val_effective_rank`` of the validation [CLS] embeddings vs optimiser step, one
    line per pre-training seed (the paper also draws the mean particle token, which the
    history does not record)."""
    fig, ax = _figure()
    for r, path in enumerate(job.inputs["histories"]):
        h = pd.read_csv(path)
        if "val_effective_rank" not in h:
            raise ValueError(f"{path}: no val_effective_rank column (data contract)")
        ax.plot(h["step"], h["val_effective_rank"], marker="o", label=f"[cls], seed {r}")
    ax.set_xlabel("pre-training step")
    ax.set_ylabel("effective rank")
    ax.legend(frameon=False)
    # history.csv's rank is the collapse check's, of the centred matrix (App. C.2 does not
    # centre; the probe tables quote the paper's): say so on the figure
    _save(fig, ax, job, "validation [CLS], centred")


# ------------------------------------------------------------------ Fig. 2(e)


def subset_runs(
    config: Mapping[str, Any], spec: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """(experiment, floating grid run) of the ``subset_experiments`` of a size scan: models
    pre-trained on a subset (``pretrain.subset``), drawn as their own points -- Fig. 2(e)'s
    "pre-trained and fine-tuned on 5 %" (JP-JEPA §2.2), e.g. Table 3's "Ours" row."""
    task = str(spec["task"])
    return [
        (str(e), r)
        for e in spec.get("subset_experiments") or []
        for r in X.finetune_grid(config["experiments"][e], task)
        if r["mode"] == "floating"
    ]


def _size_scan_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    out = J.task_inputs(config, experiment, spec)
    out["predictions"] += [T.prediction_path(e, r) for e, r in subset_runs(config, spec)]
    return out


def _size_scan_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = _task_figure_errors(config, experiment, spec)
    for e in spec.get("subset_experiments") or []:
        exp = config["experiments"].get(e) or {}
        ft = exp.get("finetune") or {}
        if spec.get("task") not in (ft.get("tasks") or {}) or "floating" not in (
            ft.get("modes") or []
        ):
            errs.append(f"subset_experiments: {e!r} must fine-tune task {spec.get('task')!r} "
                        "in mode floating")  # fmt: skip
        elif (exp.get("pretrain") or {}).get("subset") is None:
            errs.append(f"subset_experiments: {e!r} pre-trains on all jets; set its "
                        "pretrain.subset (e.g. 0.05) or list it under experiments")  # fmt: skip
    return errs


def _size_scan_experiments(config: dict, experiment: str, spec: dict) -> list[str]:
    return [str(e) for e in [*spec.get("experiments", []), *spec.get("subset_experiments", [])]]


def _scan_rows(job: OutputJob, task: str) -> pd.DataFrame:
    """Accuracy of every run: the owner's grid by mode, then each subset experiment as its
    own series (labelled by its pre-training subset)."""
    from jetforge.evaluation.metrics import classification_metrics

    runs = [(e, r, r["mode"]) for e, r in J.runs_of(job.config, job.experiment, job.spec, task)]
    for e, r in subset_runs(job.config, job.spec):
        sub = float(job.config["experiments"][e]["pretrain"]["subset"])
        runs.append((e, r, f"JP-JEPA pre-trained on {100 * sub:g} % ({e})"))
    rows = []
    for e, run, series in runs:
        p = J.read_predictions(T.prediction_path(e, run))
        acc = classification_metrics(p["score"], p["label"], p.get("classes"))["accuracy"]
        rows.append({"mode": series, "n": run["n_train"], "acc": acc})
    return pd.DataFrame(rows)


def build_size_scan(job: OutputJob) -> None:
    """Accuracy vs labelled jets, fine-tuned (dashed) vs from scratch (solid); models
    pre-trained on a subset (``subset_experiments``) as separate points (stars)."""
    task = job.spec["task"]
    rows = _scan_rows(job, task)
    df = rows.groupby(["mode", "n"], sort=True)["acc"].agg(["mean", "std"])
    fig, ax = _figure()
    for mode, g in df.groupby(level=0):
        c, ls = MODE_STYLE.get(str(mode), ("tab:red", ":"))
        n = g.index.get_level_values(1)
        ax.errorbar(
            n,
            g["mean"],
            yerr=g["std"].fillna(0),
            color=c,
            ls=ls,
            marker="o" if str(mode) in MODE_STYLE else "*",
            markersize=6 if str(mode) in MODE_STYLE else 11,
            capsize=3,
            label=J.MODE_LABELS.get(str(mode), str(mode)),
        )
    ax.set_xscale("log")
    ax.set_xlabel("labelled jets")
    ax.set_ylabel(f"accuracy ({task})")
    ax.legend(frameon=False)
    _save(fig, ax, job, f"{task}, mean ± std over repeats")


# ------------------------------------------------------------------ Fig. 2(f), (g)


def class_rejection_runs(
    config: Mapping[str, Any], experiment: str, spec: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """(experiment, grid run) of the two sides: ParT from scratch from the owner's grid,
    the fine-tuned model from ``finetuned`` (Fig. 2(g): JP-JEPA Small, its own experiment)
    or else from the owner's grid too (Fig. 2(f): JP-JEPA Mini)."""
    task = str(spec["task"])
    runs = J.runs_of(config, experiment, spec, task)
    src = spec.get("finetuned")
    if not src:
        return runs
    tuned = [(str(src), r) for r in X.finetune_grid(config["experiments"][src], task)
             if r["mode"] == "floating"]  # fmt: skip
    return [er for er in runs if er[1]["mode"] == "supervised"] + tuned


def _class_rejection_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    runs = class_rejection_runs(config, experiment, spec)
    return {"predictions": [T.prediction_path(e, r) for e, r in runs]}


def _class_rejection_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = J._jetclass_errors(config, experiment, spec)
    src = spec.get("finetuned")
    if src is None or errs:
        return errs
    ft = (config["experiments"].get(src) or {}).get("finetune") or {}
    if spec["task"] not in (ft.get("tasks") or {}) or "floating" not in (ft.get("modes") or []):
        errs.append(f"finetuned: experiment {src!r} must fine-tune task {spec['task']!r} in "
                    "mode floating (the fine-tuned side of the ratio)")  # fmt: skip
    return errs


def _class_rejection_experiments(config: dict, experiment: str, spec: dict) -> list[str]:
    return [str(e) for e in [*spec.get("experiments", []), spec.get("finetuned")] if e]


def build_class_rejection(job: OutputJob) -> None:
    """Per-class rejection of the fine-tuned model relative to ParT from scratch (ratio of
    the means at the largest labelled size both ran), the paper's ratio of ``paper_row``
    (default JP-JEPA (Mini), Fig. 2(f); JP-JEPA (Small) for Fig. 2(g)) to ParT beside."""
    task = job.spec["task"]
    classes = list(J.task_spec(job.config, job.experiment, task, job.spec)["classes"])
    bkg = job.spec.get("background", classes[0])
    effs = J._class_effs(job.spec, classes)
    rows = []
    for e, run in class_rejection_runs(job.config, job.experiment, job.spec):
        p = J.read_predictions(T.prediction_path(e, run))
        rej = J.class_rejections(p["score"], p["label"], p["classes"], bkg, effs)
        rows.append({"mode": run["mode"], "n": run["n_train"], **rej})
    long = pd.DataFrame(rows)
    both = set(long[long["mode"] == "floating"]["n"]) & set(long[long["mode"] == "supervised"]["n"])
    if not both:
        have = sorted(set(zip(long["mode"], long["n"], strict=True)))
        raise ValueError(f"{task}: needs floating and supervised runs at one labelled size, "
                         f"have {have}")  # fmt: skip
    n = max(both)
    mean = long[long["n"] == n].groupby("mode")[[f"rej_{c}" for c in effs]].mean()
    ratio = mean.loc["floating"] / mean.loc["supervised"]
    row = str(job.spec.get("paper_row", "JP-JEPA (Mini)"))
    ref = (job.reference() or {}).get("rows") or {}
    paper = [
        (ref.get(row, {}).get(f"rej_{c}") or np.nan)
        / (ref.get("ParT", {}).get(f"rej_{c}") or np.nan)
        for c in effs
    ]
    who = job.spec.get("finetuned") or job.experiment
    fig, ax = _figure((7.2, 4.8))
    x = np.arange(len(effs))
    ax.bar(x - 0.2, ratio.to_numpy(), 0.4, label=f"ours ({who} fine-tuned / ParT scratch)")
    ax.bar(x + 0.2, paper, 0.4, label=f"paper ({row} / ParT, Table 1)", alpha=0.6)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, [f"{c}\nRej{effs[c] * 100:g}" for c in effs], fontsize=7, rotation=45)
    ax.set_ylabel("rejection ratio")
    ax.legend(frameon=False, fontsize=8)
    _save(fig, ax, job, f"{task}, n = {n}")


# ------------------------------------------------------------------ Fig. 3(d)


def build_entropy(job: OutputJob) -> None:
    """Density of the predictions' entropy per mode (repeats pooled)."""
    from jetforge.evaluation.calibration import prediction_entropy

    task = job.spec["task"]
    fig, ax = _figure()
    by_mode: dict[str, list[np.ndarray]] = {}
    for e, run in J.runs_of(job.config, job.experiment, job.spec, task):
        p = J.read_predictions(T.prediction_path(e, run))
        by_mode.setdefault(run["mode"], []).append(prediction_entropy(p["score"]))
    top = max(float(np.concatenate(v).max()) for v in by_mode.values())
    bins = np.linspace(0.0, max(top, 1e-3), 31)
    for mode, parts in by_mode.items():
        c, ls = MODE_STYLE.get(mode, ("k", "-"))
        ax.hist(
            np.concatenate(parts),
            bins=bins,
            density=True,
            histtype="step",
            color=c,
            ls=ls,
            lw=1.5,
            label=J.MODE_LABELS.get(mode, mode),
        )
    ax.set_xlabel("entropy of the predicted probabilities [nats]")
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    _save(fig, ax, job, f"{task} test jets")


# ------------------------------------------------------------------ Fig. 3(a)-(c)


def _robust_fig_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    from jetforge.papers import paper_of

    paper = paper_of(experiment, config["experiments"][experiment]) or experiment
    return {"table": [J.table_csv(paper, str(spec["table"]))]}


def _robust_fig_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = []
    tables = config["experiments"][experiment].get("tables") or {}
    if tables.get(spec.get("table"), {}).get("kind") != "robustness":
        errs.append(
            f"table: {spec.get('table')!r} is not a robustness table of "
            f"{experiment}; its tables: {sorted(tables)}"
        )
    if spec.get("panel") not in PANELS:
        errs.append(f"panel: {spec.get('panel')!r} must be one of {list(PANELS)}")
    return errs


def build_robust_fig(job: OutputJob) -> None:
    """Accuracy with what was removed on the x axis (bars for variables and groups, a line
    over the removed fraction for particles), nominal accuracy as a horizontal line."""
    df = pd.read_csv(job.inputs["table"][0])
    panel = job.spec["panel"]
    fig, ax = _figure((8.0, 4.8) if panel == "single" else (6.4, 4.8))
    setups = list(dict.fromkeys(df["setup"]))
    for k, sid in enumerate(setups):
        mode = sid.partition("-")[0]
        c, ls = MODE_STYLE.get(mode, ("k", "-"))
        d = df[df["setup"] == sid]
        nom = d[d["dropped_kind"] == "none"]["acc"].iloc[0]
        sub = d[d["dropped_kind"] == panel]
        if panel == "particles":
            fr = np.concatenate([[0.0], sub["dropped"].astype(float)])
            ax.errorbar(
                fr,
                np.concatenate([[nom], sub["acc"]]),
                yerr=np.concatenate([[0.0], sub["acc_std"]]),
                color=c,
                ls=ls,
                marker="o",
                capsize=3,
                label=J.setup_label(sid),
            )
        else:
            x = np.arange(len(sub)) + (k - (len(setups) - 1) / 2) * 0.8 / len(setups)
            ax.bar(
                x,
                sub["acc"],
                0.8 / len(setups),
                yerr=sub["acc_std"],
                color=c,
                alpha=0.7,
                label=J.setup_label(sid),
            )
            ax.axhline(nom, color=c, ls=ls, lw=1)
            ax.set_xticks(np.arange(len(sub)), list(sub["dropped"]), rotation=60, fontsize=7)
    ax.set_xlabel(
        "fraction of particles removed"
        if panel == "particles"
        else f"removed {'variable' if panel == 'single' else 'group'}"
    )
    ax.set_ylabel("accuracy")
    ax.legend(frameon=False, fontsize=8)
    _save(fig, ax, job, "test time; lines: nothing removed")


def _task_figure_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    return J.task_errors(config, experiment, spec.get("task"), None, spec)


TSNE = OutputKind(
    _tsne_inputs, build_tsne, _tsne_errors, frozenset({"color", "n_jets", "augset"}), heavy=True
)
RANK = OutputKind(_rank_inputs, build_rank, keys=frozenset({"augset"}))
SIZE_SCAN = OutputKind(
    _size_scan_inputs,
    build_size_scan,
    _size_scan_errors,
    J.TASK_KEYS | {"subset_experiments"},
    experiments=_size_scan_experiments,
)
CLASS_REJECTION = OutputKind(
    _class_rejection_inputs,
    build_class_rejection,
    _class_rejection_errors,
    J.TASK_KEYS | {"background", "class_efficiencies", "paper_row", "finetuned"},
    experiments=_class_rejection_experiments,
)
ENTROPY = OutputKind(J.task_inputs, build_entropy, _task_figure_errors, J.TASK_KEYS)
ROBUSTNESS_FIGURE = OutputKind(
    _robust_fig_inputs, build_robust_fig, _robust_fig_errors, frozenset({"table", "panel"})
)
