"""Generation blocks (``chunks_per_job``): how chunks are grouped into jobs, never what
they hold. A split built with one chunk per job and with several per job is the same file."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from jetforge.workflow import steps
from jetforge.workflow import targets as T

REPO = Path(__file__).resolve().parents[1]


def _config(k: int, chunks: dict[str, dict[str, int]]) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    ds = cfg["datasets"]["toptag"]
    ds.update(chunks=chunks, events_per_chunk=60, batch_events=60, chunks_per_job=k)
    return cfg


def test_blocks_cover_every_chunk_once_in_merge_order():
    chunks = {"train": {"tbqq_tt": 7, "qcd_dijet": 2}, "test": {"tbqq_tt": 1}}
    flat = T.chunk_h5_paths(_config(1, chunks), "toptag", "train")
    for k in (1, 2, 3, 7, 10):
        cfg = _config(k, chunks)
        dirs = T.block_dirs(cfg, "toptag", "train")
        assert len(dirs) == -(-7 // k) + -(-2 // k)
        got = [
            T.CHUNK_H5.format(dataset="toptag", process=proc, split="train", block=b, chunk=c)
            for d in dirs
            for proc, b in [(d.split("/")[3], int(d.rsplit("_", 1)[1]))]
            for c in T.block_chunks(cfg, "toptag", proc, "train", b)
        ]
        paths = T.chunk_h5_paths(cfg, "toptag", "train")
        assert got == paths  # blocks in order list the chunk files in merge order
        strip = [p.split("/")[:4] + p.split("/")[-1:] for p in paths]
        assert strip == [p.split("/")[:4] + p.split("/")[-1:] for p in flat]
        assert all(f"/block_{int(p.rsplit('_', 1)[1][:-3]) // k}/" in p for p in paths)
    with pytest.raises(KeyError, match="no block 4"):
        T.block_chunks(_config(2, chunks), "toptag", "tbqq_tt", "train", 4)


def test_block_inputs_name_the_users_lhe_files_of_the_block_only():
    cfg = _config(3, {"train": {"tbqq_tt": 5}})
    assert T.block_inputs(cfg, "toptag", "tbqq_tt", "train", 1) == {}  # Pythia in the job
    cfg["datasets"]["toptag"]["hard_process"] = {
        "source": "lhe", "lhe_pattern": "/data/{process}/{split}/c{chunk}.lhe"}  # fmt: skip
    assert T.block_inputs(cfg, "toptag", "tbqq_tt", "train", 1) == {
        "lhe": ["/data/tbqq_tt/train/c3.lhe", "/data/tbqq_tt/train/c4.lhe"]
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build_split(root: Path, cfg: dict) -> Path:
    """Every generation job of the toptag train split (as the rules run them), then the
    merge, in ``root``."""
    ds = cfg["datasets"]["toptag"]
    for d in T.block_dirs(cfg, "toptag", "train"):
        proc, block = d.split("/")[3], int(d.rsplit("_", 1)[1])
        chunks = list(T.block_chunks(cfg, "toptag", proc, "train", block))
        steps.generate_block(str(root / d), ds, "toptag", proc, "train", chunks, cfg["seed"])
        assert not list((root / d).parent.glob(".*tmp*"))  # renamed into place
    out = root / T.SPLIT_H5.format(dataset="toptag", split="train")
    steps.merge_split([str(root / p) for p in T.chunk_h5_paths(cfg, "toptag", "train")], str(out))
    return out


def test_split_file_is_the_same_bytes_for_any_block_size(tmp_path):
    chunks = {"train": {"tbqq_tt": 3}}
    one = _build_split(tmp_path / "k1", _config(1, chunks))
    three = _build_split(tmp_path / "k3", _config(3, copy.deepcopy(chunks)))
    with h5py.File(one) as f, h5py.File(three) as g:
        assert f["particles"].shape[0] > 0  # jets were made
        assert np.array_equal(f["jets/chunk"][:], g["jets/chunk"][:])
        assert set(np.unique(f["jets/chunk"][:])) <= {0, 1, 2}
        assert "chunks_per_job" not in f.attrs["config_json"]  # scheduling, not content
    assert _sha(one) == _sha(three)
    c1 = sorted((tmp_path / "k1").rglob("jets_*.h5"), key=lambda p: p.name)
    c3 = sorted((tmp_path / "k3").rglob("jets_*.h5"), key=lambda p: p.name)
    assert [p.name for p in c1] == [p.name for p in c3] == ["jets_0.h5", "jets_1.h5", "jets_2.h5"]
    assert [_sha(p) for p in c1] == [_sha(p) for p in c3]
    assert len(list((tmp_path / "k3").rglob("hard_*.lhe"))) == 3  # kept beside the chunks
