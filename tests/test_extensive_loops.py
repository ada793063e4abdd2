"""M_EXT on closed loops (Fig 9) and on the exact Markov chain: E is a state function of the whole cell.

The M_EXT ensemble is random (untrained, float32 like a trained one); the properties under test hold for
any weights: every loop sums to zero (float64 site energies), and M_EXT + KRA rates obey detailed balance
with pi equal to the Boltzmann weights of the whole-cell E(S).
"""

from __future__ import annotations

import numpy as np
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.aev import AEVParams
from dbkmc.detailed_balance.drift import loop_energy_sums, markov_check
from dbkmc.detailed_balance.ext_fingerprints import DEFAULT_SHELLS
from dbkmc.detailed_balance.loops import cycle_basis, grow_loops, lattice_graph
from dbkmc.detailed_balance.markov import enumerate_states
from dbkmc.detailed_balance.models import Ensemble, build_model
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors
from dbkmc.detailed_balance.training import LoadedModel

SPECIES = ["Cu", "Ni"]
AEV = AEVParams(r_cut=4.2, R_s=(1.0, 2.0, 3.0, 4.0), R_s_angular=(1.5, 3.0), theta_s=(0.4, 1.2, 2.0, 2.8))
HALF = {"Cu": 0.5, "Ni": 0.5}


def ext_model(n_members: int = 3) -> LoadedModel:
    d = SiteDescriptors(Lattice("fcc", 4, 3.6), 2).n_features
    members = []
    for k in range(n_members):
        torch.manual_seed(k)
        m = build_model("M_EXT", 2 + d, hidden=(16, 16), dropout=0.0, n_species=2)
        with torch.no_grad():
            m.x_std.fill_(20.0)
        members.append(m.eval())
    return LoadedModel(Ensemble(members), AEV, SPECIES, {"lattice": "fcc", "ext_shells": dict(DEFAULT_SHELLS)})


def kra_model() -> LoadedModel:
    torch.manual_seed(5)
    m = build_model("KRA", AEV.dim(2), hidden=(8,), dropout=0.0)
    with torch.no_grad():
        m.energy.y_shift.fill_(0.7)
        m.energy.y_scale.fill_(0.1)
        m.energy.x_std.fill_(5.0)
    return LoadedModel(Ensemble([m.eval()]), AEV, SPECIES, {})


def test_m_ext_loops_sum_to_zero_at_every_length():
    lattice = Lattice("fcc", 4, 3.6)
    basis = cycle_basis(lattice_graph(lattice))
    loop_set = grow_loops(basis, [3, 10, 31], 5, np.random.default_rng(1), 200)
    per_loop = loop_energy_sums({"M_EXT": ext_model()}, lattice, loop_set, HALF, None, seed=2)
    assert set(per_loop["L"]) == {3, 10, 31}
    assert np.abs(per_loop["E_net"]).max() <= 1e-10
    assert np.abs(np.stack(per_loop["E_net_members"].to_numpy())).max() <= 1e-10


def test_m_ext_kra_chain_obeys_detailed_balance_with_boltzmann_pi():
    lattice = Lattice("fcc", 2, 3.6)              # a small periodic cell: the windows hold every site once
    start = np.zeros(lattice.n_sites, dtype=np.int8)
    start[0], start[1] = -1, 1
    space = enumerate_states(lattice, start)
    table = markov_check({"M_EXT": ext_model()}, kra_model(), lattice, space, 1000.0, 1e13).set_index("model")
    assert table.loc["M_EXT", "max_rel_flux_imbalance"] <= 1e-10
    assert table.loc["M_EXT", "boltzmann_max_rel_dev"] <= 1e-10
    assert bool(table.loc["M_EXT", "detailed_balance_1e-10"])
