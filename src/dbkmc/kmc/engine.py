"""Residence-time kinetic Monte Carlo (BKL / Gillespie) of vacancies on an ideal lattice.

State: digits ``[T, n_sites]`` (0 = vacancy, 1..S = species) for T independent
trajectories, each with the same number V >= 1 of vacancies, on one periodic fcc or
bcc :class:`~dbkmc.core.lattice.Lattice`. All T trajectories advance together, one jump
each per step, in one tensor program; a temperature sweep is a batch whose
trajectories carry different temperatures. The code is the same on CPU and CUDA.

One step, for every trajectory at once:

1. Rates ``k_i = nu exp(-E_i / k_B T)`` of every jump path of every vacancy, from the
   current barriers. The smallest barrier ``E_min`` is subtracted before the
   exponential: ``w_i = exp(-(E_i - E_min) / k_B T)`` lies in (0, 1] and the largest
   weight is exactly 1, so the sum ``W = sum_i w_i`` lies in [1, V z] at any
   temperature (nothing overflows or underflows between 100 and 3000 K, or
   anywhere else). The total rate is ``R = nu W exp(-E_min / k_B T)``.
2. Event i is chosen from the cumulative weights with a uniform ``u1`` (with one
   vacancy the weights are normalised first, ``softmax(-E / k_B T)``, which is the same
   shift by ``E_min``); the clock advances by ``dt = -ln(1 - u2) / R``, formed as
   ``exp(E_min / k_B T - ln(nu W)) * (-ln(1 - u2))`` so it is finite for any barrier
   below ~6 eV at 100 K. The clock terms ``E_min`` and ``W`` of a block of steps are
   computed together at the end of the block.
3. The jumping atom and the vacancy swap sites.
4. Barriers are recomputed only where they changed: with one vacancy, its z paths;
   with several, those vacancies with a swapped site within the model's ``reach``.

Random numbers are counter-based (SplitMix64 on integer tensors): the pair of
uniforms of step ``s`` of trajectory ``t`` is a fixed function of
``(seed, trajectory id, s)``. A run is therefore reproducible on a given device, and
a run resumed from a checkpoint (which stores the state, the barriers and the step)
draws exactly the numbers the uninterrupted run draws.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import COORDINATION, Lattice
from dbkmc.kmc.rates.base import KB_EV, RateModel
from dbkmc.core.stencil import Stencil, ball_offsets

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "dbkmc-kmc-checkpoint/1"

# --- counter-based random numbers ---------------------------------------------

_MASK64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB


def _signed(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def _mix_int(z: int) -> int:
    """SplitMix64 finaliser on a Python int (the reference for the tensor version)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * _C1) & _MASK64
    z = ((z ^ (z >> 27)) * _C2) & _MASK64
    return z ^ (z >> 31)


def trajectory_key(seed: int, trajectory_id: int) -> int:
    """The 64-bit stream key of one trajectory."""
    return _mix_int(_mix_int((int(seed) + _GAMMA) & _MASK64) + (int(trajectory_id) + 1) * _GAMMA)


def uniform_reference(key: int, step: int, j: int) -> float:
    """Uniform ``j`` (0: event, 1: clock) of ``step`` in [0, 1), in plain Python.

    52 bits: u <= 1 - 2**-52, so ``u * W`` stays strictly below ``W`` after rounding
    and the event search never runs past the last path.
    """
    x = _mix_int((key + (2 * step + j + 1) * _GAMMA) & _MASK64)
    return (x >> 12) * 2.0**-52


def _srl(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 tensors."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix(z: Tensor) -> Tensor:
    z = (z ^ _srl(z, 30)) * _signed(_C1)
    z = (z ^ _srl(z, 27)) * _signed(_C2)
    return z ^ _srl(z, 31)


def uniforms(keys: Tensor, start: int, count: int) -> Tensor:
    """``[T, count, 2]`` float64 uniforms in [0, 1 - 2**-52] of steps ``start .. start + count - 1``."""
    c = torch.arange(2 * start + 1, 2 * (start + count) + 1, device=keys.device, dtype=torch.long)
    x = keys[:, None] + c[None, :] * _signed(_GAMMA)
    return (_srl(_mix(x), 12).to(torch.float64) * 2.0**-52).view(keys.shape[0], count, 2)


# --- the step loops ------------------------------------------------------------------
#
# Both loops take the digits as a [T, n_sites] tensor and the vacancies as [T, 1]; they
# return the new vacancies, the barriers of the new state, and per step the weight sum W
# and the smallest barrier E_min (for the clock). The local-MLP loop is compiled with
# TorchScript; the compiled and the plain Python version run the same operations and give
# bit-identical trajectories (tests/test_kmc.py).


def _clock_terms(e: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Per step the weight sum ``W = sum_i exp(-(E_i - E_min)/kT)`` and ``E_min``, from barriers ``[T, n, z]``."""
    e = e.to(torch.float64)
    e_min = e.amin(2)
    return torch.exp((e_min.unsqueeze(2) - e) * beta.unsqueeze(2)).sum(2), e_min


def _mlp(x: Tensor, w1: Tensor, b1: Tensor, ws: list[Tensor], bs: list[Tensor], hidden: int, z: int) -> Tensor:
    """Barriers ``[B, z]`` from stencil digits ``[B, L]`` (first layer over all paths at once)."""
    h = torch._addmm_activation(b1, x, w1).view(-1, hidden)  # relu(b + x @ w) in one call
    n_layers = len(ws)
    for i in range(n_layers - 1):
        h = torch._addmm_activation(bs[i], h, ws[i])
    return torch.addmm(bs[n_layers - 1], h, ws[n_layers - 1]).view(-1, z)


def _advance_local_mlp(digits: Tensor, vac: Tensor, e: Tensor, u_event: Tensor, beta: Tensor, nbr: Tensor,
                       grid: Tensor, pos: Tensor, shift: Tensor, w1: Tensor, b1: Tensor,
                       ws: list[Tensor], bs: list[Tensor], hidden: int, z: int, n: int,
                       keys: Tensor, vals: Tensor, ptr: Tensor,
                       pack: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """``n`` steps, one vacancy per trajectory, barriers from an MLP on the stencil digits.

    ``digits`` are stored in the network's float dtype (0., 1., ... exactly), so the
    stencil gather is the network input without a conversion.

    Exact barrier cache (when ``keys`` has a nonzero second axis): per trajectory a ring
    of the last M distinct stencil-digit vectors met and their barriers (``vals [T, M, z]``).
    A key is the digit vector packed without loss into int64 words (``pack [W, g]``: the
    weight ``(S+1)**i`` of digit i of each group of g, so distinct vectors give distinct
    words). The network depends on the stencil digits only, so an equal key has exactly
    the stored barriers; only the trajectories without a match run the network.
    Returns the number of cache hits.
    """
    t_count = vac.shape[0]
    e_list: list[Tensor] = []
    cols = u_event.t().unsqueeze(2).unbind(0)
    m = keys.shape[1]
    rows = torch.arange(t_count, device=vac.device)
    nbeta = -beta
    hits = 0
    for j in range(n):
        # softmax subtracts the largest -E/kT, i.e. the smallest barrier, before exponentiating
        cum = torch.softmax(e * nbeta, 1).cumsum(1)
        path = torch.searchsorted(cum, cols[j] * cum[:, z - 1 : z], right=True)  # < z (see uniforms)
        e_list.append(e)
        target = nbr[torch.add(path, vac, alpha=z)]
        digits.scatter_(1, vac, digits.gather(1, target))
        digits.scatter_(1, target, 0.0)
        vac = target
        local = digits.gather(1, grid[pos[vac] + shift])
        if m == 0:
            e = _mlp(local, w1, b1, ws, bs, hidden, z)
        else:
            key = (local.to(torch.long).view(t_count, pack.shape[0], pack.shape[1]) * pack).sum(2)  # [T, W]
            eq = (keys == key.unsqueeze(1)).all(2)  # [T, M]
            miss = torch.nonzero(~eq.any(1)).view(-1)
            e = vals[rows, eq.to(torch.uint8).argmax(1)]
            n_miss = miss.shape[0]
            hits += t_count - n_miss
            if n_miss > 0:
                x = local.index_select(0, miss)
                fresh = _mlp(x, w1, b1, ws, bs, hidden, z)
                e = e.index_copy(0, miss, fresh)
                slot = ptr.index_select(0, miss)
                keys.index_put_((miss, slot), key.index_select(0, miss))
                vals.index_put_((miss, slot), fresh)
                ptr.index_copy_(0, miss, torch.remainder(slot + 1, m))
    w_sum, e_min = _clock_terms(torch.stack(e_list, 1), beta)
    return vac, e, w_sum, e_min, hits


_SCRIPTED: dict[str, Any] = {}


def _scripted_local_mlp() -> Any:
    if "mlp" not in _SCRIPTED:
        import warnings

        with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.compile, still supported
            warnings.simplefilter("ignore", DeprecationWarning)
            _SCRIPTED["mlp"] = torch.jit.script(_advance_local_mlp)
    return _SCRIPTED["mlp"]


# --- the engine -----------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when there is a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"kmc.device: {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


class KMC:
    """T trajectories of residence-time kMC advancing together (see the module docstring).

    ``digits``: ``[T, n_sites]`` or ``[n_sites]`` (the same start for every trajectory);
    every row must hold the same number of vacancies (zeros). ``temperatures``: one
    per trajectory (K). ``trajectory_ids`` fix the random streams (default 0..T-1), so
    a trajectory's stream does not depend on what else is in the batch.

    Engine paths (``self.path``): with one vacancy and a model exposing ``local_mlp``
    (the NNK MLPs) the step loop runs the network inline, compiled (``fused=True``)
    or as plain Python (``fused=False``, same numbers); with one vacancy otherwise the
    model's ``barriers_local`` or ``barriers`` is called each step; with several
    vacancies the masked loop with local barrier updates runs.
    """

    def __init__(self, model: RateModel, digits: Tensor | np.ndarray, temperatures: Sequence[float],
                 nu: float = 1e13, seed: int = 0, trajectory_ids: Sequence[int] | None = None,
                 device: str | torch.device = "cpu", block: int = 512, fused: bool = True,
                 cache: int = 0) -> None:
        self.model = model
        self.lattice: Lattice = model.lattice
        self.device = torch.device(device)
        self.z = COORDINATION[self.lattice.kind]
        temps = torch.as_tensor(np.asarray(temperatures, dtype=np.float64), device=self.device)
        if temps.ndim != 1 or len(temps) == 0:
            raise ValueError("temperatures: need one temperature per trajectory")
        if not torch.all(torch.isfinite(temps) & (temps > 0)):
            raise ValueError(f"temperatures: need finite values > 0 K, got {temps.tolist()}")
        if not (nu > 0 and math.isfinite(nu)):
            raise ValueError(f"nu: need a finite attempt frequency > 0, got {nu}")
        self.T = len(temps)
        self.temperatures = temps
        self.beta = (1.0 / (KB_EV * temps))[:, None]  # [T, 1] 1/eV
        self.nu = float(nu)
        self.log_nu = math.log(self.nu)
        self.seed = int(seed)
        ids = list(range(self.T)) if trajectory_ids is None else [int(i) for i in trajectory_ids]
        if len(ids) != self.T or len(set(ids)) != self.T:
            raise ValueError("trajectory_ids: need one distinct id per trajectory")
        self.trajectory_ids = ids
        self.keys = torch.tensor([_signed(trajectory_key(seed, i)) for i in ids], dtype=torch.long,
                                 device=self.device)
        if block < 1:
            raise ValueError(f"block: need >= 1 steps, got {block}")
        self.block = int(block)

        d = torch.as_tensor(np.asarray(digits) if not isinstance(digits, Tensor) else digits)
        d = d.to(device=self.device, dtype=torch.long)
        if d.ndim == 1:
            d = d.expand(self.T, -1)
        if d.shape != (self.T, self.lattice.n_sites):
            raise ValueError(f"digits: expected [{self.T}, {self.lattice.n_sites}], got {list(d.shape)}")
        if d.min() < 0 or d.max() > len(model.species):
            raise ValueError(f"digits: values must lie in 0..{len(model.species)} (0 = vacancy)")
        n_vac = (d == 0).sum(1)
        if not torch.all(n_vac == n_vac[0]) or int(n_vac[0]) < 1:
            raise ValueError(f"digits: every trajectory needs the same number (>= 1) of vacancies, got "
                             f"{n_vac.tolist()}")
        self.V = int(n_vac[0])
        self.vacancies = torch.nonzero(d == 0)[:, 1].view(self.T, self.V).contiguous()
        self.time = torch.zeros(self.T, dtype=torch.float64, device=self.device)
        self.step = 0

        self._nbr = torch.as_tensor(self.lattice.neighbors, dtype=torch.long, device=self.device)
        self._nbr_flat = self._nbr.reshape(-1)
        self._local = hasattr(model, "barriers_local") and getattr(model, "stencil_offsets", None) is not None
        if self._local:
            self._stencil = Stencil(self.lattice, model.stencil_offsets, self.device)
        if self.V > 1:
            self._init_reach()
        self._mlp = getattr(model, "local_mlp", None) if (self._local and self.V == 1) else None
        self._fused = bool(fused) and self._mlp is not None
        if self._mlp is not None:
            self.path = "local MLP, " + ("TorchScript" if self._fused else "Python")
        else:
            self.path = "one vacancy" if self.V == 1 else "several vacancies"
        # the state digits live in the network's dtype on the local-MLP path (the network input)
        self._digit_dtype = self._mlp.w1.dtype if self._mlp is not None else torch.long
        self._digits = d.to(self._digit_dtype).contiguous().clone()
        self._digits_long: Tensor | None = None
        self.barriers = self._compute(self.vacancies)
        if cache < 0:
            raise ValueError(f"cache: need >= 0 entries, got {cache}")
        size = int(cache) if self._mlp is not None else 0
        self._pack = self._packing() if self._mlp is not None else torch.zeros(0, 0, dtype=torch.long)
        self._cache_keys = torch.full((self.T, size, self._pack.shape[0]), -1, dtype=torch.long, device=self.device)
        self._cache_vals = torch.zeros((self.T, size, self.z), dtype=self.barriers.dtype, device=self.device)
        self._cache_ptr = torch.zeros(self.T, dtype=torch.long, device=self.device)
        self.cache_hits = 0
        if size:
            self.path += f", exact barrier cache of {size}"

    def _packing(self) -> Tensor:
        """``[W, g]`` int64 weights packing the L stencil digits (0..S) losslessly into W words."""
        base = len(self.model.species) + 1
        n_local = self._stencil.size
        per_word = max(1, int(62 // math.log2(base)))
        g = max(d for d in range(1, min(per_word, n_local) + 1) if n_local % d == 0)
        powers = torch.tensor([base**i for i in range(g)], dtype=torch.long)
        return powers.repeat(n_local // g, 1).to(self.device)

    @property
    def digits(self) -> Tensor:
        """``LongTensor[T, n_sites]``: the current occupation (0 = vacancy)."""
        if self._digit_dtype == torch.long:
            return self._digits
        if self._digits_long is None:
            self._digits_long = self._digits.to(torch.long)
        return self._digits_long

    # -- barriers ------------------------------------------------------------------

    def _compute(self, vac: Tensor) -> Tensor:
        """Barriers ``[T, m, z]`` of the vacancies ``vac`` ``[T, m]`` (in the model's dtype)."""
        if self._local:
            sites = self._stencil.sites(vac)  # [T, m, L]
            local = self._digits.gather(1, sites.view(self.T, -1)).view(-1, sites.shape[-1])
            e = self.model.barriers_local(local)
        else:
            e = self.model.barriers(self._digits, vac)
        return e.view(self.T, vac.shape[1], self.z)

    def _init_reach(self) -> None:
        """Table: is a half-coordinate difference (mod 2n) within the model's reach?"""
        lat = self.lattice
        m = 2 * lat.n
        g = np.stack(np.meshgrid(*(np.arange(m),) * 3, indexing="ij"), -1).reshape(-1, 3)
        g = np.minimum(g, m - g)
        r2 = (g**2).sum(1) * (lat.a / 2.0) ** 2
        self._within = torch.as_tensor(r2 <= self.model.reach**2 * (1 + 1e-12), device=self.device)
        self._half = torch.as_tensor(lat.half_coords, dtype=torch.long, device=self.device)
        self._m = m

    def _near(self, vac: Tensor, site: Tensor) -> Tensor:
        """``[T, V]``: vacancy within reach of ``site`` ``[T, 1]``."""
        d = torch.remainder(self._half[vac] - self._half[site], self._m)
        return self._within[(d[..., 0] * self._m + d[..., 1]) * self._m + d[..., 2]]

    # -- stepping --------------------------------------------------------------------

    def run(self, n_steps: int) -> None:
        """Advance every trajectory by ``n_steps`` jumps (blocks of ``self.block`` steps)."""
        done = 0
        while done < n_steps:
            # blocks end at multiples of the block size, so where a run starts never changes them
            n = min(n_steps - done, self.block - self.step % self.block)
            self._advance(n)
            done += n

    @torch.no_grad()
    def _advance(self, n: int) -> None:
        T, z = self.T, self.z
        u = uniforms(self.keys, self.step, n)
        u_event = u[..., 0].contiguous()
        self._digits_long = None
        if self._mlp is not None:
            mlp = self._mlp
            args = (self._digits, self.vacancies, self.barriers.view(T, z), u_event, self.beta, self._nbr_flat,
                    self._stencil._grid, self._stencil._pos, self._stencil._shift, mlp.w1, mlp.b1,
                    [w for w, _ in mlp.layers], [b for _, b in mlp.layers], mlp.hidden, z, n,
                    self._cache_keys, self._cache_vals, self._cache_ptr, self._pack)
            if self._fused:
                with torch.jit.optimized_execution(False):  # plain interpreter: the Python loop's numbers
                    vac, e, w_sum, e_min, hits = _scripted_local_mlp()(*args)
            else:
                vac, e, w_sum, e_min, hits = _advance_local_mlp(*args)
            self.cache_hits += hits
            self.vacancies, self.barriers = vac, e.view(T, 1, z)
        elif self.V == 1:
            w_sum, e_min = self._advance_one(n, u_event)
        else:
            w_sum, e_min = self._advance_many(n, u_event)
        # clock: dt = -ln(1 - u2) / (nu W exp(-E_min/kT)); sequential sum (cumsum) so blocks do not matter
        log_scale = e_min * self.beta - self.log_nu - torch.log(w_sum)
        dt = torch.exp(log_scale) * (-torch.log1p(-u[..., 1]))
        total = torch.cat([self.time[:, None], dt], 1).cumsum(1)[:, -1]
        if not torch.all(torch.isfinite(total)):
            bad = int(torch.nonzero(~torch.isfinite(total))[0, 0])
            raise FloatingPointError(
                f"kmc: non-finite clock in trajectory {self.trajectory_ids[bad]} between jumps {self.step} and "
                f"{self.step + n} (a barrier from the rate model is NaN/inf, or too large for "
                f"T = {float(self.temperatures[bad]):g} K)")
        self.time = total
        self.step += n

    def _advance_one(self, n: int, u_event: Tensor) -> tuple[Tensor, Tensor]:
        """One vacancy per trajectory, any model."""
        z, beta = self.z, self.beta
        digits = self._digits
        nbr = self._nbr_flat
        vac = self.vacancies  # [T, 1]
        e = self.barriers.view(self.T, z)
        e_list = []
        cols = u_event.t().unsqueeze(2).unbind(0)
        nbeta = -beta
        for j in range(n):
            cum = torch.softmax(e * nbeta, 1).cumsum(1)  # shifted by the smallest barrier
            path = torch.searchsorted(cum, cols[j] * cum[:, z - 1 : z], right=True)  # < z (see uniforms)
            e_list.append(e)
            target = nbr[torch.add(path, vac, alpha=z)]  # [T, 1]: site of the jumping atom
            digits.scatter_(1, vac, digits.gather(1, target))
            digits.scatter_(1, target, 0)
            vac = target
            e = self._compute(vac).view(self.T, z)
        self.vacancies = vac.contiguous()
        self.barriers = e.view(self.T, 1, z)
        return _clock_terms(torch.stack(e_list, 1), beta)

    def _advance_many(self, n: int, u_event: Tensor) -> tuple[Tensor, Tensor]:
        """Several vacancies per trajectory: masked paths, local barrier updates."""
        T, V, z, beta = self.T, self.V, self.z, self.beta
        digits = self._digits
        nbr = self._nbr_flat
        vac = self.vacancies  # [T, V]
        e = self.barriers  # [T, V, z]
        inf = torch.tensor(float("inf"), dtype=e.dtype, device=self.device)
        w_list, e_list = [], []
        for j in range(n):
            valid = digits.gather(1, self._nbr[vac].view(T, V * z)) != 0  # no jump into a vacancy
            ef = torch.where(valid, e.view(T, V * z), inf)
            emin = ef.amin(1, keepdim=True)
            if not torch.all(torch.isfinite(emin)):
                raise RuntimeError(f"kmc: a trajectory has no possible jump at step {self.step + j}")
            w = torch.exp((emin - ef) * beta)
            cum = w.cumsum(1)
            total = cum[:, -1:].contiguous()
            last = torch.searchsorted(cum, total, right=False)  # the last path with a nonzero weight
            idx = torch.minimum(torch.searchsorted(cum, u_event[:, j : j + 1] * total, right=True), last)
            w_list.append(total)
            e_list.append(emin)
            slot = idx // z
            source = vac.gather(1, slot)  # [T, 1]
            target = nbr[source * z + idx % z]
            digits.scatter_(1, source, digits.gather(1, target))
            digits.scatter_(1, target, 0)
            vac = vac.scatter(1, slot, target)
            need = self._near(vac, source) | self._near(vac, target)  # the moved vacancy is always in
            m = int(need.sum(1).max())
            sel = torch.argsort((~need).to(torch.int8), dim=1, stable=True)[:, :m]
            fresh = self._compute(vac.gather(1, sel))
            e = e.scatter(1, sel[..., None].expand(T, m, z), fresh)
        self.vacancies = vac.contiguous()
        self.barriers = e
        return torch.cat(w_list, 1), torch.cat(e_list, 1).to(torch.float64)

    # -- state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "digits": self.digits.cpu(), "vacancies": self.vacancies.cpu(),
                "time": self.time.cpu(), "barriers": self.barriers.cpu(), "cache_keys": self._cache_keys.cpu(),
                "cache_vals": self._cache_vals.cpu(), "cache_ptr": self._cache_ptr.cpu(), "cache_hits": self.cache_hits,
                "temperatures": self.temperatures.cpu(), "trajectory_ids": list(self.trajectory_ids),
                "seed": self.seed, "nu": self.nu}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, mine in (("seed", self.seed), ("nu", self.nu), ("trajectory_ids", list(self.trajectory_ids))):
            if state[key] != mine:
                raise ValueError(f"checkpoint: {key} {state[key]!r} differs from this run's {mine!r}")
        if not torch.equal(state["temperatures"], self.temperatures.cpu()):
            raise ValueError("checkpoint: temperatures differ from this run's")
        if state["digits"].shape != self._digits.shape:
            raise ValueError("checkpoint: digits have another shape than this run's")
        self.step = int(state["step"])
        self._digits = state["digits"].to(device=self.device, dtype=self._digit_dtype).contiguous()
        self._digits_long = None
        self.vacancies = state["vacancies"].to(self.device).contiguous()
        self.time = state["time"].to(self.device)
        self.barriers = state["barriers"].to(self.device)
        if state["cache_keys"].shape != self._cache_keys.shape:
            raise ValueError("checkpoint: the barrier cache has another size than this run's")
        self._cache_keys = state["cache_keys"].to(self.device)
        self._cache_vals = state["cache_vals"].to(self.device)
        self._cache_ptr = state["cache_ptr"].to(self.device)
        self.cache_hits = int(state["cache_hits"])


# --- driving a run: records, snapshots, checkpoints, progress ----------------------


def log_spaced_steps(first: int, last: int, per_decade: int) -> list[int]:
    """Integer jump counts from ``first`` to ``last``, ``per_decade`` per decade (log-spaced)."""
    if first < 1 or last < first:
        return []
    n = max(2, int(math.ceil(per_decade * math.log10(last / first))) + 1)
    return sorted({int(round(v)) for v in np.geomspace(first, last, n)})


@dataclass
class Schedule:
    """Jump counts at which to record observables, write snapshots and checkpoints."""

    n_jumps: int
    record: list[int]
    snapshots: list[int]
    checkpoint_every: int = 0

    def stops(self) -> list[int]:
        pts = set(self.record) | set(self.snapshots) | {self.n_jumps}
        if self.checkpoint_every > 0:
            pts |= set(range(self.checkpoint_every, self.n_jumps, self.checkpoint_every))
        return sorted(p for p in pts if 0 <= p <= self.n_jumps)


@dataclass
class RunHooks:
    """What to do at a recording point or snapshot (each gets the engine)."""

    record: Callable[[KMC], list[dict]]
    snapshot: Callable[[KMC], None] | None = None
    rows: list[dict] = field(default_factory=list)


def run_fingerprint(params: Mapping[str, Any]) -> str:
    """A short hash of the run's parameters: a checkpoint is only resumed by the same run."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def previous_checkpoint(path: str | Path) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint before the latest one."""
    path = Path(path)
    return path.with_name(path.name + ".prev")


def remove_checkpoints(path: str | Path) -> None:
    for p in (Path(path), previous_checkpoint(path)):
        p.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, engine: KMC, rows: list[dict], fingerprint: str) -> None:
    """Atomically write the engine state and the recorded rows; the one before is kept as ``<path>.prev``."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "engine": engine.state_dict(),
                "rows": rows}, tmp)
    if path.is_file():
        os.replace(path, previous_checkpoint(path))
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it is readable and belongs to this run, else None (logged).

    A truncated or otherwise unreadable file is reported by name and skipped.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or not isinstance(ck.get("engine"), dict) or not isinstance(ck.get("rows"), list):
            raise ValueError("not a kMC checkpoint (no engine state and rows)")
    except Exception as err:  # noqa: BLE001 - any damage to the file (truncation: RuntimeError, EOFError, ...)
        log.warning("checkpoint %s is unreadable (%s: %s); not resuming from it", path, type(err).__name__, err)
        return None
    if ck.get("format") != CHECKPOINT_FORMAT or ck.get("fingerprint") != fingerprint:
        log.warning("checkpoint %s belongs to another run or format; starting afresh", path)
        return None
    return ck


def resume(engine: KMC, checkpoint: str | Path, fingerprint: str) -> list[dict] | None:
    """Load the latest good checkpoint of this run into ``engine``; its recorded rows, or None.

    Tries ``checkpoint``, then the one before it (``<checkpoint>.prev``). A file that
    cannot be read or loaded is named in a warning and skipped; with none left the
    engine keeps its initial state and the run starts from the beginning.
    """
    initial = {k: v.clone() if isinstance(v, Tensor) else v for k, v in engine.state_dict().items()}
    for path in (Path(checkpoint), previous_checkpoint(checkpoint)):
        ck = load_checkpoint(path, fingerprint)
        if ck is None:
            continue
        try:
            engine.load_state_dict(ck["engine"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            log.warning("checkpoint %s does not fit this run (%s: %s); not resuming from it",
                        path, type(err).__name__, err)
            engine.load_state_dict(initial)
            continue
        log.info("resumed from %s at %d jumps", path, engine.step)
        return list(ck["rows"])
    if Path(checkpoint).exists() or previous_checkpoint(checkpoint).exists():
        log.warning("no usable checkpoint in %s; starting from the beginning", Path(checkpoint).parent)
    return None


def simulate(engine: KMC, schedule: Schedule, hooks: RunHooks, checkpoint: str | Path | None = None,
             fingerprint: str = "", progress: bool = True, stop_after: int | None = None,
             progress_file: Any = None) -> list[dict]:
    """Run to ``schedule.n_jumps``, resuming from ``checkpoint`` when it belongs to this run.

    Returns the recorded rows (from the hooks). ``stop_after`` (for tests and time
    limits) stops after the first checkpoint at or beyond that many jumps, as a
    killed job would. The progress bar goes to ``progress_file`` (a job's log; updated
    every 30 s there) or to stderr.
    """
    from tqdm import tqdm

    rows: list[dict] = []
    if checkpoint is not None and (resumed := resume(engine, checkpoint, fingerprint)) is not None:
        rows = resumed
    record, snaps = set(schedule.record), set(schedule.snapshots)
    if engine.step == 0:
        if 0 in record:
            rows.extend(hooks.record(engine))
        if 0 in snaps and hooks.snapshot is not None:
            hooks.snapshot(engine)
    bar = tqdm(total=schedule.n_jumps, initial=engine.step, unit=" jumps/trajectory", disable=not progress,
               desc=f"kMC, {engine.T} trajectories", file=progress_file,
               mininterval=2.0 if progress_file is None else 30.0)
    try:
        for stop in schedule.stops():
            if stop <= engine.step:
                continue
            before = engine.step
            engine.run(stop - before)
            bar.update(engine.step - before)
            if stop in record:
                rows.extend(hooks.record(engine))
            if stop in snaps and hooks.snapshot is not None:
                hooks.snapshot(engine)
            is_ck = schedule.checkpoint_every > 0 and stop % schedule.checkpoint_every == 0
            if checkpoint is not None and is_ck and stop < schedule.n_jumps:
                save_checkpoint(checkpoint, engine, rows, fingerprint)
                if stop_after is not None and stop >= stop_after:
                    raise KeyboardInterrupt(f"stopped after the checkpoint at {stop} jumps")
    finally:
        bar.close()
    return rows
