"""Tagging metrics against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jetforge.evaluation import auc, rejection_at, roc, wasserstein

# 4 signal, 8 background jets; two background and two signal jets tie at 0.5, which gives
# the ROC a diagonal segment from (fpr 0, tpr .25) to (fpr .25, tpr .75).
SIG = [0.9, 0.5, 0.5, 0.2]
BKG = [0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
SCORES = np.array(SIG + BKG)
LABELS = np.array([1] * 4 + [0] * 8)


def test_roc_points() -> None:
    fpr, tpr, thr = roc(SCORES, LABELS)
    # thresholds 0.9, 0.5, 0.2, 0.1 (plus sklearn's leading +inf point at (0, 0))
    assert np.allclose(thr[1:], [0.9, 0.5, 0.2, 0.1])
    assert np.allclose(fpr, [0, 0, 0.25, 0.25, 1.0])
    assert np.allclose(tpr, [0, 0.25, 0.75, 1.0, 1.0])


def test_auc_hand_value() -> None:
    # P(s_sig > s_bkg) + P(tie)/2: 0.9 beats 8; each 0.5 beats 6 and ties 2 (7); 0.2 beats 6.
    assert auc(SCORES, LABELS) == pytest.approx((8 + 7 + 7 + 6) / 32)


def test_rejection_interpolates_on_diagonal_segment() -> None:
    # eff 0.6 lies on the segment (0.25, 0) -> (0.75, 0.25): fpr = 0.25 * 0.35 / 0.5 = 0.175
    assert rejection_at(SCORES, LABELS, 0.6) == pytest.approx(1 / 0.175)
    assert rejection_at(SCORES, LABELS, 0.75) == pytest.approx(4.0)
    assert rejection_at(SCORES, LABELS, 1.0) == pytest.approx(4.0)


def test_rejection_zero_fpr_returns_n_bkg_bound() -> None:
    # eff 0.25 is reached with no background passing: rejection reported as N_bkg = 8.
    assert rejection_at(SCORES, LABELS, 0.25) == pytest.approx(8.0)
    # interpolated fpr below one background jet (0.0625 < 1/8) is floored too
    assert rejection_at(SCORES, LABELS, 0.375) == pytest.approx(8.0)
    perfect = rejection_at([0.9, 0.8, 0.1, 0.2, 0.3], [1, 1, 0, 0, 0], 0.5)
    assert perfect == pytest.approx(3.0) and np.isfinite(perfect)


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="0 background"):
        rejection_at([0.1, 0.2], [1, 1], 0.5)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        rejection_at(SCORES, LABELS, 1.5)
    with pytest.raises(ValueError, match="labels must be 0/1"):
        auc([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(ValueError, match="non-empty"):
        wasserstein([], [1.0])


def test_wasserstein_hand_values() -> None:
    assert wasserstein([0.0, 1.0], [1.0, 2.0]) == pytest.approx(1.0)  # pure shift by 1
    # CDFs differ by 2/3 on [0, 1): area 2/3
    assert wasserstein([0.0, 0.0, 1.0], [1.0, 1.0, 1.0]) == pytest.approx(2 / 3)
    assert wasserstein(np.arange(5.0), np.arange(5.0)[::-1]) == 0.0


@pytest.mark.parametrize("ties", ["none", "rounded", "three_values"])
def test_numpy_metrics_equal_scikit_learn_and_scipy_exactly(ties: str) -> None:
    """Our ROC, AUC and Wasserstein distance (numpy only, so a fine-tuning job does not pay
    ~2-3 s importing scikit-learn and SciPy) return the very floats of the libraries."""
    from scipy.stats import wasserstein_distance
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng({"none": 0, "rounded": 1, "three_values": 2}[ties])
    for _ in range(200):
        n = int(rng.integers(2, 400))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = rng.normal(size=n)
        if ties == "rounded":
            s = np.round(s, 1)
        elif ties == "three_values":
            s = rng.integers(0, 3, n).astype(float)
        assert auc(s, y) == roc_auc_score(y, s)
        for ours, theirs in zip(roc(s, y), roc_curve(y, s, drop_intermediate=False), strict=True):
            np.testing.assert_array_equal(ours, theirs)
        a, b = s[: n // 2 + 1], 1.3 * s[n // 2 :] + 0.1
        assert wasserstein(a, b) == wasserstein_distance(a, b)


def test_tables_that_read_predictions_import_no_torch():
    """Paper tables and figures built from prediction files (MPM, JP-JEPA, weak
    supervision, fine-tuning summaries) start without torch: ~1 s less per job."""
    import subprocess
    import sys

    mods = ("jetforge.paper_outputs.mpm", "jetforge.paper_outputs.jpjepa",
            "jetforge.paper_outputs.mpm_weak", "jetforge.paper_outputs.jpjepa_figures",
            "jetforge.reporting.finetune_scan", "jetforge.evaluation.metrics")  # fmt: skip
    code = f"import sys, importlib; [importlib.import_module(m) for m in {mods!r}]; " \
           "print('torch' in sys.modules)"  # fmt: skip
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False", res.stderr
    # their build functions import lazily: none may reach for the metrics through probes
    src = Path(__file__).resolve().parents[1] / "src" / "jetforge"
    offenders = [str(f.relative_to(src)) for f in src.rglob("*.py")
                 if "probes import classification_metrics" in f.read_text()]  # fmt: skip
    assert not offenders, offenders
