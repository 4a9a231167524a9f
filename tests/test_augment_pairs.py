"""jBOT's augmentations as a pair family (``pretrain.pairs: augment``): reproducible from
the seed, different members, the same jets as the variant family, bit-exact resume."""

from __future__ import annotations

import copy
from pathlib import Path

import h5py
import pytest
import torch

from jetforge.jets.features import RS3L_FEATURES
from jetforge.training.augment_pairs import AugmentPairSampler, augment_for, nominal_rows
from jetforge.training.data import DatasetInfo, JetSampler, select_pairs
from jetforge.training.pretrain import run_pretrain

from test_training import EXP, _history, _Kill, _kill_after, write_format4

AUG = {"augsets": None, "pairs": "augment", "feature_names": "rs3l"}


@pytest.fixture(scope="module")
def h5(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = write_format4(
        tmp_path_factory.mktemp("aug") / "pretrain.h5", {"qcd_zjet": 20, "hbb_zh": 20}, seed=1
    )
    with h5py.File(path, "r+") as f:  # the RS3L features, so the augmentations know them
        f.attrs["feature_names"] = list(RS3L_FEATURES)
    return str(path)


def _sampler(h5: str, views: int, seed: int = 3) -> AugmentPairSampler:
    info = DatasetInfo.read(h5)
    rows, labels = nominal_rows(h5, info, select_pairs(h5, ["qcd_zjet", "hbb_zh"]))
    augment, v = augment_for({**EXP["pretrain"], **AUG, "augment_views": views}, [])
    jets = JetSampler(h5, rows, labels, 8, seed, drop_last=True)
    return AugmentPairSampler(jets, augment, v, seed)


def _batches(s: AugmentPairSampler, epoch: int, start: int = 0) -> list:
    return list(s.epoch(epoch, start))


def test_augment_pairs_are_reproducible_and_members_differ(h5: str) -> None:
    torch_state = torch.get_rng_state()
    a, b = _sampler(h5, 2), _sampler(h5, 2)
    first, again = _batches(a, 0), _batches(b, 0)
    assert len(first) == 5
    for x, y in zip(first, again, strict=True):
        for k in ("x_a", "m_a", "x_b", "m_b", "labels"):
            assert torch.equal(getattr(x, k), getattr(y, k)), k
        assert not torch.equal(x.x_a[:, : x.x_b.shape[1]], x.x_b[:, : x.x_a.shape[1]])
    # resume: batches from index 3 are those of the whole epoch; other epochs differ
    assert all(torch.equal(x.x_b, y.x_b) for x, y in zip(first[3:], _batches(a, 0, 3), strict=True))
    assert not torch.equal(first[0].x_b, _batches(a, 1)[0].x_b)
    # another seed, other views; the model's own random stream is left alone
    assert not torch.equal(first[0].x_b, _batches(_sampler(h5, 2, seed=4), 0)[0].x_b)
    assert torch.equal(torch_state, torch.get_rng_state())


def test_one_augmented_view_pairs_the_jet_itself(h5: str) -> None:
    s = _sampler(h5, 1)
    batch = _batches(s, 0)[0]
    with h5py.File(h5) as f:  # view a: the stored nominal jets, as the variant family reads them
        ref = JetSampler(h5, s.jets.rows, s.jets.labels, 8, 3, drop_last=True)
        plain = next(iter(ref.epoch(0)))
        assert torch.equal(batch.x_a, plain.x) and torch.equal(batch.m_a, plain.mask.bool())
        assert f["jets"]["variant"][:][s.jets.rows].max() == 0
    assert not torch.equal(batch.x_a[:, : batch.x_b.shape[1]], batch.x_b[:, : batch.x_a.shape[1]])


def test_pretrain_on_augment_pairs_resumes_bit_identically(h5: str, tmp_path: Path) -> None:
    exp = copy.deepcopy(EXP)
    exp["pretrain"] = {**exp["pretrain"], **AUG, "epochs": 2}
    del exp["pretrain"]["augsets"]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_pretrain(h5, str(ref), exp, "default", repeat=0, seed=11, device="cpu")
    with pytest.raises(_Kill):
        run_pretrain(h5, str(killed), exp, "default", repeat=0, seed=11, device="cpu",
                     after_step=_kill_after(5))  # fmt: skip
    run_pretrain(h5, str(killed), exp, "default", repeat=0, seed=11, device="cpu")
    a = torch.load(ref / "model.pt", weights_only=False)
    b = torch.load(killed / "model.pt", weights_only=False)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    assert _history(ref / "history.csv") == _history(killed / "history.csv")
    assert a["pairs"] == "augment" and a["augment_views"] == 2


def test_augment_pairs_with_augsets_is_refused(default_config: dict) -> None:
    from jetforge.config import ConfigError, validate_config

    cfg = copy.deepcopy(default_config)
    cfg["experiments"]["rs3l"]["pretrain"]["pairs"] = "augment"
    with pytest.raises(ConfigError, match=r"rs3l\.pretrain\.augsets: value \['all'\] is not used"):
        validate_config(cfg)
    del cfg["experiments"]["rs3l"]["pretrain"]["augsets"]
    cfg["experiments"]["rs3l"]["pretrain"]["augment_views"] = 3
    with pytest.raises(ConfigError, match=r"augment_views: value 3 is not allowed"):
        validate_config(cfg)
