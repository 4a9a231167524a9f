"""Rieck et al. (arXiv:2503.11632): hadronization-fork pairs, their representation, and the
comparison with an autoencoder, as tables and figures.

* Fig. 2 (``fork_pt``) and the text's "correlation among pairs of jets ... 83 %"
  (table ``pair_correlation``): the two hadronizations of one shower, jet p_T against jet p_T;
* Fig. 4a (``pair_similarity`` figure and table): cosine similarity of the 8-d
  representations of positive pairs (the two forks) and of negative pairs drawn, as the paper
  does, among jets of similar rapidity and energy;
* §5.2 (table ``knn_efficiency``): the share of each class the kNN on the frozen space gets
  right ("71 % of gluon jets ... 97 % of hadronic taus"), from the probe table;
* Fig. 6c, d (``rejection_vs_size``, a generic kind): rejection at one signal efficiency vs
  the labelled jets, per fine-tuning mode (LoRA vs fixed vs from scratch);
* Fig. 8 (table ``representation_comparison``): the contrastive space against the
  VICReg-style autoencoder's on the same backbone, by frozen probes (the taggers of Fig. 8
  are in :mod:`jetforge.paper_outputs.rieck_taggers`).

Pairs follow the data contract's layout (row = pair x 2 + fork); a "seed" of the tables is
one generation chunk (its own random streams), so their spread is the chunk-to-chunk one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.paper_outputs.rs3l import _setups, _task_errors
from jetforge.paper_outputs.rs3l import embedding_input as _embedding_input
from jetforge.reporting.table_io import mean_std_by, write_table
from jetforge.workflow import targets as T


def split_input(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    """The probe-test split of the experiment's dataset (fork pairs with truth columns)."""
    return {"split": [T.split_path(config, experiment, "probe_test")]}


def _pairs(path: str) -> pd.DataFrame:
    """One row per fork pair: p_T, η, E of both members, the class and the chunk."""
    import h5py

    from jetforge.reporting.tables import decode_names

    with h5py.File(path, "r") as f:
        j = {k: f[f"jets/{k}"][()] for k in ("pt", "eta", "variant", "process", "chunk")}
        procs = decode_names(f.attrs["process_names"])
        classes = decode_names(f.attrs["class_names"])
        labels = f["jets/label"][()]
    if not (j["variant"][0::2] == 0).all() or not (j["variant"][1::2] == 1).all():
        raise ValueError(f"{path}: rows are not fork pairs (row = pair x 2 + fork)")
    a, b = slice(0, None, 2), slice(1, None, 2)
    return pd.DataFrame({
        "pt_a": j["pt"][a], "pt_b": j["pt"][b], "eta_a": j["eta"][a], "eta_b": j["eta"][b],
        "process": np.asarray(procs, dtype=object)[j["process"][a]],
        "cls": np.asarray(classes, dtype=object)[labels[a]],
        "chunk": j["chunk"][a],
    })  # fmt: skip


def _by_chunk(pairs: pd.DataFrame, fn: Callable[[pd.DataFrame], float], name: str
              ) -> pd.DataFrame:  # fmt: skip
    """``fn(group)`` per generation chunk (process, chunk) of >= 3 pairs: a table's seeds."""
    groups = pairs.groupby(["process", "chunk"], sort=True)
    return pd.DataFrame([{"process": p, "chunk": int(c), "pairs": len(g), name: float(fn(g))}
                         for (p, c), g in groups if len(g) >= 3])  # fmt: skip


def build_fork_pt(job: OutputJob) -> None:
    """Fig. 2: (a) jet p_T of both forks, (b) p_T of one fork against the other."""
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style, save_figure
    from jetforge.reporting.style import label as simulation_label

    p = _pairs(job.inputs["split"][0])
    r = float(np.corrcoef(p["pt_a"], p["pt_b"])[0, 1])
    apply_style()
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(11.5, 4.8))
    edges = np.linspace(0.0, float(np.percentile(np.r_[p["pt_a"], p["pt_b"]], 99.5)), 41)
    for col, lab in (("pt_a", "fork a"), ("pt_b", "fork b")):
        ax_a.hist(p[col], bins=edges, histtype="step", lw=1.6, label=lab)
    ax_a.set_xlabel(r"Jet $p_\mathrm{T}$ [GeV]")
    ax_a.set_ylabel("Jets / bin")
    ax_a.legend(frameon=False)
    simulation_label(ax_a, rlabel=f"{len(p)} pairs")
    ax_b.hist2d(p["pt_a"], p["pt_b"], bins=[edges, edges], cmap="viridis", cmin=1)
    ax_b.plot(edges, edges, color="w", lw=0.8, ls="--")
    ax_b.set_xlabel(r"$p_\mathrm{T}$ fork a [GeV]")
    ax_b.set_ylabel(r"$p_\mathrm{T}$ fork b [GeV]")
    simulation_label(ax_b, rlabel=f"correlation {r:.0%} (paper: 83 %)")
    save_figure(fig, job.stem)


def build_pair_correlation(job: OutputJob) -> None:
    """The text of Fig. 2: Pearson correlation of the forks' p_T, per chunk and pooled."""
    p = _pairs(job.inputs["split"][0])
    per_chunk = _by_chunk(p, lambda g: np.corrcoef(g["pt_a"], g["pt_b"])[0, 1], "correlation")
    per_chunk.insert(0, "row", "chunk")
    pooled = {"row": "all pairs", "pairs": len(p),
              "correlation": float(np.corrcoef(p["pt_a"], p["pt_b"])[0, 1])}  # fmt: skip
    ref = job.reference() or {}
    frame = pd.concat([per_chunk, pd.DataFrame([pooled])], ignore_index=True)
    frame["paper_correlation"] = ref.get("values", {}).get("correlation")
    _write(job, frame, f"{job.paper}: p_T correlation of the two forks of one shower",
           "Pearson correlation of the detector-level jet p_T of the two hadronization forks "
           "of one shower, per generation chunk (the seeds) and over all pairs (Rieck et al. "
           "Fig. 2 text: 83 %).")  # fmt: skip


def _cosine_pairs(path: str, seed: int, d_eta: float = 0.2, d_log_e: float = 0.1
                  ) -> pd.DataFrame:  # fmt: skip
    """Per pair: cosine similarity of the forks (positive) and of fork a with a random jet
    of another pair of similar rapidity and energy (negative; the paper restricts "the jets
    in each pair ... to similar rapidity and total energy", Fig. 4a)."""
    from jetforge.reporting.figures import _read_embeddings

    emb = _read_embeddings(path, ["variant", "eta", "pt", "process", "chunk"])
    z = emb["z"] / np.maximum(np.linalg.norm(emb["z"], axis=1, keepdims=True), 1e-12)
    za, zb = z[0::2], z[1::2]
    eta, log_e = emb["eta"][0::2], np.log(emb["pt"][0::2] * np.cosh(emb["eta"][0::2]))
    rng = np.random.default_rng(seed)
    neg = np.full(len(za), np.nan)
    for i in range(len(za)):
        near = np.flatnonzero((np.abs(eta - eta[i]) < d_eta)
                              & (np.abs(log_e - log_e[i]) < d_log_e))  # fmt: skip
        near = near[near != i]
        if near.size:
            neg[i] = float(za[i] @ zb[rng.choice(near)])
    return pd.DataFrame({"positive": np.sum(za * zb, axis=1), "negative": neg,
                         "process": emb["process"][0::2], "chunk": emb["chunk"][0::2]})  # fmt: skip


def build_pair_similarity_figure(job: OutputJob) -> None:
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style, save_figure
    from jetforge.reporting.style import label as simulation_label

    c = _cosine_pairs(job.inputs["embedding"][0], job.seed)
    apply_style()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    edges = np.linspace(-1.0, 1.0, 41)
    ax.hist(c["positive"], bins=edges, histtype="step", lw=1.8, density=True,
            label=f"positive: the two forks ({len(c)})")  # fmt: skip
    neg = c["negative"].dropna()
    ax.hist(neg, bins=edges, histtype="step", lw=1.8, density=True, ls="--",
            label=f"negative: similar η and E ({len(neg)})")  # fmt: skip
    ax.set_xlabel("Cosine similarity of the representations")
    ax.set_ylabel("Normalised pairs")
    ax.set_yscale("log")
    ax.legend(frameon=False, loc="upper left")
    simulation_label(ax, rlabel="pre-training r0, probe-test split")
    save_figure(fig, job.stem)


def build_pair_similarity_table(job: OutputJob) -> None:
    c = _cosine_pairs(job.inputs["embedding"][0], job.seed)
    rows = []
    for kind in ("positive", "negative"):
        per = _by_chunk(c.dropna(subset=[kind]), lambda g, k=kind: g[k].mean(), "cosine")
        per.insert(0, "pairs_kind", kind)
        rows.append(per)
    long = pd.concat(rows, ignore_index=True)
    frame = mean_std_by(long, "pairs_kind", ["cosine"])
    _write(job, frame, f"{job.paper}: cosine similarity of positive and negative pairs",
           "Mean cosine similarity of the frozen 8-d representations (pre-training r0) of the "
           "two forks of one shower (positive) and of jets of other pairs with |Δη| < 0.2 and "
           "|Δ ln E| < 0.1 (negative, Fig. 4a's selection); mean ± std over generation chunks "
           "of the probe-test split.")  # fmt: skip


def probes_input(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    names = [experiment, *spec.get("experiments", [])]
    return {"probes": [f"results/tables/{e}/probes.csv" for e in names]}


def build_knn_efficiency(job: OutputJob) -> None:
    """§5.2: per-class kNN efficiency on the frozen space, pre-trained vs random init."""
    probes = pd.read_csv(job.inputs["probes"][0])
    probes = probes[probes["embedding"] == "output"]
    effs = [c for c in probes.columns if c.startswith("knn_eff_")]
    frame = probes[["encoder", *effs, "knn_acc", "n_train", "n_test", "k"]].copy()
    ref = (job.reference() or {}).get("values", {})
    for c in effs:
        frame[f"paper_{c}"] = ref.get(c.removeprefix("knn_eff_"))
    _write(job, frame, f"{job.paper}: kNN efficiency per class on the frozen representation",
           f"Share of each class's test jets that the k-NN (k = {int(frame['k'].iloc[0])}, "
           "cosine) on the frozen 8-d representation classifies as that class; pre-trained "
           "backbones vs the same backbone randomly initialised (Rieck et al. §5.2 quote 71 % "
           "of gluon jets and 97 % of hadronic taus with one reference set and k tuned on a "
           "second; ours: the probe table's reference and k).")  # fmt: skip


def build_representation_comparison(job: OutputJob) -> None:
    """Fig. 8 as frozen probes: contrastive (this experiment) vs the autoencoder (listed)."""
    frames = []
    for path, name in zip(job.inputs["probes"], [job.experiment, *job.spec["experiments"]],
                          strict=True):  # fmt: skip
        p = pd.read_csv(path)
        p = p[p["embedding"] == "output"]
        method = job.config["experiments"][name]["pretrain"]["method"]
        frames.append(p.assign(experiment=name, method=method))
    cols = ["experiment", "method", "encoder", "knn_acc", "knn_auc", "linear_acc", "linear_auc",
            *[c for c in frames[0].columns if c.startswith(("knn_auc_", "linear_auc_"))]]
    frame = pd.concat(frames, ignore_index=True)[cols]
    _write(job, frame, f"{job.paper}: contrastive vs autoencoder representation (Fig. 8)",
           "Frozen-representation probes of the contrastive (NT-Xent on fork pairs) and the "
           "VICReg-style autoencoder pre-training on the same backbone and jets, each against "
           "its random initialisation. The paper compares taggers (Fig. 8): see the table "
           "autoencoder_taggers and figures fig8a, fig8b.")  # fmt: skip


def _write(job: OutputJob, frame: pd.DataFrame, title: str, what: str) -> None:
    data = job.config["datasets"][job.exp["dataset"]]
    scale = (f"Data: our generated stand-in of the hadronization-fork pairs (Pythia 8 + the "
             f"COCOA-like calorimeter stand-in, pile-up μ = {data.get('pileup', {}).get('mu')}, "
             f"paper: 150), {data['events_per_chunk']} events per chunk.")  # fmt: skip
    write_table(frame, job.out, title, [what, scale])


def build_rejection_vs_size(job: OutputJob) -> None:
    """Fig. 6c, d: background rejection at one signal efficiency vs labelled jets, one curve
    per fine-tuning mode, mean ± std over repeats (nominal / first-fork jets)."""
    import matplotlib.pyplot as plt

    from jetforge.evaluation.metrics import rejection_at
    from jetforge.reporting.style import apply_style, save_figure
    from jetforge.reporting.style import label as simulation_label
    from jetforge.reporting.tables import load_predictions

    eff = float(job.spec.get("efficiency", 0.5))
    long = []
    for sid, files in _setups(job).items():
        if sid == "n2":
            continue
        mode, n = sid.split("-")[0], int(sid.rsplit("-n", 1)[1])
        for f in files:
            p = load_predictions(f, ["score", "label"])
            first = p.nominal()
            rej = rejection_at(p["score"][first], p["label"][first], eff)
            long.append({"mode": mode, "n_train": n, "rej": rej})
    stats = mean_std_by(pd.DataFrame(long), ["mode", "n_train"], ["rej"])
    apply_style()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for mode, g in stats.groupby("mode", sort=False):
        g = g.sort_values("n_train")
        ax.errorbar(g["n_train"], g["rej"], yerr=g["rej_std"], marker="o", capsize=3,
                    label=f"{mode} [{int(g['n_repeats'].max())}×]")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("Labelled training jets")
    ax.set_ylabel(rf"$1/\varepsilon_\mathrm{{B}}$ at $\varepsilon_\mathrm{{S}}$ = {eff:g}")
    ax.legend(frameon=False)
    signal = job.exp["finetune"]["tasks"][job.spec["task"]].get("signal")
    simulation_label(ax, rlabel=f"{signal} tagging")
    save_figure(fig, job.stem)


def _comparison_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    if not spec.get("experiments"):
        return ["experiments: name the experiment(s) to compare with (e.g. [hadfork_ae])"]
    return []


def _binary_task_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    errs = _task_errors(config, experiment, spec)
    if not errs and "classes" in config["experiments"][experiment]["finetune"]["tasks"][
            spec["task"]]:  # fmt: skip
        errs.append(f"task {spec['task']!r} is multi-class; rejection needs a signal/background "
                    "task")  # fmt: skip
    return errs


FORK_PT = OutputKind(split_input, build_fork_pt)
PAIR_CORRELATION = OutputKind(split_input, build_pair_correlation)
PAIR_SIMILARITY_FIGURE = OutputKind(_embedding_input, build_pair_similarity_figure,
                                    keys=frozenset({"augset"}))  # fmt: skip
PAIR_SIMILARITY = OutputKind(_embedding_input, build_pair_similarity_table,
                             keys=frozenset({"augset"}))  # fmt: skip
KNN_EFFICIENCY = OutputKind(probes_input, build_knn_efficiency)
REPRESENTATION_COMPARISON = OutputKind(probes_input, build_representation_comparison,
                                       _comparison_errors)  # fmt: skip
REJECTION_VS_SIZE = OutputKind(
    lambda c, e, s: {"predictions": [p for fs in T.predictions_for(c, e, s["task"]).values()
                                     for p in fs]},
    build_rejection_vs_size, _binary_task_errors, frozenset({"task", "efficiency"}),
)  # fmt: skip
