"""Atomic outputs behave like files written directly: umask, no leftovers, strict JSON,
byte-reproducible torch files (issue 11)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from jetforge.io.atomic import (
    atomic_path,
    current_umask,
    sweep_stale,
    write_json,
    write_text,
    write_torch,
)


@contextlib.contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_respect_the_umask(tmp_path, mask, mode):
    with _umask(mask):
        assert current_umask() == mask
        write_text(tmp_path / "out.csv", "a,b\n")
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == mode


def _touch(path: Path, old: bool) -> Path:
    path.write_text("partial")
    if old:  # written by a job killed before this process started
        os.utime(path, (1_000_000_000, 1_000_000_000))
    return path


def test_stale_temporaries_of_a_killed_write_are_swept(tmp_path):
    stale = _touch(tmp_path / ".train.k3j_9xq2.tmp.h5", old=True)
    keep = [
        _touch(tmp_path / ".train.b.k3j_9xq2.tmp.h5", old=True),  # temp of train.b.h5
        _touch(tmp_path / ".train.k3j_9xq2.tmp.csv", old=True),  # temp of train.csv
        _touch(tmp_path / ".train.abc.tmp.h5", old=True),  # not a mkstemp name
        _touch(tmp_path / ".train.live1234.tmp.h5", old=False),  # a write begun after us
        _touch(tmp_path / "train_notes.h5", old=True),
    ]
    write_text(tmp_path / "train.h5", "done")
    assert not stale.exists() and all(p.exists() for p in keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in keep] + ["train.h5"]
    )
    assert sweep_stale(tmp_path / "missing_dir" / "x.h5") == []


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "model.pt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_json_has_null_for_non_finite_numbers(tmp_path):
    obj = {
        "rho": float("nan"),
        "pulls": [np.float32("inf"), 1.5, -float("inf")],
        "masses": np.array([np.nan, 91.2]),
        "n": np.int64(3),
        "by_label": {np.int64(1): np.float64("nan")},
        "ok": True,
    }
    write_json(tmp_path / "validation.json", obj)
    text = (tmp_path / "validation.json").read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    back = json.loads(text, parse_constant=refuse)
    assert back == {
        "rho": None, "pulls": [None, 1.5, None], "masses": [None, 91.2], "n": 3,
        "by_label": {"1": None}, "ok": True,
    }  # fmt: skip


def test_json_refuses_what_it_cannot_represent(tmp_path):
    with pytest.raises(TypeError, match="cannot serialise object"):
        write_json(tmp_path / "x.json", {"a": object()})
    assert not (tmp_path / "x.json").exists()


def test_model_files_are_byte_reproducible(tmp_path):
    """The archive name torch.save stores must not come from the random temporary."""
    import torch

    from jetforge.models.registry import save_backbone

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    cfg = {"name": "toy", "in_dim": 4}
    save_backbone(tmp_path / "a" / "model.pt", model, cfg, feature_names=["pt", "eta"])
    save_backbone(tmp_path / "b" / "model.pt", model, cfg, feature_names=["pt", "eta"])
    write_torch(tmp_path / "c" / "other_name.pt", {"state_dict": model.state_dict()})
    write_torch(tmp_path / "d" / "ckpt.pt", {"state_dict": model.state_dict()})
    a, b = (tmp_path / d / "model.pt" for d in ("a", "b"))
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "c" / "other_name.pt").read_bytes() == (
        tmp_path / "d" / "ckpt.pt"
    ).read_bytes()
    payload = torch.load(a, weights_only=True)
    assert payload["backbone_cfg"] == cfg and payload["feature_names"] == ["pt", "eta"]
