"""Jet augmentations producing jBOT's two views (Tsoi & Rankin §3, §4.2; after JetCLR [19]).

Per jet (§4.2, in this order, as in the authors' code):

1. **rotation** of all particles about the jet axis by one angle theta ~ U[-pi, pi] in
   the (delta-eta, delta-phi) plane;
2. **Gaussian smearing** of each particle's delta-eta and delta-phi independently with
   width sigma = Lambda_QCD / p_T, Lambda_QCD = 100 MeV. The paper says "variance"; as in
   JetCLR ([19], whose ``distort_jets`` uses ``strength / pT`` as the *standard
   deviation*, strength 0.1 GeV) we use it as the standard deviation, with p_T clipped
   below at ``smear_pt_min`` = 0.1 GeV (JetCLR's clip) so the softest particles are not
   thrown across the detector;
3. **collinear splitting** for jets with fewer than ``split_below`` = 30 real particles
   (the JetNet maximum, §4.1-4.2): ``min(30 - n, n)`` random particles are each split
   into two at the same (eta, phi) with p_T fractions a and 1 - a, a ~ U[0.3, 0.7]
   (authors' code), conserving p_T exactly. The new particle goes into the first free
   (padded) slot; the particle axis grows if the batch has no room.

The augmentations act on (delta-eta, delta-phi, p_T); every other input feature is
either recomputed from them or carried along unchanged, according to its *name*
(:class:`JetFeatures`). Supported names:

* angles: ``deta``/``eta_rel``/``etarel``, ``dphi``/``phi_rel``/``phirel`` (set; phi
  wrapped to [-pi, pi)), ``dr`` (recomputed as hypot);
* momenta, log or linear, absolute or relative to the jet: ``log_pt``, ``log_pt_rel``,
  ``pt``, ``pt_rel``/``ptrel``, ``log_e``, ``log_e_rel``, ``e``, ``e_rel`` (rescaled);
* ``valid``/``mask`` (1 for real particles, also the new ones);
* passive per-particle properties copied unchanged (a split particle keeps its parent's):
  ``charge``, ``tanh_d0``, ``tanh_dz``, ``d0``, ``dz``, ``is_photon``, ``is_muon``,
  ``is_electron``, ``is_ch``, ``is_nh``, plus any listed in ``passive``.

Any other name is an error, so that a feature that should change is never left stale.
Presets: ``rs3l`` (the 15 RS3L features, :data:`jetforge.jets.features.RS3L_FEATURES`),
``jetnet`` (``etarel, phirel, ptrel, mask``: the JetNet files of this project,
``jetforge.jets.featuresets``) and ``jetnet3`` (``eta_rel, phi_rel, pt_rel``).

Approximations, all below the per-mille level at RS3L's cuts: the jet axis, p_T and
energy that the ``*_rel`` features refer to are held at their input values (rotation
and smearing move them only at second order, splitting not at all), and energies follow
the massless relation E = p_T cosh(eta) with the jet at eta = 0, i.e.
``log E' - log E = log(p_T'/p_T) + log cosh(deta') - log cosh(deta)`` (RS3L jets have
|eta_jet| < 0.1). For feature sets with only relative p_T (JetNet), the smearing width
needs an absolute scale: ``jet_pt`` (GeV; JetNet jets have p_T ~ 1 TeV, §4.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from jetforge.jets.features import RS3L_FEATURES

PRESETS: dict[str, tuple[str, ...]] = {
    "rs3l": tuple(RS3L_FEATURES),
    "jetnet": ("etarel", "phirel", "ptrel", "mask"),  # = jets.featuresets.JETNET_FEATURES
    "jetnet3": ("eta_rel", "phi_rel", "pt_rel"),
}
LAMBDA_QCD = 0.1  # GeV (§4.2)

_ETA = ("deta", "eta_rel", "etarel")
_PHI = ("dphi", "phi_rel", "phirel")
_LOG_PT = ("log_pt", "log_pt_rel")
_LIN_PT = ("pt", "pt_rel", "ptrel")
_LOG_E = ("log_e", "log_e_rel")
_LIN_E = ("e", "e_rel")
_VALID = ("valid", "mask")
PASSIVE: tuple[str, ...] = (
    "charge", "tanh_d0", "tanh_dz", "d0", "dz",
    "is_photon", "is_muon", "is_electron", "is_ch", "is_nh",
)  # fmt: skip


def resolve_feature_names(spec: str | Sequence[str]) -> tuple[str, ...]:
    """A preset name (``rs3l``, ``jetnet``, ``jetnet3``) or an explicit list of names."""
    if isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown feature preset {spec!r}; presets: {sorted(PRESETS)}")
        return PRESETS[spec]
    return tuple(str(s) for s in spec)


def wrap_phi(phi: Tensor) -> Tensor:
    """Angle mapped to [-pi, pi)."""
    return torch.remainder(phi + math.pi, 2.0 * math.pi) - math.pi


def log_cosh(x: Tensor) -> Tensor:
    """Overflow-free ``log(cosh(x))``."""
    a = x.abs()
    return a + torch.log1p(torch.exp(-2.0 * a)) - math.log(2.0)


@dataclass(frozen=True)
class JetFeatures:
    """Names of the particle features -> how augmentations read and rewrite them."""

    names: tuple[str, ...]
    jet_pt: float | None = None  # GeV; only for feature sets without absolute p_T
    passive: tuple[str, ...] = ()
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(self.names)
        object.__setattr__(self, "names", names)
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate feature names in {names}")
        known = set(_ETA + _PHI + _LOG_PT + _LIN_PT + _LOG_E + _LIN_E + _VALID + PASSIVE + ("dr",))
        unknown = [n for n in names if n not in known and n not in self.passive]
        if unknown:
            raise ValueError(
                f"features {unknown} have no augmentation rule; list them in passive_features "
                f"if they are unchanged by rotation, smearing and splitting (names: {names})"
            )
        object.__setattr__(self, "index", {n: i for i, n in enumerate(names)})
        for group, what in ((_ETA, "delta-eta"), (_PHI, "delta-phi")):
            if sum(n in self.index for n in group) != 1:
                raise ValueError(f"need exactly one {what} feature of {group}, names: {names}")
        if not any(n in self.index for n in _LOG_PT + _LIN_PT):
            raise ValueError(f"need a p_T feature (one of {_LOG_PT + _LIN_PT}), names: {names}")

    @classmethod
    def from_spec(
        cls, spec: str | Sequence[str], jet_pt: float | None = None, passive: Sequence[str] = ()
    ) -> JetFeatures:
        return cls(
            resolve_feature_names(spec), None if jet_pt is None else float(jet_pt), tuple(passive)
        )

    def _col(self, group: Sequence[str]) -> int | None:
        return next((self.index[n] for n in group if n in self.index), None)

    @property
    def has_absolute_pt(self) -> bool:
        return "log_pt" in self.index or "pt" in self.index

    def eta_phi(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[..., self._col(_ETA)], x[..., self._col(_PHI)]

    def pt_weight(self, x: Tensor) -> Tensor:
        """A quantity proportional to particle p_T (any scale): the masking weight."""
        order = (
            ("log_pt", True),
            ("pt", False),
            ("log_pt_rel", True),
            ("pt_rel", False),
            ("ptrel", False),
        )
        for n, log in order:
            if n in self.index:
                v = x[..., self.index[n]]
                return torch.exp(v) if log else v
        raise AssertionError("unreachable: checked in __post_init__")

    def pt_gev(self, x: Tensor) -> Tensor:
        """Particle p_T in GeV (absolute feature, or relative times ``jet_pt``)."""
        if self.has_absolute_pt:
            return self.pt_weight(x)
        if self.jet_pt is None:
            raise ValueError(
                f"features {self.names} carry only relative p_T; "
                "set jet_pt (GeV) for the smearing width"
            )
        return self.pt_weight(x) * self.jet_pt

    def rewrite(
        self,
        x: Tensor,
        deta: Tensor | None = None,
        dphi: Tensor | None = None,
        log_scale: Tensor | None = None,
    ) -> Tensor:
        """Features with new (deta, dphi) and p_T scaled by ``exp(log_scale)``; dependent
        features recomputed (module docstring), passive ones copied."""
        d0, p0 = self.eta_phi(x)
        d1 = d0 if deta is None else deta
        p1 = p0 if dphi is None else wrap_phi(dphi)
        out = x.clone()
        out[..., self._col(_ETA)] = d1
        out[..., self._col(_PHI)] = p1
        if "dr" in self.index:
            out[..., self.index["dr"]] = torch.hypot(d1, p1)
        dlog_pt = torch.zeros_like(d1) if log_scale is None else log_scale.to(x.dtype)
        dlog_e = dlog_pt + (log_cosh(d1) - log_cosh(d0) if deta is not None else 0.0)
        for group, delta in ((_LOG_PT, dlog_pt), (_LOG_E, dlog_e)):
            for n in group:
                if n in self.index:
                    out[..., self.index[n]] = x[..., self.index[n]] + delta
        for group, delta in ((_LIN_PT, dlog_pt), (_LIN_E, dlog_e)):
            for n in group:
                if n in self.index:
                    out[..., self.index[n]] = x[..., self.index[n]] * torch.exp(delta)
        return out

    def set_valid(self, x: Tensor, mask: Tensor) -> Tensor:
        """Write the mask into a ``valid``/``mask`` feature, if the set has one."""
        for n in _VALID:
            if n in self.index:
                x[..., self.index[n]] = mask.to(x.dtype)
        return x


def _clean(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))


def rotate(x: Tensor, mask: Tensor, feats: JetFeatures) -> Tensor:
    """Rotate each jet's particles about the jet axis by theta ~ U[-pi, pi] (§4.2)."""
    theta = (torch.rand(x.shape[0], 1, device=x.device, dtype=x.dtype) * 2.0 - 1.0) * math.pi
    c, s = torch.cos(theta), torch.sin(theta)
    deta, dphi = feats.eta_phi(x)
    return _clean(feats.rewrite(x, c * deta - s * dphi, s * deta + c * dphi), mask)


def smear(
    x: Tensor, mask: Tensor, feats: JetFeatures, lambda_qcd: float = LAMBDA_QCD, pt_min: float = 0.1
) -> Tensor:
    """Shift deta, dphi by independent N(0, sigma^2), sigma = Lambda_QCD / p_T (§4.2, [19])."""
    sigma = lambda_qcd / feats.pt_gev(_clean(x, mask)).clamp_min(pt_min)
    deta, dphi = feats.eta_phi(x)
    noise = torch.randn(2, *deta.shape, device=x.device, dtype=x.dtype)
    return _clean(feats.rewrite(x, deta + sigma * noise[0], dphi + sigma * noise[1]), mask)


def collinear_split(
    x: Tensor,
    mask: Tensor,
    feats: JetFeatures,
    split_below: int = 30,
    fraction: tuple[float, float] = (0.3, 0.7),
) -> tuple[Tensor, Tensor]:
    """Split ``min(split_below - n, n)`` random particles of each jet with n real ones (§4.2)."""
    B, P, Fd = x.shape
    n = mask.sum(1)
    n_split = (split_below - n).clamp(min=0).minimum(n)
    if n_split.numel() == 0 or int(n_split.max()) == 0:
        return x, mask
    keys = torch.where(
        mask, torch.rand(B, P, device=x.device), torch.full((B, P), 2.0, device=x.device)
    )
    rank = keys.argsort(1).argsort(1)
    sel = mask & (rank < n_split[:, None])
    a = fraction[0] + (fraction[1] - fraction[0]) * torch.rand(B, P, device=x.device, dtype=x.dtype)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    parent = feats.rewrite(x, log_scale=torch.where(sel, torch.log(a), zero))
    child = feats.rewrite(x, log_scale=torch.where(sel, torch.log1p(-a), zero))
    width = max(P, int((n + n_split).max()))
    xo = x.new_zeros(B, width, Fd)
    xo[:, :P] = _clean(parent, mask)
    mo = torch.zeros(B, width, dtype=torch.bool, device=x.device)
    mo[:, :P] = mask
    free_first = mo.to(torch.int8).argsort(dim=1, stable=True)  # free slots, in index order
    dest = torch.gather(free_first, 1, rank.clamp(max=width - 1))
    b, p = sel.nonzero(as_tuple=True)
    xo[b, dest[b, p]] = child[b, p]
    mo[b, dest[b, p]] = True
    return feats.set_valid(xo, mo), mo


@dataclass(frozen=True)
class JetAugment:
    """The view-making chain of §4.2 with its settings (defaults: §4.2 / authors' code)."""

    feats: JetFeatures
    rotate: bool = True
    smear: bool = True
    lambda_qcd: float = LAMBDA_QCD  # GeV, §4.2
    smear_pt_min: float = 0.1  # GeV, JetCLR's clip
    split_below: int = 30  # §4.2: jets with < 30 particles
    split_fraction: tuple[float, float] = (0.3, 0.7)  # authors' code

    def __post_init__(self) -> None:
        if self.smear:
            self.feats.pt_gev(torch.ones(1, len(self.feats.names)))  # raises early if no p_T scale

    def __call__(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """One random view of each jet: ``(x', mask')`` (the particle axis may grow)."""
        mask = mask.bool()
        x = _clean(x, mask)
        if self.rotate:
            x = rotate(x, mask, self.feats)
        if self.smear:
            x = smear(x, mask, self.feats, self.lambda_qcd, self.smear_pt_min)
        if self.split_below > 0:
            x, mask = collinear_split(x, mask, self.feats, self.split_below, self.split_fraction)
        return x, mask
