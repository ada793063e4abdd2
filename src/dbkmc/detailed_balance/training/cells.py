"""Whole cells of the events, for M_EXT's energy term: the state A of every jump and its relaxed energy E_A.

The dataset stores, beside dE, the relaxed energies ``E_A`` and ``E_B`` of whole cells. An extensive
model ``E(S) = sum_i eps(G_i) + sum_s mu_s N_s`` can learn from ``E_A`` directly, but needs the
descriptors of *every* site of the cell, not only the jump's window. :class:`CellStates` keeps what is
cheap to hold for every event (the kMC digits of state A, one byte per site, and ``E_A`` in float64) and
builds the whole-cell EXT inputs only for the events asked for (:meth:`CellStates.inputs`), as ``uint8``
counts: exact (at most 48 on fcc with shells 3/2), and a quarter of float32 (4050 training cells of 256
sites x 74 columns: 77 MB instead of 307 MB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.ext_fingerprints import DEFAULT_SHELLS, event_digits, ext_inputs
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors


@dataclass(frozen=True)
class CellStates:
    """State A of N events as whole cells: ``digits`` (N, n_sites) uint8 (0 = vacancy, 1..S = species + 1)
    and ``energy`` (N,) float64, the relaxed whole-cell energy E_A (eV per cell)."""

    digits: Tensor
    energy: Tensor
    lattice: str
    n: int
    n_species: int
    radial_shells: int = DEFAULT_SHELLS["radial_shells"]
    triplet_shells: int = DEFAULT_SHELLS["triplet_shells"]

    def __len__(self) -> int:
        return len(self.energy)

    @classmethod
    def from_events(cls, events: Any, species: Sequence[str],
                    shells: Mapping[str, int] | None = None) -> CellStates:
        """The cells of a dataset's events (``occupation``, ``species``, ``lattice``, ``supercell``, ``E_A``)."""
        keys = {(str(k), int(n)) for k, n in zip(events["lattice"], events["supercell"])}
        if len(keys) != 1:
            raise ValueError(f"cell energies: events mix lattices/cells {sorted(keys)}")
        kind, n = keys.pop()
        energy = np.array(events["E_A"], dtype=np.float64)
        if not np.isfinite(energy).all():
            raise ValueError("cell energies: non-finite E_A")
        digits = event_digits(list(events["occupation"]), list(events["species"]), species)
        return cls(torch.as_tensor(digits.astype(np.uint8)), torch.as_tensor(energy), kind, n, len(species),
                   **dict(shells or DEFAULT_SHELLS))

    def select(self, idx: Tensor | np.ndarray | Sequence[int]) -> CellStates:
        """The cells of events ``idx``."""
        sel = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.digits.device)
        return replace(self, digits=self.digits[sel], energy=self.energy[sel])

    def to(self, device: str | torch.device) -> CellStates:
        return replace(self, digits=self.digits.to(device), energy=self.energy.to(device))

    def counts(self) -> Tensor:
        """(N, S) float64: the number of atoms of each species in each cell."""
        d = self.digits.long()
        return torch.stack([(d == s + 1).sum(-1) for s in range(self.n_species)], -1).to(torch.float64)

    def inputs(self, block: int = 256) -> Tensor:
        """(N, n_sites, S + D) uint8: the EXT inputs of every site of every cell (one-hot species, then G)."""
        desc = SiteDescriptors(Lattice(self.lattice, self.n, 1.0), self.n_species, self.radial_shells,
                               self.triplet_shells, device=self.digits.device)
        out = torch.empty((len(self), desc.lattice.n_sites, self.n_species + desc.n_features), dtype=torch.uint8,
                          device=self.digits.device)
        for s in range(0, len(self), block):
            x = ext_inputs(desc, self.digits[s:s + block], None, torch.float32)
            if bool((x > 255).any()):
                raise ValueError("cell energies: a descriptor count above 255 does not fit uint8")
            out[s:s + block] = x.to(torch.uint8)
        return out
