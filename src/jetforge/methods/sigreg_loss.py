"""SIGReg: Sketched Isotropic Gaussian Regularisation (LeJEPA, Balestriero & LeCun,
arXiv:2511.08544), the alternative to KoLeo in JP-JEPA (§4.1, eq. (2); Table 7 lambda_5 = 0.05).

An embedding batch ``Z [N, D]`` is pushed towards an isotropic Gaussian by testing many 1-d
projections ("sketches") ``z . a`` (a uniform on the unit sphere, redrawn every call) for
normality with the Epps-Pulley statistic

    EP(x) = N * integral_R |phi_hat(t) - phi(t)|^2 w(t) dt,
    phi_hat(t) = 1/N sum_j exp(i t x_j),   phi(t) = w(t) = exp(-t^2 / 2),

and averaging over the projections (Cramer-Wold: all 1-d marginals Gaussian <=> Gaussian).
JP-JEPA eq. (2) writes the target CF as exp(-t^2/sigma^2) "with sigma commonly set to 1";
we follow LeJEPA's reference implementation (``lejepa/univariate/epps_pulley.py``), whose
target is the standard normal CF exp(-t^2/2) (sigma^2 = 2 in the printed form) and whose
weight is the same Gaussian.

Numerics, as in the reference: the integrand is even in t, so it is integrated on
[0, t_max] with the trapezoid rule (17 knots, t_max = 3) and doubled; beyond t = 3 the
weight is below 1.2e-2 and the integrand below 4.4e-2. :func:`epps_pulley_exact` gives the
closed form (Gaussian integrals of cosines) used by the tests. Float32, autocast off.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def epps_pulley(x: Tensor, t_max: float = 3.0, n_points: int = 17) -> Tensor:
    """EP statistic of each column of ``x [N, M]`` by trapezoid quadrature -> ``[M]``."""
    if x.dim() != 2:
        raise ValueError(f"epps_pulley needs [N, M] samples, got {tuple(x.shape)}")
    if n_points < 2 or not t_max > 0:
        raise ValueError(f"need n_points >= 2 and t_max > 0, got {n_points}, {t_max}")
    n = x.shape[0]
    t = torch.linspace(0.0, t_max, n_points, dtype=torch.float32, device=x.device)
    phi = torch.exp(-0.5 * t * t)
    dt = t_max / (n_points - 1)
    w = torch.full_like(t, 2.0 * dt)  # doubled: the integral over R is twice that over t >= 0
    w[0] = w[-1] = dt
    xt = x.float().unsqueeze(-1) * t  # [N, M, T]
    err = (torch.cos(xt).mean(0) - phi) ** 2 + torch.sin(xt).mean(0) ** 2  # |phi_hat - phi|^2
    return n * (err @ (w * phi))


def epps_pulley_exact(x: Tensor) -> Tensor:
    """Closed form of the EP statistic over the whole real line for samples ``x [N]``.

    With int cos(a t) e^{-t^2/2} dt = sqrt(2 pi) e^{-a^2/2} and int cos(a t) e^{-t^2} dt =
    sqrt(pi) e^{-a^2/4}:  EP = N [ sqrt(2 pi)/N^2 sum_jk e^{-(x_j-x_k)^2/2}
    - 2 sqrt(pi)/N sum_j e^{-x_j^2/4} + sqrt(2 pi / 3) ].
    """
    x = x.double().flatten()
    n = x.numel()
    d = x[:, None] - x[None, :]
    s1 = math.sqrt(2 * math.pi) * torch.exp(-0.5 * d * d).sum() / n**2
    s2 = 2 * math.sqrt(math.pi) * torch.exp(-0.25 * x * x).sum() / n
    return n * (s1 - s2 + math.sqrt(2 * math.pi / 3))


class SIGRegLoss(nn.Module):
    """Mean EP statistic over ``num_slices`` random unit directions of ``z [N, D]``."""

    def __init__(self, num_slices: int = 256, t_max: float = 3.0, n_points: int = 17) -> None:
        super().__init__()
        if num_slices < 1:
            raise ValueError(f"num_slices must be >= 1, got {num_slices}")
        self.num_slices, self.t_max, self.n_points = int(num_slices), float(t_max), int(n_points)

    def forward(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if z.dim() != 2:
            raise ValueError(f"SIGReg needs [N, D] embeddings, got {tuple(z.shape)}")
        if z.shape[0] < 2:
            return z.sum() * 0.0
        with torch.autocast(device_type=z.device.type, enabled=False):
            a = torch.randn(z.shape[1], self.num_slices, generator=generator)  # CPU RNG
            a = (a / a.norm(dim=0, keepdim=True)).to(z.device)
            return epps_pulley(z.float() @ a, self.t_max, self.n_points).mean()
