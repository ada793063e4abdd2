"""NNK rate models: barriers from the neural network kinetics networks (:mod:`dbkmc.nnk.networks`).

Two classes, chosen by :func:`nnk_rate_model` from the network's layers:

* :class:`NNKRateModel` runs the per-path aligned voxel encoder and the network as
  published (the reference path); any network (MLP or CNN).
* :class:`LocalNNKRateModel` (a :class:`~dbkmc.kmc.rates.base.FusedLocalRateModel`) adds
  the exact fast path for an MLP whose first layer is dense (the published network,
  our NNKMLP): the first layer only ever sees the sites of the cutoff ball (112 of the
  729 voxels in bcc), and path k's voxel m holds the site at a fixed offset, so the
  first layer is one product of the ball's digits with a ``[L, z * H]`` matrix, with
  the batch norms folded into the linear layers. It is the same function up to float
  rounding (tests/test_kmc.py checks it against :func:`dbkmc.nnk.networks.barriers`).

The builders :func:`build_nnk_published` and :func:`build_nnk_trained` are registered in
:data:`dbkmc.kmc.rates.base.RATE_MODELS`. NNK models predict no state energies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import COORDINATION, Lattice
from dbkmc.kmc.rates.base import LocalMLP


class NNKRateModel:
    """Neural network kinetics through the published encoder (a :class:`~dbkmc.kmc.rates.base.RateModel`)."""

    has_energy = False

    def __init__(self, network: torch.nn.Module, encoder: Any, lattice: Lattice, species: Sequence[str],
                 reach: float) -> None:
        self.network = network.eval()
        self.encoder = encoder
        self.lattice = lattice
        self.species = tuple(species)
        self.reach = float(reach)

    @property
    def z(self) -> int:
        return COORDINATION[self.lattice.kind]

    @torch.no_grad()
    def barriers(self, digits: Tensor, vacancies: Tensor) -> Tensor:
        from dbkmc.nnk import networks as nnk

        return nnk.barriers(self.network, self.encoder, digits, vacancies)

    def energy(self, digits: Tensor) -> Tensor:
        raise NotImplementedError("NNK models predict barriers only; they define no state energy")


class LocalNNKRateModel(NNKRateModel):
    """An NNK MLP with a dense first layer, also evaluated from the stencil digits (see the module docstring).

    Implements :class:`~dbkmc.kmc.rates.base.FusedLocalRateModel`: ``stencil_offsets``,
    ``barriers_local`` and ``local_mlp`` (the folded network, which the engine runs
    inside its step loop). ``dtype``: the precision of the folded network.
    """

    def __init__(self, network: torch.nn.Module, encoder: Any, lattice: Lattice, species: Sequence[str],
                 reach: float, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(network, encoder, lattice, species, reach)
        self._folded = _FoldedLocalMLP.from_network(network, encoder, dtype)
        self.stencil_offsets = self._folded.stencil_offsets

    def barriers_local(self, local: Tensor) -> Tensor:
        return self._folded(local)

    def local_mlp(self) -> LocalMLP:
        f = self._folded
        return LocalMLP(w1=f.w1, b1=f.b1, weights=[w for w, _ in f.layers], biases=[b for _, b in f.layers],
                        hidden=f.hidden)


def nnk_rate_model(network: torch.nn.Module, encoder: Any, lattice: Lattice, species: Sequence[str],
                   reach: float, dtype: torch.dtype = torch.float32) -> NNKRateModel:
    """The NNK rate model of ``network``: with the local fast path when its first layer is dense."""
    if is_dense_mlp(network):
        return LocalNNKRateModel(network, encoder, lattice, species, reach, dtype)
    return NNKRateModel(network, encoder, lattice, species, reach)


def _unwrap(network: torch.nn.Module) -> tuple[torch.nn.Module, float, float]:
    """``(mlp, scale, shift)``: our trained NNK models wrap the network as ``net(x) * std + mean``."""
    if hasattr(network, "target_std") and hasattr(network, "target_mean") and hasattr(network, "net"):
        return network.net, float(network.target_std), float(network.target_mean)
    return network, 1.0, 0.0


def is_dense_mlp(network: torch.nn.Module) -> bool:
    """Is ``network`` (Linear, BatchNorm1d, ReLU) blocks and a final Linear (the form the fast path folds)?"""
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
    return nnk_rate_model(network, encoder, lattice, model_species, reach=cutoff, dtype=dtype)


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
    return nnk_rate_model(network, encoder, lattice, meta["species"], reach=float(meta["cutoff"]), dtype=dtype)
