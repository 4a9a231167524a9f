"""Masked particle modelling's figures that read models rather than predictions (Golling,
Heinrich, Kagan, Klein, Leigh, Osadchy, Raine, arXiv:2401.13537).

* Fig. 2 (kind ``tokenizer_reconstruction``): jet mass and p_T of test jets rebuilt from
  their tokens -- the VQ-VAE's decoded output and, beside it, the K-means centroids --
  against the input jets, with each tokenizer's codebook usage on those jets (§V A: "~80 %
  utilization"). The particles are decoded into the dataset's own features and turned back
  into four-momenta by the feature set's inverse, so the jets are summed exactly as the
  dataset validation sums them.
* Fig. 8 (kind ``tsne_signal_fraction``): App. C's t-SNE of the frozen backbone's jet
  embedding, one panel per signal class embedded together with the background class only,
  each 2-D bin coloured by its signal fraction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from jetforge import experiment as X
from jetforge.paper_outputs import OutputJob, OutputKind
from jetforge.workflow import targets as T

if TYPE_CHECKING:  # torch is imported by the jobs, never by the config check (driver env)
    import torch

#: tokenizer kinds the reconstruction figure can decode, and their legend names
DECODERS = {"vqvae": "VQ-VAE decoded", "kmeans": "K-means centroids"}


def _tokenizer_owner(config: dict, experiment: str) -> str:
    return str(config["experiments"][experiment].get("tokenizer_from") or experiment)


def reconstruction_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    """The tokenizer file of each listed experiment and the test split of the first."""
    exps = list(spec.get("experiments") or [])
    if not exps:
        return {"tokenizers": [], "test": []}
    toks = [T.TOKENIZER.format(experiment=_tokenizer_owner(config, e)) for e in exps]
    return {"tokenizers": toks, "test": [T.split_path(config, exps[0], "probe_test")]}


def _reconstruction_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    exps = config.get("experiments", {})
    errs = []
    if not spec.get("experiments"):
        errs.append("experiments: list the experiments whose tokenizers are drawn, e.g. "
                    "[mpm_t1_head_vqvae, mpm_t1_head_kmeans]")  # fmt: skip
    for e in spec.get("experiments") or []:
        if e not in exps:
            continue
        kind = (exps[e].get("tokenizer") or {}).get("kind", "regression")
        if kind not in DECODERS:
            errs.append(f"experiments: {e!r} has tokenizer kind {kind!r}, not one of "
                        f"{sorted(DECODERS)} (nothing to decode)")  # fmt: skip
    return errs


def decode(tok: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Particles ``[B, P, F]`` rebuilt from their tokens, in the dataset's feature units."""
    import torch

    with torch.no_grad():
        return _decode(tok, x, mask.bool())


def _decode(tok: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import torch

    if tok.kind == "kmeans":
        z = tok.centroids.float()[tok.targets(x, mask)]
    elif tok.kind == "vqvae":
        codes = tok.quantiser.codes().float()[tok.targets(x, mask)]
        z_q = torch.where(mask[..., None], codes, torch.zeros_like(codes))
        z = tok.to_features(tok.decoder.tokens(z_q, mask))
    else:
        raise ValueError(f"cannot decode a {tok.kind!r} tokenizer")
    scaler = tok.scaler
    out = z * scaler.std.float() + scaler.mean.float()
    return torch.where(mask[..., None], out, torch.zeros_like(out))


def jet_mass_pt(p4: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Jet mass and p_T from the constituents' four-momenta (sums over the particle axis)."""
    s = {k: np.nan_to_num(v, posinf=0.0, neginf=0.0).sum(axis=1) for k, v in p4.items()}
    m2 = s["E"] ** 2 - s["px"] ** 2 - s["py"] ** 2 - s["pz"] ** 2
    return np.sqrt(np.clip(m2, 0.0, None)), np.hypot(s["px"], s["py"])


def _read_test(path: str, n_jets: int) -> tuple[np.ndarray, np.ndarray, dict, Any]:
    import h5py

    from jetforge.io.h5 import read_attrs
    from jetforge.jets.featuresets import get_feature_set

    with h5py.File(path, "r") as f:
        n = min(int(n_jets), int(f["mask"].shape[0]))
        x, mask = f["particles"][:n].astype(np.float32), f["mask"][:n].astype(bool)
        jets = {k: f[f"jets/{k}"][:n] for k in ("pt", "eta", "phi")}
        fs = get_feature_set(str(read_attrs(f).get("feature_set", "rs3l")))
    if fs.four_momenta is None:
        raise ValueError(f"{path}: feature set {fs.name!r} cannot give back four-momenta")
    return x, mask, jets, fs


def build_reconstruction(job: OutputJob) -> None:
    """Fig. 2: mass and p_T histograms, input vs each tokenizer's reconstruction."""
    import matplotlib.pyplot as plt
    import torch

    from jetforge.methods.mpm_tokenizer import load_tokenizer
    from jetforge.methods.mpm_vq import codebook_usage
    from jetforge.reporting.style import apply_style, label, save_figure

    x, mask, jets, fs = _read_test(job.inputs["test"][0], int(job.spec.get("n_jets", 2000)))
    curves = {"input jets": jet_mass_pt(fs.four_momenta(x, mask, jets))}
    usage = []
    xt, mt = torch.from_numpy(x), torch.from_numpy(mask)
    for path in job.inputs["tokenizers"]:
        tok = load_tokenizer(path)[0]
        rec = decode(tok, xt, mt).numpy()
        curves[DECODERS[tok.kind]] = jet_mass_pt(fs.four_momenta(rec, mask, jets))
        u = codebook_usage(tok.targets(xt, mt)[mt], tok.n_codes)
        usage.append(f"{tok.kind}: {100 * u['used_fraction']:.0f} % of {tok.n_codes} codes used")
    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8))
    for ax, i, xlabel in ((axes[0], 0, "jet mass [GeV]"), (axes[1], 1, r"jet $p_T$ [GeV]")):
        ref = curves["input jets"][i]
        bins = np.linspace(*np.percentile(ref, [0.5, 99.5]), 41)
        for name, vals in curves.items():
            style = {"histtype": "stepfilled", "alpha": 0.3} if name == "input jets" else {
                "histtype": "step", "lw": 1.5}  # fmt: skip
            ax.hist(np.clip(vals[i], bins[0], bins[-1]), bins, density=True, label=name, **style)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("normalised")
        label(ax, rlabel=f"{len(ref)} test jets")
    axes[0].legend(fontsize=8)
    axes[1].text(0.97, 0.95, "\n".join(usage), transform=axes[1].transAxes, ha="right",
                 va="top", fontsize=7)  # fmt: skip
    fig.suptitle(job.spec.get("caption") or (
        f"{job.paper} {job.name}: jets rebuilt from their tokens (paper: ~80 % of 512 VQ-VAE "
        "codes used)"), fontsize=9)  # fmt: skip
    fig.tight_layout()
    save_figure(fig, job.stem)


TOKENIZER_RECONSTRUCTION = OutputKind(reconstruction_inputs, build_reconstruction,
                                      _reconstruction_errors, frozenset({"n_jets"}),
                                      heavy=True)  # fmt: skip


# ---- Fig. 8: t-SNE of the frozen backbone, signal fraction per bin ----------------------


def tsne_inputs(config: dict, experiment: str, spec: dict) -> dict[str, list[str]]:
    exp = config["experiments"][experiment]
    augset = next(iter(X.augsets(exp)))
    return {"embedding": [T.embedding_path(config, experiment, augset)]}


def _tsne_errors(config: dict, experiment: str, spec: dict) -> list[str]:
    ds = config["datasets"][config["experiments"][experiment]["dataset"]]
    bkg = spec.get("background")
    if bkg not in ds.get("processes", []):
        return [f"background: {bkg!r} is not a process of dataset "
                f"{config['experiments'][experiment]['dataset']!r}; choose from "
                f"{ds.get('processes', [])}"]  # fmt: skip
    return []


def _embed_2d(z: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3.0)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z)


def build_tsne(job: OutputJob) -> None:
    """Fig. 8: per signal class, t-SNE of signal + background embeddings, signal fraction."""
    import h5py
    import matplotlib.pyplot as plt

    from jetforge.reporting.style import apply_style, label, save_figure
    from jetforge.reporting.tables import decode_names

    with h5py.File(job.inputs["embedding"][0], "r") as f:
        z, proc = f["z"][:], f["jets/process"][:]
        names = decode_names(f.attrs["process_names"])
    bkg = names.index(job.spec["background"])
    n_max = int(job.spec.get("n_jets", 300))
    rng = np.random.default_rng(job.seed)
    signals = [i for i in range(len(names)) if i != bkg and (proc == i).any()]
    apply_style()
    cols = min(5, len(signals))
    rows = -(-len(signals) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows), squeeze=False)
    for ax in axes.flat[len(signals) :]:
        ax.axis("off")
    im = None
    for ax, s in zip(axes.flat, signals, strict=False):
        pick = [rng.permutation(np.flatnonzero(proc == c))[:n_max] for c in (s, bkg)]
        e = _embed_2d(z[np.concatenate(pick)], job.seed)
        is_sig = np.r_[np.ones(len(pick[0])), np.zeros(len(pick[1]))]
        edges = [np.linspace(e[:, k].min(), e[:, k].max(), 11) for k in (0, 1)]
        tot, _, _ = np.histogram2d(e[:, 0], e[:, 1], edges)
        sig, _, _ = np.histogram2d(e[:, 0], e[:, 1], edges, weights=is_sig)
        frac = np.where(tot > 0, sig / np.maximum(tot, 1), np.nan)
        im = ax.pcolormesh(edges[0], edges[1], frac.T, cmap="coolwarm", vmin=0, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{names[s]} vs {names[bkg]}", fontsize=8)
    label(axes[0][0], fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="signal fraction")
    fig.suptitle(job.spec.get("caption") or (
        f"{job.paper} {job.name}: t-SNE of the frozen backbone (≤ {n_max} jets per class; "
        "paper: 100k)"), fontsize=9)  # fmt: skip
    save_figure(fig, job.stem)


TSNE_SIGNAL_FRACTION = OutputKind(tsne_inputs, build_tsne, _tsne_errors,
                                  frozenset({"background", "n_jets"}), heavy=True)  # fmt: skip
