"""Four-vector kinematics on numpy (or awkward) columns: φ wrapping, ΔR, p_T, η, y, mass.

One place for these formulas so that every stage (detector, clustering, matching, pairs,
features) computes the same floats from the same inputs: the builders' outputs are
compared bit for bit across refactors, and two spellings of one formula (``%`` vs
``np.mod``, ``e² - |p|²`` vs ``e² - p_x² - p_y² - p_z²``) need not round alike. Every
function is a plain ufunc expression, so it works on numpy arrays, scalars and awkward
arrays alike. The ``vector`` package would do the same with one more dependency and its
own rounding; numpy keeps the outputs as they were.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Lower bound on p_T (GeV) where η divides by it: a particle along the beam gets a large
#: finite η instead of ±inf.
PT_FLOOR = 1e-12


def wrap_phi(dphi: Any) -> Any:
    """Angle (difference) mapped to [-π, π)."""
    return np.mod(dphi + np.pi, 2.0 * np.pi) - np.pi


def delta_phi(phi_a: Any, phi_b: Any) -> Any:
    """φ_a - φ_b wrapped to [-π, π)."""
    return wrap_phi(phi_a - phi_b)


def delta_r(eta_a: Any, phi_a: Any, eta_b: Any, phi_b: Any) -> Any:
    """ΔR = sqrt(Δη² + Δφ²) on the (η, φ) cylinder (pass rapidities for ΔR in (y, φ))."""
    return np.hypot(eta_a - eta_b, delta_phi(phi_a, phi_b))


def pseudorapidity(pz: Any, pt: Any, floor: float = PT_FLOOR) -> Any:
    """η = asinh(p_z / p_T), p_T bounded below by ``floor`` (0: none, for p_T > 0 only)."""
    return np.arcsinh(pz / np.maximum(pt, floor))


def pt_eta_phi(px: Any, py: Any, pz: Any) -> tuple[Any, Any, Any]:
    """(p_T, η, φ) of momenta; η with the :data:`PT_FLOOR` guard."""
    pt = np.hypot(px, py)
    return pt, pseudorapidity(pz, pt), np.arctan2(py, px)


def mass(px: Any, py: Any, pz: Any, e: Any) -> Any:
    """Invariant mass sqrt(max(E² - p_x² - p_y² - p_z², 0)) (rounding can make m² < 0)."""
    return np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))


def rapidity(pz: Any, e: Any) -> Any:
    """y = ½ ln((E + p_z) / (E - p_z)), both terms bounded below by 1e-12."""
    return 0.5 * np.log(np.maximum(e + pz, 1e-12) / np.maximum(e - pz, 1e-12))
