"""A trained M_EXT ensemble as a lattice energy: E(S) of whole cells and dE of vacancy hops, in float64.

:func:`load_energy_model` rebuilds the ensemble from a ``models/M_EXT`` folder (its ``member_<k>.pt``).
:meth:`ExtensiveEnsemble.lattice_energy` sums the site energies of every atom of each state (plus the
per-species reference energies) -- the energy whose Boltzmann weights are the stationary distribution of a
kMC with M_EXT + KRA rates. :meth:`ExtensiveEnsemble.hop_dE` gives dE of vacancy hops from the window of
each hop alone (exact: every other atom's term cancels).
States are kMC digits (0 = vacancy, 1..S = species index + 1) on an ideal fcc or bcc lattice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.ext_fingerprints import DEFAULT_SHELLS, ext_inputs
from dbkmc.detailed_balance.extensive_model import ExtensiveModel
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors
from dbkmc.detailed_balance.training import LoadedModel, load_model


class ExtensiveEnsemble:
    """The members of an M_EXT ensemble (float64, eval mode) with the species, lattice kind and descriptor
    shells they were trained on."""

    def __init__(self, members: Sequence[ExtensiveModel], species: Sequence[str], lattice_kind: str | None,
                 shells: dict[str, int] | None = None, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.members = [m.to(device=self.device, dtype=torch.float64).eval() for m in members]
        self.species = list(species)
        self.lattice_kind = lattice_kind
        self.shells = dict(shells or DEFAULT_SHELLS)
        self._descriptors: dict[tuple[str, int, float], SiteDescriptors] = {}

    @property
    def n_members(self) -> int:
        return len(self.members)

    def descriptors(self, lattice: Lattice) -> SiteDescriptors:
        """The site descriptors of ``lattice`` (checked against the model's lattice kind; cached)."""
        if self.lattice_kind is not None and lattice.kind != self.lattice_kind:
            raise ValueError(f"M_EXT: the model was trained on a {self.lattice_kind} lattice, not {lattice.kind}")
        key = (lattice.kind, lattice.n, lattice.a)
        if key not in self._descriptors:
            self._descriptors[key] = SiteDescriptors(lattice, len(self.species), device=self.device, **self.shells)
        return self._descriptors[key]

    def _check_digits(self, digits: Tensor, lattice: Lattice) -> Tensor:
        digits = torch.as_tensor(digits, device=self.device).long()
        if digits.shape[-1] != lattice.n_sites:
            raise ValueError(f"M_EXT: states have {digits.shape[-1]} sites, the lattice {lattice.n_sites}")
        if bool(((digits < 0) | (digits > len(self.species))).any()):
            raise ValueError(f"M_EXT: digits must be 0 (vacancy) .. {len(self.species)} (species {self.species})")
        return digits

    @torch.no_grad()
    def member_energies(self, digits: Tensor, lattice: Lattice, sites_per_block: int = 4096) -> Tensor:
        """E(S) of each member, [K, T] (eV, float64), for states ``digits`` [T, n_sites]."""
        desc = self.descriptors(lattice)
        digits = self._check_digits(digits, lattice).reshape(-1, lattice.n_sites)
        out = torch.zeros(self.n_members, len(digits), dtype=torch.float64, device=self.device)
        for s in range(0, lattice.n_sites, sites_per_block):
            sites = torch.arange(s, min(s + sites_per_block, lattice.n_sites), device=self.device)
            x = ext_inputs(desc, digits, sites)                       # [T, B, S + D]
            for k, m in enumerate(self.members):
                out[k] += m.site_energies(x).sum(-1)
        counts = torch.stack([(digits == i + 1).sum(-1) for i in range(len(self.species))], -1).to(torch.float64)
        for k, m in enumerate(self.members):
            out[k] += counts @ m.mu
        return out

    def lattice_energy(self, digits: Tensor, lattice: Lattice) -> tuple[Tensor, Tensor]:
        """E(S): the ensemble mean and std over members, each [T] (eV, float64)."""
        e = self.member_energies(digits, lattice)
        std = e.std(0, unbiased=False) if self.n_members > 1 else torch.zeros_like(e[0])
        return e.mean(0), std

    @torch.no_grad()
    def hop_dE_members(self, digits: Tensor, lattice: Lattice, vacancies: Tensor,
                       paths: Tensor | Sequence[int] | None = None) -> Tensor:
        """dE of every hop, per member, [K, T, m, z'] (eV, float64): vacancy ``vacancies[t, j]`` of state
        ``digits[t]`` swaps with its first neighbour along path ``paths`` (default all z), from the hop's
        window alone. A hop onto another vacancy has dE = 0."""
        desc = self.descriptors(lattice)
        digits = self._check_digits(digits, lattice)
        vac = torch.as_tensor(vacancies, dtype=torch.long, device=self.device)
        if bool((torch.gather(digits, -1, vac) != 0).any()):
            raise ValueError("M_EXT: a listed vacancy site is occupied")
        win = desc.path_windows(vac)                                  # [T, m, z, M]
        if paths is not None:
            win = win[..., torch.as_tensor(paths, dtype=torch.long, device=self.device), :]
        t, m, z, _ = win.shape
        before = digits[:, None, None, :].expand(t, m, z, lattice.n_sites)
        after = before.clone()
        v, h = win[..., 0:1], win[..., 1:2]
        after.scatter_(-1, v, torch.gather(before, -1, h))
        after.scatter_(-1, h, torch.gather(before, -1, v))
        x_a, x_b = ext_inputs(desc, before, win), ext_inputs(desc, after, win)
        return torch.stack([mod(x_a, x_b) for mod in self.members])

    def hop_dE(self, digits: Tensor, lattice: Lattice, vacancies: Tensor,
               paths: Tensor | Sequence[int] | None = None) -> Tensor:
        """dE of every hop, the ensemble mean, [T, m, z'] (eV, float64); see :meth:`hop_dE_members`."""
        return self.hop_dE_members(digits, lattice, vacancies, paths).mean(0)


def energy_model(loaded: LoadedModel, device: str | torch.device = "cpu") -> ExtensiveEnsemble:
    """The lattice energy of a loaded M_EXT ensemble."""
    if loaded.kind != ExtensiveModel.kind:
        raise ValueError(f"a {loaded.kind} model, not M_EXT (an energy needs an M_EXT model)")
    members = loaded.ensemble.members()
    return ExtensiveEnsemble(members, loaded.species, loaded.extra.get("lattice"),
                             loaded.extra.get("ext_shells"), device)


def load_energy_model(folder: str | Path, device: str | torch.device = "cpu") -> ExtensiveEnsemble:
    """The M_EXT ensemble of ``folder`` (``member_<k>.pt``); a folder of another model kind is an error."""
    loaded = load_model(folder, str(device))
    if loaded.kind != ExtensiveModel.kind:
        raise ValueError(f"{folder}: a {loaded.kind} model, not M_EXT (an energy needs an M_EXT model folder)")
    return energy_model(loaded, device)
