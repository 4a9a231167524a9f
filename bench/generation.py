"""Benchmark: RS3L re-simulation throughput against bare Pythia on the same events.

    .venv/bin/python bench/generation.py [--events 1000] [--process hbb_zh]

"bare" = for each of the five variants, one Pythia reading the same LHE file and calling
``nextBatch`` (nothing else); "jetforge" = the full chunk build (five showers, detector,
clustering, selection, features, N2, HDF5). Both single-core. Prints hard events/s and the
overhead of everything that is not Pythia.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import yaml

from jetforge.datasets.resim import build_resim_chunk
from jetforge.generation.pythia_setup import make_pythia
from jetforge.workflow.steps import hard_process

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--process", default="hbb_zh")
    args = ap.parse_args()
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    ds = dict(cfg["datasets"]["rs3l"], events_per_chunk=args.events)
    with tempfile.TemporaryDirectory() as tmp:
        lhe = Path(tmp) / "hard.lhe"
        t = time.perf_counter()
        hard_process(str(lhe), ds, "rs3l", args.process, "bench", 0, 1)
        t_hard = time.perf_counter() - t

        t = time.perf_counter()
        for i, extra in enumerate(ds["shower"]["variants"].values()):
            py = make_pythia(
                ["Beams:frameType = 4", f"Beams:LHEF = {lhe}",
                 *ds["shower"]["base_settings"], *extra],
                100 + i,
            )
            py.nextBatch(args.events, "none")
        t_bare = time.perf_counter() - t

        t = time.perf_counter()
        stats = build_resim_chunk(
            lhe, Path(tmp) / "jets.h5", ds, "rs3l", args.process, "bench", 0, 1
        )
        t_full = time.perf_counter() - t
        size = (Path(tmp) / "jets.h5").stat().st_size
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = args.events
    print(f"process {args.process}, {n} hard events, {len(ds['shower']['variants'])} variants")
    print(f"hard process (Pythia, PartonLevel off, cuts): {t_hard:.2f} s = "
          f"{n / t_hard:.0f} accepted ev/s")
    print(f"bare nextBatch, all variants:                 {t_bare:.2f} s = "
          f"{n / t_bare:.0f} hard ev/s")
    print(f"jetforge chunk build, all variants:           {t_full:.2f} s = "
          f"{n / t_full:.0f} hard ev/s")
    print(f"overhead over bare Pythia: {100 * (t_full / t_bare - 1):.0f} %")
    print(f"kept pairs: {stats['kept_pairs']} ({100 * stats['efficiency_all_variants']:.1f} %), "
          f"{size / max(stats['kept_pairs'] * len(ds['shower']['variants']), 1):.0f} "
          "bytes/jet on disk")
    print(f"timing: { {k: round(v, 2) for k, v in stats['timing'].items()} }")
    print(f"peak RSS: {rss:.0f} MB")


if __name__ == "__main__":
    main()
