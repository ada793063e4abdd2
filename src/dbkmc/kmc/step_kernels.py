"""Compiled (numba) pieces of the kMC engine's CPU loop for one vacancy per trajectory.

:func:`jump` is :func:`dbkmc.kmc.kernel.jump_one` on numpy arrays, one trajectory after another in a
compiled loop: path k with probability ``softmax(-E / k_B T)_k`` (the largest ``-E/k_B T`` subtracted
before the exponential, so every weight lies in (0, 1]), chosen by ``searchsorted(cum, u * cum[z - 1],
right=True)``, then the atom on the target site moves into the vacancy. For one trajectory the tensor
version is ~10 small tensor operations per jump, more than the jump itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def jump(digits, vac, e, nbeta, u, nbr, z, words, keys):
    """One jump of each trajectory t: ``digits`` (T, n_sites) and ``vac`` (T,) change in place; ``e`` (T, z)
    barriers (eV), ``nbeta`` (T,) = -1/k_B T, ``u`` (T,) event uniforms, ``nbr`` the flat neighbour table.
    With Zobrist ``words`` (n_sites, digits) the state keys ``keys`` (T,) follow the jump (the engine's state
    memo, :mod:`dbkmc.kmc.memo`); an empty ``words`` skips that."""
    x = np.empty(z, dtype=np.float64)
    cum = np.empty(z, dtype=np.float64)
    for t in range(digits.shape[0]):
        top = -np.inf
        for k in range(z):
            x[k] = e[t, k] * nbeta[t]
            top = max(top, x[k])
        total = 0.0
        for k in range(z):
            x[k] = np.exp(x[k] - top)
            total += x[k]
        acc = 0.0
        for k in range(z):
            acc += x[k] / total
            cum[k] = acc
        value = u[t] * cum[z - 1]
        path = 0
        while path < z - 1 and cum[path] <= value:
            path += 1
        v = vac[t]
        target = nbr[v * z + path]
        moved = digits[t, target]
        digits[t, v] = moved
        digits[t, target] = 0
        vac[t] = target
        if words.shape[0]:
            keys[t] ^= words[v, 0] ^ words[v, moved] ^ words[target, moved] ^ words[target, 0]
