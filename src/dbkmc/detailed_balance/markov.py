r"""Exact Markov-chain check of detailed balance on a tiny periodic cell.

On a small cell with one vacancy, :func:`enumerate_states` finds every state
reachable by vacancy hops (breadth first from a starting occupation) and every
jump between them. With the barriers of each jump in both directions, the
rate of i -> j is

    k_ij = nu exp(-E_b(i -> j) / k_B T),   E_b(i -> j) = E_KRA(i, j) + dE_ij / 2,

and :func:`rate_matrix` assembles the full (sparse) matrix. The stationary
distribution pi solves ``pi Q = 0`` with ``sum(pi) = 1``, Q the generator
(off-diagonal k_ij, rows summing to zero); :func:`stationary_distribution`
solves it with scipy's sparse LU and one step of iterative refinement, in
float64.

:func:`detailed_balance` measures how far the chain is from detailed balance:
the largest relative imbalance of the two probability fluxes across one jump,
``|pi_i k_ij - pi_j k_ji| / max(pi_i k_ij, pi_j k_ji)``, and the net (cycle)
flux as a fraction of all flux. A model whose ``dE`` is a difference of state
energies E (M_KOL) with a symmetric E_KRA gives
``k_ij / k_ji = exp(-(E_j - E_i) / k_B T)``; then pi is the Boltzmann
distribution ``exp(-E_i / k_B T) / Z`` (:func:`boltzmann_weights`) and both
measures vanish to float rounding. A model that breaks the Kolmogorov
criterion (M_NC, M_SAS, M_HAS) leaves net currents around cycles of states.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from dbkmc.core.lattice import Lattice
from dbkmc.core.sampling import VACANCY

K_B = 8.617333262e-5
"""Boltzmann constant, eV/K."""


@dataclass(frozen=True)
class StateSpace:
    """Every state reachable by vacancy hops, and the jumps between them.

    ``states`` (S, n_sites) int8 occupations (-1 = vacancy), ``vacancy`` (S,)
    the vacant site of each state; ``jumps`` (T, 2) the unordered pairs
    (i, j), i < j, one per first-neighbour jump; ``hop_site`` (T,) the site
    whose atom jumps when going i -> j (the vacant site of j).
    """

    states: np.ndarray
    vacancy: np.ndarray
    jumps: np.ndarray
    hop_site: np.ndarray

    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def n_jumps(self) -> int:
        return len(self.jumps)


def enumerate_states(lattice: Lattice, start: np.ndarray, max_states: int = 200_000) -> StateSpace:
    """Breadth-first search over vacancy hops from the occupation ``start`` (one vacancy)."""
    first = np.asarray(start, dtype=np.int8)
    if first.shape != (lattice.n_sites,) or int((first == VACANCY).sum()) != 1:
        raise ValueError("markov: the starting occupation needs one entry per site and exactly one vacancy")
    index = {first.tobytes(): 0}
    states, vacancy = [first], [int(np.flatnonzero(first == VACANCY)[0])]
    jumps: list[tuple[int, int]] = []
    hops: list[int] = []
    queue = deque([0])
    neighbors = lattice.neighbors
    while queue:
        i = queue.popleft()
        state, v = states[i], vacancy[i]
        for h in neighbors[v]:
            h = int(h)
            nxt = state.copy()
            nxt[v], nxt[h] = state[h], VACANCY
            key = nxt.tobytes()
            j = index.get(key)
            if j is None:
                j = index[key] = len(states)
                if j >= max_states:
                    raise ValueError(f"markov: more than {max_states} states; use a smaller cell or fewer solutes")
                states.append(nxt)
                vacancy.append(h)
                queue.append(j)
            if i < j:
                jumps.append((i, j))
                hops.append(h)
    return StateSpace(np.stack(states), np.asarray(vacancy, dtype=np.int64),
                      np.asarray(jumps, dtype=np.int64).reshape(-1, 2), np.asarray(hops, dtype=np.int64))


def rates(barrier: np.ndarray, temperature: float, attempt_frequency: float) -> np.ndarray:
    """k = nu exp(-E_b / k_B T), float64."""
    if not temperature > 0 or not attempt_frequency > 0:
        raise ValueError(f"markov: need temperature > 0 and attempt_frequency > 0, got {temperature}, {attempt_frequency}")
    b = np.asarray(barrier, dtype=np.float64)
    if not np.isfinite(b).all():
        raise ValueError("markov: non-finite barriers")
    return attempt_frequency * np.exp(-b / (K_B * temperature))


def rate_matrix(n_states: int, jumps: np.ndarray, k_forward: np.ndarray, k_backward: np.ndarray) -> sp.csr_matrix:
    """Sparse (S, S) matrix of k_ij (zero diagonal) from the rates of each jump i -> j and j -> i."""
    i, j = jumps[:, 0], jumps[:, 1]
    rows = np.concatenate([i, j])
    cols = np.concatenate([j, i])
    vals = np.concatenate([np.asarray(k_forward, np.float64), np.asarray(k_backward, np.float64)])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_states, n_states))


def stationary_distribution(k: sp.spmatrix) -> np.ndarray:
    """pi with pi Q = 0 and sum(pi) = 1 for the generator Q of the rate matrix ``k`` (float64).

    The last balance equation is replaced by the normalisation; the sparse LU
    solve is followed by one step of iterative refinement.
    """
    k = sp.csr_matrix(k, dtype=np.float64)
    n = k.shape[0]
    q = k - sp.diags(np.asarray(k.sum(axis=1)).ravel())
    a = sp.lil_matrix(q.T)
    a[n - 1, :] = np.ones(n)
    a = sp.csc_matrix(a)
    b = np.zeros(n)
    b[-1] = 1.0
    lu = spla.splu(a)
    pi = lu.solve(b)
    pi += lu.solve(b - a @ pi)
    if not np.isfinite(pi).all() or pi.min() <= 0:
        raise ArithmeticError("markov: the stationary distribution is not positive (is the chain connected?)")
    return pi / pi.sum()


def boltzmann_weights(energies: np.ndarray, temperature: float) -> np.ndarray:
    """exp(-E_i / k_B T) / Z, float64 (shifted by min E before exponentiating)."""
    e = np.asarray(energies, dtype=np.float64)
    w = np.exp(-(e - e.min()) / (K_B * temperature))
    return w / w.sum()


@dataclass(frozen=True)
class Balance:
    """How far a stationary chain is from detailed balance (see the module docstring)."""

    max_relative_imbalance: float
    net_flux_fraction: float

    def holds(self, rtol: float = 1e-10) -> bool:
        return self.max_relative_imbalance <= rtol


def detailed_balance(pi: np.ndarray, jumps: np.ndarray, k_forward: np.ndarray, k_backward: np.ndarray) -> Balance:
    """Flux imbalance ``pi_i k_ij`` against ``pi_j k_ji`` over every jump."""
    f_ij = pi[jumps[:, 0]] * np.asarray(k_forward, np.float64)
    f_ji = pi[jumps[:, 1]] * np.asarray(k_backward, np.float64)
    net = np.abs(f_ij - f_ji)
    return Balance(float(np.max(net / np.maximum(f_ij, f_ji))), float(net.sum() / (f_ij + f_ji).sum()))


def max_relative_deviation(p: np.ndarray, reference: np.ndarray) -> float:
    """max_i |p_i - r_i| / r_i."""
    return float(np.max(np.abs(np.asarray(p) - reference) / reference))
