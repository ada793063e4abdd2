"""Closed loops (dbkmc.detailed_balance.loops), the exact Markov chain (dbkmc.detailed_balance.markov) and the models on both (dbkmc.detailed_balance.drift).

The models here are random (untrained) ensembles with a realistic output scale:
the exact properties under test (M_KOL conserves energy on every loop; KOL+KRA
rates obey detailed balance) must hold for any weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dbkmc.core.config import ConfigError, validate_config
from dbkmc.detailed_balance.drift import Featurizer, loop_energy_sums, markov_check
from dbkmc.stages.loops import loop_drift_step, markov_check_step
from dbkmc.detailed_balance.fingerprints import AEVParams, featurize_events
from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.loops import (
    cycle_basis,
    cycle_edges,
    grow_loops,
    lattice_graph,
    loop_hop_events,
    loop_states,
    requested_lengths,
)
from dbkmc.detailed_balance.markov import (
    K_B,
    boltzmann_weights,
    detailed_balance,
    enumerate_states,
    rate_matrix,
    stationary_distribution,
)
from dbkmc.detailed_balance.models import MODEL_KINDS, Ensemble, build_model
from dbkmc.core.sampling import occupation_from_str
from dbkmc.detailed_balance.training import LoadedModel, save_ensemble

SPECIES = ["Cu", "Ni"]
A_FCC = 3.6
# a small AEV keeps the featurisation fast; the properties under test do not depend on it
AEV = AEVParams(r_cut=4.2, R_s=(1.0, 2.0, 3.0, 4.0), R_s_angular=(1.5, 3.0), theta_s=(0.4, 1.2, 2.0, 2.8))
HALF = {"Cu": 0.5, "Ni": 0.5}
REPO = Path(__file__).resolve().parents[1]
CUNI = {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
        "files": {"table": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]}


def _config() -> dict:
    """A validated config with the model stage on the reference dataset and loops on."""
    return validate_config({
        "potentials": {"cuni_eam": CUNI},
        "datasets": {"reference": {"potential": "cuni_eam", "lattice": "fcc", "compositions": {"Cu50Ni50": HALF},
                                   "source": str(REPO / "data" / "reference_cuni")}},
        "models": {"dataset": "reference"},
        "loops": {"enabled": True},
    })


def _loops(kind: str, n: int, lengths, n_loops: int, seed: int = 0):
    basis = cycle_basis(lattice_graph(Lattice(kind, n, A_FCC)))
    return basis, grow_loops(basis, lengths, n_loops, np.random.default_rng(seed), 40 * n_loops)


@pytest.fixture(scope="module")
def models() -> dict[str, LoadedModel]:
    """Random 3-member ensembles of every kind, standardised on real loop fingerprints (dE scale 0.1 eV)."""
    lattice = Lattice("fcc", 3, A_FCC)
    _, loop_set = _loops("fcc", 3, [6], 4, seed=7)
    occ, _ = loop_states(lattice, loop_set.loops[6], SPECIES, HALF, None, np.random.default_rng(7))
    fps = featurize_events(loop_hop_events(lattice, loop_set.loops[6], occ, SPECIES), AEV, species=SPECIES)
    fps = {k: v.float() for k, v in fps.items()}
    y = torch.randn(len(fps["TW_A"]), generator=torch.Generator().manual_seed(0)) * 0.1
    out = {}
    for i, kind in enumerate(k for k in MODEL_KINDS if k != "M_EXT"):   # M_EXT: tests/test_extensive_loops.py
        members = []
        for k in range(3):
            torch.manual_seed(100 * i + k)
            model = build_model(kind, AEV.dim(len(SPECIES)), hidden=(16, 8), dropout=0.1)
            fp = model.fingerprint
            model.fit_standardization(fps[f"{fp}_A"], fps[f"{fp}_B"], 0.7 + y if kind == "KRA" else y)
            members.append(model.eval())
        out[kind] = LoadedModel(Ensemble(members), AEV, SPECIES, {})
    return out


def _de_models(models):
    return {k: models[k] for k in ("M_NC", "M_SAS", "M_HAS", "M_KOL")}


# --------------------------------------------------------------------------- graph and loops


@pytest.mark.parametrize("kind,n,girth,bipartite", [("fcc", 2, 3, False), ("fcc", 3, 3, False),
                                                    ("bcc", 2, 4, True), ("bcc", 3, 4, True)])
def test_cycle_basis_spans_the_cycle_space_with_short_cycles(kind, n, girth, bipartite):
    graph = lattice_graph(Lattice(kind, n, A_FCC))
    assert graph.number_of_edges() == Lattice(kind, n, A_FCC).n_sites * {"fcc": 12, "bcc": 8}[kind] // 2
    basis = cycle_basis(graph)
    assert len(basis) == graph.number_of_edges() - graph.number_of_nodes() + 1  # the cycle-space dimension
    assert basis.girth == girth and basis.bipartite == bipartite
    lengths = sorted(len(c) for c in basis.cycles)
    assert lengths[-4] == girth            # all but the three box-winding cycles are shortest cycles
    for cycle in basis.cycles:
        assert all(graph.has_edge(u, v) for u, v in cycle_edges(cycle))


def test_grown_loops_are_distinct_simple_cycles_of_the_requested_length():
    lattice = Lattice("fcc", 3, A_FCC)
    graph = lattice_graph(lattice)
    lengths = [3, 4, 9, 25, 60]
    _, loop_set = _loops("fcc", 3, lengths, 12)
    for length in lengths:
        loops = loop_set.loops[length]
        assert loop_set.status[length] == "ok" and len(loops) == 12
        assert len({frozenset(cycle_edges(loop)) for loop in loops}) == 12
        for loop in loops:
            assert len(loop) == len(set(loop)) == length
            assert all(graph.has_edge(u, v) for u, v in cycle_edges(loop))


def test_lengths_that_cannot_exist_are_reported_never_padded():
    _, loop_set = _loops("bcc", 2, requested_lengths(3, 20, 1), 5)
    assert loop_set.status[3].startswith("impossible: shorter than the shortest cycle")
    assert loop_set.status[5].startswith("impossible: odd length in a bipartite")
    assert loop_set.status[18].startswith("impossible: longer than the number of sites")
    for length in (3, 5, 7, 17, 18):
        assert loop_set.loops[length] == []
    assert loop_set.status[4] == "ok" and len(loop_set.loops[4]) == 5
    _, fcc = _loops("fcc", 2, [3, 31, 32, 33], 3)
    assert fcc.status[3] == "ok" and fcc.status[33].startswith("impossible: longer than")


def test_the_vacancy_walks_once_around_the_loop_and_the_cell_returns():
    lattice = Lattice("fcc", 3, A_FCC)
    _, loop_set = _loops("fcc", 3, [8], 3)
    loops = loop_set.loops[8]
    occ, on_loop = loop_states(lattice, loops, SPECIES, HALF, None, np.random.default_rng(1))
    events = loop_hop_events(lattice, loops, occ, SPECIES)
    assert len(events) == 3 * 8
    for i, loop in enumerate(loops):
        rest = np.setdiff1d(np.arange(lattice.n_sites), loop)
        assert np.bincount(occ[i, rest], minlength=2).tolist() == [(lattice.n_sites - 8) // 2] * 2
        hops = events[8 * i:8 * (i + 1)]
        state = occupation_from_str(hops[0]["occupation"])
        assert set(state[list(loop)]) == {-1, on_loop[i]}
        for k, ev in enumerate(hops):
            assert np.array_equal(occupation_from_str(ev["occupation"]), state)
            assert (ev["vacancy_site"], ev["hop_site"]) == (loop[k], loop[(k + 1) % 8])
            assert ev["hop_site"] in lattice.neighbors[ev["vacancy_site"]]
            state = state.copy()
            state[ev["vacancy_site"]], state[ev["hop_site"]] = state[ev["hop_site"]], -1
        assert np.array_equal(state, occupation_from_str(hops[0]["occupation"]))  # back to the start


# --------------------------------------------------------------------------- drift


def test_kol_b_of_a_hop_is_kol_a_of_the_next_hop(models):
    """The loop path reads F^KOL of each state once; featurized again as KOL_B it is the same vector."""
    lattice = Lattice("fcc", 3, A_FCC)
    _, loop_set = _loops("fcc", 3, [5], 2, seed=5)
    occ, _ = loop_states(lattice, loop_set.loops[5], SPECIES, HALF, None, np.random.default_rng(5))
    events = loop_hop_events(lattice, loop_set.loops[5], occ, SPECIES)
    after = np.roll(np.arange(10).reshape(2, 5), -1, axis=1).reshape(-1)
    rolled = Featurizer()(models["M_KOL"], events, after)
    full = featurize_events(events, AEV, species=SPECIES)
    for kind in ("KOL_A", "KOL_B", "TW_A", "TW_B"):
        torch.testing.assert_close(rolled[kind].double(), full[kind].float().double(), rtol=1e-6, atol=1e-7)


def test_kolmogorov_model_has_no_loop_drift_and_the_others_do(models):
    lattice = Lattice("fcc", 3, A_FCC)
    _, loop_set = _loops("fcc", 3, [3, 12, 40], 8, seed=3)
    per_loop = loop_energy_sums(_de_models(models), lattice, loop_set, HALF, None, seed=3)
    assert len(per_loop) == 4 * 3 * 8
    kol = per_loop[per_loop["model"] == "M_KOL"]
    assert np.abs(kol["E_net"]).max() <= 1e-5
    assert np.abs(np.stack(kol["E_net_members"].to_numpy())).max() <= 1e-5  # every member, every loop, every L
    for name in ("M_HAS", "M_NC", "M_SAS"):   # antisymmetric on every hop (M_HAS) is not enough
        e_net = per_loop[per_loop["model"] == name]["E_net"].abs()
        assert e_net.mean() > 1e-3, name


# --------------------------------------------------------------------------- Markov chain


def test_stationary_distribution_of_a_driven_three_state_cycle():
    jumps = np.array([[0, 1], [1, 2], [0, 2]])
    k_fwd = np.array([2.0, 3.0, 0.5])   # 0->1, 1->2, 0->2
    k_bwd = np.array([1.0, 1.0, 4.0])   # 1->0, 2->1, 2->0: cycle 0->1->2->0 is driven
    pi = stationary_distribution(rate_matrix(3, jumps, k_fwd, k_bwd))
    q = np.array([[-2.5, 2.0, 0.5], [1.0, -4.0, 3.0], [4.0, 1.0, -5.0]])
    assert np.allclose(pi @ q, 0.0, atol=1e-14) and np.isclose(pi.sum(), 1.0)
    assert detailed_balance(pi, jumps, k_fwd, k_bwd).max_relative_imbalance > 0.1
    e = np.array([0.0, 0.1, -0.05])            # rates from state energies: detailed balance
    kt = K_B * 800.0
    k_f = np.exp(-(0.5 + (e[jumps[:, 1]] - e[jumps[:, 0]]) / 2) / kt)
    k_b = np.exp(-(0.5 - (e[jumps[:, 1]] - e[jumps[:, 0]]) / 2) / kt)
    pi = stationary_distribution(rate_matrix(3, jumps, k_f, k_b))
    assert np.allclose(pi, boltzmann_weights(e, 800.0), rtol=1e-13, atol=0)


# (one solute in the 16-site bcc cell is too symmetric: even M_NC rates balance there)
@pytest.mark.parametrize("kind,n,n_solutes,n_states", [("fcc", 2, 1, 32 * 31), ("bcc", 2, 2, 16 * 15 * 14 // 2)])
def test_markov_chain_kol_kra_rates_obey_detailed_balance_and_nc_does_not(models, kind, n, n_solutes, n_states):
    lattice = Lattice(kind, n, A_FCC if kind == "fcc" else 2.87)
    start = np.zeros(lattice.n_sites, dtype=np.int8)
    start[0], start[1:1 + n_solutes] = -1, 1
    space = enumerate_states(lattice, start)
    assert space.n_states == n_states  # every arrangement of the solutes and the vacancy is reachable
    assert space.n_jumps == n_states * {"fcc": 12, "bcc": 8}[kind] // 2
    table = markov_check(_de_models(models), models["KRA"], lattice, space, 1000.0, 1e13).set_index("model")
    assert table.loc["M_KOL", "max_rel_flux_imbalance"] <= 1e-10
    assert table.loc["M_KOL", "boltzmann_max_rel_dev"] <= 1e-10
    assert bool(table.loc["M_KOL", "detailed_balance_1e-10"])
    for name in ("M_NC", "M_SAS", "M_HAS"):
        assert table.loc[name, "max_rel_flux_imbalance"] > 1e-6, name
        assert not table.loc[name, "detailed_balance_1e-10"]


# --------------------------------------------------------------------------- the rule steps


def _fake_dataset(tmp_path, n: int = 3):
    events = pd.DataFrame({"lattice": ["fcc"] * 2, "supercell": [n] * 2})
    events.to_parquet(tmp_path / "events.parquet")
    (tmp_path / "dataset.json").write_text(json.dumps({"lattice_constants": {"Cu": 3.615, "Ni": 3.52}}))
    return tmp_path / "events.parquet", tmp_path / "dataset.json"


def test_loop_drift_and_markov_steps_write_their_tables(models, tmp_path):
    dirs = {}
    for kind, model in models.items():
        dirs[kind] = tmp_path / "models" / kind
        save_ensemble(dirs[kind], model.ensemble, model.params, model.species)
    events, meta = _fake_dataset(tmp_path)
    cfg = _config()["loops"]
    cfg.update(L_min=3, L_max=12, L_step=4, n_loops=4, supercell=None)
    de_dirs = {k: dirs[k] for k in ("M_NC", "M_SAS", "M_HAS", "M_KOL")}
    summary = loop_drift_step(de_dirs, events, meta, cfg, "cpu", tmp_path / "drift.csv", tmp_path / "loops.parquet",
                              tmp_path / "fig9.png")
    table = pd.read_csv(tmp_path / "drift.csv")
    assert sorted(table["L"].unique()) == [3, 7, 11, 12] and set(table["model"]) == set(de_dirs)
    assert (table["status"] == "ok").all() and (table["n_loops"] == 4).all()
    assert table[table["model"] == "M_KOL"]["max_abs_E_net_eV"].max() <= 1e-5
    assert len(pd.read_parquet(tmp_path / "loops.parquet")) == 4 * 4 * 4 and (tmp_path / "fig9.png").stat().st_size
    assert len(summary) == len(table)
    cfg["markov"].update(supercell=2, n_solutes=0)   # 32 states: the glue, not the physics (tested above)
    chain = markov_check_step(de_dirs, dirs["KRA"], events, meta, cfg, "cpu", tmp_path / "mc.csv", tmp_path / "mc.md")
    assert list(chain["model"]) == ["M_NC", "M_SAS", "M_HAS", "M_KOL"]
    assert chain.set_index("model").loc["M_KOL", "max_rel_flux_imbalance"] <= 1e-10
    assert "M_KOL" in (tmp_path / "mc.md").read_text()


def test_loop_and_far_field_config_errors_name_the_key(tmp_path):
    cfg = _config()
    cfg["models"]["dataset"] = None
    with pytest.raises(ConfigError, match=r"loops\.enabled: needs the model stage"):
        validate_config(cfg)
    cfg = _config()
    cfg["loops"]["markov"]["solute"] = "Fe"
    with pytest.raises(ConfigError, match=r"loops\.markov\.solute"):
        validate_config(cfg)
    cfg = _config()
    cfg["far_field"].update(enabled=True, composition={"Cu": 0.5, "Ni": 0.4})
    with pytest.raises(ConfigError, match=r"far_field\.composition: fractions sum to 0\.9"):
        validate_config(cfg)
    cfg = _config()
    cfg["loops"]["L_step"] = 0
    with pytest.raises(ConfigError, match=r"loops\.L_step"):
        validate_config(cfg)

