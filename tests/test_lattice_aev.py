"""Lattice-precomputed AEVs (dbkmc.detailed_balance.lattice_aev) against the general featurizer (dbkmc.detailed_balance.fingerprints)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbkmc.detailed_balance.aev import AEVParams, aev
from dbkmc.detailed_balance.fingerprints import featurize_events, kolmogorov_fingerprint, transition_fingerprints
from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.lattice_aev import LatticeAEV
from dbkmc.core.sampling import occupation_to_str

# small grids keep the general featurizer quick; r_cut_angular < r_cut exercises the angular subset
PARAMS = {
    "fcc": AEVParams(r_cut=5.0, r_cut_angular=4.2, eta_R=4.0, eta_A=2.0, zeta=8.0),
    "bcc": AEVParams(r_cut=4.6, eta_R=4.0, eta_A=2.0, zeta=8.0,
                     R_s=(1.0, 2.0, 3.0, 4.0), R_s_angular=(1.5, 3.0), theta_s=(0.3, 1.2, 2.2, 3.0)),
}
LATTICES = {"fcc": Lattice("fcc", 3, 3.6), "bcc": Lattice("bcc", 4, 2.87)}
SPECIES = {"fcc": ["Cu", "Ni"], "bcc": ["Nb", "Mo", "Ta"]}


def _random_events(kind: str, n_events: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
    """Random one-vacancy configurations and a random jump of each, as occupation arrays and event rows."""
    lat, species = LATTICES[kind], SPECIES[kind]
    rng = np.random.default_rng(seed)
    occ = rng.integers(0, len(species), size=(n_events, lat.n_sites))
    vac = rng.integers(0, lat.n_sites, size=n_events)
    occ[np.arange(n_events), vac] = -1
    path = rng.integers(0, lat.neighbors.shape[1], size=n_events)
    hop = lat.neighbors[vac, path]
    events = [{"occupation": occupation_to_str(o), "vacancy_site": int(v), "hop_site": int(h),
               "lattice": kind, "supercell": lat.n, "a": lat.a, "species": ",".join(species)}
              for o, v, h in zip(occ, vac, hop)]
    return occ, vac, path, events


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_lattice_aev_matches_general_featurizer(kind: str) -> None:
    """All four fingerprints of every jump equal featurize_events' on random configurations (float64)."""
    lat, p = LATTICES[kind], PARAMS[kind]
    occ, vac, path, events = _random_events(kind, 6, seed=11)
    table = LatticeAEV(lat, p, len(SPECIES[kind]), dtype=torch.float64)
    got = table.jump_fingerprints(torch.as_tensor(occ), torch.as_tensor(vac).unsqueeze(1))
    rows = np.arange(len(vac))
    ref = featurize_events(events, p)
    scale = float(ref["TW_A"].abs().max())
    assert scale > 1.0  # non-trivial fingerprints
    torch.testing.assert_close(got["KOL_A"][:, 0], ref["KOL_A"], rtol=1e-12, atol=1e-12 * scale)
    for kind_fp in ("KOL_B", "TW_A", "TW_B"):
        torch.testing.assert_close(got[kind_fp][rows, 0, path], ref[kind_fp], rtol=1e-12, atol=1e-12 * scale)
    # every path of one configuration, against the one-event helpers
    t = 2
    for k in range(table.z):
        event = {**events[t], "hop_site": int(lat.neighbors[vac[t], k])}
        tw_a, tw_b = transition_fingerprints(event, p)
        torch.testing.assert_close(got["TW_A"][t, 0, k], tw_a, rtol=1e-12, atol=1e-12 * scale)
        torch.testing.assert_close(got["TW_B"][t, 0, k], tw_b, rtol=1e-12, atol=1e-12 * scale)
        torch.testing.assert_close(got["KOL_B"][t, 0, k], kolmogorov_fingerprint(event, p, "B"),
                                   rtol=1e-12, atol=1e-12 * scale)


def test_lattice_aev_several_vacancies_are_holes() -> None:
    """With two vacancies, each Kolmogorov window sees the other as an empty site (explicit-position AEV)."""
    kind = "fcc"
    lat, p = LATTICES[kind], PARAMS[kind]
    assert p.r_cut < lat.box[0] / 2                     # minimum images suffice for the reference
    occ, vac, _, _ = _random_events(kind, 1, seed=5)
    other = int(lat.neighbors[vac[0], 3])               # a second vacancy right next to the first
    occ[0, other] = -1
    table = LatticeAEV(lat, p, 2, dtype=torch.float64)
    got = table.kolmogorov(torch.as_tensor(occ), torch.as_tensor([[vac[0], other]]))[0]
    for i, centre in enumerate((vac[0], other)):
        rel = lat.minimum_image(lat.positions - lat.positions[centre])
        d = np.linalg.norm(rel, axis=1)
        keep = (d <= p.r_cut) & (d > 0)
        ref = aev(None, torch.as_tensor(rel[keep]), torch.as_tensor(occ[0, keep])[None], 2, p)[0]
        torch.testing.assert_close(got[i], ref, rtol=1e-12, atol=1e-10)
        filled = occ.copy()
        filled[0, other if i == 0 else vac[0]] = 0
        assert not torch.allclose(table.kolmogorov(torch.as_tensor(filled), torch.as_tensor([[centre]]))[0, 0], got[i])


def test_lattice_aev_float32_and_batches() -> None:
    """float32 tables agree with float64 to float32 rounding; a trajectory's result does not depend on the batch."""
    kind = "bcc"
    lat, p = LATTICES[kind], PARAMS[kind]
    occ, vac, _, _ = _random_events(kind, 5, seed=2)
    occ_t, vac_t = torch.as_tensor(occ), torch.as_tensor(vac).unsqueeze(1)
    f64 = LatticeAEV(lat, p, 3, dtype=torch.float64).jump_fingerprints(occ_t, vac_t)
    table32 = LatticeAEV(lat, p, 3, dtype=torch.float32)
    f32 = table32.jump_fingerprints(occ_t, vac_t)
    single = table32.jump_fingerprints(occ_t[3:4], vac_t[3:4])
    for k in f64:
        torch.testing.assert_close(f32[k].double(), f64[k], rtol=2e-5, atol=2e-5 * float(f64[k].abs().max()))
        torch.testing.assert_close(single[k][0], f32[k][3], rtol=1e-5, atol=1e-5 * float(f64[k].abs().max()))
