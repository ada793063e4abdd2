"""Rate models for the kMC engine: one interface, a registry, and the NNK implementation.

A rate model maps vacancy neighbourhoods to the barrier of every first-neighbour
jump path. The kMC engine (:mod:`dbkmc.kmc`) turns barriers into rates
``k = nu exp(-E_b / k_B T)``; models never see the temperature.

Conventions shared by every model (the contract between the engine and a model):

* ``digits``: ``LongTensor[T, n_sites]`` on the model's device, one row per
  trajectory. ``0`` is a vacancy, ``1..S`` is species ``species[d - 1]``.
* ``vacancies``: ``LongTensor[T, m]``, site indices of vacancies whose barriers are
  wanted (``digits[t, vacancies[t, i]] == 0``). The engine may pass any subset of a
  trajectory's vacancies, and may repeat one to pad a row.
* ``barriers(digits, vacancies)`` returns ``Tensor[T, m, z]`` in eV (float32 or
  float64). Entry ``[t, i, k]`` is the barrier for the atom on
  ``lattice.neighbors[vacancies[t, i], k]`` to jump into the vacancy, with path
  ``k`` meaning ``dbkmc.lattice.NN_VECTORS[kind][k]``. Where that neighbour is itself
  a vacancy there is no jump; the value there is ignored by the engine (the engine
  masks it), but it must not be NaN.
* ``reach`` (Angstrom): the barriers of a vacancy at site ``s`` depend only on the
  occupation of sites within ``reach`` of ``s`` (minimum image). The engine uses it
  to recompute only the barriers whose neighbourhood changed in the last swap, and
  to key its exact barrier cache.
* ``energy(digits)`` (only when ``has_energy``): ``Tensor[T]``, the energy of each
  whole configuration in eV, on any fixed reference. It is called at output
  intervals, not every jump. Models without state energies set ``has_energy = False``.

Models are built from the config block ``kmc.rate_model`` by :func:`build_rate_model`.
``kind`` selects the builder in :data:`RATE_MODELS`; a builder is named as
``"module:function"`` and imported only when used, so a module that adds a model
only needs an entry here. A builder is called as
``builder(spec, lattice, species, device)`` and returns a :class:`RateModel`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .lattice import COORDINATION, Lattice

KB_EV = 8.617333262e-5
"""Boltzmann constant in eV/K."""


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


RATE_MODELS: dict[str, str] = {
    "nnk_published": "dbkmc.rates:build_nnk_published",
    "detailed_balance": "dbkmc.rates_db:build_detailed_balance",
}
"""``kmc.rate_model.kind`` -> ``"module:function"`` of its builder."""


def builder(kind: str) -> Callable[..., RateModel]:
    if kind not in RATE_MODELS:
        raise ValueError(f"kmc.rate_model.kind: unknown rate model {kind!r} (known: {sorted(RATE_MODELS)})")
    module_name, func_name = RATE_MODELS[kind].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def build_rate_model(spec: Mapping[str, Any], lattice: Lattice, species: Sequence[str],
                     device: str | torch.device = "cpu") -> RateModel:
    """The rate model described by the config block ``kmc.rate_model``.

    ``species`` is the structure's species in digit order (digit ``d`` is
    ``species[d - 1]``); a model trained on other species or another lattice is refused.
    """
    model = builder(spec["kind"])(spec, lattice, tuple(species), torch.device(device))
    check_rate_model(model, lattice, species)
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


class NNKRateModel:
    """Neural network kinetics: barriers from per-path aligned voxel images (:mod:`dbkmc.nnk`).

    Wraps an encoder (``.images(digits, vacancies) -> [T, m, z, n_voxels]``) and a
    network mapping ``[..., n_voxels]`` to barriers in eV. No state energies.
    """

    has_energy = False

    def __init__(self, network: torch.nn.Module, encoder: Any, lattice: Lattice, species: Sequence[str],
                 reach: float) -> None:
        self.network = network.eval()
        self.encoder = encoder
        self.lattice = lattice
        self.species = tuple(species)
        self.reach = float(reach)
        self._dtype = next(network.parameters()).dtype

    @property
    def z(self) -> int:
        return COORDINATION[self.lattice.kind]

    @torch.no_grad()
    def barriers(self, digits: Tensor, vacancies: Tensor) -> Tensor:
        images = self.encoder.images(digits, vacancies).to(self._dtype)
        return self.network(images).reshape(vacancies.shape + (self.z,))

    def energy(self, digits: Tensor) -> Tensor:
        raise NotImplementedError("NNK models predict barriers only; they define no state energy")


def build_nnk_published(spec: Mapping[str, Any], lattice: Lattice, species: tuple[str, ...],
                        device: torch.device) -> NNKRateModel:
    """The published NbMoTa network (``weights``) with the encoder of :mod:`dbkmc.nnk`.

    ``spec['species']`` is the network's digit order (types 1, 2, 3 = Nb, Mo, Ta).
    """
    from . import nnk  # imported here: the engine does not need NNK to run other models

    weights = Path(spec["weights"])
    if not weights.is_file():
        raise FileNotFoundError(f"kmc.rate_model.weights: no file {weights}")
    model_species = tuple(spec.get("species") or species)
    if model_species != tuple(species):
        raise ValueError(f"kmc.rate_model.species: the network's species {list(model_species)} "
                         f"do not match the structure's {list(species)}")
    cutoff = float(spec.get("cutoff", 7.5))
    encoder = nnk.NNKEncoder(lattice, cutoff=cutoff, device=device)
    network = nnk.PublishedNNK(nnk.load_published_weights(weights)).to(device)
    return NNKRateModel(network, encoder, lattice, model_species, reach=cutoff)
