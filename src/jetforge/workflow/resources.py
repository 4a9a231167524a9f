"""Memory and run time each rule declares, as functions of the config.

Why functions: a Slurm job is killed at its declared memory and time, and a declaration
far above the need wastes the queue (the constants before this module were 3–25× the
measured peaks, and the same for a 600-event demo chunk as for a 20,000-event paper chunk).
Each formula here is a measured cost per unit of work times the work the config asks for:

* **Coefficients** come from the Snakemake ``benchmark:`` files of the full default run
  (``snakemake --cores 2 all`` on an idle 2-core x86 machine, 342 jobs, 2026-12-05;
  columns ``max_rss`` in MB, ``cpu_time`` in s) and, where the default run has only one
  size, from single generation chunks of two sizes measured the same way
  (``/usr/bin/time`` max RSS; docs/performance.md, "Generation"). Each constant's
  docstring says which numbers it is fitted to.
* **Memory** = measured base + measured per-unit cost × units, times :data:`MEM_MARGIN`;
  the margin keeps the declaration within ~2× of the measured peak (checked by
  tests/test_resources.py against the default run's peaks).
* **Run time** = measured CPU seconds per unit × units × :data:`TIME_MARGIN` (a cluster core
  can be slower than ours and processes differ in cost), plus :data:`TIME_FLOOR_MIN`.
  Training coefficients are CPU costs, so on a GPU node they overestimate; training
  checkpoints and resumes, so a job stopped at :data:`TRAIN_MAX_MIN` continues on retry.

Only plain config values are read (no torch, no HDF5): the Snakemake driver evaluates
these for every job when it builds the DAG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: declared memory = MEM_MARGIN × predicted peak: the default run's peaks scatter up to
#: ~25 % around the fit (e.g. rs3l fine-tunings 531–915 MB at the same size)
MEM_MARGIN = 1.3
#: declared time = TIME_MARGIN × predicted CPU time (+ TIME_FLOOR_MIN)
TIME_MARGIN = 3.0
#: minutes every job gets on top: start-up, imports, file system latency on a cluster
TIME_FLOOR_MIN = 5
#: longest training job declared (48 h, a common partition limit); training resumes from
#: its checkpoint, so a job stopped there continues when Snakemake retries it
TRAIN_MAX_MIN = 2880

# ---- generation ---------------------------------------------------------------------------

#: MB of a generation job before its first event: Python, Pythia, fastjet, awkward and
#: Snakemake's script preamble (default run: 200-event single-shower chunks peak at
#: 183–194 MB under Snakemake; the same chunk run bare peaks at 169 MB)
GEN_BASE_MB = {"resim": 150.0, "single": 180.0, "hadfork": 180.0}
#: MB per hard event held while a chunk is built: resim keeps every variant's showered
#: events until the chunk is written, hadfork its cells and tracks. Fitted to single chunks
#: measured bare (``/usr/bin/time``): resim (5 variants) 130 MB at 300 events, 296 MB at
#: 2000; single (jetclass QCD) 169 MB at 200, 223 MB at 2000, 231 MB at 6000 (it showers in
#: batches of ``batch_events``: see :data:`GEN_MB_PER_BATCH_EVENT`); hadfork (mu = 5)
#: 253 MB at 20, 377 MB at 100.
GEN_MB_PER_EVENT = {"resim": 0.1, "single": 0.003, "hadfork": 1.4}
#: single showers: MB per event of one shower batch (``batch_events``; the 200 → 2000 event
#: step above, 54 MB, is the batch growing from 200 to 250 events plus the output)
GEN_MB_PER_BATCH_EVENT = 0.2
#: hadfork: MB per event and unit of pile-up mu (overlaid minimum-bias particles): at
#: mu = 150 a chunk peaks at 405 MB with 20 events and 610 MB with 80 (3.4 MB per event,
#: 1.4 of them at mu = 5)
HADFORK_MB_PER_EVENT_MU = 0.013
#: CPU seconds of a generation job's start (imports, Pythia initialisation); default run:
#: 200-event single chunks take 1.9 s of CPU, of which ~1.3 s does not scale with events
GEN_START_S = 2.0
#: CPU ms per hard event and shower, by (MPI on, ISR on) (multi-parton interactions,
#: initial-state radiation). rs3l (5 showers, both off): 3.3 ms per event from single
#: chunks of 300 and 2000 events (2.7 s, 8.4 s), 2.9–3.9 s per 1000 events of which 1 s is
#: initialisation in bench/generation.py → 0.6 ms per shower; toptag (MPI off):
#: default-run median 2.4 s per 1000 events → 1.1 ms; jetclass (CP5, both on): 8.1 ms
#: from chunks of 200 and 2000 events (2.6 s, 17.2 s), quarkgluon, jetnet, rodem 6–9 ms in
#: the default run. Hard process (written as LHE): 0.4–1.0 ms per event.
GEN_MS_PER_SHOWER = {(False, False): 0.6, (False, True): 1.1, (True, False): 9.0,
                     (True, True): 9.0}  # fmt: skip
GEN_HARD_MS = 1.0
#: CPU seconds per chunk and shower for Pythia's initialisation (one Pythia per variant and
#: chunk): bench/generation.py and bench/datasets.py, 0.2–0.4 s (docs/performance.md)
GEN_INIT_S_PER_SHOWER = 0.3
#: hadronization fork (hadfork): ms per event at pile-up mu = 0, and per unit of mu
#: (default run mu = 5: 7.9 s CPU per 200 events; single chunks: 36 ms per event at mu = 5
#: from 20 and 100 events, 150 ms at mu = 150 from 20 and 80 events)
HADFORK_MS = 35.0
HADFORK_MS_PER_MU = 0.9
#: minimum-bias library: ms per event (default run: 2000 events in 9.4 s) and MB per event
#: kept (2000 events, 186 MB peak)
MINBIAS_MS = 5.0
MINBIAS_MB_PER_EVENT = 0.01

#: rows (jets × variants) per hard event, to size the steps downstream of generation
#: before any event exists. Default run: rs3l 0.31, jetclass 0.21, jetnet 0.86,
#: quarkgluon 0.17, rodem 0.39, toptag 0.21, hadfork 2.8: the largest of each kind.
ROWS_PER_EVENT = {"resim": 0.35, "single": 0.9, "hadfork": 3.0}


def _kind(ds: Mapping[str, Any]) -> str:
    return str(ds.get("kind", "resim"))


def _mpi_isr(ds: Mapping[str, Any]) -> tuple[bool, bool]:
    """(MPI on, ISR on) in the dataset's shower settings (Pythia's defaults: both on)."""
    settings = {s.replace(" ", "") for s in ds.get("shower", {}).get("base_settings", [])}
    return "PartonLevel:MPI=off" not in settings, "PartonLevel:ISR=off" not in settings


def _n_showers(ds: Mapping[str, Any]) -> int:
    return len(ds.get("shower", {}).get("variants", {})) if _kind(ds) == "resim" else 1


def generation_mem_mb(ds: Mapping[str, Any]) -> int:
    """Peak memory of one generation job: that of one chunk, whatever the block size
    (chunks of a block are built one after the other and released)."""
    kind = _kind(ds)
    events = int(ds["events_per_chunk"])
    mb = GEN_BASE_MB[kind] + GEN_MB_PER_EVENT[kind] * events
    if kind == "single":
        mb += GEN_MB_PER_BATCH_EVENT * min(events, int(ds.get("batch_events", events)))
    mu = float(ds.get("pileup", {}).get("mu", 0.0))
    if mu > 0:
        mb += MINBIAS_MB_PER_EVENT * int(ds["pileup"]["library_events"])
        mb += HADFORK_MB_PER_EVENT_MU * mu * int(ds["events_per_chunk"])
    return math.ceil(MEM_MARGIN * mb)


def generation_cpu_s_per_event(ds: Mapping[str, Any]) -> float:
    """Predicted CPU seconds per hard event of a dataset (hard process included)."""
    if _kind(ds) == "hadfork":
        mu = float(ds.get("pileup", {}).get("mu", 0.0))
        return (HADFORK_MS + HADFORK_MS_PER_MU * mu) / 1000.0
    shower = GEN_MS_PER_SHOWER[_mpi_isr(ds)] * _n_showers(ds)
    return (GEN_HARD_MS + shower) / 1000.0


def generation_runtime(ds: Mapping[str, Any], n_chunks: int) -> int:
    """Minutes of one generation job of ``n_chunks`` chunks."""
    per_chunk = GEN_INIT_S_PER_SHOWER * _n_showers(ds)
    per_chunk += int(ds["events_per_chunk"]) * generation_cpu_s_per_event(ds)
    cpu = GEN_START_S + n_chunks * per_chunk
    return math.ceil(TIME_FLOOR_MIN + TIME_MARGIN * cpu / 60.0)


def minbias_mem_mb(ds: Mapping[str, Any]) -> int:
    events = int(ds.get("pileup", {}).get("library_events", 0))
    return math.ceil(MEM_MARGIN * (GEN_BASE_MB["hadfork"] + MINBIAS_MB_PER_EVENT * events))


def minbias_runtime(ds: Mapping[str, Any]) -> int:
    events = int(ds.get("pileup", {}).get("library_events", 0))
    return math.ceil(TIME_FLOOR_MIN + TIME_MARGIN * (GEN_START_S + events * MINBIAS_MS / 1e3) / 60)


# ---- merged datasets ------------------------------------------------------------------------

#: merge_split streams 1024 rows at a time: its peak is the process whatever the size.
#: Measured bare: 48 rs3l chunk files (16,080 rows of 100 × 15 float32, 97 MB) merged in
#: 1.0 s at 53 MB peak; Snakemake's script preamble adds ~100 MB. (The default run's
#: benchmark files record 2–6 MB for these sub-second jobs: sampled too early to count.)
MERGE_MB = 150.0
#: MB per second merge_split copies: ~100 MB/s measured above from the page cache; half of
#: it for a cluster file system
MERGE_MB_PER_S = 50.0


def split_rows(ds: Mapping[str, Any], split: str) -> int:
    """Rows (jets × variants) a split is expected to hold: events × :data:`ROWS_PER_EVENT`,
    or, for a single-jet dataset that states ``expected_yield`` for each of its processes,
    events × the measured yield per process. The bound alone is 3-13× high for JetClass
    (yields 0.07-0.35, chunks sized by them), which would ask a cluster for days."""
    chunks = ds["chunks"].get(split, {})
    yields = ds.get("expected_yield") or {}
    epc = int(ds["events_per_chunk"])
    if _kind(ds) == "single" and chunks and set(chunks) <= set(yields):
        return math.ceil(sum(epc * n * float(yields[p]) for p, n in chunks.items()))
    return math.ceil(epc * sum(chunks.values()) * ROWS_PER_EVENT[_kind(ds)])


def row_mb(ds: Mapping[str, Any]) -> float:
    """MB of one row's constituent arrays (float32 features + mask; hadfork: tracks and
    cells at the default feature counts)."""
    if _kind(ds) == "hadfork":
        return (int(ds["n_tracks"]) * 6 + int(ds["n_cells"]) * 5) * 4 / 1e6
    return int(ds["n_particles"]) * (17 * 4 + 1) / 1e6


def merge_mem_mb(ds: Mapping[str, Any]) -> int:
    return math.ceil(MEM_MARGIN * MERGE_MB)


def merge_runtime(ds: Mapping[str, Any], split: str) -> int:
    mb = split_rows(ds, split) * row_mb(ds)
    return math.ceil(TIME_FLOOR_MIN + TIME_MARGIN * mb / MERGE_MB_PER_S / 60.0)


#: convert_features streams 8192 rows at a time, so its peak does not grow with the split:
#: measured bare, 58,920 JetClass rows (128 × 17, 525 MB) to ptetaphi in 1.8 s (~290 MB/s
#: read from the page cache) at a 514 MB peak; + Snakemake's script preamble (~100 MB)
CONVERT_MB = 620.0
#: an imported split has no chunk grid to size it from: the import rule's own limit
IMPORTED_RUNTIME_MIN = 240


def convert_mem_mb() -> int:
    return math.ceil(MEM_MARGIN * CONVERT_MB)


def convert_runtime(ds: Mapping[str, Any], split: str) -> int:
    """Minutes to read a split and write it in another feature set (at most the same width
    again): twice the split's bytes at merge_split's cluster rate."""
    if "chunks" not in ds:
        return IMPORTED_RUNTIME_MIN
    mb = 2 * split_rows(ds, split) * row_mb(ds)
    return math.ceil(TIME_FLOOR_MIN + TIME_MARGIN * mb / MERGE_MB_PER_S / 60.0)


# ---- training -----------------------------------------------------------------------------

#: MB of a training process before its first batch: Python, torch, h5py (default run: the
#: smallest training peaks are 350–370 MB, jBOT fine-tunings of a tiny ViT)
TRAIN_BASE_MB = 350.0
#: host KB per (jet × particle) of a batch, forward and backward, per backbone. Fitted to
#: the default run's largest peak of each backbone: (peak − base) / (batch × particles ×
#: views); edgeconv (k-NN graph, k = 24) 1028 MB at 100 × 100 × 2 (a fine-tuning: the
#: 433-job run of 2026-12-05, one thread per job; 765 MB before); normformer 609 MB at
#: 64 × 128 × 2; vit (jetnet) 494 MB at 64 × 30 × 2; part 1309 MB at 32 × 128 × 2 (pair
#: features are O(P²)); cells_tracks 931 MB at 30 × 545 (tracks + cells) × 2.
ACT_KB = {"edgeconv": 34.0, "normformer": 16.0, "vit": 38.0, "part": 120.0,
          "cells_tracks": 13.0}  # fmt: skip
ACT_KB_DEFAULT = 120.0
#: CPU seconds per (jet × particle) per epoch, per backbone, pre-training (two views) on
#: the default run (cpu_time / (epochs × rows × particles)): edgeconv 24.8 s / (6 × 3680
#: × 100); normformer 241 s / (60 × 1267 × 128); vit 10.6 s / (4 × 862 × 30); part 79 s /
#: (4 × 1267 × 128); cells_tracks 436 s / (4 × 3934 × 1056)
TRAIN_S_PER_JP = {"edgeconv": 1.1e-5, "normformer": 2.5e-5, "vit": 1.0e-4, "part": 1.2e-4,
                  "cells_tracks": 2.6e-5}  # fmt: skip
TRAIN_S_PER_JP_DEFAULT = 1.2e-4
#: bytes per parameter held by a training: weights, gradients, two Adam moments
BYTES_PER_PARAM = 16
#: host memory of the activations with ``device: auto``: at most this (MB). Why a cap: the
#: activations live in host memory only when no GPU is found (our CPU demo runs, all
#: below it); on a GPU node they live on the GPU and the host holds the CUDA context
#: instead (~2–3 GB, not measured here), which the cap covers. A paper-scale model with
#: ``device: cpu`` declares its activations in full; with ``device: cuda``, the context.
AUTO_HOST_ACT_CAP_MB = 4000.0
CUDA_HOST_MB = 3000.0


def _particles(ds: Mapping[str, Any]) -> int:
    if _kind(ds) == "hadfork":
        return int(ds["n_tracks"]) + int(ds["n_cells"])
    return int(ds["n_particles"])


def _backbone(exp: Mapping[str, Any]) -> str:
    return str(exp.get("backbone", {}).get("name", ""))


def _params(exp: Mapping[str, Any]) -> int:
    """Parameters of a transformer backbone stated by ``dim``/``n_blocks``/``mlp_dim``
    (attention 4·d², MLP 2·d·m per block); 0 where the config does not state them (the
    default run's backbones are small enough for :data:`TRAIN_BASE_MB` to hold them)."""
    bb = exp.get("backbone", {})
    if "dim" not in bb or "n_blocks" not in bb:
        return 0
    d, m = int(bb["dim"]), int(bb.get("mlp_dim", 4 * int(bb["dim"])))
    return int(bb["n_blocks"]) * (4 * d * d + 2 * d * m)


def _scale(exp: Mapping[str, Any]) -> float:
    """Cost relative to the default run's model of the same backbone, by parameters
    (normformer there: dim 64, 2 blocks, mlp 128 → 65,536)."""
    p = _params(exp)
    return max(1.0, p / 65536.0) if p else 1.0


def training_mem_mb(
    exp: Mapping[str, Any], ds: Mapping[str, Any], stage: str, device: str = "auto"
) -> int:
    """Host memory of a tokenizer, pre-training, fine-tuning or embedding job on ``device``
    (the config's ``device``: auto, cpu or cuda; see :data:`AUTO_HOST_ACT_CAP_MB`)."""
    block = exp.get(stage) or exp.get("pretrain", {})
    batch = int(block.get("batch_size", exp.get("pretrain", {}).get("batch_size", 256)))
    # two views in pre-training; fine-tuning and embedding hold the test split's outputs
    # and evaluation batches beside the training batch: the same measured fit
    views = 1 if stage == "tokenizer" else 2
    act_kb = ACT_KB.get(_backbone(exp), ACT_KB_DEFAULT) * math.sqrt(_scale(exp))
    act_mb = act_kb * batch * _particles(ds) * views / 1e3
    host_act = {"cpu": act_mb, "cuda": CUDA_HOST_MB}.get(device, min(act_mb, AUTO_HOST_ACT_CAP_MB))
    mb = TRAIN_BASE_MB + host_act + BYTES_PER_PARAM * _params(exp) / 1e6
    return math.ceil(MEM_MARGIN * mb)


def training_runtime(exp: Mapping[str, Any], ds: Mapping[str, Any], stage: str,
                     n_jets: int) -> int:  # fmt: skip
    """Minutes of a training job over ``n_jets`` jets per epoch (capped at
    :data:`TRAIN_MAX_MIN`: the job resumes from its checkpoint when retried)."""
    block = exp.get(stage) or exp.get("pretrain", {})
    # an embedding is one forward pass (~1/3 of a training step's cost, no second view)
    epochs = 1 if stage == "embed" else int(block.get("epochs", 1))
    views = {"pretrain": 1.0, "embed": 0.15}.get(stage, 0.5)
    per_jp = TRAIN_S_PER_JP.get(_backbone(exp), TRAIN_S_PER_JP_DEFAULT) * _scale(exp)
    cpu = epochs * n_jets * _particles(ds) * per_jp * views
    return min(TRAIN_MAX_MIN, math.ceil(TIME_FLOOR_MIN + TIME_MARGIN * cpu / 60.0))


def train_mem_mb(config: Mapping[str, Any], experiment: str, stage: str) -> int:
    """:func:`training_mem_mb` of an experiment's ``stage`` (rule lambdas call this)."""
    exp = config["experiments"][experiment]
    device = str(config.get("device", "auto"))
    return training_mem_mb(exp, config["datasets"][exp["dataset"]], stage, device)


def train_runtime(
    config: Mapping[str, Any], experiment: str, stage: str, n_train: int | str | None = None
) -> int:
    """:func:`training_runtime` of an experiment's ``stage``: pre-training, tokenizer and
    embedding pass over the pre-training split's expected rows; a fine-tuning over its
    ``n_train`` labelled jets per epoch plus one pass over the test split."""
    from jetforge import experiment as X

    exp = config["experiments"][experiment]
    ds = config["datasets"][exp["dataset"]]
    split = X.splits(exp)
    if stage == "finetune" and n_train is not None:
        epochs = max(1, int((exp.get("finetune") or {}).get("epochs", 1)))
        n_jets = int(n_train) + split_rows(ds, split["finetune_test"]) // epochs
    else:
        n_jets = split_rows(ds, split["pretrain"])
    return training_runtime(exp, ds, stage, n_jets)
