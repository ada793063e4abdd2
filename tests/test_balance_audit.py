"""Detailed-balance audit of kMC rate models (dbkmc.kmc.balance_audit, rule balance_audit): loop drift of the
implied dE = E_b(A->B) - E_b(B->A) and the exact Markov check, for NNK and for a rate model with exact detailed
balance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.kmc.balance_audit import drift_table, hop_barriers, loop_drift, markov_audit, path_index
from dbkmc.kmc.rates.base import build_rate_model
from dbkmc.stages.balance_audit import audit_step, tiny_start

NBMOTA = ("Nb", "Mo", "Ta")
CUNI = ("Cu", "Ni")
PUBLISHED = {"kind": "nnk_published", "weights": "data/nnk_nbmota/weights.npy", "species": list(NBMOTA)}


class PairRates:
    """A rate model with exact detailed balance: E(S) = sum over first-neighbour bonds of J[c_i, c_j] (vacancy =
    channel 0) and E_b = E_KRA + dE/2 with an E_KRA that reads only what A and B share (the jumping species and
    the sites other than v, h), so it is symmetric in A and B."""

    def __init__(self, lattice: Lattice, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        j = rng.normal(0.0, 0.1, (3, 3))
        self.j = torch.as_tensor(j + j.T, dtype=torch.float64)
        self.lattice, self.nbr = lattice, torch.as_tensor(lattice.neighbors)
        self.z = lattice.neighbors.shape[1]

    def energy(self, digits: torch.Tensor) -> torch.Tensor:
        d = digits.long()
        return 0.5 * self.j[d.unsqueeze(-1), d[:, self.nbr]].sum((1, 2))

    def barriers(self, digits: torch.Tensor, vacancies: torch.Tensor) -> torch.Tensor:
        d = digits.long()
        t = d.shape[0]
        rows = torch.arange(t)
        v = vacancies[:, 0]
        hops = self.nbr[v]                                                                 # (T, z)
        after = d.unsqueeze(1).repeat(1, self.z, 1)
        moving = d[rows[:, None], hops]
        after[rows[:, None], torch.arange(self.z), v[:, None]] = moving
        after[rows[:, None], torch.arange(self.z), hops] = 0
        d_e = self.energy(after.reshape(t * self.z, -1)).view(t, self.z) - self.energy(d)[:, None]
        ni_near_h = (d.gather(1, self.nbr[hops].reshape(t, -1)).view(t, self.z, -1) == 2).sum(-1)  # (T, z)
        ni_near_v = (d.gather(1, self.nbr[v]) == 2).sum(-1, keepdim=True)                         # (T, 1)
        shared = ni_near_h + ni_near_v              # the same in A and B: the jumping atom counts once either way
        e_kra = 0.6 + 0.05 * (moving == 2) + 0.01 * shared
        return (e_kra + 0.5 * d_e).unsqueeze(1)


def test_exact_model_passes_both_checks():
    lat = Lattice("fcc", 4, 3.6)
    per_loop, status = loop_drift(PairRates(lat), lat, CUNI, {"Cu": 0.5, "Ni": 0.5}, [6, 12], 4, seed=3)
    assert set(status.values()) == {"ok"} and len(per_loop) == 8
    assert per_loop["max_abs_dE_eV"].max() > 1e-3            # the hops do change the energy ...
    assert per_loop["E_net_eV"].abs().max() < 1e-12           # ... and every loop sums to zero
    tiny = Lattice("fcc", 2, 3.6)
    row = markov_audit(PairRates(tiny), tiny, tiny_start(tiny, np.array([1, 1, 2]), CUNI), 800.0)
    assert row["n_states"] == 32 * 31 and row["max_abs_dE_implied_eV"] > 1e-3
    assert row["max_rel_flux_imbalance"] < 1e-10 and row["net_flux_fraction"] < 1e-12


def test_published_nnk_breaks_detailed_balance():
    """NNK predicts each forward barrier from its initial state alone: loops drift and cycles carry net flux."""
    lat = Lattice("bcc", 4, 3.24)
    model = build_rate_model(PUBLISHED, lat, NBMOTA)
    per_loop, _ = loop_drift(model, lat, NBMOTA, dict.fromkeys(NBMOTA, 1 / 3), [10], 5, seed=1)
    assert drift_table(per_loop)["mean_abs_E_net_eV"].iloc[0] > 1e-3
    tiny = Lattice("bcc", 2, 3.24)
    row = markov_audit(build_rate_model(PUBLISHED, tiny, NBMOTA), tiny,
                       tiny_start(tiny, np.array([1, 1, 2, 3]), NBMOTA), 1000.0)
    assert row["n_states"] == 16 * 15 * 14
    assert row["max_rel_flux_imbalance"] > 1e-3 and row["net_flux_fraction"] > 1e-4


def test_hop_barriers_follow_the_engine_paths():
    lat = Lattice("fcc", 3, 3.6)
    model = PairRates(lat)
    occ = np.zeros((1, lat.n_sites), dtype=np.int8)
    occ[0, ::3] = 1
    occ[0, 0] = -1
    k = 4
    hop = lat.neighbors[0, k]
    forward, backward = hop_barriers(model, lat, occ, np.array([0]), np.array([hop]))
    after = occ.copy()
    after[0, 0], after[0, hop] = occ[0, hop], -1
    d_e = model.energy(torch.as_tensor(after + 1)) - model.energy(torch.as_tensor(occ + 1))
    assert forward[0] - backward[0] == pytest.approx(float(d_e[0]), abs=1e-12)
    with pytest.raises(ValueError, match="not a first neighbour"):
        path_index(lat, np.array([0]), np.array([0]))


def test_unknown_run_is_named(tmp_path):
    out = {k: tmp_path / k for k in ("loops", "drift", "markov", "markdown", "figure")}
    cfg = {"runs": ["nope"], "loop_lengths": [10], "n_loops": 1, "markov_supercell": 2, "temperature": 1000.0,
           "seed": 0}
    with pytest.raises(ValueError, match=r"balance_audit.runs: 'nope'"):
        audit_step({"cuni": {}}, cfg, "auto", out)     # the demo passes kmc.device, "auto"


def test_config_names_an_unknown_audited_run():
    from dbkmc.core.config import ConfigError, load_config, validate_config

    cfg = load_config("config/config.yaml")
    cfg["balance_audit"]["runs"] = ["cuni_aging", "nope"]
    with pytest.raises(ConfigError, match=r"balance_audit.runs.1: 'nope' is not a kmc run"):
        validate_config(cfg)
