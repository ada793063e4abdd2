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

A model with a prefactor per path (:class:`~dbkmc.kmc.rates.base.PrefactorRates`, e.g. vibrational
prefactors, :mod:`dbkmc.kmc.rates.prefactor`) gives ``E_b`` and ``ln nu_i``; the engine then stores and uses
the effective barriers ``E_eff = E_b - k_B T (ln nu_i - ln nu)`` of each trajectory's temperature
(:func:`~dbkmc.kmc.rates.base.effective_barriers`), so ``nu exp(-E_eff / k_B T) = nu_i exp(-E_b / k_B T)``
with ``nu`` as the reference frequency and everything above unchanged.

The uniforms come from :mod:`dbkmc.kmc.rng` (counter-based: a fixed function of
``(seed, trajectory id, step)``), so a run is reproducible on a given device, and a run
resumed from a checkpoint (:mod:`dbkmc.kmc.driver`; it stores the state, the barriers
and the step) draws exactly the numbers the uninterrupted run draws. The one-vacancy
jump and the fused local-MLP loop are in :mod:`dbkmc.kmc.kernel`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.constants import KB_EV
from dbkmc.core.lattice import COORDINATION, Lattice
from dbkmc.core.stencil import Stencil
from dbkmc.kmc import kernel, step_kernels
from dbkmc.kmc.memo import StateMemo
from dbkmc.kmc.rates.base import (FusedLocalRateModel, LocalMLP, LocalRateModel, PrefactorRates, RateModel,
                                  effective_barriers)
from dbkmc.kmc.rng import trajectory_keys, uniforms


class KMC:
    """T trajectories of residence-time kMC advancing together (see the module docstring).

    ``digits``: ``[T, n_sites]`` or ``[n_sites]`` (the same start for every trajectory);
    every row must hold the same number of vacancies (zeros). ``temperatures``: one
    per trajectory (K). ``trajectory_ids`` fix the random streams (default 0..T-1), so
    a trajectory's stream does not depend on what else is in the batch.

    Engine paths (``self.path``): with one vacancy and a
    :class:`~dbkmc.kmc.rates.base.FusedLocalRateModel` (the NNK MLPs) the step loop runs
    the model's :class:`~dbkmc.kmc.rates.base.LocalMLP` inline
    (:func:`dbkmc.kmc.kernel.advance_local_mlp`), compiled (``fused=True``) or as plain
    Python (``fused=False``, same numbers); with one vacancy otherwise the model's
    ``barriers_local`` (a :class:`~dbkmc.kmc.rates.base.LocalRateModel`) or ``barriers``
    is called each step; with several vacancies the masked loop with local barrier
    updates runs. On the CPU the one-vacancy loop jumps with :func:`dbkmc.kmc.step_kernels.jump`
    (compiled; the same choice as :func:`dbkmc.kmc.kernel.jump_one`). ``cache``: entries of the exact
    barrier cache: on the local-MLP path the last ``cache`` stencil neighbourhoods per trajectory; with
    one vacancy and any other model, on the CPU, the last ``cache`` whole-cell states of each trajectory
    (:class:`~dbkmc.kmc.memo.StateMemo`), for one trajectory, or for a batch when the model can evaluate
    a subset of its trajectories (``barriers_rows``); ``cache_hits`` counts the trajectory steps it
    served.
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
        self.keys = trajectory_keys(seed, ids, self.device)
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
        self._local = isinstance(model, LocalRateModel)
        self._prefactor = isinstance(model, PrefactorRates) and not self._local
        if self._local:
            self._stencil = Stencil(self.lattice, model.stencil_offsets, self.device)
        if self.V > 1:
            self._init_reach()
        self._mlp: LocalMLP | None = (model.local_mlp() if isinstance(model, FusedLocalRateModel) and self.V == 1
                                      else None)
        self._fused = bool(fused) and self._mlp is not None
        if self._mlp is not None:
            self.path = "local MLP, " + ("TorchScript" if self._fused else "Python")
        else:
            self.path = "one vacancy" if self.V == 1 else "several vacancies"
        # the state digits live in the network's dtype on the local-MLP path (the network input)
        self._digit_dtype = self._mlp.dtype if self._mlp is not None else torch.long
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
        # one vacancy on the CPU, any other model: the exact memo of recently visited whole states, for one
        # trajectory, or for a batch when the model can evaluate some of its trajectories (barriers_rows)
        self._memo: StateMemo | None = None
        self._rows = callable(getattr(model, "barriers_rows", None)) and not self._prefactor
        if cache and self._mlp is None and self.V == 1 and self.device.type == "cpu" and (self.T == 1 or self._rows):
            self._memo = StateMemo(int(cache), self.lattice.n_sites, len(model.species) + 1)
            self._memo.reset(self._digits)
            self._memo.store(np.arange(self.T), self.barriers.view(self.T, self.z).numpy())
            self.path += f", exact state memo of {int(cache)}"
        self._nbr_np = np.ascontiguousarray(self.lattice.neighbors, dtype=np.int64).reshape(-1)

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
        """Barriers ``[T, m, z]`` of the vacancies ``vac`` ``[T, m]`` (in the model's dtype; effective barriers in
        float64 for a model with prefactors)."""
        if self._local:
            sites = self._stencil.sites(vac)  # [T, m, L]
            local = self._digits.gather(1, sites.view(self.T, -1)).view(-1, sites.shape[-1])
            e = self.model.barriers_local(local)
        elif self._prefactor:  # per-path prefactors: effective barriers at each trajectory's temperature
            e_b, ln_nu = self.model.rate_terms(self._digits, vac)
            e = effective_barriers(e_b.reshape(self.T, -1), ln_nu.reshape(self.T, -1), self.beta, self.log_nu)
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
            mlp, st = self._mlp, self._stencil
            args = (self._digits, self.vacancies, self.barriers.view(T, z), u_event, self.beta, self._nbr_flat,
                    st.grid, st.grid_positions, st.grid_shifts, mlp.w1, mlp.b1, mlp.weights, mlp.biases, mlp.hidden,
                    z, n, self._cache_keys, self._cache_vals, self._cache_ptr, self._pack)
            if self._fused:
                with torch.jit.optimized_execution(False):  # plain interpreter: the Python loop's numbers
                    vac, e, w_sum, e_min, hits = kernel.scripted_local_mlp()(*args)
            else:
                vac, e, w_sum, e_min, hits = kernel.advance_local_mlp(*args)
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
        if self.device.type == "cpu":
            return self._advance_one_cpu(n, u_event)
        z, beta = self.z, self.beta
        digits = self._digits
        nbr = self._nbr_flat
        vac = self.vacancies  # [T, 1]
        e = self.barriers.view(self.T, z)
        e_list = []
        cols = u_event.t().unsqueeze(2).unbind(0)
        nbeta = -beta
        for j in range(n):
            e_list.append(e)
            vac = kernel.jump_one(digits, vac, e, nbeta, cols[j], nbr, z)
            e = self._compute(vac).view(self.T, z)
        self.vacancies = vac.contiguous()
        self.barriers = e.view(self.T, 1, z)
        return kernel.clock_terms(torch.stack(e_list, 1), beta)

    def _advance_one_cpu(self, n: int, u_event: Tensor) -> tuple[Tensor, Tensor]:
        """The same on the CPU: the jumps compiled (:func:`dbkmc.kmc.step_kernels.jump`, on numpy views of the
        state), barriers from the exact state memo where it knows the new state, else from the model."""
        T, z = self.T, self.z
        digits = self._digits.numpy()
        vac_t = self.vacancies.clone().contiguous()
        vac = vac_t.numpy().reshape(T)                    # a view: vac_t follows every jump
        e = self.barriers.view(T, z).numpy().copy()
        hist = np.empty((n, T, z), dtype=e.dtype)
        nbeta = (-self.beta[:, 0]).numpy()
        u = u_event.numpy()
        memo = self._memo
        words, keys = (memo.words, memo.keys) if memo is not None else (np.zeros((0, 1), np.int64), vac)
        for j in range(n):
            hist[j] = e
            step_kernels.jump(digits, vac, e, nbeta, u[:, j], self._nbr_np, z, words, keys)
            if memo is None:
                e = self._compute(vac_t).view(T, z).numpy()
                continue
            missing = memo.lookup(e)
            self.cache_hits += T - len(missing)
            if len(missing) == T:
                e = self._compute(vac_t).view(T, z).numpy().copy()
            elif len(missing):
                e[missing] = self.model.barriers_rows(self._digits, vac_t, missing).reshape(len(missing), z).numpy()
            else:
                continue
            memo.store(missing, e)
        self.vacancies = vac_t
        self.barriers = torch.from_numpy(e.copy()).view(T, 1, z)
        return kernel.clock_terms(torch.from_numpy(hist).permute(1, 0, 2), self.beta)

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
            kernel.swap(digits, source, target)
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
        # copies: on the CPU .cpu() returns the live tensor, which the next jump changes in place
        return {"step": self.step, "digits": self.digits.cpu().clone(), "vacancies": self.vacancies.cpu().clone(),
                "time": self.time.cpu().clone(), "barriers": self.barriers.cpu().clone(),
                "cache_keys": self._cache_keys.cpu().clone(), "cache_vals": self._cache_vals.cpu().clone(),
                "cache_ptr": self._cache_ptr.cpu().clone(), "cache_hits": self.cache_hits,
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
        self._digits = state["digits"].to(device=self.device, dtype=self._digit_dtype).contiguous().clone()
        self._digits_long = None
        self.vacancies = state["vacancies"].to(self.device).contiguous().clone()
        self.time = state["time"].to(self.device)
        self.barriers = state["barriers"].to(self.device)
        if state["cache_keys"].shape != self._cache_keys.shape:
            raise ValueError("checkpoint: the barrier cache has another size than this run's")
        self._cache_keys = state["cache_keys"].to(self.device).clone()
        self._cache_vals = state["cache_vals"].to(self.device).clone()
        self._cache_ptr = state["cache_ptr"].to(self.device).clone()
        self.cache_hits = int(state["cache_hits"])
        if self._memo is not None:  # the memo is not saved: it starts empty from the restored state
            self._memo.reset(self._digits)
            self._memo.store(np.arange(self.T), self.barriers.view(self.T, self.z).numpy())
