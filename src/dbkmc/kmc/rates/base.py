"""Rate models for the kMC engine: one interface, a registry, and the NNK implementation.

A rate model maps vacancy neighbourhoods to the barrier of every first-neighbour
jump path. The kMC engine (:mod:`dbkmc.kmc.engine`) turns barriers into rates
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
  ``k`` meaning ``dbkmc.core.lattice.NN_VECTORS[kind][k]``. Where that neighbour is itself
  a vacancy there is no jump; the value there is ignored by the engine (the engine
  masks it), but it must not be NaN.
* ``reach`` (Angstrom): the barriers of a vacancy at site ``s`` depend only on the
  occupation of sites within ``reach`` of ``s`` (minimum image). The engine uses it
  to recompute only the barriers whose neighbourhood changed in the last swap, and
  to key its exact barrier cache.
* ``energy(digits)`` (only when ``has_energy``): ``Tensor[T]``, the energy of each
  whole configuration in eV, on any fixed reference. It is called at output
  intervals, not every jump. Models without state energies set ``has_energy = False``.
* Optional fast path, used by the engine when present: ``stencil_offsets``
  (``int[L, 3]``, half-coordinate offsets from the vacancy, units of a/2) and
  ``barriers_local(local: LongTensor[B, L]) -> Tensor[B, z]``, where ``local[b, l]``
  is the digit on the site at ``half_coords[vacancy] + stencil_offsets[l]``
  (periodic; a vacancy there is 0). The barriers must depend on nothing else
  (translation invariance), so the engine can gather the stencil with
  :class:`dbkmc.core.stencil.Stencil`, batch vacancies freely, and key its exact barrier
  cache on ``local``.

Models are built from the config block ``kmc.runs.<name>.rate_model`` by :func:`build_rate_model`.
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


RATE_MODELS: dict[str, str] = {
    "nnk_published": "dbkmc.kmc.rates.base:build_nnk_published",
    "nnk_trained": "dbkmc.kmc.rates.base:build_nnk_trained",
    "detailed_balance": "dbkmc.kmc.rates.detailed_balance:build_detailed_balance",
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


class NNKRateModel:
    """Neural network kinetics: barriers from per-path aligned voxel images (:mod:`dbkmc.nnk.networks`).

    ``barriers`` runs the encoder and the network as published (the reference path).
    For an MLP whose first layer is dense (the published network, our NNKMLP) the
    engine uses ``barriers_local`` instead: the first layer only ever sees the sites of
    the cutoff ball (112 of the 729 voxels in bcc), and path k's voxel m holds the
    site at a fixed offset, so the first layer is one product of the ball's digits
    with a ``[L, z * H]`` matrix, with the batch norms folded into the linear layers.
    It is the same function up to float rounding (tests/test_kmc.py checks it
    against :func:`dbkmc.nnk.networks.barriers`). No state energies.
    """

    has_energy = False

    def __init__(self, network: torch.nn.Module, encoder: Any, lattice: Lattice, species: Sequence[str],
                 reach: float, dtype: torch.dtype = torch.float32) -> None:
        self.network = network.eval()
        self.encoder = encoder
        self.lattice = lattice
        self.species = tuple(species)
        self.reach = float(reach)
        self._dtype = next(network.parameters()).dtype
        self._local = _FoldedLocalMLP.from_network(network, encoder, dtype) if _is_dense_mlp(network) else None
        if self._local is not None:
            self.stencil_offsets = self._local.stencil_offsets
            self.local_mlp = self._local  # lets the engine fuse the network into its step loop

    @property
    def z(self) -> int:
        return COORDINATION[self.lattice.kind]

    @torch.no_grad()
    def barriers(self, digits: Tensor, vacancies: Tensor) -> Tensor:
        from dbkmc.nnk import networks as nnk

        return nnk.barriers(self.network, self.encoder, digits, vacancies)

    def barriers_local(self, local: Tensor) -> Tensor:
        if self._local is None:
            raise NotImplementedError("this NNK network has no dense first layer; use barriers()")
        return self._local(local)

    def energy(self, digits: Tensor) -> Tensor:
        raise NotImplementedError("NNK models predict barriers only; they define no state energy")


def _unwrap(network: torch.nn.Module) -> tuple[torch.nn.Module, float, float]:
    """``(mlp, scale, shift)``: our trained NNK models wrap the network as ``net(x) * std + mean``."""
    if hasattr(network, "target_std") and hasattr(network, "target_mean") and hasattr(network, "net"):
        return network.net, float(network.target_std), float(network.target_mean)
    return network, 1.0, 0.0


def _is_dense_mlp(network: torch.nn.Module) -> bool:
    net = getattr(_unwrap(network)[0], "net", None)
    if not isinstance(net, torch.nn.Sequential) or len(net) < 4 or (len(net) - 1) % 3:
        return False
    kinds = [torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.ReLU]
    return all(isinstance(layer, kinds[i % 3]) for i, layer in enumerate(net[:-1])) and isinstance(
        net[-1], torch.nn.Linear)


class _FoldedLocalMLP:
    """An MLP with (Linear, BatchNorm, ReLU) blocks, evaluated from the stencil digits of a vacancy."""

    def __init__(self, stencil_offsets: np.ndarray, w1: Tensor, b1: Tensor, layers: list[tuple[Tensor, Tensor]],
                 z: int) -> None:
        self.stencil_offsets = stencil_offsets
        self.w1, self.b1, self.layers, self.z = w1, b1, layers, z
        self.hidden = b1.shape[0] // z

    @staticmethod
    def _fold(lin: torch.nn.Linear, bn: torch.nn.BatchNorm1d | None) -> tuple[Tensor, Tensor]:
        w = lin.weight.detach().double().T.clone()  # (in, out)
        b = lin.bias.detach().double().clone()
        if bn is not None:
            s = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
            w = w * s
            b = (b - bn.running_mean.detach().double()) * s + bn.bias.detach().double()
        return w, b

    @classmethod
    def from_network(cls, network: torch.nn.Module, encoder: Any, dtype: torch.dtype) -> _FoldedLocalMLP:
        mlp, scale, shift = _unwrap(network)
        net = mlp.net
        blocks = [(net[i], net[i + 1]) for i in range(0, len(net) - 1, 3)]
        device = encoder.device
        valid = np.asarray(encoder.voxel_valid)
        offsets = np.asarray(encoder.offsets)  # (z, n_voxels, 3)
        z = offsets.shape[0]
        stencil = np.unique(offsets[0][valid], axis=0)
        lookup = {tuple(o): i for i, o in enumerate(stencil)}
        w_in, b_in = cls._fold(*blocks[0])  # (n_voxels, H)
        hidden = w_in.shape[1]
        w1 = torch.zeros(len(stencil), z, hidden, dtype=torch.float64)
        vox = np.flatnonzero(valid)
        for k in range(z):
            rows = [lookup.get(tuple(o)) for o in offsets[k][vox]]
            if any(r is None for r in rows) or len(set(rows)) != len(rows):
                raise AssertionError(f"NNK path {k}: aligned ball is not the stencil")
            w1[torch.as_tensor(rows), k, :] = w_in[torch.as_tensor(vox)]
        w_out, b_out = cls._fold(net[-1], None)
        layers = [cls._fold(lin, bn) for lin, bn in blocks[1:]] + [(w_out * scale, b_out * scale + shift)]
        to = dict(dtype=dtype, device=device)
        return cls(stencil, w1.reshape(len(stencil), z * hidden).to(**to), b_in.repeat(z).to(**to),
                   [(w.to(**to).contiguous(), b.to(**to)) for w, b in layers], z)

    @torch.no_grad()
    def __call__(self, local: Tensor) -> Tensor:
        x = local.to(self.w1.dtype)
        h = torch.relu_(torch.addmm(self.b1, x, self.w1)).view(-1, self.hidden)
        for w, b in self.layers[:-1]:
            h = torch.relu_(torch.addmm(b, h, w))
        w, b = self.layers[-1]
        return torch.addmm(b, h, w).view(local.shape[0], self.z)


def build_nnk_published(spec: Mapping[str, Any], lattice: Lattice, species: tuple[str, ...],
                        device: torch.device) -> NNKRateModel:
    """The published NbMoTa network (``weights``) with the encoder of :mod:`dbkmc.nnk.networks`.

    ``spec['species']`` is the network's digit order (types 1, 2, 3 = Nb, Mo, Ta).
    """
    from dbkmc.nnk import networks as nnk  # imported here: the engine does not need NNK to run other models

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
    if len(model_species) > network.N_SPECIES:
        raise ValueError(f"kmc.rate_model.species: the network knows {network.N_SPECIES} species, "
                         f"got {len(model_species)} ({', '.join(model_species)})")
    try:
        nnk.check_model_inputs(network, encoder, np.ones(0, dtype=np.int64))
    except ValueError as err:
        raise ValueError(f"kmc.rate_model.{err}") from err
    dtype = {"float32": torch.float32, "float64": torch.float64}[spec.get("dtype", "float32")]
    return NNKRateModel(network, encoder, lattice, model_species, reach=cutoff, dtype=dtype)


def build_nnk_trained(spec: Mapping[str, Any], lattice: Lattice, species: tuple[str, ...],
                      device: torch.device) -> NNKRateModel:
    """One of our own NNK networks (rule ``train_nnk``; ``checkpoint``: its ``.pt`` file).

    The checkpoint records the lattice kind, the species in digit order, the cutoff and
    the voxel grid it was trained with; the structure must match them.
    """
    from dbkmc.nnk import networks as nnk
    from dbkmc.nnk.training import load_nnk

    path = Path(spec["checkpoint"] or "")
    if not path.is_file():
        raise FileNotFoundError(f"kmc.rate_model.checkpoint: no file {path}")
    network, meta = load_nnk(path, device=str(device))
    if meta["lattice"] != lattice.kind:
        raise ValueError(f"kmc.rate_model.checkpoint: trained on {meta['lattice']}, the structure is {lattice.kind}")
    if tuple(meta["species"]) != tuple(species):
        raise ValueError(f"kmc.rate_model.species: the network's species {list(meta['species'])} "
                         f"do not match the structure's {list(species)}")
    encoder = nnk.NNKEncoder(lattice, cutoff=float(meta["cutoff"]), grid=int(meta["grid"]), device=device)
    dtype = {"float32": torch.float32, "float64": torch.float64}[spec.get("dtype", "float32")]
    return NNKRateModel(network, encoder, lattice, meta["species"], reach=float(meta["cutoff"]), dtype=dtype)
