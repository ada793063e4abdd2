"""Interatomic potentials from the config's ``potentials`` block."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ase.data import atomic_masses, atomic_numbers

from dbkmc.core.potential_files import resolve_potential_file


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Potential:
    """A LAMMPS pair style with its parameter files.

    ``pair_style`` and ``pair_coeff`` are templates: ``{key}`` is replaced by the
    resolved path of ``files[key]`` and ``{elements}`` by the species in type order.
    """

    name: str
    pair_style: str
    pair_coeff: str
    files: Mapping[str, Path]
    elements: tuple[str, ...]

    @classmethod
    def from_config(cls, name: str, block: Mapping) -> Potential:
        files = {key: resolve_potential_file(str(f)) for key, f in block.get("files", {}).items()}
        return cls(name, block["pair_style"], block["pair_coeff"], files, tuple(block["elements"]))

    def _fill(self, template: str, species: Sequence[str]) -> str:
        return template.format(elements=" ".join(species), **{k: str(p) for k, p in self.files.items()})

    def commands(self, species: Sequence[str]) -> list[str]:
        """LAMMPS commands that set this potential for types 1..len(species)."""
        missing = [s for s in species if s not in self.elements]
        if missing:
            raise ValueError(f"potential {self.name!r} lacks elements {missing}")
        masses = [f"mass {t} {atomic_masses[atomic_numbers[s]]:.6f}" for t, s in enumerate(species, start=1)]
        return [f"pair_style {self._fill(self.pair_style, species)}",
                f"pair_coeff {self._fill(self.pair_coeff, species)}", *masses]

    def provenance(self) -> dict:
        """File names and sha256 of every parameter file."""
        return {
            "name": self.name,
            "pair_style": self.pair_style,
            "pair_coeff": self.pair_coeff,
            "elements": list(self.elements),
            "files": {k: {"name": p.name, "sha256": sha256_file(p)} for k, p in self.files.items()},
        }
