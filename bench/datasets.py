"""Benchmark + physics validation of the single-shower datasets (jetforge.datasets.single).

    .venv/bin/python bench/datasets.py [--events 400] [--datasets jetclass,toptag]
        [--processes tbqq_tt,...] [--repeats 3] [--memory-events 2000] [--validate 1500]
        [--out DIR]

Per (dataset, process), each step in a fresh child process (so that CPU time and peak
memory are the job's own, as in a Snakemake chunk job):

* **bare**: one Pythia with the dataset's shower settings reading the same LHE file and
  calling ``nextBatch`` in the same batches (nothing else);
* **jetforge**: the full chunk build (shower, detector, clustering, selection, truth
  matching, features, N2, HDF5).

Throughput is reported per core as hard events per *CPU* second (user + sys of the child):
on a shared machine wall time measures the neighbours, CPU time measures the job. Printed:
events/s per core (bare and full), overhead of everything that is not Pythia, selected
jets per hard event, bytes per jet on disk, and the job's peak RSS, then the full build's
CPU seconds per phase (``timing`` of the chunk build: Pythia init, LHE reading, nextBatch,
event-record extraction, detector, clustering + selection, features, HDF5 write).

The bare run uses the *same* shower seed as the chunk build, so both shower exactly the
same events and the difference is the overhead alone (not event-to-event fluctuations of
the shower time). ``--repeats R`` (default 3) runs bare and full R times each, alternating,
and reports the minimum and the median CPU time of each and the overhead from both:
neighbours on a shared machine only ever add CPU time (cache and SMT contention), so the
minimum is the most reproducible estimate and the median shows the spread.

``--baseline-src DIR`` also builds every chunk with the jetforge package found in DIR (the
``src`` folder of another checkout, e.g. ``git archive <commit> src resources | tar -x -C
/tmp/old``, then ``--baseline-src /tmp/old/src``), interleaved with the bare and full runs
so that both see the same machine load, checks that its HDF5 content is identical, and
prints its overhead on the line below: a before/after comparison in one run.

``--memory-events N`` builds one N-event chunk (JetClass t → bqq', the busiest events) to
show that peak memory is bounded by ``batch_events``, not the chunk size.

``--validate N`` builds particle-level (and detector-level) samples of N hard events per
resonance class with the JetClass setup, and q/g samples with the quark–gluon setup and
the JetNet setup, and runs :func:`jetforge.datasets.validation.validate_dataset` on them:
the 3 % mass-peak check at particle level, the report at detector level, the multiplicity
check. Figures and validation.json land in ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

#: default (dataset, process) pairs: every process of every dataset kind
DEFAULT_PAIRS = {
    "jetclass": [
        "qcd_zjet",
        "hbb_zh",
        "hcc_zh",
        "hgg_zh",
        "h4q_zh",
        "hlvqq_zh",
        "zqq_zjet",
        "wqq_wjet",
        "tbqq_tt",
        "tblv_tt",
    ],
    "jetnet": ["zjet_g", "zjet_q", "tbqq_tt", "wqq_wjet", "zqq_zjet"],
    "rodem": ["qcd_dijet", "tbqq_tt"],
    "toptag": ["qcd_dijet", "tbqq_tt"],
    "quarkgluon": ["zjet_q", "zjet_g"],
}
PEAK_PROCESSES = ["wqq_wjet", "zqq_zjet", "tbqq_tt", "hbb_zh", "hcc_zh", "hgg_zh", "h4q_zh"]


def load_configs() -> dict:
    from jetforge.detector import known_cards

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"]
    for ds in cfg.values():
        if ds["detector"] not in ("none", *known_cards()):
            print(
                f"note: detector card {ds['detector']!r} not found, using cms_eflow",
                file=sys.stderr,
            )
            ds["detector"] = "cms_eflow"
    return cfg


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _shower_seed(ds: dict, dataset: str, process: str) -> int:
    """The shower seed :func:`_full`'s chunk build uses (split "bench", chunk 0, base 1)."""
    from jetforge.datasets.single import parse_config
    from jetforge.generation.seeds import derive_seed

    variant = parse_config(ds).variant
    return derive_seed(dataset, process, "bench", 0, variant, "shower", base=1)


def _bare(lhe: str, ds: dict, n: int, seed: int = 12345) -> dict:
    from jetforge.datasets.single import parse_config
    from jetforge.generation.pythia_setup import make_pythia

    cfg = parse_config(ds)
    c0, w0 = _cpu(), time.perf_counter()
    py = make_pythia(["Beams:frameType = 4", f"Beams:LHEF = {lhe}", *cfg.settings], seed)
    c1 = _cpu()
    for start in range(0, n, cfg.batch_events):
        py.nextBatch(min(cfg.batch_events, n - start), "none")
    c2 = _cpu()
    return {
        "cpu_init": c1 - c0,
        "cpu_batches": c2 - c1,
        "cpu": c2 - c0,
        "wall": time.perf_counter() - w0,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _full(
    lhe: str, out: str, ds: dict, dataset: str, process: str, src: str | None = None
) -> dict:
    if src is not None:  # another checkout's jetforge (a fresh child: nothing imported yet)
        sys.path.insert(0, src)
    from jetforge.datasets.single import build_jets_chunk

    c0, w0 = _cpu(), time.perf_counter()
    stats = build_jets_chunk(lhe, out, ds, dataset, process, "bench", 0, 1)
    stats.update(
        cpu=_cpu() - c0,
        wall=time.perf_counter() - w0,
        rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        bytes=Path(out).stat().st_size,
    )
    return stats


def _hard(lhe: str, ds: dict, dataset: str, process: str) -> dict:
    from jetforge.datasets.single import generate_chunk_lhe

    c0 = _cpu()
    run = generate_chunk_lhe(lhe, ds, dataset, process, "bench", 0, 1)
    return {"cpu": _cpu() - c0, "acceptance": run["acceptance"]}


def in_child(fn, *args):
    """Run ``fn(*args)`` in a fresh interpreter; its CPU time and peak RSS are its own."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def _same_content(a: str, b: str) -> bool:
    """Same datasets (names, dtypes, values) and the same attributes in two HDF5 files."""
    import h5py
    import numpy as np

    def items(f):
        out = {}
        f.visititems(lambda k, v: out.update({k: v[()]}) if isinstance(v, h5py.Dataset) else None)
        return out, {k: np.asarray(v).tolist() for k, v in f.attrs.items()}

    with h5py.File(a) as fa, h5py.File(b) as fb:
        (da, aa), (db, ab) = items(fa), items(fb)
    if aa != ab or sorted(da) != sorted(db):
        return False
    return all(
        da[k].dtype == db[k].dtype and np.array_equal(da[k], db[k], equal_nan=True) for k in da
    )


def bench_pair(
    tmp: Path,
    cfgs: dict,
    dataset: str,
    process: str,
    n: int,
    repeats: int = 1,
    baseline_src: str | None = None,
) -> dict:
    ds = copy.deepcopy(cfgs[dataset])
    ds["events_per_chunk"] = n
    lhe, out = str(tmp / f"{dataset}_{process}.lhe"), str(tmp / f"{dataset}_{process}.h5")
    hard = in_child(_hard, lhe, ds, dataset, process)
    seed = _shower_seed(ds, dataset, process)
    bares, fulls, bases = [], [], []
    base_out = str(tmp / f"{dataset}_{process}_baseline.h5")
    for _ in range(max(repeats, 1)):
        bares.append(in_child(_bare, lhe, ds, n, seed))
        fulls.append(in_child(_full, lhe, out, ds, dataset, process))
        if baseline_src:
            bases.append(in_child(_full, lhe, base_out, ds, dataset, process, baseline_src))
    bare = min(bares, key=lambda r: r["cpu"])
    full = min(fulls, key=lambda r: r["cpu"])
    med_bare = statistics.median(r["cpu"] for r in bares)
    med_full = statistics.median(r["cpu"] for r in fulls)
    jets = max(full["jets"], 1)
    # payload per jet: particles float32 [P, F] + mask bool [P] + the 12 jet columns (41 B)
    fs_width = len(
        __import__("jetforge.jets.featuresets", fromlist=["x"])
        .get_feature_set(ds["features"])
        .feature_names
    )
    payload = ds["n_particles"] * (4 * fs_width + 1) + 41
    row = {
        "dataset": dataset, "process": process, "events": n,
        "hard_ev_per_cpu_s": n / hard["cpu"], "hard_acceptance": hard["acceptance"],
        "bare_ev_per_cpu_s": n / bare["cpu"], "full_ev_per_cpu_s": n / full["cpu"],
        "overhead": full["cpu"] / bare["cpu"] - 1, "jets_per_event": full["jets"] / n,
        "jets_per_cpu_s": full["jets"] / full["cpu"], "bytes_per_jet": full["bytes"] / jets,
        "payload_bytes_per_jet": payload,
        "rss_mb": full["rss_mb"], "bare_rss_mb": bare["rss_mb"], "timing": full["timing"],
        "bare_cpu": bare["cpu"], "full_cpu": full["cpu"], "repeats": len(fulls),
        "bare_cpu_median": med_bare, "full_cpu_median": med_full,
        "overhead_median": med_full / med_bare - 1,
        "bare_cpu_all": [r["cpu"] for r in bares], "full_cpu_all": [r["cpu"] for r in fulls],
    }  # fmt: skip
    print(
        f"{dataset:10s} {process:9s} bare {row['bare_ev_per_cpu_s']:6.1f} ev/s  full "
        f"{row['full_ev_per_cpu_s']:6.1f} ev/s  overhead {100 * row['overhead']:5.1f} % (min), "
        f"{100 * row['overhead_median']:5.1f} % (median)  "
        f"jets/ev {row['jets_per_event']:.3f}  {row['bytes_per_jet']:6.0f} B/jet "
        f"(payload {payload})  "
        f"RSS {row['rss_mb']:5.0f} MB  (hard {row['hard_ev_per_cpu_s']:.0f} ev/s, acc "
        f"{row['hard_acceptance']:.2f})",
        flush=True,
    )
    phases = "  ".join(f"{k} {v:.3f}" for k, v in full["timing"].items())
    print(
        f"{'':21s}cpu s: bare min {bare['cpu']:.3f} median {med_bare:.3f} (init "
        f"{bare['cpu_init']:.3f})  full min {full['cpu']:.3f} median {med_full:.3f}  [{phases}]",
        flush=True,
    )
    if bases:
        base = min(bases, key=lambda r: r["cpu"])
        same = _same_content(out, base_out)
        row.update(
            baseline_cpu=base["cpu"], baseline_overhead=base["cpu"] / bare["cpu"] - 1,
            baseline_ev_per_cpu_s=n / base["cpu"], baseline_rss_mb=base["rss_mb"],
            baseline_bytes_per_jet=base["bytes"] / max(base["jets"], 1),
            baseline_cpu_all=[r["cpu"] for r in bases], baseline_identical=same,
        )  # fmt: skip
        print(
            f"{'':21s}baseline: full {row['baseline_ev_per_cpu_s']:6.1f} ev/s  overhead "
            f"{100 * row['baseline_overhead']:5.1f} %  cpu {base['cpu']:.3f} s  RSS "
            f"{base['rss_mb']:5.0f} MB  {row['baseline_bytes_per_jet']:6.0f} B/jet  output "
            f"{'identical' if same else 'DIFFERENT'}",
            flush=True,
        )
    return row


# ----------------------------------------------------------------------------- validation


def _build_many(tmp: Path, ds: dict, dataset: str, processes: list[str], n: int, tag: str) -> Path:
    from jetforge.io.h5 import merge_jet_datasets

    ds = copy.deepcopy(ds)
    ds["events_per_chunk"] = n
    ds["processes"] = processes
    files = []
    for p in processes:
        lhe = tmp / f"val_{dataset}_{p}.lhe"
        if not lhe.exists():
            in_child(_hard, str(lhe), ds, dataset, p)
        out = tmp / f"val_{dataset}_{p}_{tag}.h5"
        in_child(_full, str(lhe), str(out), ds, dataset, p)
        files.append(out)
    merged = tmp / f"val_{dataset}_{tag}.h5"
    merge_jet_datasets(files, merged)
    return merged


def run_validation(tmp: Path, cfgs: dict, n: int, out: Path, only: set[str]) -> dict:
    from jetforge.datasets.validation import PhysicsValidationError, validate_dataset

    results = {}
    jc = copy.deepcopy(cfgs["jetclass"])
    jn_twin = copy.deepcopy(cfgs["jetnet"])
    # JetNet keeps 30 particles, which biases a mass recomputed from them (validation.py):
    # its physics is validated on a twin that stores 128
    jn_twin["n_particles"] = 128
    # (name, config, dataset, processes, detector)
    plans = [
        ("jetclass_particle", jc, "jetclass", PEAK_PROCESSES, "none"),
        ("jetclass_detector", jc, "jetclass", PEAK_PROCESSES, jc["detector"]),
        ("quarkgluon_particle", cfgs["quarkgluon"], "quarkgluon", ["zjet_q", "zjet_g"], "none"),
        (
            "jetnet_particle_n128",
            jn_twin,
            "jetnet",
            ["zjet_q", "zjet_g", "tbqq_tt", "wqq_wjet", "zqq_zjet"],
            "none",
        ),
    ]
    plans = [p for p in plans if not only or p[0] in only]
    for name, base, dataset, procs, detector in plans:
        ds = copy.deepcopy(base)
        ds["detector"] = detector
        t = time.perf_counter()
        merged = _build_many(tmp, ds, dataset, procs, n, detector)
        try:
            res = validate_dataset(merged, out / name)
        except PhysicsValidationError as err:
            res = json.loads((out / name / "validation.json").read_text())
            print(f"VALIDATION FAILED {name}: {err}", flush=True)
        results[name] = res
        peaks = {
            k: f"{v['peak']:.2f}±{v['peak_err']:.2f} ({100 * v['rel_shift']:+.1f} %, {v['status']})"
            for k, v in res.get("mass_peaks", {}).items()
        }
        plain = {k: f"{v['peak']:.1f}" for k, v in res.get("plain_mass_peaks", {}).items()}
        print(f"{name}: {time.perf_counter() - t:.0f} s, jets {res['n_jets']}", flush=True)
        print(f"  soft-drop peaks: {peaks}\n  plain-mass peaks: {plain}", flush=True)
        if "multiplicity" in res:
            print(f"  multiplicity: {res['multiplicity']}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=400, help="hard events per (dataset, process)")
    ap.add_argument("--datasets", default=",".join(DEFAULT_PAIRS))
    ap.add_argument("--processes", default="", help="restrict to these processes")
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs of bare and full each (min and median)"
    )
    ap.add_argument(
        "--baseline-src", default="", help="also time the chunk build of the jetforge in DIR"
    )
    ap.add_argument("--memory-events", type=int, default=0)
    ap.add_argument("--validate", type=int, default=0, help="hard events per class for validation")
    ap.add_argument("--plans", default="", help="restrict --validate to these plans")
    ap.add_argument("--out", default="results/bench/datasets")
    args = ap.parse_args()
    cfgs = load_configs()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = set(filter(None, args.processes.split(",")))
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if args.events:
            for dataset in args.datasets.split(","):
                for process in DEFAULT_PAIRS[dataset]:
                    if not only or process in only:
                        rows.append(
                            bench_pair(
                                tmp, cfgs, dataset, process, args.events, args.repeats,
                                args.baseline_src or None,
                            )
                        )
        if args.memory_events:
            ds = copy.deepcopy(cfgs["jetclass"])
            ds["events_per_chunk"] = args.memory_events
            lhe = str(tmp / "mem.lhe")
            in_child(_hard, lhe, ds, "jetclass", "tbqq_tt")
            for batch in (250, 1000):
                ds["batch_events"] = batch
                st = in_child(_full, lhe, str(tmp / "mem.h5"), ds, "jetclass", "tbqq_tt")
                print(
                    f"memory: {args.memory_events} tt events, batch_events {batch}: peak RSS "
                    f"{st['rss_mb']:.0f} MB, {st['jets']} jets",
                    flush=True,
                )
        plans = set(filter(None, args.plans.split(",")))
        validation = run_validation(tmp, cfgs, args.validate, out, plans) if args.validate else {}
    (out / "bench.json").write_text(
        json.dumps({"rows": rows, "validation": validation}, indent=1, default=str)
    )


if __name__ == "__main__":
    main()
