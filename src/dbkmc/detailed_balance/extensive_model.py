r"""M_EXT: an extensive lattice energy E(S) = sum_i eps_{s_i}(G_i(S)), one small MLP per species (as ANI).

G_i are the per-atom lattice descriptors of :mod:`dbkmc.detailed_balance.site_descriptors` (radial
shell counts and triplet counts, the vacancy as its own channel). A vacant site contributes nothing.

The model reads the ``EXT`` fingerprints of a jump: ``EXT_A``/``EXT_B`` are (N, M, S + D), for the M
sites of the jump's window (every site whose G can change), the one-hot species of the site (all zeros
when vacant) followed by G. Then

    dE_[A,B] = sum_window eps(B) - sum_window eps(A) = E(B) - E(A),

exactly, because every atom outside the window keeps its G. E is a state function of the whole cell:
dE is antisymmetric and every closed loop of jumps sums to zero by construction, with any number of
vacancies. :meth:`ExtensiveModel.energy` gives E of whole cells (all sites), plus per-species reference
energies ``mu_s N_s`` that only an energy term in the loss fits (they cancel in dE).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from dbkmc.detailed_balance.model_base import TransitionModel

SITE_ENERGY_SCALE = 0.05
"""eV: the scale of one site energy eps at the output of the per-species MLPs."""


def species_mlp(in_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """eps_s: a CELU(0.1) MLP with a scalar output."""
    layers: list[nn.Module] = []
    width = in_dim
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.CELU(0.1)]
        width = int(h)
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class ExtensiveModel(TransitionModel):
    """M_EXT: ``dE_[A,B] = sum_window eps(G(B)) - sum_window eps(G(A))``, a difference of whole-cell energies.

    ``feature_dim`` is S + D (one-hot species, then G); ``dropout`` is accepted for the common
    constructor and must be 0 (a site energy is a deterministic function)."""

    kind = "M_EXT"
    fingerprint = "EXT"
    target = "dE"

    def __init__(self, feature_dim: int, hidden: Sequence[int] = (32, 32), dropout: float = 0.0,
                 n_species: int = 2) -> None:
        nn.Module.__init__(self)
        if not 1 <= n_species < feature_dim or any(int(h) < 1 for h in hidden):
            raise ValueError(f"M_EXT: bad sizes feature_dim={feature_dim}, n_species={n_species}, hidden={hidden}")
        self.feature_dim, self.n_species = int(feature_dim), int(n_species)
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout = float(dropout)
        d = self.feature_dim - self.n_species
        self.nets = nn.ModuleList(species_mlp(d, self.hidden) for _ in range(self.n_species))
        self.mu = nn.Parameter(torch.zeros(self.n_species))
        self.register_buffer("x_mean", torch.zeros(d))
        self.register_buffer("x_std", torch.ones(d))
        self.register_buffer("e_scale", torch.tensor(SITE_ENERGY_SCALE))

    def arch(self) -> dict[str, Any]:
        return {"feature_dim": self.feature_dim, "hidden": list(self.hidden), "dropout": self.dropout,
                "n_species": self.n_species}

    def energy_inputs(self, x_a: Tensor, x_b: Tensor) -> list[Tensor]:
        """The descriptor rows of the occupied sites (what the per-species MLPs see)."""
        rows = torch.cat([x_a, x_b]).reshape(-1, self.feature_dim)
        return [rows[rows[:, :self.n_species].sum(-1) > 0, self.n_species:]]

    @torch.no_grad()
    def fit_standardization(self, x_a: Tensor, x_b: Tensor, y: Tensor) -> None:
        """Mean and std of G over the occupied sites of the training windows (constant columns: std 1)."""
        g = self.energy_inputs(x_a, x_b)[0].to(torch.float64)
        mean, std = g.mean(0), g.std(0, unbiased=False)
        self.x_mean.copy_(mean)
        self.x_std.copy_(torch.where(std > 1e-9, std, torch.ones_like(std)))

    def site_energies(self, x: Tensor) -> Tensor:
        """eps of every site, [..., M] (eV) from [..., M, S + D]; 0 on vacant sites."""
        onehot, g = x[..., :self.n_species], (x[..., self.n_species:] - self.x_mean) / self.x_std
        eps = torch.cat([net(g) for net in self.nets], dim=-1)           # [..., M, S]
        return (onehot * eps).sum(-1) * self.e_scale

    def forward(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        """dE_[A,B] of N jumps from their window fingerprints (N, M, S + D)."""
        return self.site_energies(x_b).sum(-1) - self.site_energies(x_a).sum(-1)

    def energy(self, x_all: Tensor) -> Tensor:
        """E(S) of whole cells from the fingerprints of all their sites [..., n_sites, S + D]: the sum of the
        site energies plus the per-species reference energies mu_s N_s."""
        counts = x_all[..., :self.n_species].sum(-2)
        return self.site_energies(x_all).sum(-1) + counts @ self.mu
