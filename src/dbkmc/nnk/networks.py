"""Neural network kinetics (NNK): the barrier networks and the published Nb-Mo-Ta weights.

Xing, Rupert, Pan, Cao, Nat. Commun. 15, 3879 (2024). A plain network maps
each aligned voxel grid of a jump path (:mod:`dbkmc.nnk.encoder`) to that
path's barrier (eV). :class:`PublishedNNK` is the published network, built
from its weight arrays (loaded without executing pickled code);
:class:`NNKMLP` and :class:`NNKCNN` are the architectures we train
(:mod:`dbkmc.nnk.training`). :func:`barriers` runs a network on every path of
every vacancy; :func:`barrier_table` does it for the vacancies of a dump.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dbkmc.core.constants import PUBLISHED_NNK_CUTOFF
from dbkmc.nnk.encoder import NNKEncoder

BN_EPS = 1e-3
"""Batch-norm epsilon of the published network (Keras default)."""


# --------------------------------------------------------------------------- safe weights

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and dtypes and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: the weights file may only hold numpy arrays"
            )
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def load_published_weights(path: str | Path) -> list[np.ndarray]:
    """The arrays of a ``.npy`` object array of float arrays, loaded without executing pickled code.

    Only numpy's array-rebuilding globals are allowed; any other global (for
    example ``os.system``) stops the load with a ``pickle.UnpicklingError``
    naming it, before anything is called.
    """
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"{path}: unsupported .npy format version {version}")
        if dtype != np.dtype(object):
            fh.seek(0)
            arr = np.load(fh, allow_pickle=False)
            return [np.asarray(a) for a in arr]
        obj = _NumpyOnlyUnpickler(io.BytesIO(fh.read())).load()
    if not isinstance(obj, np.ndarray) or obj.shape != tuple(shape):
        raise ValueError(f"{path}: pickled payload is not the {shape} array the header announces")
    arrays = list(obj.reshape(-1))
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{path}: element {i} is not a float array ({type(a).__name__})")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{path}: element {i} holds NaN or inf")
    return arrays


# --------------------------------------------------------------------------- networks

class NNKMLP(nn.Module):
    """Dense barrier network: hidden layers Linear -> BatchNorm -> ReLU, then a linear output (eV)."""

    def __init__(self, n_in: int, hidden: Sequence[int] = (128, 128, 128, 128), bn_eps: float = BN_EPS):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h, eps=bn_eps), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.n_in = n_in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lead = images.shape[:-1]
        return self.net(images.reshape(-1, self.n_in)).reshape(lead)


class NNKCNN(nn.Module):
    """3D CNN: unpadded 3x3x3 convolutions (BatchNorm, ReLU), flattened to a dense layer, then one output (eV).

    Each convolution trims one voxel from every face, so four of them take a 9^3
    grid down to 1^3 (128 channels), which the dense layer then reads.
    """

    def __init__(self, grid: int, channels: Sequence[int] = (32, 64, 128, 128), dense: int = 128,
                 bn_eps: float = BN_EPS):
        super().__init__()
        out_grid = grid - 2 * len(channels)
        if out_grid < 1:
            raise ValueError(f"cnn_channels: {len(channels)} unpadded 3x3x3 convolutions need a grid >= "
                             f"{2 * len(channels) + 1}, got {grid}")
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv3d(c_in, c, 3), nn.BatchNorm3d(c, eps=bn_eps), nn.ReLU()]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * out_grid**3, dense), nn.BatchNorm1d(dense, eps=bn_eps), nn.ReLU(),
            nn.Linear(dense, 1),
        )
        self.grid = grid
        self.n_in = grid**3

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        lead = images.shape[:-1]
        g = self.grid
        # the voxel axis is (y, x, z)-ordered; a convolution does not mind the axis names
        x = images.reshape(-1, 1, g, g, g)
        return self.head(self.conv(x)).reshape(lead)


class PublishedNNK(NNKMLP):
    """The published Nb-Mo-Ta barrier network, built from its 26 arrays.

    Layout: per hidden layer W (in, h), b, gamma, beta, moving mean, moving
    variance; then W_out (h, 1), b_out (1,). Hidden layer
    ``relu(gamma * ((x @ W + b) - mean) / sqrt(var + 0.001) + beta)``.
    Always in inference mode (batch norm uses the stored statistics).

    It was trained on bcc Nb-Mo-Ta with a 7.5 A cutoff (a 9^3 voxel grid) and
    digits 1, 2, 3 for its three species: inputs outside these mean nothing to it.
    """

    CUTOFF = PUBLISHED_NNK_CUTOFF
    """Encoding cutoff (A) the network was trained with."""
    N_SPECIES = 3
    """Species (digits 1..3) the network was trained on."""

    def __init__(self, arrays: Sequence[np.ndarray]):
        arrays = [np.asarray(a) for a in arrays]
        if len(arrays) < 8 or (len(arrays) - 2) % 6:
            raise ValueError(f"weights: expected 6 arrays per hidden layer plus 2, got {len(arrays)}")
        n_hidden = (len(arrays) - 2) // 6
        n_in = arrays[0].shape[0]
        hidden = [arrays[6 * i].shape[1] for i in range(n_hidden)]
        super().__init__(n_in, hidden, bn_eps=BN_EPS)
        width = n_in
        with torch.no_grad():
            for i in range(n_hidden):
                w, b, gamma, beta, mean, var = arrays[6 * i : 6 * i + 6]
                h = hidden[i]
                if w.shape != (width, h) or any(a.shape != (h,) for a in (b, gamma, beta, mean, var)):
                    raise ValueError(f"weights: hidden layer {i} has inconsistent shapes")
                lin, bn = self.net[3 * i], self.net[3 * i + 1]
                lin.weight.copy_(torch.as_tensor(w.T))
                lin.bias.copy_(torch.as_tensor(b))
                bn.weight.copy_(torch.as_tensor(gamma))
                bn.bias.copy_(torch.as_tensor(beta))
                bn.running_mean.copy_(torch.as_tensor(mean))
                bn.running_var.copy_(torch.as_tensor(var))
                width = h
            w, b = arrays[-2], arrays[-1]
            if w.shape != (width, 1) or b.shape != (1,):
                raise ValueError("weights: output layer has inconsistent shapes")
            self.net[-1].weight.copy_(torch.as_tensor(w.T))
            self.net[-1].bias.copy_(torch.as_tensor(b))
        self.eval()

    def train(self, mode: bool = True):  # noqa: D102 - frozen statistics
        return super().train(False)

    @classmethod
    def from_file(cls, path: str | Path) -> PublishedNNK:
        return cls(load_published_weights(path))


@torch.no_grad()
def barriers(model: nn.Module, encoder: NNKEncoder, digits, vacancies, chunk: int = 65536) -> torch.Tensor:
    """Barrier (eV) of every path of every vacancy: Tensor[..., n_vac, z].

    Images are made in the model's dtype and run in inference mode, ``chunk``
    images at a time.
    """
    p = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        img = encoder.images(digits, vacancies, dtype=p.dtype).to(p.device)
        flat = img.reshape(-1, encoder.n_voxels)
        out = torch.cat([model(flat[i : i + chunk]) for i in range(0, flat.shape[0], chunk)]) if flat.shape[0] else flat.new_zeros(0)
        return out.reshape(img.shape[:-1])
    finally:
        model.train(was_training)


def check_model_inputs(model: nn.Module, encoder: NNKEncoder, types: np.ndarray, ids: np.ndarray | None = None) -> None:
    """Refuse inputs the network was not trained for, naming what is wrong.

    ``types`` are digits 1..S of the atoms (``ids`` name them in the message). A
    model with ``CUTOFF`` and ``N_SPECIES`` (the published network) must be given its
    own cutoff and at most that many species; any MLP needs the encoder's voxel
    count as its input width.
    """
    types = np.asarray(types)
    ids = np.arange(1, len(types) + 1) if ids is None else np.asarray(ids)
    low = np.flatnonzero(types < 1)
    if len(low):
        raise ValueError(f"types: LAMMPS types must be >= 1; atom id {int(ids[low[0]])} has type {int(types[low[0]])}")
    n_species = getattr(model, "N_SPECIES", None)
    if n_species is not None:
        high = np.flatnonzero(types > n_species)
        if len(high):
            raise ValueError(f"types: the network knows {n_species} species (types 1..{n_species}); "
                             f"{len(high)} atom(s) have other types, first atom id {int(ids[high[0]])} "
                             f"type {int(types[high[0]])}")
    own = getattr(model, "CUTOFF", None)
    if own is not None and not np.isclose(encoder.cutoff, own, rtol=0, atol=1e-9):
        raise ValueError(f"cutoff: the network was trained with a {own} A cutoff, got {encoder.cutoff} A")
    n_in = getattr(model, "n_in", None)
    if n_in is not None and n_in != encoder.n_voxels:
        raise ValueError(f"grid: the network takes {n_in} voxels, the encoder makes {encoder.grid}^3 = "
                         f"{encoder.n_voxels} (cutoff {encoder.cutoff} A, a = {encoder.lattice.a} A)")


def barrier_table(model: nn.Module, structure, vacancy_ids: Sequence[int], cutoff: float | None = None,
                  grid: int | None = None):
    """One row per (vacancy_id, path): the neighbour atom that jumps and the barrier (eV).

    ``structure`` is a :class:`dbkmc.neb.dump.LatticeStructure`; digits are the
    LAMMPS types. Each vacancy id is taken on its own: that atom's site is made
    vacant (its type ignored), every other site keeps its atom. ``cutoff`` defaults
    to the model's own (``model.CUTOFF``, else 7.5 A); see :func:`check_model_inputs`.
    """
    import pandas as pd

    lat = structure.lattice
    if cutoff is None:
        cutoff = getattr(model, "CUTOFF", 7.5)
    enc = NNKEncoder(lat, cutoff=cutoff, grid=grid)
    vac_ids = np.asarray(list(vacancy_ids), dtype=np.int64)
    if len(vac_ids) == 0:
        raise ValueError("vacancy ids: none given")
    vac_sites = structure.sites_of_ids(vac_ids)
    check_model_inputs(model, enc, structure.types, structure.ids)
    digits = torch.as_tensor(structure.types, dtype=torch.long).repeat(len(vac_ids), 1)
    digits[torch.arange(len(vac_ids)), torch.as_tensor(vac_sites)] = 0
    e = barriers(model, enc, digits, torch.as_tensor(vac_sites)[:, None])[:, 0, :].cpu().numpy()
    if not np.all(np.isfinite(e)):
        raise ValueError("barrier_eV: the network returned NaN or inf")
    nbr = lat.neighbors[vac_sites]  # (n_vac, z)
    return pd.DataFrame({
        "vacancy_id": np.repeat(vac_ids, enc.z),
        "path": np.tile(np.arange(enc.z), len(vac_ids)),
        "neighbor_id": structure.ids[nbr].reshape(-1),
        "barrier_eV": e.reshape(-1),
    })
