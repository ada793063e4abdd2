"""Exact memo of the barriers of recently visited states, keyed by a Zobrist hash of the whole cell.

A vacancy at low temperature often hops back and forth within a few sites (at 500 K in Cu50Ni50
with M_EXT + KRA rates, about half of all jumps lead to a state the trajectory has already been
in). The barriers of a state are a fixed function of its occupation, so they can be looked up
instead of recomputed. The key of a state is the XOR over sites of a random 64-bit word per
(site, digit) (Zobrist hashing): one jump changes two sites, so the key is updated with four
XORs. Two different states share a key with probability 2^-64 per pair, far below anything a kMC
run can reach; the words come from a fixed seed, so a run is reproducible.

:class:`StateMemo` keeps, for each of T trajectories with one vacancy each, the last ``size``
distinct states of that trajectory (least recently used out first). :class:`dbkmc.kmc.engine.KMC`
uses it on the CPU with any one-vacancy model that is not a local MLP (those have the stencil cache
of :mod:`dbkmc.kmc.kernel`): for one trajectory with any model, for a batch with a model that can
evaluate a subset of its trajectories (``barriers_rows``, e.g. M_EXT's compiled path), so that each
step evaluates only the trajectories whose new state is unknown. The entries hold the barriers the
model gave at the first visit, so a run with the memo can differ from one without in the last bits
of a float32 barrier (the model's own caches reach a state by another route); it is the same Markov
chain.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from torch import Tensor

_SEED = 0x5EED_2026
"""Seed of the Zobrist words (fixed: the memo never changes a trajectory's random stream)."""


class StateMemo:
    """Barriers ``(z,)`` of the last ``size`` distinct whole-cell states of each trajectory (see the module
    docstring)."""

    def __init__(self, size: int, n_sites: int, n_digits: int) -> None:
        if size < 1:
            raise ValueError(f"cache: need >= 1 entries for the state memo, got {size}")
        self.size = int(size)
        rng = np.random.default_rng(_SEED)
        self._words = rng.integers(0, np.iinfo(np.int64).max, size=(n_sites, n_digits), dtype=np.int64,
                                   endpoint=True)
        self._tables: list[OrderedDict[int, np.ndarray]] = []
        self._keys = np.zeros(0, dtype=np.int64)
        self.hits = 0
        self.lookups = 0

    def reset(self, digits: Tensor | np.ndarray) -> None:
        """Forget every entry; hash the states ``digits [T, n_sites]`` afresh."""
        d = np.asarray(digits.detach().cpu().long().numpy() if isinstance(digits, Tensor) else digits, np.int64)
        self._keys = np.bitwise_xor.reduce(self._words[np.arange(d.shape[1]), d], axis=1)
        self._tables = [OrderedDict() for _ in range(d.shape[0])]

    @property
    def words(self) -> np.ndarray:
        """The Zobrist words (n_sites, n_digits) int64."""
        return self._words

    @property
    def keys(self) -> np.ndarray:
        """The current state keys (T,) int64. The engine's compiled jump (:func:`dbkmc.kmc.step_kernels.jump`)
        updates them in place: a jump changes two sites, so four XORs of words."""
        return self._keys

    def lookup(self, out: np.ndarray) -> np.ndarray:
        """Copy the barriers of every trajectory whose current state is known into ``out`` (T, z); returns the
        trajectories whose state is not (int64, ascending)."""
        missing = []
        for t, (key, table) in enumerate(zip(self._keys.tolist(), self._tables)):
            e = table.get(key)
            if e is None:
                missing.append(t)
            else:
                table.move_to_end(key)
                out[t] = e
        self.lookups += len(self._tables)
        self.hits += len(self._tables) - len(missing)
        return np.asarray(missing, dtype=np.int64)

    def store(self, rows: np.ndarray, barriers: np.ndarray) -> None:
        """Remember the barriers ``barriers[t]`` (T, z) of the current states of the trajectories ``rows``."""
        keys = self._keys
        for t in np.asarray(rows).tolist():
            table = self._tables[t]
            table[int(keys[t])] = barriers[t].copy()
            if len(table) > self.size:
                table.popitem(last=False)
