"""RS3L re-simulated jet datasets: every hard event showered under each variant.

One call turns one chunk of hard events (an LHE file) into one HDF5 chunk: for each variant
(nominal, new seed, FSR up/down, alternative shower; RS3L §II B) shower + hadronize,
simulate the detector, cluster, select and truth-match the jet. A variant may instead be a
hadronization fork of an earlier one (``{fork_of: nominal}``: same hard process and parton
shower, new hadronization and detector response; Rieck et al., arXiv:2503.11632 §2), so one
dataset carries every pair family on the same hard events (:mod:`jetforge.datasets.variants`).
A hard event is kept only if its jet passes in *every* variant ("these requirements are
also imposed for all augmentations of a given nominal jet"), so every kept event is a
complete pair set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from jetforge.datasets.chunk import (
    ChunkId,
    chunk_attrs,
    class_names,
    interleave,
    pair_columns,
    timed,
    truth_table,
)
from jetforge.datasets.variants import VariantSpec, parse_variants
from jetforge.detector import load_card, simulate
from jetforge.generation.processes import get_process
from jetforge.generation.resim_fork import shower_lhe_forked
from jetforge.generation.seeds import PYTHIA_SEED_MAX
from jetforge.generation.shower import shower_lhe
from jetforge.io.h5 import write_jet_dataset
from jetforge.io.lhe import chunk_min_events, read_lhe
from jetforge.jets.cluster import JetSelection, cluster_and_select
from jetforge.jets.features import RS3L_FEATURES, rs3l_features
from jetforge.jets.substructure import n2 as n2_of

__all__ = ["build_resim_chunk", "class_names"]

#: Per-jet columns every variant fills (zeros where the event's jet failed).
_JET_KEYS = ("n2", "pt", "eta", "phi", "mass")


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
    _, events = read_lhe(lhe_path, chunk_min_events(ds_cfg))
    n = len(events)
    truth_eta, truth_phi, parton_pid = truth_table(events, process_name, lhe_path)
    card, card_sha = load_card(ds_cfg["detector"])
    shower = ds_cfg["shower"]
    specs = parse_variants(shower["variants"])
    selection = JetSelection(**ds_cfg["jets"])
    cid = ChunkId(dataset, process_name, split, chunk, base_seed)
    per_variant: list[dict[str, np.ndarray]] = []
    passed_consts: list[tuple[np.ndarray, ak.Array]] = []
    keep = np.ones(n, dtype=bool)
    timing: dict[str, float] = {}
    forked: dict[str, tuple[ak.Array, np.ndarray]] = {}  # fork variant -> (particles, ok)
    for spec in specs:
        variant = spec.name
        with timed(timing, f"shower_{variant}"):
            if spec.fork_of is not None:
                particles, ok = forked.pop(variant)
            else:
                particles, ok = _shower_variant(
                    lhe_path, n, spec, specs, [*shower["base_settings"], *spec.settings], cid,
                    events, forked,
                )  # fmt: skip
        with timed(timing, f"reco_{variant}"):
            # Only events whose jet passed in every earlier variant can still form a pair:
            # the detector, clustering and features run on those alone (the shower cannot
            # be skipped, it must consume each LHE event to stay aligned).
            cols, passed, consts = _reco_variant(
                particles, np.flatnonzero(keep & ok), truth_eta, truth_phi, card,
                cid.rng(variant, "detector"), selection, int(ds_cfg["n_particles"]),
            )  # fmt: skip
        per_variant.append(cols)
        passed_consts.append((passed, consts))
        keep &= np.isin(np.arange(n), passed)
    idx = np.flatnonzero(keep)
    with timed(timing, "n2"):
        _fill_n2(per_variant, passed_consts, idx)
    _write_pairs(out_path, per_variant, idx, parton_pid, ds_cfg, cid, card_sha)
    total = time.perf_counter() - t0
    return {
        "hard_events": n,
        "kept_pairs": len(idx),
        "efficiency_all_variants": len(idx) / max(n, 1),
        "seconds": total,
        "hard_events_per_s": n / total,
        "timing": timing,
    }


def _shower_variant(
    lhe_path: str | os.PathLike[str],
    n: int,
    spec: VariantSpec,
    specs: list[VariantSpec],
    settings: list[str],
    cid: ChunkId,
    events: Any,
    forked: dict[str, tuple[ak.Array, np.ndarray]],
) -> tuple[ak.Array, np.ndarray]:
    """Shower one settings variant; its fork variants' particles go into ``forked``.

    A variant nothing forks runs exactly as before forks existed (:func:`shower_lhe`);
    one that is forked runs the same Pythia with a parton-capturing hook, whose events are
    the same bytes (:mod:`jetforge.generation.resim_fork`). Each fork event's hadronization
    seed derives from the chunk, the fork's name and the event's index.
    """
    seed = cid.seed(spec.name, "shower")
    forks = [s.name for s in specs if s.fork_of == spec.name]
    if not forks:
        return shower_lhe(lhe_path, n, settings, seed, hard_events=events)
    fork_seeds = [
        cid.rng(f, "hadronization").integers(1, PYTHIA_SEED_MAX, size=n, endpoint=True)
        for f in forks
    ]
    out = shower_lhe_forked(lhe_path, n, settings, seed, fork_seeds, hard_events=events)
    forked.update(zip(forks, out.forks, strict=True))
    return out.particles, out.ok


def _reco_variant(
    particles: Any,
    alive: np.ndarray,
    truth_eta: np.ndarray,
    truth_phi: np.ndarray,
    card: Mapping[str, Any],
    rng: np.random.Generator,
    selection: JetSelection,
    n_max: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, ak.Array]:
    """Detector, jet selection and features of one variant's ``alive`` events.

    Returns the variant's columns over all n events (zeros where no jet passed; ``n2``
    is filled by :func:`_fill_n2` once the kept pairs are known), the indices of the events
    whose jet passed, and those jets' constituents.
    """
    n = len(truth_eta)
    cands = simulate(particles[alive], card, rng)
    selected, jets, consts = cluster_and_select(
        cands, truth_eta[alive], truth_phi[alive], selection
    )
    passed = alive[selected]
    x, mask = rs3l_features(jets[selected], consts[selected], n_max=n_max)
    cols = {
        "particles": np.zeros((n, n_max, x.shape[-1]), np.float32),
        "mask": np.zeros((n, n_max), bool),
        **{k: np.zeros(n, np.float32) for k in _JET_KEYS},
    }
    cols["particles"][passed], cols["mask"][passed] = x, mask
    for k in ("pt", "eta", "phi", "mass"):
        cols[k][passed] = ak.to_numpy(jets[k][selected]).astype(np.float32)
    return cols, passed, consts[selected]


def _fill_n2(
    per_variant: list[dict[str, np.ndarray]],
    passed_consts: list[tuple[np.ndarray, ak.Array]],
    idx: np.ndarray,
) -> None:
    """N2 of the jets of the kept pairs ``idx`` only, into each variant's ``n2`` column.

    Why here and not per variant: N2 (a fastjet energy correlator per jet) was the largest
    cost after the shower, and most jets that pass one variant fail a later one (RS3L hbb:
    ~30 % pass the nominal, ~6 % all five), so computing it only for pairs that are written
    does a fifth of the work. Each jet's N2 depends on its own constituents alone, so the
    values are the same.
    """
    if idx.size == 0:
        return
    for cols, (passed, consts) in zip(per_variant, passed_consts, strict=True):
        cols["n2"][idx] = n2_of(consts[np.searchsorted(passed, idx)])


def _write_pairs(
    out_path: str | os.PathLike[str],
    per_variant: list[dict[str, np.ndarray]],
    idx: np.ndarray,
    parton_pid: np.ndarray,
    ds_cfg: Mapping[str, Any],
    cid: ChunkId,
    card_sha: str,
) -> None:
    """Write the kept hard events ``idx`` as interleaved pairs (data contract 4)."""
    process = get_process(cid.process)
    variants = list(ds_cfg["shower"]["variants"])
    kept = [{k: v[idx] for k, v in cols.items()} for cols in per_variant]
    classes = class_names(ds_cfg)
    processes = list(ds_cfg["processes"])
    jets_cols = {k: interleave(kept, k) for k in ("pt", "eta", "phi", "mass", "n2")}
    jets_cols.update(
        pair_columns(
            len(idx), len(variants), cid.chunk, processes.index(cid.process),
            label=classes.index(process.label), pair_id=idx, event=idx,
            parton_pid=parton_pid[idx] if process.boson is None else process.boson,
        )
    )  # fmt: skip
    attrs = chunk_attrs(
        ds_cfg, cid.dataset, cid.split, feature_names=RS3L_FEATURES, class_names=classes,
        process_names=processes, variant_names=variants, detector=ds_cfg["detector"],
        detector_sha256=card_sha,
    )  # fmt: skip
    write_jet_dataset(
        out_path, interleave(kept, "particles"), interleave(kept, "mask"), jets_cols, attrs
    )
