"""Shared fixtures: small real Pythia samples generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def default_config() -> dict:
    import yaml

    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.fixture(scope="session")
def hbb_lhe(tmp_path_factory) -> Path:
    """40 real ZH(→bb̄) hard events at RS3L cuts, written as LHE."""
    from jetforge.generation.hard import HardCuts, generate_hard_events, write_hard_lhe
    from jetforge.generation.processes import get_process

    path = tmp_path_factory.mktemp("lhe") / "hbb.lhe"
    events, run = generate_hard_events(
        get_process("hbb_zh"), 40, HardCuts(400, 600, 0.1), 17, 13000.0
    )
    write_hard_lhe(path, events, run, 13000.0)
    return path


@pytest.fixture
def one_thread():
    """Tiny models on shared cores: one intra-op thread (OpenMP spin-waits badly when the
    cores are oversubscribed; intra-op threads only add synchronisation cost here)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items) -> None:
    """The end-to-end workflow tests first: with ``-n 2`` (pytest-xdist, pyproject) one
    worker starts the ~8-minute tiny run at once while the other works through the rest,
    instead of the run starting last and alone."""
    def rank(item) -> int:
        if item.get_closest_marker("workflow") is None:
            return 2
        return 0 if item.name == "test_default_all_on_tiny_config" else 1

    items.sort(key=rank)
