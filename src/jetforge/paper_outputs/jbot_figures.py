"""jBOT's figures (Tsoi & Rankin, arXiv:2601.11719) from our runs:

* Fig. 3 (``jbot_augmented_jets``): one jet per class and one augmented view of it
  (rotation, η/φ smearing, collinear splitting: the experiment's own
  :func:`~jetforge.methods.jbot.augment_from_config`) with the p_T-fraction mask drawn in
  red; circles at the particle (η, φ), radius ∝ p_T; masked fraction ``mask_fraction``
  (the caption's "~30 % of the jet p_T").
* Fig. 4 (``jbot_learning_curves``): the six learning curves of ``history.csv``: total
  loss, L_[CLS], L_Part, L_KoLeo, entropy (teacher, student) and centring norm ([CLS],
  particle), training and validation, every pre-training repeat.
* Fig. 5 (``jbot_attention``): attention of the [CLS] query to the particle tokens in the
  last transformer block, per head, one jet per class (edge alpha ∝ weight). The ViT uses
  fused attention, so the weights are recomputed from the last block's input (a forward
  pre-hook) with its own q/k projections: the same numbers, not an approximation.
* Fig. 6 (``jbot_tsne``): 2-d t-SNE of the [CLS] of test jets, per experiment (pre-training
  set) a row: the pre-training's ``epochs`` (snapshots written by ``pretrain.snapshot_epochs``;
  without ``epochs``, a random init and the final model), then, for the experiments that
  ``finetuned`` maps to a task, the backbone of that task's fine-tuned classifier (mode
  floating, largest labelled size, first repeat: its ``model.pt``), as the paper's last
  column "after fine-tuning"; rows without one (the paper's q/g pre-training) leave it empty.
* Fig. 7 (``jbot_roc``): ROC curves of the fine-tuned taggers, one panel per
  ``experiment/task``: multi-class one-vs-rest per class (largest labelled size, fine-tuned
  solid, from scratch dashed), binary as background rejection vs signal efficiency for every
  labelled size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jetforge import experiment as X
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.paper_outputs.jbot import symbol
from jetforge.workflow import targets as T

SAMPLE = "our JetNet stand-in"


def _others(config: dict, experiment: str, spec: dict) -> list[str]:
    return [str(e) for e in spec.get("experiments", [])]


def _jets_by_class(h5: str, n_per_class: int = 1) -> list[tuple[str, np.ndarray]]:
    """(process, rows) of the first nominal jets of each process with >= 10 particles."""
    import h5py

    from jetforge.training.data import DatasetInfo, read_column

    info = DatasetInfo.read(h5)
    with h5py.File(h5, "r") as f:
        proc, var = read_column(f, "process"), read_column(f, "variant")
        n = f["mask"][:].sum(1)
    nominal = info.variant_index(info.nominal)
    out = []
    for i, p in enumerate(info.process_names):
        rows = np.flatnonzero((proc == i) & (var == nominal) & (n >= 10))[:n_per_class]
        if rows.size:
            out.append((str(p), rows))
    return out


def _read_jets(h5: str, rows: np.ndarray) -> tuple[Any, Any]:
    import h5py
    import torch

    with h5py.File(h5, "r") as f:
        x = torch.as_tensor(np.stack([f["particles"][r] for r in rows]), dtype=torch.float32)
        m = torch.as_tensor(np.stack([f["mask"][r] for r in rows]), dtype=torch.bool)
    return x, m


def _draw_jet(ax: Any, eta: np.ndarray, phi: np.ndarray, pt: np.ndarray, colours: Any = "k",
              alpha: Any = 1.0) -> None:  # fmt: skip
    """Particles as open circles, radius ∝ p_T (scatter size is an area: ∝ p_T²)."""
    from matplotlib.colors import to_rgba_array

    w = pt / max(float(pt.max()), 1e-12)
    edge = to_rgba_array(colours)
    edge = np.repeat(edge, len(eta), axis=0) if len(edge) == 1 else edge
    edge[:, 3] = np.broadcast_to(np.asarray(alpha, dtype=float), len(eta))
    ax.scatter(eta, phi, s=(28 * w) ** 2 + 2, facecolors="none", edgecolors=edge,
               linewidths=1.2)  # fmt: skip
    ax.set_xlim(-0.8, 0.8)
    ax.set_ylim(-0.8, 0.8)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$\eta_\mathrm{rel}$")
    ax.set_ylabel(r"$\phi_\mathrm{rel}$")


# ----------------------------------------------------------------------------- Fig. 3


def _data_input(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    return {"data": [T.split_path(config, experiment, "probe_test")]}


def build_augmented(job: OutputJob) -> None:
    import matplotlib.pyplot as plt
    import torch

    from jetforge.generation.seeds import derive_seed
    from jetforge.methods.jbot import augment_from_config
    from jetforge.methods.jbot_masking import pt_fraction_mask
    from jetforge.reporting.style import apply_style, label, save_figure

    h5 = T.split_path(job.config, job.experiment, "probe_test")
    feats, augment = augment_from_config(job.exp["pretrain"])
    frac = float(job.spec.get("mask_fraction", 0.3))
    jets = _jets_by_class(h5)
    apply_style()
    fig, axes = plt.subplots(2, len(jets), figsize=(3.2 * len(jets), 6.8), squeeze=False)
    torch.manual_seed(derive_seed("jbot", "fig3", base=job.seed))
    for j, (proc, rows) in enumerate(jets):
        x, m = _read_jets(h5, rows)
        for i, (xx, mm) in enumerate([(x, m), augment(x, m)]):
            eta, phi = (t[0][mm[0]].numpy() for t in feats.eta_phi(xx))
            pt = feats.pt_weight(xx)[0][mm[0]].numpy()
            colours: Any = "k"
            if i == 1:
                masked, _ = pt_fraction_mask(feats.pt_weight(xx), mm, (frac, frac))
                colours = np.where(masked[0][mm[0]].numpy(), "tab:red", "k")
            _draw_jet(axes[i, j], eta, phi, pt, colours)
            axes[i, j].set_title(f"{symbol(proc)} jet" + (" (augmented)" if i else ""))
        label(axes[0, j], SAMPLE if j == 0 else "", fontsize=9)
    fig.suptitle(f"jBOT Fig. 3: input jets (top) and augmented views, masked p_T ≈ "
                 f"{frac:.0%} in red (bottom)")  # fmt: skip
    save_figure(fig, job.stem)


# ----------------------------------------------------------------------------- Fig. 4

#: panel -> history.csv columns (jBOT Fig. 4, upper row then lower row)
CURVES = {
    "total loss": ["loss"],
    r"$\mathcal{L}_\mathrm{[CLS]}$": ["loss_cls"],
    r"$\mathcal{L}_\mathrm{Part}$": ["loss_part"],
    r"$\mathcal{L}_\mathrm{KoLeo}$": ["loss_koleo"],
    "entropy": ["entropy_teacher", "entropy_student"],
    "centering norm": ["centre_cls_norm", "centre_part_norm"],
}


def _history_input(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    exp = config["experiments"][experiment]
    return {"history": [h for a in X.augsets(exp) for h in
                        T.pretrain_histories(config, experiment, a)]}  # fmt: skip


def build_learning_curves(job: OutputJob) -> None:
    import matplotlib.pyplot as plt
    import pandas as pd

    from jetforge.reporting.style import apply_style, label, save_figure

    apply_style()
    fig, axes = plt.subplots(2, 3, figsize=(14, 8))
    for r, path in enumerate(job.inputs["history"]):
        h = pd.read_csv(path)
        for ax, (title, cols) in zip(axes.ravel(), CURVES.items(), strict=True):
            for c, col in enumerate(cols):
                for prefix, ls in (("", "-"), ("val_", "--")):
                    if prefix + col not in h:
                        continue
                    name = col.replace("entropy_", "").replace("centre_", "").replace("_norm", "")
                    tag = f"{'val ' if prefix else 'train '}{name if len(cols) > 1 else ''}"
                    ax.plot(h["epoch"], h[prefix + col], ls=ls, color=f"C{c + 2 * r}",
                            label=f"r{r} {tag}".strip())  # fmt: skip
            ax.set_xlabel("epoch")
            ax.set_ylabel(title)
    for ax in axes.ravel():
        ax.legend(fontsize=7)
        label(ax, "")
    fig.suptitle(f"jBOT Fig. 4: learning curves of {job.experiment} "
                 f"(jBOT-{job.exp['backbone'].get('size', 'S')})")  # fmt: skip
    save_figure(fig, job.stem)


# ----------------------------------------------------------------------------- Fig. 5


def _model_input(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    return {"models": T.pretrained_models(config, experiment)[:1],
            "data": [T.split_path(config, experiment, "probe_test")]}  # fmt: skip


def cls_attention(vit: Any, x: Any, mask: Any) -> np.ndarray:
    """Attention weights ``[B, H, T - 1]`` of the [CLS] query over the particle tokens in
    the last block (jBOT Fig. 5), recomputed from that block's input with its own q/k."""
    import torch

    seen: dict[str, Any] = {}
    attn = vit.blocks[-1].attn

    def hook(module: Any, args: tuple[Any, ...]) -> None:
        seen["h"], seen["key_mask"] = args[0], args[1]

    handle = attn.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            vit.eval()(x, mask)
    finally:
        handle.remove()
    h, key_mask = seen["h"], seen["key_mask"]
    B, T_, _ = h.shape
    q, k, _ = attn.qkv(h).view(B, T_, 3, attn.n_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    logits = (q[:, :, :1] @ k.transpose(-1, -2)) / attn.head_dim**0.5  # [B, H, 1, T]
    logits = logits.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return torch.softmax(logits, -1)[:, :, 0, 1:].detach().numpy()


def build_attention(job: OutputJob) -> None:
    import matplotlib.pyplot as plt

    from jetforge.methods.jbot_augment import JetFeatures
    from jetforge.models.registry import load_backbone
    from jetforge.reporting.style import apply_style, label, save_figure

    vit, _ = load_backbone(job.inputs["models"][0])
    h5 = job.inputs["data"][0]
    feats = JetFeatures.from_spec(job.exp["pretrain"]["feature_names"], 1.0)
    jets = _jets_by_class(h5)
    n_heads = vit.blocks[-1].attn.n_heads
    apply_style()
    fig, axes = plt.subplots(1 + n_heads, len(jets), figsize=(2.8 * len(jets), 2.8 * (1 + n_heads)),
                             squeeze=False)  # fmt: skip
    for j, (proc, rows) in enumerate(jets):
        x, m = _read_jets(h5, rows)
        w = cls_attention(vit, x, m)[0]  # [H, n_trimmed]
        eta, phi = (t[0][m[0]].numpy() for t in feats.eta_phi(x))
        pt = feats.pt_weight(x)[0][m[0]].numpy()
        _draw_jet(axes[0, j], eta, phi, pt)
        axes[0, j].set_title(f"{symbol(proc)} jet")
        idx = np.flatnonzero(m[0].numpy())
        for hd in range(n_heads):
            a = w[hd][idx]  # trimmed token i = particle slot i (trim_padding)
            alpha = np.clip(a / max(float(a.max()), 1e-12), 0.05, 1.0)
            _draw_jet(axes[1 + hd, j], eta, phi, pt, "tab:blue", alpha)
            axes[1 + hd, j].set_title(f"head {hd}", fontsize=9)
        label(axes[0, j], SAMPLE if j == 0 else "", fontsize=8)
    fig.suptitle(f"jBOT Fig. 5: [CLS] attention in the last block, {job.experiment} r0")
    save_figure(fig, job.stem)


# ----------------------------------------------------------------------------- Fig. 6


def _finetuned_run(config: dict, experiment: str, task: str) -> dict[str, Any] | None:
    """The fine-tuning whose classifier is Fig. 6's "after fine-tuning" panel: mode
    floating (the paper fine-tunes the whole encoder, §4.4), largest labelled size, repeat 0."""
    runs = [r for r in X.finetune_grid(config["experiments"][experiment], task)
            if r["mode"] == "floating" and r["repeat"] == 0]  # fmt: skip
    return max(runs, key=lambda r: r["n_train"]) if runs else None


def _tsne_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    exps = [experiment, *_others(config, experiment, spec)]
    data = [T.split_path(config, e, "probe_test") for e in exps]
    tuned = [T.classifier_path(T.prediction_path(e, run))  # rule finetune's `model` output
             for e, task in (spec.get("finetuned") or {}).items()
             if (run := _finetuned_run(config, e, task)) is not None]  # fmt: skip
    return {"models": [T.pretrained_models(config, e)[0] for e in exps],
            "data": list(dict.fromkeys(data)), "finetuned": tuned}  # fmt: skip


def _tsne_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    """``epochs``: each one the pre-training's last epoch or one of its snapshot_epochs."""
    errs = []
    rows = [experiment, *_others(config, experiment, spec)]
    for e, task in (spec.get("finetuned") or {}).items():
        if e not in rows:
            errs.append(f"finetuned: {e!r} is not a row of this figure ({rows})")
        elif task not in ((config["experiments"][e].get("finetune") or {}).get("tasks") or {}):
            errs.append(f"finetuned: {task!r} is not a fine-tuning task of {e!r}")
        elif _finetuned_run(config, e, task) is None:
            errs.append(f"finetuned: {e!r} fine-tunes {task!r} in no floating mode; add "
                        "floating to its finetune.modes")  # fmt: skip
    for e in rows:
        if e not in config["experiments"]:  # reported by the declaration checks
            continue
        pre = config["experiments"][e]["pretrain"]
        have = sorted({*map(int, pre.get("snapshot_epochs") or []), int(pre["epochs"])})
        missing = [n for n in spec.get("epochs") or [] if int(n) not in have]
        if missing:
            errs.append(f"epochs: {missing} of {e!r} are neither its pretrain.epochs nor in its "
                        f"pretrain.snapshot_epochs (drawable: {have}); add them there")  # fmt: skip
    return errs


def _tsne_stages(job: OutputJob, e: str, model: str) -> list[tuple[str, Any]]:
    """(title, encoder) per column: ``spec.epochs`` read from the pre-training's snapshots
    (0 = its own initialisation), else a fresh random init beside the final model."""
    from jetforge.paper_outputs.jbot import random_backbones
    from jetforge.training.pretrain import SNAPSHOT

    epochs = job.spec.get("epochs")
    if not epochs:
        stages = [("random init", random_backbones(model, 1, job.seed)[0]),
                  ("after pre-training", model)]  # fmt: skip
    else:
        last = int(job.config["experiments"][e]["pretrain"]["epochs"])
        stages = [
            ("initialisation" if n == 0 else f"epoch {n}" + (" (final)" if n == last else ""),
             model if n == last else str(Path(model).parent / SNAPSHOT.format(epoch=n)))
            for n in map(int, epochs)
        ]  # fmt: skip
    task = (job.spec.get("finetuned") or {}).get(e)
    if task is not None:
        from jetforge.evaluation.robustness import load_classifier

        run = _finetuned_run(job.config, e, task)
        clf = load_classifier(T.classifier_path(T.prediction_path(e, run)))
        stages.append((f"after fine-tuning ({task}, n = {run['n_train']})", clf.backbone))
    return stages


def build_tsne(job: OutputJob) -> None:
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    from jetforge.evaluation.probes import embed_rows
    from jetforge.reporting.style import apply_style, label, save_figure
    from jetforge.training.data import DatasetInfo
    from jetforge.training.selection import select_jet_rows

    exps = [job.experiment, *_others(job.config, job.experiment, job.spec)]
    n_jets = int(job.spec.get("n_jets", 500))
    apply_style()
    n_col = len(job.spec.get("epochs") or [0, 1]) + bool(job.spec.get("finetuned"))
    fig, axes = plt.subplots(len(exps), n_col, figsize=(5 * n_col, 4.8 * len(exps)),
                             squeeze=False)  # fmt: skip
    for i, e in enumerate(exps):
        exp = job.config["experiments"][e]
        h5 = T.split_path(job.config, e, "probe_test")
        names = DatasetInfo.read(h5).process_names
        procs = exp["pretrain"].get("processes") or list(names)
        rows, y = select_jet_rows(h5, procs)
        keep = np.sort(np.random.default_rng(job.seed).choice(rows.size, min(n_jets, rows.size),
                                                               replace=False))  # fmt: skip
        rows, y = rows[keep], y[keep]
        model = T.pretrained_models(job.config, e)[0]
        for c, (title, enc) in enumerate(_tsne_stages(job, e, model)):
            z = embed_rows(enc, h5, rows)
            xy = TSNE(2, perplexity=min(30.0, (len(z) - 1) / 3), random_state=job.seed,
                      init="pca").fit_transform(z)  # fmt: skip
            ax = axes[i, c]
            for k, lab in enumerate(np.unique(y)):
                sel = y == lab
                ax.scatter(xy[sel, 0], xy[sel, 1], s=5, color=f"C{k}",
                           label=symbol(str(names[lab])))  # fmt: skip
            ax.set_title(f"{e} ({' '.join(symbol(p) for p in procs)}): {title}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.legend(markerscale=3, fontsize=8)
            label(ax, "")
        for ax in axes[i, c + 1:]:  # no fine-tuning of this pre-training (paper: q/g row)
            ax.set_axis_off()
    when = "" if job.spec.get("epochs") else ": a random init and the final model"
    after = " and after fine-tuning" if job.spec.get("finetuned") else ""
    fig.suptitle(f"jBOT Fig. 6: t-SNE of the [CLS] embedding (test jets) during "
                 f"pre-training{after}{when}")  # fmt: skip
    save_figure(fig, job.stem)


# ----------------------------------------------------------------------------- Fig. 7


def _panels(spec: dict) -> list[tuple[str, str]]:
    return [tuple(str(p).split("/", 1)) for p in spec.get("panels", [])]  # type: ignore[misc]


def _panel_experiments(config: dict, experiment: str, spec: dict) -> list[str]:
    return list(dict.fromkeys(e for e, _ in _panels(spec) if e != experiment))


def _roc_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = []
    if not spec.get("panels"):
        errs.append("panels: list 'experiment/task' of the fine-tunings to draw, e.g. "
                    "[jbot/five_class, jbot/top_vs_qcd]")  # fmt: skip
    for p in spec.get("panels", []):
        e, _, t = str(p).partition("/")
        tasks = ((config["experiments"].get(e) or {}).get("finetune") or {}).get("tasks", {})
        if t not in tasks:
            errs.append(f"panels: {p!r} is not experiment/task with a fine-tuning task "
                        f"{t!r} (experiment {e!r} has tasks {sorted(tasks)})")  # fmt: skip
    return errs


def _roc_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    files = [T.predictions_for(config, e, t) for e, t in _panels(spec)]
    return {"predictions": [p for f in files for fs in f.values() for p in fs]}


def _roc_panel(ax: Any, config: dict, e: str, task: str) -> None:
    import h5py

    from jetforge.evaluation.metrics import roc

    exp = config["experiments"][e]
    runs = [r for r in X.finetune_grid(exp, task) if r["repeat"] == 0
            and r["mode"] in ("floating", "supervised")]  # fmt: skip
    spec = exp["finetune"]["tasks"][task]
    n_max = max(r["n_train"] for r in runs)
    for run in runs:
        path = T.prediction_path(e, run)
        if not Path(path).exists():
            raise FileNotFoundError(f"jBOT Fig. 7: prediction file missing: {path}")
        with h5py.File(path, "r") as f:
            s, y = f["score"][:], f["label"][:]
        ls = "-" if run["mode"] == "floating" else "--"
        who = "jBOT" if run["mode"] == "floating" else "Sup."
        if "classes" in spec:
            if run["n_train"] != n_max:
                continue
            for c, proc in enumerate(spec["classes"]):
                fpr, tpr, _ = roc(s[:, c], (y == c).astype(int))
                ax.plot(fpr, tpr, ls=ls, color=f"C{c}", label=f"{who} {symbol(proc)}")
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
        else:
            fpr, tpr, _ = roc(s, y)
            ok = fpr > 0
            ax.plot(tpr[ok], 1 / fpr[ok], ls=ls, color="C0" if run["n_train"] == n_max else "C1",
                    label=f"{who} n = {run['n_train']}")  # fmt: skip
            ax.set_yscale("log")
            ax.set_xlabel(r"signal efficiency $\epsilon_s$")
            ax.set_ylabel(r"background rejection $1/\epsilon_b$")
    ax.set_title(f"{e}/{task}" + (f" (n = {n_max}, r0)" if "classes" in spec else " (r0)"),
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=7, ncol=2)


def build_roc(job: OutputJob) -> None:
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style, label, save_figure

    panels = _panels(job.spec)
    apply_style()
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.4), squeeze=False)
    for ax, (e, t) in zip(axes[0], panels, strict=True):
        _roc_panel(ax, job.config, e, t)
        label(ax, SAMPLE)
    fig.suptitle("jBOT Fig. 7: ROC curves of the fine-tuned (solid) and from-scratch (dashed) "
                 "taggers")  # fmt: skip
    save_figure(fig, job.stem)


AUGMENTED_JETS = OutputKind(_data_input, build_augmented, keys=frozenset({"mask_fraction"}))
LEARNING_CURVES = OutputKind(_history_input, build_learning_curves)
ATTENTION = OutputKind(_model_input, build_attention, heavy=True)
TSNE = OutputKind(_tsne_inputs, build_tsne, _tsne_errors,
                  frozenset({"n_jets", "epochs", "finetuned"}),
                  experiments=_others, heavy=True)  # fmt: skip
ROC = OutputKind(_roc_inputs, build_roc, _roc_errors, frozenset({"panels"}),
                 experiments=_panel_experiments)  # fmt: skip
