r"""The radial and angular AEV terms of single neighbours and neighbour pairs, as torch modules.

Each module holds its hyper-parameters as float64 buffers (torchani's style;
the cutoff radius is a plain float, as in torchani) and computes in the dtype
and on the device of its inputs; the float64 buffers are rounded to that dtype
once per call. Keep the buffers in float64: the fingerprints of the model
stage and of the kMC rate models are the numbers of these float64 constants.

The sums over neighbours (and the element bookkeeping) are the caller's:
:func:`dbkmc.detailed_balance.aev.aev` for explicit neighbours,
:mod:`dbkmc.detailed_balance.lattice_aev` for precomputed lattice tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dbkmc.detailed_balance.aev.params import AEVParams

TINY = 1e-30
"""Floor under squared lengths before a square root (finite gradients for coincident or collinear points)."""


def cutoff_cosine(r: Tensor, r_c: float) -> Tensor:
    """f_C(R) = 0.5 cos(pi R / R_c) + 0.5 for R <= R_c, else 0."""
    return torch.where(r <= r_c, 0.5 * torch.cos(r * (math.pi / r_c)) + 0.5, torch.zeros_like(r))


def distances(rel: Tensor) -> Tensor:
    """|R_ij| of (..., 3) vectors from the reference point, floored at sqrt(:data:`TINY`)."""
    return torch.sqrt(torch.clamp((rel * rel).sum(-1), min=TINY))


def _float64(values: float | Sequence[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


class RadialTerms(nn.Module):
    """Radial terms of each neighbour j: ``exp(-eta_R (R_ij - R_s,m)^2) f_C(R_ij)``, one per shift m.

    Buffers: ``eta`` (eta_R), ``shifts`` (R_s). ``cutoff``: R_c (float).
    ``forward(d)``: distances (..., M) -> (..., M, n_shifts).
    """

    eta: Tensor
    shifts: Tensor

    def __init__(self, eta: float, shifts: Sequence[float], cutoff: float) -> None:
        super().__init__()
        self.register_buffer("eta", _float64(float(eta)))
        self.register_buffer("shifts", _float64([float(s) for s in shifts]))
        self.cutoff = float(cutoff)

    @classmethod
    def from_params(cls, params: AEVParams) -> RadialTerms:
        """The radial terms of ``params`` (eta_R, R_s, r_cut)."""
        return cls(params.eta_R, params.R_s, params.r_cut)  # type: ignore[arg-type]

    @property
    def sublength(self) -> int:
        """Terms per neighbour (the length of one element's radial sub-vector)."""
        return self.shifts.numel()

    def forward(self, d: Tensor) -> Tensor:
        shifts = self.shifts.to(device=d.device, dtype=d.dtype)
        return torch.exp(-self.eta * (d.unsqueeze(-1) - shifts) ** 2) * cutoff_cosine(d, self.cutoff).unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"eta={float(self.eta)}, n_shifts={self.sublength}, cutoff={self.cutoff}"


class AngularTerms(nn.Module):
    r"""Angular terms of each neighbour pair (j, k) seen from i, one per (R_s, theta_s), ``theta_s`` fastest.

    ``2 ((1 + cos(theta_ijk - theta_s)) / 2)^zeta exp(-eta_A ((R_ij + R_ik)/2 - R_s)^2) f_C(R_ij) f_C(R_ik)``,
    i.e. ANI's ``2^(1-zeta) (1 + cos)^zeta`` without the ``2^zeta`` overflow.
    ``cos(theta - theta_s)`` is ``cos t cos t_s + sin t sin t_s`` with ``sin t``
    from a cross product, so gradients stay finite for collinear neighbours
    (torchani instead squeezes theta by 0.95).

    Buffers: ``eta`` (eta_A), ``zeta``, ``shifts`` (R_s of the angular grid),
    ``sections`` (theta_s). ``cutoff``: the angular R_c (float).
    ``forward(rj, rk, dj, dk)``: pair vectors (..., P, 3) and their lengths
    (..., P) -> (..., P, n_shifts * n_sections).
    """

    eta: Tensor
    zeta: Tensor
    shifts: Tensor
    sections: Tensor

    def __init__(self, eta: float, zeta: float, shifts: Sequence[float], sections: Sequence[float],
                 cutoff: float) -> None:
        super().__init__()
        self.register_buffer("eta", _float64(float(eta)))
        self.register_buffer("zeta", _float64(float(zeta)))
        self.register_buffer("shifts", _float64([float(s) for s in shifts]))
        self.register_buffer("sections", _float64([float(t) for t in sections]))
        self.cutoff = float(cutoff)

    @classmethod
    def from_params(cls, params: AEVParams) -> AngularTerms:
        """The angular terms of ``params`` (eta_A, zeta, R_s_angular, theta_s, r_cut_angular)."""
        return cls(params.eta_A, params.zeta, params.R_s_angular, params.theta_s,  # type: ignore[arg-type]
                   params.r_cut_angular)  # type: ignore[arg-type]

    @property
    def sublength(self) -> int:
        """Terms per neighbour pair (the length of one element pair's angular sub-vector)."""
        return self.shifts.numel() * self.sections.numel()

    def forward(self, rj: Tensor, rk: Tensor, dj: Tensor, dk: Tensor) -> Tensor:
        theta_s = self.sections.to(device=dj.device, dtype=dj.dtype)
        djk = dj * dk
        cos_t = (rj * rk).sum(-1) / djk
        cross = torch.linalg.cross(rj, rk, dim=-1)
        sin_t = torch.sqrt(torch.clamp((cross * cross).sum(-1), min=TINY)) / djk
        cos_dev = cos_t.unsqueeze(-1) * torch.cos(theta_s) + sin_t.unsqueeze(-1) * torch.sin(theta_s)
        # 2^(1-zeta) (1 + cos)^zeta, written as 2 ((1 + cos) / 2)^zeta (no 2^zeta overflow)
        f_angle = 2.0 * torch.clamp(0.5 * (1.0 + cos_dev), min=0.0) ** self.zeta
        shifts = self.shifts.to(device=dj.device, dtype=dj.dtype)
        mean_d = (0.5 * (dj + dk)).unsqueeze(-1)
        f_rad = torch.exp(-self.eta * (mean_d - shifts) ** 2)
        f_rad = f_rad * (cutoff_cosine(dj, self.cutoff) * cutoff_cosine(dk, self.cutoff)).unsqueeze(-1)
        return (f_rad.unsqueeze(-1) * f_angle.unsqueeze(-2)).flatten(-2)

    def extra_repr(self) -> str:
        return (f"eta={float(self.eta)}, zeta={float(self.zeta)}, n_shifts={self.shifts.numel()}, "
                f"n_sections={self.sections.numel()}, cutoff={self.cutoff}")


def angular_pair_table(rel: Tensor, d: Tensor, angular: AngularTerms) -> tuple[Tensor, Tensor]:
    """The symmetric pair table of M neighbours shared by many AEVs.

    ``rel`` (M, 3) neighbour vectors, ``d`` (M,) their lengths. Returns the
    indices (M_A,) of the neighbours inside the angular cutoff and
    ``W`` (M_A, M_A * n_A): ``W[j, k, q]`` the angular terms of the pair
    (j, k), zero on the diagonal, flattened over (k, q). The angular
    sub-vector of elements X != Y is then ``sum_{j != k} e_X[j] e_Y[k] W[j, k]``
    and half of it for X = Y (each unordered pair once).
    """
    ang = torch.nonzero(d < angular.cutoff).flatten()                    # f_C > 0 only
    n_ang, n_feat = len(ang), angular.sublength
    r_a, d_a = rel[ang], d[ang]
    pj, pk = torch.triu_indices(n_ang, n_ang, offset=1, device=rel.device)
    w_pairs = angular(r_a[pj], r_a[pk], d_a[pj], d_a[pk])               # (P, n_A), pairs j < k
    w = rel.new_zeros((n_ang, n_ang, n_feat))
    w[pj, pk] = w_pairs
    w[pk, pj] = w_pairs
    return ang, w.reshape(n_ang, n_ang * n_feat)
