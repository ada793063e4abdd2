"""Exact memo of the barriers of recently visited states, keyed by a Zobrist hash of the whole cell.

A vacancy at low temperature often hops back and forth within a few sites (at 500 K in Cu50Ni50
with M_EXT + KRA rates, about half of all jumps lead to a state the trajectory has already been
in). The barriers of a state are a fixed function of its occupation, so they can be looked up
instead of recomputed. The key of a state is the XOR over sites of a random 64-bit word per
(site, digit) (Zobrist hashing): one jump changes two sites, so the key is updated with four
XORs. Two different states share a key with probability 2^-64 per pair, far below anything a kMC
run can reach; the words come from a fixed seed, so a run is reproducible.

:class:`StateMemo` keeps the last ``size`` distinct states per engine (least recently used out
first), for T trajectories with one vacancy each; an entry is the joint state of all T (the rate
model is called for all T rows or none, so a model's own per-trajectory caches stay aligned).
:class:`dbkmc.kmc.engine.KMC` uses it for one trajectory (T = 1: trajectories of a batch
practically never revisit a joint state) with any one-vacancy model that is not a local MLP (those
have the stencil cache of :mod:`dbkmc.kmc.kernel`). The entries hold the barriers the model gave at
the first visit, so a run with the memo can differ from one without in the last bits of a float32
barrier (the model's own caches reach a state by another route); it is the same Markov chain.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from torch import Tensor

_SEED = 0x5EED_2026
"""Seed of the Zobrist words (fixed: the memo never changes a trajectory's random stream)."""


class StateMemo:
    """Barriers ``[T, z]`` of the last ``size`` distinct whole-cell states (see the module docstring)."""

    def __init__(self, size: int, n_sites: int, n_digits: int) -> None:
        if size < 1:
            raise ValueError(f"cache: need >= 1 entries for the state memo, got {size}")
        self.size = int(size)
        rng = np.random.default_rng(_SEED)
        self._words = rng.integers(0, np.iinfo(np.int64).max, size=(n_sites, n_digits), dtype=np.int64,
                                   endpoint=True)
        self._table: OrderedDict[tuple[int, ...], Tensor] = OrderedDict()
        self._keys = np.zeros(0, dtype=np.int64)
        self.hits = 0
        self.lookups = 0

    def reset(self, digits: Tensor) -> None:
        """Forget every entry; hash the states ``digits [T, n_sites]`` afresh."""
        d = digits.detach().cpu().long().numpy()
        self._keys = np.bitwise_xor.reduce(self._words[np.arange(d.shape[1]), d], axis=1)
        self._table.clear()

    def jumped(self, source: Tensor, target: Tensor, digits: Tensor) -> None:
        """Update the keys after the atom on ``target`` jumped into the vacancy on ``source`` (both ``[T, 1]``,
        ``digits`` the state after the jump)."""
        src, tgt = source.cpu().numpy()[:, 0], target.cpu().numpy()[:, 0]
        moved = digits.gather(1, source).cpu().numpy()[:, 0]
        w = self._words
        self._keys ^= w[src, 0] ^ w[src, moved] ^ w[tgt, moved] ^ w[tgt, 0]

    def get(self) -> Tensor | None:
        """The barriers of the current states if every trajectory's state is known, else None."""
        self.lookups += 1
        key = tuple(self._keys.tolist())
        e = self._table.get(key)
        if e is not None:
            self._table.move_to_end(key)
            self.hits += 1
        return e

    def put(self, barriers: Tensor) -> None:
        """Remember the barriers ``[T, z]`` of the current states."""
        self._table[tuple(self._keys.tolist())] = barriers
        if len(self._table) > self.size:
            self._table.popitem(last=False)
