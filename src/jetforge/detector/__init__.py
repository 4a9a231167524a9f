"""Detector models: particle-level events (format 2) -> E-flow candidates (format 3).

A detector is a YAML *card* (``resources/detectors/<name>.yaml``) whose ``model`` key picks
the simulate function from :data:`DETECTORS`. Keeping every physics number in the card, and
hashing the card file, is what lets a dataset record exactly which detector produced it
(``detector`` and ``detector_sha256`` attrs of format 4) and lets another model (e.g. a real
Delphes run) be swapped in without touching the stages around it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from jetforge.detector import cocoa, delphes, eflow
from jetforge.lazy import lazy_module

if TYPE_CHECKING:
    import awkward as ak
else:  # imported on first use: the config checks import this module (jetforge.lazy)
    ak = lazy_module("awkward")


#: ``simulate(particles, card, rng) -> candidates`` for each card ``model`` name.
SimulateFn = Callable[["ak.Array", Mapping[str, Any], np.random.Generator], "ak.Array"]
DETECTORS: dict[str, SimulateFn] = {
    "eflow": eflow.simulate,
    "delphes": delphes.simulate_delphes,  # real Delphes (needs DelphesHepMC3, the [delphes] extra)
    # calorimeter cells + tracks (Rieck et al. 2025); returns {cells, tracks} per event
    "cocoa": cocoa.simulate,
}

#: Environment variable overriding where ``resources/`` lives (e.g. an installed package).
RESOURCES_ENV = "JETFORGE_RESOURCES"

__all__ = ["DETECTORS", "RESOURCES_ENV", "cards_dir", "known_cards", "load_card", "simulate"]


def cards_dir() -> Path:
    """The ``resources/detectors`` folder.

    ``$JETFORGE_RESOURCES`` (pointing at a ``resources`` folder) wins; otherwise walk up from
    this file to the first directory that contains ``resources/detectors``, which works from
    a source checkout and an editable install alike.
    """
    env = os.environ.get(RESOURCES_ENV)
    if env:
        path = Path(env).expanduser() / "detectors"
        if not path.is_dir():
            raise FileNotFoundError(f"${RESOURCES_ENV}={env!r} has no 'detectors' folder")
        return path
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "resources" / "detectors"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no resources/detectors above {Path(__file__).resolve()}; set ${RESOURCES_ENV}"
    )


def known_cards() -> list[str]:
    """Names of the cards in :func:`cards_dir`."""
    return sorted(p.stem for p in cards_dir().glob("*.yaml"))


def _resolve(name_or_path: str | os.PathLike[str]) -> Path:
    """A card name (``cms_eflow``) or a path to a YAML file -> the card file."""
    text = os.fspath(name_or_path)
    path = Path(text)
    looks_like_path = path.suffix in (".yaml", ".yml") or os.sep in text or "/" in text
    if looks_like_path:
        if not path.is_file():
            raise FileNotFoundError(f"detector card file {text!r} does not exist")
        return path
    path = cards_dir() / f"{text}.yaml"
    if not path.is_file():
        raise KeyError(f"unknown detector card {text!r}; known cards: {known_cards()}")
    return path


def load_card(name_or_path: str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    """Parsed card and the sha256 hex digest of the card file's bytes.

    The digest is of the file as written (comments included) so that any edit, even to a
    cited source, changes the provenance recorded with a dataset.
    """
    path = _resolve(name_or_path)
    raw = path.read_bytes()
    # libyaml's parser when present: the same mapping ~8x faster than the pure-Python one
    # (~10 ms per card, paid by every chunk job)
    card = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(card, dict):
        raise ValueError(f"detector card {path} must be a YAML mapping, got {type(card).__name__}")
    model = card.get("model")
    if model not in DETECTORS:
        raise KeyError(f"card {path}: model {model!r} is not one of {sorted(DETECTORS)}")
    return card, hashlib.sha256(raw).hexdigest()


def simulate(
    particles: ak.Array, card: Mapping[str, Any], rng: np.random.Generator
) -> ak.Array:
    """Run the detector model named by ``card['model']`` on ``particles``."""
    model = card.get("model")
    if model not in DETECTORS:
        raise KeyError(f"detector card 'model' = {model!r}; known models: {sorted(DETECTORS)}")
    return DETECTORS[model](particles, card, rng)
