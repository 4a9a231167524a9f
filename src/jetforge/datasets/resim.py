"""RS3L re-simulated jet datasets: every hard event showered under each variant.

One call turns one chunk of hard events (an LHE file) into one HDF5 chunk: for each variant
(nominal, new seed, FSR up/down, alternative shower; RS3L §II B) shower + hadronize,
simulate the detector, cluster, select and truth-match the jet. A hard event is kept only
if its jet passes in *every* variant ("these requirements are also imposed for all
augmentations of a given nominal jet"), so every kept event is a complete pair set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from jetforge import __version__
from jetforge.detector import load_card, simulate
from jetforge.generation.hard import tagged_objects
from jetforge.generation.processes import get_process
from jetforge.generation.seeds import derive_seed
from jetforge.generation.shower import shower_lhe
from jetforge.io.h5 import write_jet_dataset
from jetforge.io.lhe import read_lhe
from jetforge.jets.cluster import JetSelection, cluster_and_select
from jetforge.jets.features import RS3L_FEATURES, rs3l_features
from jetforge.jets.substructure import n2 as n2_of


def class_names(ds_cfg: Mapping[str, Any]) -> list[str]:
    """Class labels of a dataset, in the order its processes are listed (deduplicated)."""
    out: list[str] = []
    for name in ds_cfg["processes"]:
        label = get_process(name).label
        if label not in out:
            out.append(label)
    return out


def build_resim_chunk(
    lhe_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    ds_cfg: Mapping[str, Any],
    dataset: str,
    process_name: str,
    split: str,
    chunk: int,
    base_seed: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Build one chunk file; returns timing and selection statistics."""
    t0 = time.perf_counter()
    process = get_process(process_name)
    _, events = read_lhe(lhe_path)
    n = len(events)
    truth = [tagged_objects(ev, process) for ev in events]
    truth_eta = np.array([[o.eta for o in t] for t in truth], dtype=np.float64).reshape(n, -1)
    truth_phi = np.array([[o.phi for o in t] for t in truth], dtype=np.float64).reshape(n, -1)
    parton_pid = np.array([abs(t[0].pid) for t in truth], dtype=np.int32)

    card, card_sha = load_card(ds_cfg["detector"])
    shower = ds_cfg["shower"]
    variants = list(shower["variants"])
    selection = JetSelection(**ds_cfg["jets"])
    n_max = int(ds_cfg["n_particles"])

    per_variant: list[dict[str, np.ndarray]] = []
    keep = np.ones(n, dtype=bool)
    timing: dict[str, float] = {}
    for variant in variants:
        ids = (dataset, process_name, split, chunk, variant)
        t = time.perf_counter()
        particles, ok = shower_lhe(
            lhe_path, n, [*shower["base_settings"], *shower["variants"][variant]],
            derive_seed(*ids, "shower", base=base_seed), hard_events=events,
        )
        timing[f"shower_{variant}"] = time.perf_counter() - t
        t = time.perf_counter()
        # Only events whose jet passed in every earlier variant can still form a pair: the
        # detector, clustering and features run on those alone (the shower cannot be
        # skipped, it must consume each LHE event to stay aligned).
        alive = np.flatnonzero(keep & ok)
        rng = np.random.default_rng(derive_seed(*ids, "detector", base=base_seed))
        cands = simulate(particles[alive], card, rng)
        selected, jets, consts = cluster_and_select(
            cands, truth_eta[alive], truth_phi[alive], selection
        )
        passed = alive[selected]
        x, mask = rs3l_features(jets[selected], consts[selected], n_max=n_max)
        cols = {
            "particles": np.zeros((n, n_max, x.shape[-1]), np.float32),
            "mask": np.zeros((n, n_max), bool),
            **{k: np.zeros(n, np.float32) for k in ("n2", "pt", "eta", "phi", "mass")},
        }
        cols["particles"][passed], cols["mask"][passed] = x, mask
        cols["n2"][passed] = n2_of(consts[selected])
        for k in ("pt", "eta", "phi", "mass"):
            cols[k][passed] = _np(jets[k][selected])
        per_variant.append(cols)
        now_passing = np.zeros(n, bool)
        now_passing[passed] = True
        keep &= now_passing
        timing[f"reco_{variant}"] = time.perf_counter() - t

    idx = np.flatnonzero(keep)
    n_var, n_pairs = len(variants), len(idx)
    # interleave: row i*V + v is variant v of kept hard event i (data contract 4)
    stack = lambda key: np.stack([pv[key][idx] for pv in per_variant], axis=1)  # noqa: E731
    particles = stack("particles").reshape(n_pairs * n_var, n_max, -1)
    mask = stack("mask").reshape(n_pairs * n_var, n_max)
    classes = class_names(ds_cfg)
    jets_cols = {k: stack(k).reshape(-1) for k in ("pt", "eta", "phi", "mass", "n2")}
    jets_cols.update(
        label=np.full(n_pairs * n_var, classes.index(process.label)),
        process=np.full(n_pairs * n_var, list(ds_cfg["processes"]).index(process_name)),
        variant=np.tile(np.arange(n_var), n_pairs),
        pair_id=np.repeat(idx, n_var),
        chunk=np.full(n_pairs * n_var, chunk),
        event=np.repeat(idx, n_var),
        parton_pid=np.repeat(parton_pid[idx], n_var),
    )
    if process.boson is not None:
        jets_cols["parton_pid"] = np.full(n_pairs * n_var, process.boson)
    attrs = {
        "feature_names": RS3L_FEATURES,
        "class_names": classes,
        "process_names": list(ds_cfg["processes"]),
        "variant_names": variants,
        "dataset": dataset,
        "split": split,
        "detector": ds_cfg["detector"],
        "detector_sha256": card_sha,
        "code_version": __version__,
        "config_json": dict(ds_cfg),
    }
    write_jet_dataset(out_path, particles, mask, jets_cols, attrs)
    total = time.perf_counter() - t0
    return {
        "hard_events": n,
        "kept_pairs": n_pairs,
        "efficiency_all_variants": n_pairs / max(n, 1),
        "seconds": total,
        "hard_events_per_s": n / total,
        "timing": timing,
    }


def _np(a) -> np.ndarray:
    import awkward as ak

    return ak.to_numpy(a).astype(np.float32)
