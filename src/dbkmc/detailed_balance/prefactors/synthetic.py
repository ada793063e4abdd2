r"""A known prefactor generator, extensive in the state and symmetric at the saddle (tests and demos).

From real events (occupations, sites, E_KRA), it sets

    S(S)    = S_0 N_atoms + sum_{atoms i} sum_{j in nn(i)} K[s_i, s_j]     (s_j = 0 for the vacancy)
    S_KRA   = s_0 + c[hop species] + kappa (E_KRA - <E_KRA>)
    S_A = S(A), S_B = S(B), S_saddle = S_KRA + (S_A + S_B)/2,

a state term that M_EXT can represent exactly (linear in the first-shell counts of its descriptor) and a
saddle term that KRA can learn from the jump (kappa < 0 ties it to the barrier: a Meyer-Neldel trend,
ln nu rising with E_KRA). The
descriptor sums ``sna_*`` / ``aev_*`` of the seed's surrogate are stand-ins: first-shell pair counts of
the jump's two sites in A and at the saddle (the mean of A and B), plus noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.ext_fingerprints import event_digits
from dbkmc.detailed_balance.prefactors.targets import ln_nu_from_terms

LN_NU_0 = 29.9
"""ln of 1e13 Hz: a typical attempt frequency."""


def state_terms(digits: np.ndarray, neighbors: np.ndarray, k: np.ndarray, s0: float) -> np.ndarray:
    """S of states ``digits`` (N, n_sites; 0 = vacancy): ``S_0 N_atoms + sum_atoms sum_nn K[s_i, s_j]``."""
    d = np.asarray(digits, dtype=np.int64)
    nb = d[:, neighbors]                                        # (N, n_sites, z)
    pair = k[np.clip(d - 1, 0, None)[:, :, None], nb]           # K[s_i, s_j]
    atom = d > 0
    return s0 * atom.sum(-1) + (pair.sum(-1) * atom).sum(-1)


def _pair_counts(digits: np.ndarray, neighbors: np.ndarray, sites: np.ndarray, n_digits: int) -> np.ndarray:
    """(N, n_digits) counts of each digit among the first neighbours of ``sites`` (N, 2)."""
    rows = np.arange(len(digits))[:, None, None]
    nb = digits[rows, neighbors[sites]]                         # (N, 2, z)
    return np.stack([(nb == c).sum((-1, -2)) for c in range(n_digits)], -1).astype(np.float64)


def synthetic_prefactors(events: pd.DataFrame, species: list[str] | None = None, seed: int = 0, *,
                         k_scale: float = 0.5, s0: float = 3 * LN_NU_0, kappa: float = -2.0,
                         hop_terms: dict[str, float] | None = None, noise: float = 0.0) -> pd.DataFrame:
    """``events`` with the columns of the rule ``hessians`` (``S_A`` ... ``S_KRA``, ``sna_*``, ``aev_*``)
    from the generator of the module docstring. ``noise`` (std) is added to S_KRA only."""
    species = species or str(events["species"].iloc[0]).split(",")
    keys = {(str(a), int(n)) for a, n in zip(events["lattice"], events["supercell"])}
    if len(keys) != 1:
        raise ValueError(f"synthetic prefactors: events mix lattices/cells {sorted(keys)}")
    kind, n = keys.pop()
    neighbors = np.asarray(Lattice(kind, n, 1.0).neighbors, dtype=np.int64)
    rng = np.random.default_rng(seed)
    k = rng.normal(0.0, k_scale, size=(len(species), len(species) + 1))
    a = event_digits(list(events["occupation"]), list(events["species"]), species)
    vac = events["vacancy_site"].to_numpy(np.int64)
    hop = events["hop_site"].to_numpy(np.int64)
    rows = np.arange(len(a))
    b = a.copy()
    b[rows, vac], b[rows, hop] = a[rows, hop], 0
    s_a, s_b = state_terms(a, neighbors, k, s0), state_terms(b, neighbors, k, s0)
    terms = hop_terms or {s: 0.3 * i for i, s in enumerate(species)}
    e_kra = events["E_KRA"].to_numpy(np.float64)
    s_kra = (-LN_NU_0 + np.array([terms[str(h)] for h in events["hop_species"]])
             + kappa * (e_kra - e_kra.mean()) + noise * rng.standard_normal(len(a)))
    out = events.copy()
    out["S_A"], out["S_B"] = s_a, s_b
    out["S_saddle"] = s_kra + 0.5 * (s_a + s_b)
    out["dS"], out["S_KRA"] = s_b - s_a, s_kra
    out["ln_nu_AB"], out["ln_nu_BA"] = ln_nu_from_terms(out["dS"], s_kra)
    sites = np.stack([vac, hop], -1)
    n_dig = len(species) + 1
    ca, cb = _pair_counts(a, neighbors, sites, n_dig), _pair_counts(b, neighbors, sites, n_dig)
    for name, width in (("sna", 2 * n_dig), ("aev", n_dig)):
        extra = rng.standard_normal((len(a), max(width - n_dig, 0)))
        d_a = np.concatenate([ca, extra], -1)
        d_s = np.concatenate([0.5 * (ca + cb), extra], -1)
        out[f"{name}_A"] = list(d_a + 0.05 * rng.standard_normal(d_a.shape))
        out[f"{name}_saddle"] = list(d_s + 0.05 * rng.standard_normal(d_s.shape))
    return out
