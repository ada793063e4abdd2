"""A small exact stand-in rate model for the kMC tests: first-neighbour pair bonds + KRA.

``E_b = E_KRA[X] + (E_B - E_A) / 2`` for atom X jumping into the vacancy, with the
state energy ``E = sum over first-neighbour bonds eps[d_i, d_j]`` (vacancy bonds 0).
It obeys detailed balance, so a long run samples ``exp(-E / k_B T)``.
"""

from __future__ import annotations

import numpy as np
import torch

from dbkmc.core.lattice import COORDINATION, Lattice
from dbkmc.detailed_balance.models import Ensemble, build_model


def random_ensemble(kind: str, dim: int, seed: int, shift: float = 0.0, **kw) -> Ensemble:
    """Two untrained float64 members of ``kind`` with perturbed weights (every input matters); ``shift``
    offsets the output. For the rate-model tests that need a network, not a trained one."""
    members = []
    for k in range(2):
        torch.manual_seed(seed * 10 + k)
        model = build_model(kind, dim, hidden=(16, 8), dropout=0.0, **kw).double()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
            if shift:
                model.energy.y_shift.fill_(shift)
        members.append(model.eval())
    return Ensemble(members)


class PairBondModel:
    has_energy = True

    def __init__(self, lattice: Lattice, species, eps: np.ndarray, e_kra: np.ndarray, device="cpu"):
        self.lattice = lattice
        self.species = tuple(species)
        k = len(species) + 1
        eps = np.asarray(eps, dtype=np.float64)
        assert eps.shape == (k, k) and np.allclose(eps, eps.T) and not eps[0].any()
        self.eps = torch.as_tensor(eps, device=device)
        self.e_kra = torch.as_tensor(np.asarray(e_kra, dtype=np.float64), device=device)
        self.nbr = torch.as_tensor(lattice.neighbors, device=device)
        self.reach = 2.0 * np.sqrt(3.0 if lattice.kind == "bcc" else 2.0) * lattice.a / 2.0 + 1e-6
        self.calls = 0
        self.evaluated = 0

    @property
    def z(self) -> int:
        return COORDINATION[self.lattice.kind]

    def barriers(self, digits, vacancies):
        self.calls += 1
        self.evaluated += vacancies.numel()
        T, m = vacancies.shape
        tgt = self.nbr[vacancies]  # [T, m, z] site of the jumping atom
        d = digits
        x = d.gather(1, tgt.view(T, -1)).view(T, m, self.z)  # species of the jumping atom
        nb_t = d.gather(1, self.nbr[tgt].view(T, -1)).view(T, m, self.z, self.z)  # around its site
        nb_v = d.gather(1, self.nbr[vacancies].view(T, -1)).view(T, m, 1, self.z).expand(T, m, self.z, self.z)
        nb_v = torch.where(torch.eye(self.z, dtype=torch.bool, device=d.device), 0, nb_v)  # t leaves
        e_a = self.eps[x[..., None], nb_t].sum(-1)
        e_b = self.eps[x[..., None], nb_v].sum(-1)
        return self.e_kra[x] + 0.5 * (e_b - e_a)

    def energy(self, digits):
        bonds = self.eps[digits[:, :, None], digits[:, self.nbr]]  # each bond twice
        return 0.5 * bonds.sum((1, 2))


def pair_model(lattice, n_species=2, seed=0, scale=0.1, kra=0.7):
    rng = np.random.default_rng(seed)
    k = n_species + 1
    eps = np.zeros((k, k))
    e = rng.normal(0, scale, (n_species, n_species))
    eps[1:, 1:] = 0.5 * (e + e.T)
    e_kra = np.concatenate([[0.0], kra + 0.1 * rng.random(n_species)])
    return PairBondModel(lattice, [f"X{i}" for i in range(n_species)], eps, e_kra)
