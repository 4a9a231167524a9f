"""The real Delphes (``delphes_cms``) against our parametric ``cms_eflow`` on the same events.

Why: ``cms_eflow`` re-implements Delphes' CMS card in numpy; the RS3L samples
(arXiv:2403.07066, §II B) are genuine Delphes E-flow candidates. This script showers the
same RS3L hard events once (nominal variant), runs every detector on the *same* particles
and compares, per class: jet p_T and soft-drop mass response and resolution (reco / particle
level, matched by event), constituent multiplicity per candidate type, the p_T fractions
carried by tracks, photons and neutral hadrons, and the rejection of a small supervised
tagger (a gradient-boosted classifier on jet-level features, 5-fold out-of-fold scores) at
RS3L Table II/IV signal efficiencies. It writes ``summary.json``, ``tables.md`` and small
PNGs into ``--out`` (docs/validation/ for the committed note).

Set ``OMP_NUM_THREADS=1`` on a shared machine (the classifier's OpenMP threads spin
otherwise). Needs ``DelphesHepMC3`` on PATH (see docs/validation/delphes.md for the build), the
``[delphes]`` extra and scikit-learn. Not run by the tests (minutes of CPU)::

    PATH=/path/to/delphes:$PATH nice -n 10 .venv/bin/python bench/delphes_vs_eflow.py \
        --events 1000 --chunks 4 --out docs/validation
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from jetforge.config import compose_config
from jetforge.datasets.chunk import truth_table
from jetforge.detector import load_card, simulate
from jetforge.generation.hard import write_hard_chunk
from jetforge.generation.shower import shower_lhe
from jetforge.io.lhe import read_lhe
from jetforge.jets.cluster import JetSelection, cluster_and_select
from jetforge.jets.substructure import n2 as n2_of

CLASSES = ("qcd_zjet", "hbb_zh", "wqq_wjet")
#: loose selection for the response (both levels): no mass cut, low p_T threshold, so the
#: response is not sculpted by a threshold; the RS3L selection is used for the tagger
RESPONSE_SEL = JetSelection(R=0.8, pt_min=200.0, mass_min=0.0, eta_max=1.0, match_dr=0.8)
EFFICIENCIES = (0.3, 0.5, 0.7)  # RS3L Tables II and IV


def detectors() -> dict[str, dict[str, Any] | None]:
    """The detectors compared; ``None`` is particle level (visible final-state particles)."""
    eflow, _ = load_card("cms_eflow")
    before = copy.deepcopy(eflow)  # the card as it was before this comparison
    hcal = next(c for c in before["calorimeters"] if c["name"] == "hcal")
    hcal["significance_min"] = 2.0  # Delphes' CMS HCal: 1.0
    before["tracking"]["use_momentum_vector"] = True  # Delphes: position eta
    return {
        "particle": None,
        "delphes_cms": load_card("delphes_cms")[0],
        "cms_eflow": eflow,
        "cms_eflow_before": before,
    }


def particle_level(particles: ak.Array) -> ak.Array:
    """Visible final-state particles in the candidate layout the jet code reads."""
    apid = abs(particles.pid)
    vis = particles[(apid != 12) & (apid != 14) & (apid != 16)]
    ch = vis.charge != 0
    return ak.zip(
        {
            "px": vis.px, "py": vis.py, "pz": vis.pz, "E": vis.E, "charge": vis.charge,
            "is_ch": ch, "is_photon": vis.pid == 22, "is_nh": ~ch & (vis.pid != 22),
            "d0": vis.px * 0, "d0_err": vis.px * 0,
        }
    )  # fmt: skip


def soft_drop_mass(consts: ak.Array) -> np.ndarray:
    """Soft-drop mass (β = 0, z_cut = 0.1, R0 = 0.8; CMS's choice) of each jet."""
    import fastjet

    out = np.zeros(len(consts))
    has = ak.to_numpy(ak.num(consts)) > 1
    if not has.any():
        return out
    sub = consts[has]
    four = ak.zip({k: sub[k] for k in ("px", "py", "pz", "E")})
    cs = fastjet.ClusterSequence(four, fastjet.JetDefinition(fastjet.cambridge_algorithm, 4.0))
    groomed = cs.exclusive_jets_softdrop_grooming(njets=1, beta=0, symmetry_cut=0.1, R0=0.8)
    m2 = groomed.msoftdrop if "msoftdrop" in groomed.fields else None
    if m2 is None:
        p4 = groomed.jetp4
        m2 = np.sqrt(np.maximum(p4.E**2 - p4.px**2 - p4.py**2 - p4.pz**2, 0))
    out[has] = np.asarray(ak.to_numpy(ak.flatten(m2, axis=None)), dtype=np.float64)
    return out


def jet_table(cands: ak.Array, teta: np.ndarray, tphi: np.ndarray, sel: JetSelection) -> dict:
    """Per-event columns of the selected jet (zeros where none): kinematics, composition."""
    selected, jets, consts = cluster_and_select(cands, teta, tphi, sel)
    pt_c = np.hypot(consts.px, consts.py)
    out = {"selected": selected, "pt": ak.to_numpy(jets.pt), "mass": ak.to_numpy(jets.mass)}
    out["msd"] = soft_drop_mass(consts)
    for kind in ("is_ch", "is_photon", "is_nh"):
        flag = consts[kind] != 0
        out[f"n_{kind[3:]}"] = ak.to_numpy(ak.sum(flag, axis=1))
        out[f"f_{kind[3:]}"] = ak.to_numpy(ak.sum(pt_c * flag, axis=1)) / np.maximum(
            ak.to_numpy(ak.sum(pt_c, axis=1)), 1e-9
        )
    out["n2"] = np.zeros(len(selected))
    if selected.any():  # N2 is O(n^3) per jet: selected jets only
        out["n2"][selected] = n2_of(consts[selected])
    out.update(_ip_features(consts, pt_c))
    return out


def _ip_features(consts: ak.Array, pt_c: ak.Array) -> dict[str, np.ndarray]:
    """Displaced-track summaries (what separates H -> bb from light jets): the largest
    |d0| and the number of tracks with |d0| > 0.1 mm among tracks of p_T > 1 GeV."""
    trk = (consts.charge != 0) & (pt_c > 1.0)
    d0 = abs(consts.d0)[trk]
    return {
        "d0_max": ak.to_numpy(ak.fill_none(ak.max(d0, axis=1), 0.0)),
        "n_displaced": ak.to_numpy(ak.sum(d0 > 0.1, axis=1)),
    }


def simulate_class(
    process: str, ds: dict, n_events: int, n_chunks: int, work: Path
) -> dict[str, dict]:
    """Hard events -> one nominal shower -> every detector; per detector two jet tables
    (loose selection for the response, RS3L selection for the tagger)."""
    cfg = {**ds, "events_per_chunk": n_events}
    nominal = [*ds["shower"]["base_settings"], *next(iter(ds["shower"]["variants"].values()))]
    per_det: dict[str, list[dict]] = {}
    timing: dict[str, float] = {}
    for chunk in range(n_chunks):
        lhe = work / f"{process}_{chunk}.lhe"
        write_hard_chunk(lhe, cfg, "delphes_validation", process, "test", chunk, 7)
        _, events = read_lhe(lhe, n_events)
        teta, tphi, _ = truth_table(events, process, lhe)
        particles, ok = shower_lhe(lhe, len(events), nominal, 1000 + chunk, hard_events=events)
        keep = np.flatnonzero(ok)
        particles, teta, tphi = particles[keep], teta[keep], tphi[keep]
        for name, card in detectors().items():
            t0 = time.perf_counter()
            rng = np.random.default_rng([chunk, 11])
            cands = particle_level(particles) if card is None else simulate(particles, card, rng)
            timing[name] = timing.get(name, 0.0) + time.perf_counter() - t0
            loose = jet_table(cands, teta, tphi, RESPONSE_SEL)
            rs3l = jet_table(cands, teta, tphi, JetSelection(**ds["jets"]))
            per_det.setdefault(name, []).append({"loose": loose, "rs3l": rs3l})
    out = {}
    for name, parts in per_det.items():
        out[name] = {
            sel: {k: np.concatenate([p[sel][k] for p in parts]) for k in parts[0][sel]}
            for sel in ("loose", "rs3l")
        }
        out[name]["seconds"] = timing[name]
    return out


def ratio(reco: dict, gen: dict, key: str) -> np.ndarray:
    """reco/gen of ``key`` over events selected at both levels (gen soft-drop mass > 10 GeV:
    below it the ratio is dominated by single-prong jets groomed to almost nothing)."""
    both = reco["selected"] & gen["selected"] & (gen[key] > (1.0 if key == "pt" else 10.0))
    return reco[key][both] / gen[key][both]


def response(reco: dict, gen: dict, key: str) -> dict[str, float]:
    """Median and half the 16-84 % interval (relative to the median) of reco/gen: robust
    against the tails a few mis-clustered jets give."""
    r = ratio(reco, gen, key)
    if not r.size:
        return {"median": float("nan"), "resolution": float("nan"), "n": 0}
    q16, q50, q84 = np.percentile(r, [16, 50, 84])
    return {"median": float(q50), "resolution": float((q84 - q16) / 2 / q50), "n": int(r.size)}


def composition(table: dict) -> dict[str, float]:
    """Mean multiplicity and p_T fraction per candidate type over selected jets."""
    sel = table["selected"]
    out: dict[str, float] = {"jets": int(sel.sum())}
    for kind in ("ch", "photon", "nh"):
        out[f"n_{kind}"] = float(table[f"n_{kind}"][sel].mean()) if sel.any() else float("nan")
        out[f"f_{kind}"] = float(table[f"f_{kind}"][sel].mean()) if sel.any() else float("nan")
    return out


FEATURES = ("pt", "mass", "msd", "n2", "n_ch", "n_photon", "n_nh", "f_ch", "f_photon", "f_nh",
            "d0_max", "n_displaced")  # fmt: skip


def rejections(sig: dict, bkg: dict, seed: int = 0) -> dict[str, Any]:
    """Background rejection 1/ε_B at each signal efficiency of a gradient-boosted tagger on
    :data:`FEATURES`, from 5-fold out-of-fold scores (every jet is scored by a model that
    did not train on it). A rejection with no background left is reported as a lower
    bound (``">N"``, N = background jets)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold

    def matrix(t: dict) -> np.ndarray:
        return np.stack([t[f][t["selected"]] for f in FEATURES], axis=1)

    x = np.concatenate([matrix(sig), matrix(bkg)])
    y = np.concatenate([np.ones(int(sig["selected"].sum())), np.zeros(int(bkg["selected"].sum()))])
    score = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
        clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
        score[test] = clf.fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    out: dict[str, Any] = {"n_sig": int(y.sum()), "n_bkg": int((1 - y).sum())}
    for eff in EFFICIENCIES:
        thr = np.quantile(score[y == 1], 1.0 - eff)
        fpr = float(np.mean(score[y == 0] >= thr))
        out[f"R{int(eff * 100)}"] = 1.0 / fpr if fpr > 0 else f">{out['n_bkg']}"
    from sklearn.metrics import roc_auc_score

    out["auc"] = float(roc_auc_score(y, score))
    return out


def summarise(results: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """Every number of the note, as JSON-able dicts keyed by class then detector."""
    summary: dict[str, Any] = {"response": {}, "composition": {}, "tagger": {}, "seconds": {}}
    for proc, per_det in results.items():
        gen = per_det["particle"]["loose"]
        summary["response"][proc] = {
            det: {k: response(t["loose"], gen, k) for k in ("pt", "msd")}
            for det, t in per_det.items() if det != "particle"
        }  # fmt: skip
        summary["composition"][proc] = {d: composition(t["rs3l"]) for d, t in per_det.items()}
        summary["seconds"][proc] = {d: t["seconds"] for d, t in per_det.items()}
    for sig, task in (("hbb_zh", "hbb_vs_qcd"), ("wqq_wjet", "wqq_vs_qcd")):
        summary["tagger"][task] = {
            det: rejections(results[sig][det]["rs3l"], results["qcd_zjet"][det]["rs3l"])
            for det in results[sig]
        }
    return summary


def figures(results: dict[str, dict[str, dict]], out: Path) -> None:
    """Two small PNGs: response distributions and candidate composition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dets = ("delphes_cms", "cms_eflow", "cms_eflow_before")
    style = {"delphes_cms": ("k", "-"), "cms_eflow": ("C0", "-"), "cms_eflow_before": ("C1", ":")}
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.5), sharey="row")
    for col, proc in enumerate(CLASSES):
        gen = results[proc]["particle"]["loose"]
        for row, (key, lo, hi) in enumerate((("pt", 0.85, 1.15), ("msd", 0.5, 1.5))):
            ax = axes[row, col]
            for det in dets:
                c, ls = style[det]
                r = ratio(results[proc][det]["loose"], gen, key)
                ax.hist(r, bins=40, range=(lo, hi), histtype="step", density=True, color=c,
                        ls=ls, label=det)  # fmt: skip
            ax.set_xlabel(f"{'p_T' if key == 'pt' else 'soft-drop mass'} reco / particle")
            ax.set_title(proc, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "delphes_response.png", dpi=70)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    width = 0.2
    all_dets = ("particle", *dets)
    for k, det in enumerate(all_dets):
        for ax, what in zip(axes, ("n", "f"), strict=True):
            vals = [
                composition(results[p][det]["rs3l"])[f"{what}_{t}"]
                for p in CLASSES for t in ("ch", "photon", "nh")
            ]  # fmt: skip
            ax.bar(np.arange(9) + (k - 1.5) * width, vals, width, label=det)
    for ax, label in zip(axes, ("mean constituents per jet", "mean p_T fraction"), strict=True):
        ax.set_xticks(np.arange(9))
        ax.set_xticklabels([f"{p.split('_')[0]}\n{t}" for p in CLASSES for t in ("trk", "γ", "NH")],
                           fontsize=7)  # fmt: skip
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "delphes_composition.png", dpi=70)
    plt.close(fig)


def _fmt(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def markdown(summary: dict[str, Any]) -> str:
    """The note's tables from ``summary`` (so the numbers in the note are the JSON's)."""
    dets = ("delphes_cms", "cms_eflow", "cms_eflow_before")
    lines = ["| class | observable | " + " | ".join(dets) + " |", "|---|---|---|---|---|"]
    for proc, per_det in summary["response"].items():
        for key, label in (("pt", "p_T"), ("msd", "m_SD")):
            cells = [
                f"{_fmt(per_det[d][key]['median'])} / {_fmt(per_det[d][key]['resolution'])}"
                for d in dets
            ]
            n = per_det["delphes_cms"][key]["n"]
            lines.append(f"| {proc} | {label} (n = {n}) | " + " | ".join(cells) + " |")
    lines += ["", "| class | detector | jets | n trk | n γ | n NH | f trk | f γ | f NH |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for proc, per_det in summary["composition"].items():
        for det, c in per_det.items():
            vals = [c["jets"]] + [_fmt(c[f"n_{k}"], 1) for k in ("ch", "photon", "nh")]
            vals += [_fmt(c[f"f_{k}"]) for k in ("ch", "photon", "nh")]
            lines.append(f"| {proc} | {det} | " + " | ".join(map(str, vals)) + " |")
    lines += ["", "| task | detector | n sig / n bkg | AUC | R30 | R50 | R70 |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for task, per_det in summary["tagger"].items():
        for det, r in per_det.items():
            vals = [f"{r['n_sig']} / {r['n_bkg']}", _fmt(r["auc"])]
            vals += [_fmt(r[f"R{e}"], 1) for e in (30, 50, 70)]
            lines.append(f"| {task} | {det} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="hard events per chunk")
    parser.add_argument("--chunks", type=int, default=4, help="chunks per class")
    parser.add_argument("--out", type=Path, default=Path("docs/validation"))
    parser.add_argument("--render", action="store_true", help="only print the tables of --out")
    parser.add_argument("--cache", type=Path, help="pickle of the jet tables (read if present)")
    args = parser.parse_args()
    if args.render:
        print(markdown(json.loads((args.out / "delphes_summary.json").read_text())))
        return
    ds = compose_config(["config/config.yaml"])["datasets"]["rs3l"]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cache is not None and args.cache.is_file():  # the jet tables of an earlier run
        results = pickle.loads(args.cache.read_bytes())
    else:
        with tempfile.TemporaryDirectory(prefix="delphes-validation-") as tmp:
            results = {
                p: simulate_class(p, ds, args.events, args.chunks, Path(tmp)) for p in CLASSES
            }
        if args.cache is not None:
            args.cache.write_bytes(pickle.dumps(results))
    summary = summarise(results)
    summary["setup"] = {"events_per_chunk": args.events, "chunks_per_class": args.chunks}
    (args.out / "delphes_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    figures(results, args.out)
    print(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
