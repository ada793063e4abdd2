r"""Detailed-balance audit of any kMC rate model: closed-loop drift and the exact Markov check.

Stage 4 (:mod:`dbkmc.detailed_balance.drift`) audits the dE models on their fingerprints. This module
audits a *rate model* as the kMC engine uses it (:class:`dbkmc.kmc.rates.base.RateModel`: barriers of
every path of a vacancy), so that networks that predict barriers directly, such as NNK, go through the
same two checks. At equal attempt frequencies the rates of a hop and of its reverse give

    dE_implied(A -> B) = E_b(A -> B) - E_b(B -> A),    k_AB / k_BA = exp(-dE_implied / k_B T).

Rates obey detailed balance if and only if dE_implied is a difference of state energies E(B) - E(A)
(the Kolmogorov criterion). Then

* **loop drift**: the vacancy walks once around a closed loop of L sites whose sites all hold one
  species, so the cell returns to its first state; ``E_net = sum of dE_implied`` over the L hops is
  zero. :func:`loop_drift` measures E_net on random loops (:mod:`dbkmc.detailed_balance.loops`);
* **Markov check**: on a tiny cell every state reachable by vacancy hops is enumerated
  (:func:`dbkmc.detailed_balance.markov.enumerate_states`), every jump is evaluated in both directions,
  and the stationary distribution of the chain is solved exactly. :func:`markov_audit` reports the
  largest relative flux imbalance ``|pi_i k_ij - pi_j k_ji| / max(...)`` and the net cycle flux as a
  fraction of all flux; both vanish to float rounding for a model with detailed balance.

NNK predicts the forward barrier of a path from the initial state alone, so nothing ties
``E_b(A -> B) - E_b(B -> A)`` to a state function: the audit measures by how much it misses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.core.sampling import VACANCY
from dbkmc.core.stencil import Stencil
from dbkmc.detailed_balance import markov
from dbkmc.detailed_balance.loops import cycle_basis, grow_loops, lattice_graph, loop_states
from dbkmc.kmc.rates.base import LocalRateModel

_CHUNK = 512
"""States per batched barrier call."""


def path_index(lattice: Lattice, vacancy: np.ndarray, hop: np.ndarray) -> np.ndarray:
    """Path k (``lattice.neighbors[v, k] == h``, the engine's path order) of each hop; an error otherwise."""
    match = lattice.neighbors[np.asarray(vacancy)] == np.asarray(hop)[:, None]
    if not match.any(1).all():
        raise ValueError("balance audit: a hop site is not a first neighbour of its vacancy")
    return match.argmax(1)


@torch.no_grad()
def state_barriers(model, lattice: Lattice, occupation: np.ndarray, vacancy: np.ndarray) -> np.ndarray:
    """Barriers (N, z) eV of every path of the vacancy of each state (occupation (N, n_sites), -1 = vacancy)."""
    occ = np.asarray(occupation)
    stencil = Stencil(lattice, model.stencil_offsets) if isinstance(model, LocalRateModel) else None
    out = []
    for start in range(0, len(occ), _CHUNK):
        digits = torch.as_tensor(occ[start:start + _CHUNK].astype(np.int64) + 1)
        vac = torch.as_tensor(np.asarray(vacancy[start:start + _CHUNK], dtype=np.int64)).view(-1, 1)
        if stencil is not None:          # the engine's path: the stencil digits only (same barriers, faster)
            sites = stencil.sites(vac).view(len(vac), -1)
            e = model.barriers_local(torch.gather(digits, 1, sites))
        else:
            e = model.barriers(digits, vac)
        out.append(e.reshape(len(vac), -1).to(torch.float64).cpu().numpy())
    barriers = np.concatenate(out) if out else np.zeros((0, model.z))
    if not np.isfinite(barriers).all():
        raise ValueError("balance audit: the rate model returned a non-finite barrier")
    return barriers


def hop_barriers(model, lattice: Lattice, occupation: np.ndarray, vacancy: np.ndarray,
                 hop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(E_b(A -> B), E_b(B -> A))`` (N,) of the hops of the vacancy ``vacancy`` onto ``hop`` from states A."""
    occ_a = np.asarray(occupation)
    vac, hop = np.asarray(vacancy, dtype=np.int64), np.asarray(hop, dtype=np.int64)
    rows = np.arange(len(occ_a))
    if not (occ_a[rows, vac] == VACANCY).all() or (occ_a[rows, hop] == VACANCY).any():
        raise ValueError("balance audit: each hop needs the vacancy on its vacancy site and an atom on its hop site")
    occ_b = occ_a.copy()
    occ_b[rows, vac], occ_b[rows, hop] = occ_a[rows, hop], VACANCY
    forward = state_barriers(model, lattice, occ_a, vac)[rows, path_index(lattice, vac, hop)]
    backward = state_barriers(model, lattice, occ_b, hop)[rows, path_index(lattice, hop, vac)]
    return forward, backward


def loop_drift(model, lattice: Lattice, species: Sequence[str], composition: Mapping[str, float],
               lengths: Sequence[int], n_loops: int, seed: int = 0,
               max_trajectories: int = 20_000) -> tuple[pd.DataFrame, dict[int, str]]:
    """E_net of ``n_loops`` random closed loops for every L in ``lengths`` (one row per loop).

    Each loop's cell is a random arrangement of ``composition`` with the loop sites holding one
    species (drawn with the composition's weights), as in Fig 9. Returns the table
    (``L``, ``loop``, ``E_net_eV``, ``max_abs_dE_eV``) and the loop finder's status per L."""
    rng = np.random.default_rng(seed)
    loop_set = grow_loops(cycle_basis(lattice_graph(lattice)), lengths, n_loops, rng, max_trajectories)
    rows = []
    for length, loops in sorted(loop_set.loops.items()):
        if not loops:
            continue
        occ, _ = loop_states(lattice, loops, species, composition, None, rng)
        sites = np.asarray(loops, dtype=np.int64)                                  # (n, L)
        states = np.repeat(occ, length, axis=0)
        vac, hop = sites.reshape(-1), np.roll(sites, -1, axis=1).reshape(-1)
        states[np.arange(len(states)), vac] = VACANCY
        forward, backward = hop_barriers(model, lattice, states, vac, hop)
        d_e = (forward - backward).reshape(len(loops), length)
        for i in range(len(loops)):
            rows.append({"L": length, "loop": i, "E_net_eV": float(d_e[i].sum()),
                         "max_abs_dE_eV": float(np.abs(d_e[i]).max())})
    return pd.DataFrame(rows, columns=["L", "loop", "E_net_eV", "max_abs_dE_eV"]), loop_set.status


def drift_table(per_loop: pd.DataFrame) -> pd.DataFrame:
    """<|E_net|>(L) with its spread (std over loops), standard error and largest |E_net| (eV), per L."""
    grouped = per_loop.assign(abs_E_net_eV=per_loop["E_net_eV"].abs()).groupby("L")["abs_E_net_eV"]
    out = grouped.agg(["mean", "std", "sem", "max", "count"]).reset_index()
    return out.rename(columns={"mean": "mean_abs_E_net_eV", "std": "std_abs_E_net_eV", "sem": "sem_abs_E_net_eV",
                               "max": "max_abs_E_net_eV", "count": "n_loops"})


def markov_audit(model, lattice: Lattice, start: np.ndarray, temperature: float,
                 attempt_frequency: float = 1e13, max_states: int = 200_000) -> dict[str, float]:
    """Exact stationary chain of the rate model on the states reachable from ``start`` (one vacancy).

    Returns n_states, n_jumps, the temperature, the largest relative flux imbalance, the net cycle
    flux fraction and the largest |dE_implied| of a jump (eV)."""
    space = markov.enumerate_states(lattice, start, max_states=max_states)
    barriers = state_barriers(model, lattice, space.states, space.vacancy)                    # (S, z)
    i, j = space.jumps[:, 0], space.jumps[:, 1]
    e_f = barriers[i, path_index(lattice, space.vacancy[i], space.hop_site)]
    e_b = barriers[j, path_index(lattice, space.vacancy[j], space.vacancy[i])]
    k_f = markov.rates(e_f, temperature, attempt_frequency)
    k_b = markov.rates(e_b, temperature, attempt_frequency)
    pi = markov.stationary_distribution(markov.rate_matrix(space.n_states, space.jumps, k_f, k_b))
    balance = markov.detailed_balance(pi, space.jumps, k_f, k_b)
    return {"n_states": space.n_states, "n_jumps": space.n_jumps, "temperature_K": float(temperature),
            "max_rel_flux_imbalance": balance.max_relative_imbalance,
            "net_flux_fraction": balance.net_flux_fraction,
            "max_abs_dE_implied_eV": float(np.abs(e_f - e_b).max())}
