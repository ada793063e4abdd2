r"""Local M_EXT energy changes of a swap of any two sites, for the swap Monte Carlo.

M_EXT's energy is ``E(S) = sum_i eps_{s_i}(G_i(S)) + sum_s mu_s N_s``, and ``G_i`` reads the sites
within ``reach_shell`` of i. Swapping the occupations of sites i and j (two species, or the
vacancy and an atom) changes the descriptors of the sites within ``reach_shell`` of i or j only,
the two included, so

    dE = sum_{k in ball(i) U ball(j)} [eps_k(after) - eps_k(before)]

exactly (the composition, hence ``mu_s N_s``, does not change). :class:`SwapEnergy` keeps the site
energies of the current state of every chain and evaluates only that union (about 86 sites in
fcc with shells 1-3) per trial, with the ensemble-mean site energies of the kMC rate model
(:class:`~dbkmc.kmc.rates.extensive_db.ExtensiveRateModel`), so the swap MC and the kMC sample
the same E(S).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from dbkmc.detailed_balance.site_descriptors import shell_offsets


class SwapEnergy:
    """``reset(digits [C, n]) -> E [C]``; ``delta(trial, i, j) -> dE [C]``; ``commit(accepted [C])``."""

    def __init__(self, model) -> None:
        self.model = model
        self.desc, self.site_energy = model.desc, model.site_energy
        lattice = model.lattice
        offs, _ = shell_offsets(lattice.kind, self.desc.reach_shell)
        ball = np.concatenate([np.zeros((1, 3), np.int64), offs])
        hc = lattice.half_coords
        self.balls = torch.as_tensor(lattice.site_at(hc[:, None, :] + ball[None]), dtype=torch.long)  # [n, B]
        self._eps: Tensor | None = None
        self._pending: tuple[Tensor, Tensor, Tensor] | None = None

    def reset(self, digits: np.ndarray) -> np.ndarray:
        d = torch.as_tensor(np.asarray(digits, dtype=np.int64))
        g = self.desc.describe(d, dtype=self.model.dtype)
        self._eps = self.site_energy(d.reshape(-1), g.reshape(-1, g.shape[-1])).view(d.shape)
        return self.model.energy(d).double().cpu().numpy()

    @torch.no_grad()
    def delta(self, trial: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """dE of every chain's trial state (``trial``: digits after swapping sites i and j)."""
        d = torch.as_tensor(np.asarray(trial, dtype=np.int64))
        bi, bj = self.balls[torch.as_tensor(i)], self.balls[torch.as_tensor(j)]        # [C, B]
        sites = torch.cat([bi, bj], 1)                                                 # [C, 2B]
        keep = torch.cat([torch.ones_like(bi, dtype=torch.bool),
                          ~(bj[:, :, None] == bi[:, None, :]).any(-1)], 1)             # count shared sites once
        g = self.desc.describe(d, sites, dtype=self.model.dtype)
        spec = torch.gather(d, 1, sites)
        eps = self.site_energy(spec.reshape(-1), g.reshape(-1, g.shape[-1])).view(sites.shape)
        old = torch.gather(self._eps, 1, sites)
        self._pending = (sites, eps, keep)
        return ((eps - old) * keep).sum(1).double().cpu().numpy()

    def commit(self, accepted: np.ndarray) -> None:
        """Write the site energies of the accepted trials into the cache."""
        sites, eps, _ = self._pending
        ok = torch.as_tensor(np.asarray(accepted, dtype=bool))
        if ok.any():
            rows = torch.nonzero(ok).squeeze(1)
            self._eps[rows[:, None], sites[rows]] = eps[rows]
