"""Equilibrium sampling of a lattice energy E(S): swap Monte Carlo, time-weighted kMC, block errors.

Thermodynamic checks of a detailed-balance kMC (rule ``equilibrium_check``):

* :func:`swap_monte_carlo`: canonical Metropolis Monte Carlo at fixed composition. A trial
  picks a site ``i`` uniformly and a site ``j`` uniformly among the sites whose digit differs
  from ``i``'s, and swaps them; the proposal is symmetric because the composition never
  changes. With ``vacancy_swaps`` (the default) the vacancy takes part like any species, so
  its position and surroundings are sampled as in kMC, where only the vacancy moves. A trial
  is accepted with ``min(1, exp(-dE / k_B T))``, dE from whole-cell energies.
* :func:`kmc_samples`: states of a residence-time kMC with their time weights. The kMC visits
  states with the frequencies of its embedded jump chain; it spends ``1 / R(S)`` on average
  in state S (``R`` = total escape rate), so a Boltzmann average is the residence-time
  weighted average ``sum_t w_t x_t / sum_t w_t`` with ``w_t = 1 / R(S_t)`` (the expected
  residence time, which has less noise than the drawn one and gives the same average).
* :func:`block_average`: the mean and its standard error from block averages. Rule: the
  first ``discard`` fraction (default 20 %) of each chain is dropped as equilibration, the
  rest of each chain is cut into ``n_blocks`` (default 10) blocks of equal numbers of
  records, and the block means of all chains are pooled; with weights the error is that of
  the ratio estimator ``sum_b W_b m_b / sum_b W_b`` over blocks (``W_b`` the block weight),
  which reduces to ``std(block means) / sqrt(n_blocks)`` with equal weights.
* :class:`BondEnergy`: a first-neighbour pair-bond energy ``E = J N_AB`` for tests and to
  make ordered (J < 0) or clustered (J > 0) cells.

Energies are functions ``energy(digits [C, n_sites]) -> [C]`` (eV, numpy float64); the swap MC
also takes a :class:`~dbkmc.kmc.swap_energy.SwapEnergy`, which evaluates only the sites a swap changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dbkmc.core.constants import KB_EV
from dbkmc.core.lattice import Lattice

EnergyFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Samples:
    """Records of C chains: ``digits [R, C, n_sites]`` (int8), ``energies [R, C]`` (eV), ``weights [R, C]``."""

    digits: np.ndarray
    energies: np.ndarray
    weights: np.ndarray
    n_trials: int
    acceptance: float


class BondEnergy:
    """``E = J * N_AB``: J (eV) per first-neighbour bond between species digits ``a`` and ``b``."""

    def __init__(self, lattice: Lattice, J: float, a: int = 1, b: int = 2) -> None:
        self.nbr = lattice.neighbors
        self.J, self.a, self.b = float(J), int(a), int(b)

    def __call__(self, digits: np.ndarray) -> np.ndarray:
        d = np.asarray(digits)
        flat = d.reshape(-1, d.shape[-1])
        nb = flat[:, self.nbr]  # [C, n, z]
        mine = flat[:, :, None]
        ab = ((mine == self.a) & (nb == self.b)).sum((1, 2))  # every A-B bond once, from its A end
        return (self.J * ab).astype(np.float64).reshape(d.shape[:-1])


def _uniform_where(mask: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each row, the ``u``-quantile of the sites where ``mask`` holds (a uniform choice)."""
    counts = mask.sum(1)
    k = np.minimum((u * counts).astype(np.int64), counts - 1)
    return np.argmax(np.cumsum(mask, 1) > k[:, None], axis=1)


def swap_monte_carlo(energy: EnergyFn, digits: np.ndarray, temperature: float, n_trials: int,
                     seed: int = 0, record_every: int = 1, vacancy_swaps: bool = True) -> Samples:
    """Canonical swap Metropolis MC of C chains (``digits [C, n_sites]``) at ``temperature`` (K).

    Records the state after every ``record_every`` trials (rejected trials count: the chain
    stays). Returns :class:`Samples` with unit weights.
    """
    d = np.array(digits, dtype=np.int64, ndmin=2)
    C, n = d.shape
    rng = np.random.default_rng(seed)
    beta = 1.0 / (KB_EV * float(temperature))
    local = hasattr(energy, "delta")  # a SwapEnergy: local dE of the swap (dbkmc.kmc.swap_energy)
    e = np.asarray(energy.reset(d) if local else energy(d), dtype=np.float64)
    rows = np.arange(C)
    rec_d, rec_e = [], []
    accepted = 0
    for t in range(1, int(n_trials) + 1):
        allowed = np.ones_like(d, dtype=bool) if vacancy_swaps else d != 0
        i = _uniform_where(allowed, rng.random(C))
        j = _uniform_where(allowed & (d != d[rows, i][:, None]), rng.random(C))
        trial = d.copy()
        trial[rows, i], trial[rows, j] = d[rows, j], d[rows, i]
        e_new = e + energy.delta(trial, i, j) if local else np.asarray(energy(trial), dtype=np.float64)
        ok = rng.random(C) < np.exp(np.minimum(0.0, -beta * (e_new - e)))
        if local:
            energy.commit(ok)
        d[ok], e[ok] = trial[ok], e_new[ok]
        accepted += int(ok.sum())
        if t % record_every == 0:
            rec_d.append(d.astype(np.int8))
            rec_e.append(e.copy())
    digits_out = np.stack(rec_d) if rec_d else np.zeros((0, C, n), np.int8)
    energies = np.stack(rec_e) if rec_e else np.zeros((0, C))
    return Samples(digits_out, energies, np.ones_like(energies), int(n_trials), accepted / max(1, n_trials * C))


def log_escape_rate(barriers: torch.Tensor, temperatures: torch.Tensor, nu: float) -> torch.Tensor:
    """``ln R`` per trajectory, ``R = nu sum_i exp(-E_i / k_B T)`` over every path (``barriers [T, ...]``)."""
    beta = 1.0 / (KB_EV * temperatures.to(torch.float64))
    e = barriers.reshape(len(barriers), -1).to(torch.float64)
    return float(np.log(nu)) + torch.logsumexp(-beta[:, None] * e, dim=1)


def kmc_samples(engine, energy: EnergyFn, n_steps: int, record_every: int = 1) -> Samples:
    """Run a :class:`~dbkmc.kmc.engine.KMC` for ``n_steps`` jumps, recording every ``record_every``.

    Each record holds the current state, its energy and its time weight ``1 / R(S)`` (see the
    module docstring). All paths of a single vacancy are open, so R sums every barrier.
    """
    if engine.V != 1:
        raise ValueError("kmc_samples: the time weights assume one vacancy per trajectory")
    rec_d, rec_w = [], []
    for _ in range(int(n_steps) // int(record_every)):
        log_r = log_escape_rate(engine.barriers, engine.temperatures, engine.nu)
        rec_w.append(torch.exp(-(log_r - log_r.max())).cpu().numpy() * float(torch.exp(-log_r.max())))
        rec_d.append(engine.digits.cpu().numpy().astype(np.int8))
        engine.run(int(record_every))
    d = np.stack(rec_d)
    R, T, n = d.shape
    e = np.asarray(energy(d.reshape(R * T, n).astype(np.int64)), dtype=np.float64).reshape(R, T)
    return Samples(d, e, np.stack(rec_w), int(n_steps), 1.0)


def block_average(values: np.ndarray, weights: np.ndarray | None = None, n_blocks: int = 10,
                  discard: float = 0.2) -> tuple[float, float, int]:
    """(mean, standard error, number of blocks) of ``values [R, C]`` (see the module docstring)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).reshape(x.shape)
    start = int(round(discard * len(x)))
    x, w = x[start:], w[start:]
    size = len(x) // n_blocks
    if size < 1:
        raise ValueError(f"block_average: {len(x)} records after equilibration, fewer than {n_blocks} blocks")
    x, w = x[: size * n_blocks], w[: size * n_blocks]
    xb = x.reshape(n_blocks, size, -1)
    wb = w.reshape(n_blocks, size, -1)
    W = wb.sum(1).ravel()  # [n_blocks * C]
    m = ((xb * wb).sum(1).ravel()) / W
    mean = float((W * m).sum() / W.sum())
    B = len(m)
    sem = float(np.sqrt((W**2 * (m - mean) ** 2).sum() / W.sum() ** 2 * B / (B - 1)))
    return mean, sem, B


def agreement(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float, bool]:
    """(difference, combined standard error, |difference| <= 2 combined SE) of two (mean, SE)."""
    diff = a[0] - b[0]
    se = float(np.hypot(a[1], b[1]))
    return diff, se, bool(abs(diff) <= 2.0 * se)


def random_cell(lattice: Lattice, counts: Sequence[int], n_vacancies: int, rng: np.random.Generator) -> np.ndarray:
    """A random occupation: ``n_vacancies`` zeros and ``counts[s]`` sites of digit ``s + 1``."""
    d = np.concatenate([np.zeros(n_vacancies, np.int64)] + [np.full(c, s + 1) for s, c in enumerate(counts)])
    if len(d) != lattice.n_sites:
        raise ValueError(f"random_cell: {len(d)} particles for {lattice.n_sites} sites")
    return rng.permutation(d)


class EnergyRateModel:
    """Barriers ``E_KRA + (E(B) - E(A)) / 2`` from whole-cell energies, a constant E_KRA (eV).

    A detailed-balance rate model for any energy function, exact but slow (z + 1 energy calls
    per vacancy): for tests and small cells. It satisfies ``E_AB - E_BA = E(B) - E(A)``.
    """

    has_energy = True

    def __init__(self, energy: EnergyFn, lattice: Lattice, species: Sequence[str], e_kra: float = 0.7) -> None:
        self.energy_fn = energy
        self.lattice = lattice
        self.species = tuple(species)
        self.e_kra = float(e_kra)
        self.reach = float(lattice.n * lattice.a)  # whole cell
        self.nbr = torch.as_tensor(lattice.neighbors, dtype=torch.long)

    @property
    def z(self) -> int:
        return self.nbr.shape[1]

    def energy(self, digits: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.energy_fn(digits.cpu().numpy().astype(np.int64)), dtype=torch.float64)

    def barriers(self, digits: torch.Tensor, vacancies: torch.Tensor) -> torch.Tensor:
        d = digits.cpu().long()
        T, V = vacancies.shape
        z = self.z
        e_a = self.energy(d)  # [T]
        states = d[:, None, None, :].repeat(1, V, z, 1)  # [T, V, z, n]
        vac = vacancies.cpu().long()
        hop = self.nbr[vac]  # [T, V, z]
        ti, vi, ki = torch.meshgrid(torch.arange(T), torch.arange(V), torch.arange(z), indexing="ij")
        species = d[ti, hop]
        states[ti, vi, ki, hop] = 0
        states[ti, vi, ki, vac[:, :, None].expand(T, V, z)] = species
        e_b = self.energy(states.reshape(-1, d.shape[1])).reshape(T, V, z)
        return (self.e_kra + 0.5 * (e_b - e_a[:, None, None])).to(digits.device)
