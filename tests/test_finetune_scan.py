"""The fine-tuned vs from-scratch summary of the SSL experiments."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest

from jetforge.evaluation.metrics import rejection_at
from jetforge.reporting import finetune_scan


def _write(path, task, mode, n, repeat, score, label, classes=None):
    with h5py.File(path, "w") as f:
        f["score"], f["label"] = score, label
        f.attrs.update(task=task, mode=mode, n_train=n, repeat=repeat)
        if classes:
            f.attrs["classes"] = classes
    return str(path)


def test_summary_means_over_repeats_and_orders_modes(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    files, expected = [], {}
    for mode, sep in (("supervised", 0.5), ("floating", 2.0)):
        for r in range(3):
            s = 1 / (1 + np.exp(-(sep * (2 * y - 1) + rng.normal(0, 1, y.size))))
            files.append(_write(tmp_path / f"{mode}{r}.h5", "top", mode, 100, r, s, y))
            expected.setdefault(mode, []).append(((s > 0.5) == y).mean())
    rows = finetune_scan.summarise(files)
    assert [r["mode"] for r in rows] == ["floating", "supervised"]
    for r in rows:
        acc = np.array(expected[r["mode"]])
        assert r["accuracy"] == pytest.approx(acc.mean())
        assert r["accuracy_std"] == pytest.approx(acc.std(ddof=1))
        assert r["n_repeats"] == 3
    with h5py.File(files[0]) as f:
        assert finetune_scan.run_metrics(files[0])["rejection"] == pytest.approx(
            rejection_at(f["score"][:], f["label"][:], 0.5))
    out_csv, out_md = tmp_path / "t.csv", tmp_path / "t.md"
    finetune_scan.write_table(rows, str(out_csv), str(out_md), "title")
    with out_csv.open() as fh:
        assert len(list(csv.DictReader(fh))) == 2
    md = out_md.read_text()
    delta = rows[0]["accuracy"] - rows[1]["accuracy"]
    assert delta > 0.1 and f"n = 100: {delta:+.3f}" in md and "1/ε_B" in md
    finetune_scan.figure(rows, str(tmp_path / "fig"), "title")
    assert (tmp_path / "fig.png").stat().st_size > 5000


def test_multiclass_has_no_rejection_column(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet(np.ones(3), y.size)
    f = _write(tmp_path / "a.h5", "three", "supervised", 50, 0, p, y, ["a", "b", "c"])
    rows = finetune_scan.summarise([f])
    assert np.isnan(rows[0]["rejection"]) and rows[0]["accuracy_std"] == 0.0
    finetune_scan.write_table(rows, str(tmp_path / "t.csv"), str(tmp_path / "t.md"), "x")
    assert "1/ε_B" not in (tmp_path / "t.md").read_text()


def test_trainings_of_two_augsets_are_not_averaged_as_repeats(tmp_path):
    """RS3L's paper grid fine-tunes from several augmentation sets (Table III): each is its
    own row, never pooled with the others' trainings."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    files = [
        _write(tmp_path / f"{a}{r}.h5", "top", "floating", 100, r, rng.uniform(size=y.size), y)
        for a in ("all", "seed")
        for r in range(2)
    ]
    rows = finetune_scan.summarise(files, ["all", "all", "seed", "seed"])
    assert [(r["augset"], r["n_repeats"]) for r in rows] == [("all", 2), ("seed", 2)]
    finetune_scan.write_table(rows, str(tmp_path / "t.csv"), str(tmp_path / "t.md"), "x")
    assert "| seed " in (tmp_path / "t.md").read_text()
    finetune_scan.figure(rows, str(tmp_path / "fig"), "x")
