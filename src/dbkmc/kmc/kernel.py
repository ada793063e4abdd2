"""The step kernels of the kMC engine: event choice, swap, clock terms, the fused local-MLP loop.

Every function here is plain tensor code that TorchScript compiles: :func:`advance_local_mlp`
(``n`` steps with the rate model's MLP run inline) is scripted once per process by
:func:`scripted_local_mlp`; the engine's Python loops call the same :func:`jump_one` and
:func:`clock_terms`. The compiled and the plain Python version run the same operations
and give bit-identical trajectories (tests/test_kmc.py).

Shapes: ``digits [T, n_sites]`` (0 = vacancy), vacancies ``[T, 1]``, barriers ``e [T, z]``
in eV, ``beta = 1 / k_B T`` ``[T, 1]``, ``nbr`` the flattened first-neighbour table
(``nbr[v * z + k]`` is the site across path k of site v).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def swap(digits: Tensor, vac: Tensor, target: Tensor) -> None:
    """The atom on ``target`` jumps into the vacancy ``vac`` (both ``[T, 1]``), in place."""
    digits.scatter_(1, vac, digits.gather(1, target))
    digits.scatter_(1, target, 0)


def jump_one(digits: Tensor, vac: Tensor, e: Tensor, nbeta: Tensor, u: Tensor, nbr: Tensor, z: int) -> Tensor:
    """One jump per trajectory with one vacancy: choose path ``k`` with probability ``k_k / R``, swap.

    ``nbeta = -1 / k_B T`` ``[T, 1]``, ``u`` the event uniforms ``[T, 1]``. The softmax
    subtracts the largest ``-E/kT`` (the smallest barrier, ``E_min``) before the
    exponential, so every weight lies in (0, 1]. Returns the new vacancy sites ``[T, 1]``.
    """
    cum = torch.softmax(e * nbeta, 1).cumsum(1)
    path = torch.searchsorted(cum, u * cum[:, z - 1 : z], right=True)  # < z (see dbkmc.kmc.rng.uniform_reference)
    target = nbr[torch.add(path, vac, alpha=z)]  # [T, 1]: site of the jumping atom
    swap(digits, vac, target)
    return target


def clock_terms(e: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Per step the weight sum ``W = sum_i exp(-(E_i - E_min)/kT)`` and ``E_min``, from barriers ``[T, n, z]``."""
    e = e.to(torch.float64)
    e_min = e.amin(2)
    return torch.exp((e_min.unsqueeze(2) - e) * beta.unsqueeze(2)).sum(2), e_min


def mlp_barriers(x: Tensor, w1: Tensor, b1: Tensor, ws: list[Tensor], bs: list[Tensor], hidden: int,
                 z: int) -> Tensor:
    """Barriers ``[B, z]`` from stencil digits ``[B, L]`` (first layer over all paths at once)."""
    h = torch._addmm_activation(b1, x, w1).view(-1, hidden)  # relu(b + x @ w) in one call
    n_layers = len(ws)
    for i in range(n_layers - 1):
        h = torch._addmm_activation(bs[i], h, ws[i])
    return torch.addmm(bs[n_layers - 1], h, ws[n_layers - 1]).view(-1, z)


def advance_local_mlp(digits: Tensor, vac: Tensor, e: Tensor, u_event: Tensor, beta: Tensor, nbr: Tensor,
                      grid: Tensor, pos: Tensor, shift: Tensor, w1: Tensor, b1: Tensor,
                      ws: list[Tensor], bs: list[Tensor], hidden: int, z: int, n: int,
                      keys: Tensor, vals: Tensor, ptr: Tensor,
                      pack: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """``n`` steps, one vacancy per trajectory, barriers from an MLP on the stencil digits.

    The stencil of the vacancy is gathered as ``grid[pos[vac] + shift]``
    (:class:`dbkmc.core.stencil.Stencil`); the MLP is :class:`dbkmc.kmc.rates.base.LocalMLP`.
    ``digits`` are stored in the network's float dtype (0., 1., ... exactly), so the
    stencil gather is the network input without a conversion.

    Exact barrier cache (when ``keys`` has a nonzero second axis): per trajectory a ring
    of the last M distinct stencil-digit vectors met and their barriers (``vals [T, M, z]``).
    A key is the digit vector packed without loss into int64 words (``pack [W, g]``: the
    weight ``(S+1)**i`` of digit i of each group of g, so distinct vectors give distinct
    words). The network depends on the stencil digits only, so an equal key has exactly
    the stored barriers; only the trajectories without a match run the network.

    Returns the new vacancies, the barriers of the new state, per step ``W`` and
    ``E_min`` (:func:`clock_terms`) and the number of cache hits.
    """
    t_count = vac.shape[0]
    e_list: list[Tensor] = []
    cols = u_event.t().unsqueeze(2).unbind(0)
    m = keys.shape[1]
    rows = torch.arange(t_count, device=vac.device)
    nbeta = -beta
    hits = 0
    for j in range(n):
        e_list.append(e)
        vac = jump_one(digits, vac, e, nbeta, cols[j], nbr, z)
        local = digits.gather(1, grid[pos[vac] + shift])
        if m == 0:
            e = mlp_barriers(local, w1, b1, ws, bs, hidden, z)
        else:
            key = (local.to(torch.long).view(t_count, pack.shape[0], pack.shape[1]) * pack).sum(2)  # [T, W]
            eq = (keys == key.unsqueeze(1)).all(2)  # [T, M]
            miss = torch.nonzero(~eq.any(1)).view(-1)
            e = vals[rows, eq.to(torch.uint8).argmax(1)]
            n_miss = miss.shape[0]
            hits += t_count - n_miss
            if n_miss > 0:
                x = local.index_select(0, miss)
                fresh = mlp_barriers(x, w1, b1, ws, bs, hidden, z)
                e = e.index_copy(0, miss, fresh)
                slot = ptr.index_select(0, miss)
                keys.index_put_((miss, slot), key.index_select(0, miss))
                vals.index_put_((miss, slot), fresh)
                ptr.index_copy_(0, miss, torch.remainder(slot + 1, m))
    w_sum, e_min = clock_terms(torch.stack(e_list, 1), beta)
    return vac, e, w_sum, e_min, hits


_SCRIPTED: dict[str, Any] = {}


def scripted_local_mlp() -> Any:
    """:func:`advance_local_mlp` compiled with TorchScript (once per process)."""
    if "mlp" not in _SCRIPTED:
        import warnings

        with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.compile, still supported
            warnings.simplefilter("ignore", DeprecationWarning)
            _SCRIPTED["mlp"] = torch.jit.script(advance_local_mlp)
    return _SCRIPTED["mlp"]
