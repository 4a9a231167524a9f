"""``pretrain.subset``: pre-training on the first fraction of each class's jets.

JP-JEPA (Letellier et al., arXiv:2606.14813 §4.4) pre-trains its Table 3 ablations on
"the first X% of files for each class ... the same files are used across all runs": the
subset must be the first rows of each process in file order, identical for every seed,
and a value outside (0, 1] must be refused before any job runs.
"""

from __future__ import annotations

import copy
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from jetforge.config import ConfigError, load_config, validate_config
from jetforge.training.data import DatasetInfo
from jetforge.training.pretrain import _jets, run_pretrain
from jetforge.training.selection import first_fraction, subset_mask, subset_pairs

from test_jepa import EXP, write_rs3l_format4


def test_first_fraction_keeps_the_first_rows_of_each_group_in_order() -> None:
    ids = np.arange(40)
    groups = np.r_[np.zeros(10), np.ones(20), np.zeros(10)].astype(int)  # a: 20, b: 20
    kept = first_fraction(ids, groups, 0.25)
    assert kept.tolist() == [*range(5), *range(10, 15)]  # 5 of a, 5 of b, the first ones
    # 0.05 x 200 = 10.000000000000002 keeps 10 (no float round-up); a tiny class keeps 1
    assert first_fraction(np.arange(200), np.zeros(200, int), 0.05).tolist() == list(range(10))
    assert first_fraction(np.arange(3), np.zeros(3, int), 0.05).tolist() == [0]
    assert first_fraction(ids, groups, None) is ids and first_fraction(ids, groups, 1.0) is ids
    with pytest.raises(ValueError, match=r"pretrain\.subset must lie in \(0, 1\]"):
        first_fraction(ids, groups, 0.0)


def test_pairs_keep_their_variants_together(tmp_path: Path) -> None:
    """Two variants per pair, processes interleaved pair by pair: the subset is counted in
    pairs (a pair's variants stay or go together), per process, in file order."""
    h5 = write_rs3l_format4(tmp_path / "pairs.h5", 40)
    with h5py.File(h5, "r+") as f:
        f["jets/variant"][...] = np.arange(40) % 2
        f["jets/process"][...] = (np.arange(40) // 2) % 2  # pair p has process p % 2
        f.attrs["variant_names"] = ["nominal", "seed"]
    assert DatasetInfo.read(str(h5)).n_variants == 2
    pairs = subset_pairs(str(h5), np.arange(20), 0.3)  # 10 pairs a process -> 3 each
    assert pairs.tolist() == [0, 1, 2, 3, 4, 5]
    rows = np.arange(40)
    assert np.flatnonzero(subset_mask(str(h5), rows, 0.3)).tolist() == list(range(12))


def _subset_rows(h5: str, seed: int, subset: float | None) -> np.ndarray:
    exp = copy.deepcopy(EXP)
    exp["pretrain"].update(subset=subset, val_fraction=0.0)
    return _jets(h5, DatasetInfo.read(h5), exp, None, "jepa", seed).norm_rows


def test_subset_is_the_first_fraction_per_process_for_every_seed(tmp_path: Path) -> None:
    h5 = str(write_rs3l_format4(tmp_path / "jets.h5", 48))  # processes alternate: 24 each
    rows = _subset_rows(h5, seed=1, subset=0.25)
    want = [*range(0, 12, 2), *range(1, 12, 2)]  # the first 6 rows of each process
    assert sorted(rows.tolist()) == sorted(want)
    for seed in (2, 99):
        assert np.array_equal(np.sort(_subset_rows(h5, seed, 0.25)), np.sort(rows))
    assert _subset_rows(h5, 1, None).size == 48


def test_subset_is_recorded_in_model_pt(tmp_path: Path) -> None:
    h5 = str(write_rs3l_format4(tmp_path / "jets.h5", 64))
    exp = copy.deepcopy(EXP)
    exp["pretrain"].update(subset=0.5, epochs=1, val_fraction=0.0)
    run_pretrain(h5, str(tmp_path / "out"), exp, None, repeat=0, seed=3, device="cpu")
    payload = torch.load(tmp_path / "out" / "model.pt", weights_only=False)
    assert payload["subset"] == 0.5 and payload["n_train_items"] == 32
    assert payload["pretrain_cfg"]["subset"] == 0.5


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "5%"])
def test_bad_subset_is_refused_by_the_config_check(bad: object) -> None:
    cfg = load_config("config/config.yaml")
    cfg["experiments"]["jpjepa_abl_koleo"]["pretrain"]["subset"] = bad
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    msg = str(err.value)
    assert f"experiments.jpjepa_abl_koleo.pretrain.subset: value {bad!r} is not allowed" in msg
    assert "first fraction of each process's jets" in msg and "(0, 1]" in msg  # the fix


def test_size_scan_subset_points_must_be_subset_pre_trainings() -> None:
    """Fig. 2(e)'s "pre-trained on 5 %" point (``subset_experiments``) is refused for an
    experiment that pre-trains on every jet, before any job."""
    from jetforge.paper_outputs import declaration_errors

    cfg = load_config("config/config.yaml")
    assert not declaration_errors(cfg)
    cfg["experiments"]["jpjepa_abl_koleo"]["pretrain"]["subset"] = None
    errs = "\n".join(declaration_errors(cfg))
    assert "subset_experiments: 'jpjepa_abl_koleo' pre-trains on all jets" in errs
