"""Rate models for the kMC engine: the interfaces, the fast-path protocols and the registry.

A rate model maps vacancy neighbourhoods to the barrier of every first-neighbour
jump path. The kMC engine (:mod:`dbkmc.kmc.engine`) turns barriers into rates
``k = nu exp(-E_b / k_B T)``; models never see the temperature.

Conventions shared by every model (the contract between the engine and a model,
:class:`RateModel`):

* ``digits``: ``LongTensor[T, n_sites]`` on the model's device, one row per
  trajectory. ``0`` is a vacancy, ``1..S`` is species ``species[d - 1]``.
* ``vacancies``: ``LongTensor[T, m]``, site indices of vacancies whose barriers are
  wanted (``digits[t, vacancies[t, i]] == 0``). The engine may pass any subset of a
  trajectory's vacancies, and may repeat one to pad a row.
* ``barriers(digits, vacancies)`` returns ``Tensor[T, m, z]`` in eV (float32 or
  float64). Entry ``[t, i, k]`` is the barrier for the atom on
  ``lattice.neighbors[vacancies[t, i], k]`` to jump into the vacancy, with path
  ``k`` meaning ``dbkmc.core.lattice.NN_VECTORS[kind][k]``. Where that neighbour is itself
  a vacancy there is no jump; the value there is ignored by the engine (the engine
  masks it), but it must not be NaN.
* ``reach`` (Angstrom): the barriers of a vacancy at site ``s`` depend only on the
  occupation of sites within ``reach`` of ``s`` (minimum image). The engine uses it
  to recompute only the barriers whose neighbourhood changed in the last swap.
* ``energy(digits)`` (only when ``has_energy``): ``Tensor[T]``, the energy of each
  whole configuration in eV, on any fixed reference. It is called at output
  intervals, not every jump. Models without state energies set ``has_energy = False``.

Fast paths, declared by protocols the engine checks with ``isinstance``:

* :class:`LocalRateModel`: ``stencil_offsets`` (``int[L, 3]``, half-coordinate offsets
  from the vacancy, units of a/2) and ``barriers_local(local: LongTensor[B, L]) ->
  Tensor[B, z]``, where ``local[b, l]`` is the digit on the site at
  ``half_coords[vacancy] + stencil_offsets[l]`` (periodic; a vacancy there is 0). The
  barriers must depend on nothing else (translation invariance), so the engine can
  gather the stencil with :class:`dbkmc.core.stencil.Stencil` and batch vacancies freely.
* :class:`FusedLocalRateModel`: a local model whose barriers are a ReLU MLP of the
  stencil digits offers the MLP's parameters (:class:`LocalMLP`) through ``local_mlp()``;
  with one vacancy the engine then runs the network inside its compiled step loop
  (:mod:`dbkmc.kmc.kernel`) and keys its exact barrier cache on the stencil digits.
* :class:`PrefactorRates`: a model with a prefactor per path (``rate_terms`` gives ``E_b`` and
  ``ln nu``; :mod:`dbkmc.kmc.rates.prefactor`). The engine then keeps its ``nu`` as the reference
  ``nu_ref`` and runs on :func:`effective_barriers`, so ``k = nu exp(-E_b / k_B T)`` becomes
  ``exp(ln nu) exp(-E_b / k_B T)``; for every other model nothing changes.

Models are built from the config block ``kmc.runs.<name>.rate_model`` by :func:`build_rate_model`.
``kind`` selects the builder in :data:`RATE_MODELS`; a builder is named as
``"module:function"`` and imported only when used, so a module that adds a model
only needs an entry here. A builder is called as
``builder(spec, lattice, species, device)`` and returns a :class:`RateModel`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.constants import KB_EV  # noqa: F401  (re-exported for rate models)
from dbkmc.core.lattice import COORDINATION, Lattice


@runtime_checkable
class RateModel(Protocol):
    """What the kMC engine needs from a barrier model (see the module docstring)."""

    lattice: Lattice
    species: tuple[str, ...]
    reach: float
    has_energy: bool

    @property
    def z(self) -> int: ...

    def barriers(self, digits: Tensor, vacancies: Tensor) -> Tensor: ...

    def energy(self, digits: Tensor) -> Tensor: ...


@runtime_checkable
class LocalRateModel(RateModel, Protocol):
    """A rate model whose barriers are a function of the digits of a fixed stencil around the vacancy."""

    stencil_offsets: np.ndarray
    """``int[L, 3]``: half-coordinate offsets (units of a/2) of the stencil sites from the vacancy."""

    def barriers_local(self, local: Tensor) -> Tensor:
        """``Tensor[B, z]`` barriers (eV) from the stencil digits ``local`` ``[B, L]``."""
        ...


@dataclass(frozen=True)
class LocalMLP:
    """A ReLU MLP on the stencil digits, in the form the engine's fused step loop runs it.

    For stencil digits ``x [B, L]`` (in ``w1.dtype``) the barriers ``[B, z]`` are
    ``h = relu(x @ w1 + b1)`` viewed as ``[B * z, hidden]`` (the first layer for all z
    paths at once), then ``h = relu(h @ weights[i] + biases[i])`` for every layer but the
    last, and ``h @ weights[-1] + biases[-1]`` viewed as ``[B, z]``. It must give the
    same function as the model's ``barriers_local`` (up to float rounding).
    """

    w1: Tensor  # [L, z * hidden]
    b1: Tensor  # [z * hidden]
    weights: list[Tensor]  # (in, out) matrices of the later layers
    biases: list[Tensor]
    hidden: int

    @property
    def dtype(self) -> torch.dtype:
        """The network's float dtype: the engine keeps the state digits in it (the network input)."""
        return self.w1.dtype


@runtime_checkable
class FusedLocalRateModel(LocalRateModel, Protocol):
    """A local rate model whose barriers are a ReLU MLP of the stencil digits (:class:`LocalMLP`)."""

    def local_mlp(self) -> LocalMLP:
        """The MLP's parameters on the model's device (called once per engine)."""
        ...


@runtime_checkable
class PrefactorRates(RateModel, Protocol):
    """A rate model with a prefactor per path: ``k_i = exp(ln nu_i) exp(-E_i / k_B T)``."""

    def rate_terms(self, digits: Tensor, vacancies: Tensor) -> tuple[Tensor, Tensor]:
        """``(E_b, ln nu)``, each ``Tensor[T, m, z]``: barriers (eV) and log-prefactors (nu in Hz)."""
        ...


def effective_barriers(e: Tensor, ln_nu: Tensor, beta: Tensor, log_nu_ref: float) -> Tensor:
    """``E_eff = E_b - k_B T (ln nu - ln nu_ref)`` in float64, so ``nu_ref exp(-E_eff/k_B T) = nu exp(-E_b/k_B T)``.

    ``e`` and ``ln_nu`` ``[T, ...]``, ``beta = 1 / k_B T`` ``[T, 1]`` (1/eV) per trajectory."""
    kt = (1.0 / beta.to(torch.float64)).reshape(-1, *([1] * (e.ndim - 1)))
    return e.to(torch.float64) - kt * (ln_nu.to(torch.float64) - log_nu_ref)


RATE_MODELS: dict[str, str] = {
    "nnk_published": "dbkmc.kmc.rates.nnk:build_nnk_published",
    "nnk_trained": "dbkmc.kmc.rates.nnk:build_nnk_trained",
    "detailed_balance": "dbkmc.kmc.rates.prefactor:build_detailed_balance_prefactor",
}
"""``kmc.rate_model.kind`` -> ``"module:function"`` of its builder."""


def builder(kind: str) -> Callable[..., RateModel]:
    if kind not in RATE_MODELS:
        raise ValueError(f"kmc.rate_model.kind: unknown rate model {kind!r} (known: {sorted(RATE_MODELS)})")
    module_name, func_name = RATE_MODELS[kind].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def build_rate_model(spec: Mapping[str, Any], lattice: Lattice, species: Sequence[str],
                     device: str | torch.device = "cpu", key: str = "kmc.rate_model") -> RateModel:
    """The rate model described by a ``rate_model`` config block (at dotted ``key``).

    ``species`` is the structure's species in digit order (digit ``d`` is
    ``species[d - 1]``); a model trained on other species or another lattice is refused.
    Builders name their fields ``kmc.rate_model.<field>`` in errors; those names are
    rewritten to ``key``.
    """
    try:
        model = builder(spec["kind"])(spec, lattice, tuple(species), torch.device(device))
        check_rate_model(model, lattice, species)
    except (ValueError, TypeError, FileNotFoundError, KeyError) as err:
        if key == "kmc.rate_model":
            raise
        raise type(err)(str(err).replace("kmc.rate_model", key)) from err
    return model


def check_rate_model(model: RateModel, lattice: Lattice, species: Sequence[str]) -> None:
    """Refuse a model that does not fit the lattice or the structure's species."""
    if not isinstance(model, RateModel):
        raise TypeError(f"kmc.rate_model: {type(model).__name__} does not implement RateModel")
    if model.lattice.kind != lattice.kind or model.lattice.n != lattice.n:
        raise ValueError(f"kmc.rate_model: model is for a {model.lattice.kind} n={model.lattice.n} lattice, "
                         f"the structure is {lattice.kind} n={lattice.n}")
    if model.z != COORDINATION[lattice.kind]:
        raise ValueError(f"kmc.rate_model: model has {model.z} paths, {lattice.kind} has {COORDINATION[lattice.kind]}")
    if tuple(model.species) != tuple(species):
        raise ValueError(f"kmc.rate_model.species: model species {list(model.species)} do not match "
                         f"the structure's {list(species)}")
    if not model.reach > 0:
        raise ValueError(f"kmc.rate_model: reach must be > 0, got {model.reach}")
