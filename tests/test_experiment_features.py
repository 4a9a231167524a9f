"""Per-experiment input features (``experiments.<e>.features``): MPM reads (p_T, η, φ).

Golling et al., arXiv:2401.13537 §IV: "the momentum and direction (azimuth φ and
pseudo-rapidity η) are used as the feature collection for each particle". The experiment
names feature set ``ptetaphi``; every file it reads is the split converted into that set
(jetforge.workflow.targets.read_path), so pre-training, probes, embedding, fine-tuning and
the RODEM transfer read the same three columns and nothing is zero-filled.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from jetforge.config import ConfigError, validate_config
from jetforge.jets.convert import convert_features, zero_filled_features
from jetforge.jets.featuresets import PART17_FEATURES, PTETAPHI_FEATURES, get_feature_set
from jetforge.workflow import targets as T


def _jets(n: int = 5, p: int = 7, seed: int = 1) -> tuple[np.ndarray, np.ndarray, dict]:
    """Massless constituents of jets at η ≈ ±1 as (E, px, py, pz), padded, p_T-unsorted."""
    rng = np.random.default_rng(seed)
    jet_eta = np.where(np.arange(n) % 2, -1.0, 1.0)
    pt = np.exp(rng.uniform(0.0, 5.0, (n, p)))
    eta = jet_eta[:, None] + rng.normal(0, 0.2, (n, p))
    phi = rng.normal(0, 0.2, (n, p))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    x = np.stack([np.sqrt(px**2 + py**2 + pz**2), px, py, pz], -1).astype(np.float32)
    mask = np.arange(p)[None] < rng.integers(1, p + 1, n)[:, None]
    x[~mask] = 0.0
    s = x[..., 1:].sum(1)
    jets = {"pt": np.hypot(s[:, 0], s[:, 1]), "eta": jet_eta, "phi": np.zeros(n),
            "E": x[..., 0].sum(1)}  # fmt: skip
    return x, mask, jets


def test_ptetaphi_is_part17s_kinematic_columns_with_nothing_zero_filled():
    """RODEM's four-momenta and JetClass's 17 ParT features give the same three columns;
    neither conversion zero-fills an input (the artificial domain shift of before)."""
    x, mask, jets = _jets()
    via4, m4, zero4 = convert_features(x, mask, jets, "kinematic4", "ptetaphi")
    x17, m17, _ = convert_features(x, mask, jets, "kinematic4", "part17")
    via17, _, zero17 = convert_features(x17, m17, jets, "part17", "ptetaphi")
    cols = [PART17_FEATURES.index(n) for n in PTETAPHI_FEATURES]
    assert zero4 == zero17 == [] == zero_filled_features("kinematic4", "ptetaphi")
    assert np.array_equal(m4, m17)
    np.testing.assert_allclose(via4, x17[..., cols], atol=2e-6)
    np.testing.assert_allclose(via17, via4, atol=2e-6)
    p4 = get_feature_set("ptetaphi").four_momenta(via4, m4, jets)  # massless inverse
    np.testing.assert_allclose(p4["E"].sum(1), x[..., 0].sum(1), rtol=1e-5)


def test_mpm_experiments_read_ptetaphi_in_every_role(default_config):
    cfg = copy.deepcopy(default_config)
    mpm = [e for e in cfg["experiments"] if e == "mpm" or e.startswith("mpm_t1_")]
    assert len(mpm) == 9
    for e in mpm:
        paths = [T.split_path(cfg, e, r) for r in ("pretrain", "probe_train", "probe_test")]
        paths += T.task_files(cfg, e, "jetclass10").values()
        assert all(p.startswith("results/datasets/jetclass/as_ptetaphi/n128/") for p in paths)
    # experiments without `features` read their dataset as stored
    assert T.split_path(cfg, "jbot", "pretrain") == "results/datasets/jetnet/train.h5"
    assert T.split_path(cfg, "jpjepa", "pretrain") == "results/datasets/jetclass/train.h5"


def test_rodem_transfer_reads_the_same_three_features():
    from jetforge.config import load_config

    cfg = load_config("config/config.yaml", "config/paper/mpm.yaml")
    assert T.task_files(cfg, "mpm", "rodem_top") == {
        "train": "results/datasets/rodem/as_ptetaphi/n128/train.h5",
        "test": "results/datasets/rodem/as_ptetaphi/n128/test.h5",
    }
    assert T.experiment_feature_set(cfg, "mpm_new_classes") == "ptetaphi"
    assert T.experiment_feature_set(cfg, "mpm_weak") == "ptetaphi"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c["experiments"]["mpm"].__setitem__("features", "pt_eta_phi"),
         r"experiments\.mpm\.features.*'pt_eta_phi'"),
        # a Table I row sharing mpm_t1_head_vqvae's tokenizer must read the same columns
        (lambda c: c["experiments"]["mpm_t1_none_vqvae"].__setitem__("features", "part17"),
         r"experiments\.mpm_t1_none_vqvae\.features: differs from "
         r"experiments\.mpm_t1_head_vqvae\.features"),
    ],
)  # fmt: skip
def test_bad_features_are_refused_before_any_job(default_config, mutate, expected):
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(ConfigError, match=expected):
        validate_config(cfg)
