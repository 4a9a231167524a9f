"""Weak supervision with mixed samples (MPM §V F, Golling et al., arXiv:2401.13537, Fig. 6).

The paper emulates noisy labels (CWoLa): two samples of background (QCD) jets, "each with
one million events", and N signal (top) jets added to one of them; a classifier is trained
to tell the two samples apart (label = sample membership, never the jet's truth) and is
evaluated on pure, truth-labelled test jets. A binary fine-tuning task declares it with
``weak: {n_signal: N}``; its ``n_train`` is then the number of background jets of both
samples together (half each) and the training set holds ``n_train + N`` jets.

The predictions are written with the *true* labels (the test split is drawn as for every
binary task), so every table and figure that reads predictions works unchanged; the
significance improvement of Fig. 6 is computed by
:mod:`jetforge.paper_outputs.mpm_weak`.

Library code: :func:`weak_subsets` is called by the fine-tuning's labelled-subset draw
(:mod:`jetforge.training.finetune`), :func:`weak_config_errors` by the config validation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def n_signal(task_spec: Mapping[str, Any]) -> int | None:
    """The task's injected signal jets N, or None for an ordinary (truth-labelled) task."""
    weak = task_spec.get("weak")
    return None if weak is None else int(weak["n_signal"])


def _mixed(bkg: np.ndarray, sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample 1 = first half of ``bkg`` + all of ``sig`` (label 1); sample 2 = the other
    half of ``bkg`` (label 0); rows sorted (the samplers read the file in row order)."""
    half = bkg.size // 2
    rows = np.concatenate([bkg[:half], sig, bkg[half:]])
    labels = np.concatenate([np.ones(half + sig.size, np.int8), np.zeros(bkg.size - half, np.int8)])
    order = np.argsort(rows, kind="stable")
    return rows[order], labels[order]


def weak_subsets(
    all_rows: np.ndarray, truth: np.ndarray, n_train: int, n_signal: int, val_fraction: float,
    seed: int, what: str = "",
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:  # fmt: skip
    """Training (and validation) jets with sample-membership labels.

    ``all_rows``/``truth``: the task's jets and their true 0/1 labels. Training: ``n_train``
    background jets split in two halves, ``n_signal`` signal jets added to the first.
    Validation (``round(val_fraction * n_train)`` further background jets, when >= 1) is a
    second pair of mixed samples with the same signal fraction -- weak labels too, since a
    real search has no truth to select on. One permutation per class orders the draw, so
    training jets do not depend on ``val_fraction``. Raises with the numbers when the split
    holds too few jets of either class.
    """
    if n_train < 2:
        raise ValueError(f"weak supervision needs n_train >= 2 background jets (two samples), "
                         f"got {n_train} for {what}")  # fmt: skip
    if n_signal < 0:
        raise ValueError(f"weak.n_signal must be >= 0, got {n_signal} for {what}")
    n_val = round(float(val_fraction) * n_train)
    n_val_sig = round(n_signal * n_val / n_train) if n_val >= 1 else 0
    bkg, sig = all_rows[truth == 0], all_rows[truth == 1]
    needs = (("background", bkg.size, n_train + n_val, "n_train"),
             ("signal", sig.size, n_signal + n_val_sig, "weak.n_signal"))
    for name, have, need, key in needs:
        if need > have:
            raise ValueError(
                f"weak supervision of {what} needs {need} {name} jets ({key} plus the "
                f"val_fraction={val_fraction} validation share) but the split holds {have}; "
                f"lower {key} or generate more chunks"
            )
    rng = np.random.default_rng(seed)
    bkg, sig = rng.permutation(bkg), rng.permutation(sig)
    train = _mixed(bkg[:n_train], sig[:n_signal])
    if n_val < 1:
        return train, None
    val = _mixed(bkg[n_train : n_train + n_val], sig[n_signal : n_signal + n_val_sig])
    return train, val


def weak_draw(
    h5: str, signal: str, background: str | list[str], variants: list[str], n_train: int,
    n_sig: int, fcfg: Mapping[str, Any], seed_of: Callable[..., int], what: str,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None]:  # fmt: skip
    """:func:`weak_subsets` on the task's jets of ``h5`` (the fine-tuning's entry point)."""
    from jetforge.training.data import select_labelled_rows

    rows, truth = select_labelled_rows(h5, signal, background, variants)
    return weak_subsets(rows, truth, n_train, n_sig, float(fcfg.get("val_fraction", 0.0)),
                        seed_of("weak"), what)  # fmt: skip


def weak_config_errors(config: Mapping[str, Any], key: str, exp: Mapping[str, Any]) -> list[str]:
    """Weak tasks refused before any job: a multi-class task (sample membership is binary),
    and an N or background count above the hard events generated for the split (an upper
    bound: the selection keeps ~10-15 %; the draw refuses the exact count at its start)."""
    from jetforge import experiment as X

    ft = exp.get("finetune") or {}
    errs: list[str] = []
    for task, spec in (ft.get("tasks") or {}).items():
        n = n_signal(spec)
        if n is None:
            continue
        tkey = f"config key {key}.finetune.tasks.{task}.weak"
        if "classes" in spec:
            errs.append(f"{tkey}: {dict(spec['weak'])!r} needs a binary task (signal + "
                        f"background), but {task!r} has classes {spec['classes']}; declare "
                        "signal/background or drop weak")  # fmt: skip
            continue
        name = spec.get("dataset", exp["dataset"])
        ds = (config.get("datasets") or {}).get(name) or {}
        split = (X.splits(exp)["finetune_train"] if name == exp["dataset"]
                 else spec.get("splits", {}).get("train", "train"))  # fmt: skip
        chunks = (ds.get("chunks") or {}).get(split, {})
        per = int(ds.get("events_per_chunk", 0))
        bg = spec.get("background")
        bgs = [bg] if isinstance(bg, str) else list(bg or [])
        have_sig = chunks.get(spec.get("signal"), 0) * per
        have_bkg = sum(chunks.get(b, 0) for b in bgs) * per
        if n > have_sig:
            errs.append(f"{tkey}.n_signal: {n} signal ({spec.get('signal')}) jets, but split "
                        f"{split!r} of dataset {name!r} generates only {have_sig} hard events "
                        "of it (and keeps a fraction); lower n_signal or add chunks")  # fmt: skip
        n_bkg = max((int(v) for g in X.task_grids(exp, task) for v in g["n_train"]), default=0)
        if n_bkg > have_bkg:
            errs.append(f"{tkey}: n_train={n_bkg} background jets ({bgs}) for the two samples, "
                        f"but split {split!r} of dataset {name!r} generates only {have_bkg} hard "
                        "events of them; lower the task's n_train or add chunks")  # fmt: skip
    return errs
