"""M_EXT: per-atom lattice descriptors and the exact locality of dE (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors


def random_state(lattice: Lattice, n_species: int, n_vacancies: int, rng: np.random.Generator) -> torch.Tensor:
    digits = rng.integers(1, n_species + 1, lattice.n_sites)
    digits[rng.choice(lattice.n_sites, n_vacancies, replace=False)] = 0
    return torch.as_tensor(digits)


def random_site_energy(n_features: int, n_species: int, seed: int):
    """An untrained per-species MLP eps_s(G) in float64; vacant sites give 0."""
    torch.manual_seed(seed)
    nets = [torch.nn.Sequential(torch.nn.Linear(n_features, 16), torch.nn.CELU(0.1), torch.nn.Linear(16, 1)).double()
            for _ in range(n_species)]

    def eps(digits: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(digits.shape, dtype=torch.float64)
        for s, net in enumerate(nets):
            out = torch.where(digits == s + 1, net(g / 10.0)[..., 0], out)
        return out
    return eps


@pytest.mark.parametrize("kind,n,n_species,n_vac", [("fcc", 4, 2, 1), ("fcc", 4, 3, 5), ("bcc", 4, 2, 1),
                                                   ("bcc", 5, 3, 6)])
def test_local_dE_equals_whole_cell_difference(kind, n, n_species, n_vac):
    lattice = Lattice(kind, n, 3.0)
    desc = SiteDescriptors(lattice, n_species)
    rng = np.random.default_rng(n_vac)
    eps = random_site_energy(desc.n_features, n_species, seed=n_vac)
    digits = random_state(lattice, n_species, n_vac, rng)
    vacancies = torch.nonzero(digits == 0)[:, 0]
    with torch.no_grad():
        e_a = eps(digits, desc.describe(digits)).sum()
        for v in vacancies.tolist():
            for h in lattice.neighbors[v].tolist():
                after = digits.clone()
                after[v], after[h] = digits[h], digits[v]
                e_b = eps(after, desc.describe(after)).sum()
                w = desc.window(v, h)
                assert w.shape == (desc.window_size,) and len(set(w.tolist())) == desc.window_size
                assert int(w[0]) == v and int(w[1]) == h
                local = (eps(after[w], desc.describe(after, w)).sum() - eps(digits[w], desc.describe(digits, w)).sum())
                assert abs(float(local - (e_b - e_a))) < 1e-12 * max(1.0, abs(float(e_a)))


def test_descriptor_sizes_and_counts():
    desc = SiteDescriptors(Lattice("fcc", 4, 3.6), 2)
    assert desc.n_features == 72 and desc.reach_shell == 3
    assert desc.window_size == 60
    g = desc.describe(torch.ones(256, dtype=torch.long), torch.arange(3))
    assert g[:, :9].tolist()[0] == [0, 12, 0, 0, 6, 0, 0, 24, 0]
    bcc = SiteDescriptors(Lattice("bcc", 4, 3.0), 2)
    g = bcc.describe(torch.ones(128, dtype=torch.long), torch.arange(2))
    assert g[0, :9].tolist() == [0, 8, 0, 0, 6, 0, 0, 12, 0]


def test_small_cell_and_far_hop_are_errors():
    with pytest.raises(ValueError, match="too small"):
        SiteDescriptors(Lattice("fcc", 3, 3.6), 2)
    desc = SiteDescriptors(Lattice("fcc", 4, 3.6), 2)
    with pytest.raises(ValueError, match="first neighbour"):
        desc.window(0, 5)
