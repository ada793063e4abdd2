r"""Vibrational prefactors (harmonic TST, Vineyard) in the kMC rates, with exact detailed balance.

A detailed-balance rate model (barriers ``E_b = E_KRA + dE/2``, :mod:`dbkmc.kmc.rates.extensive_db` or
:mod:`dbkmc.kmc.rates.detailed_balance`) is composed with a prefactor model: the rate of the jump A -> B is

    k_AB = nu_AB exp(-E_b(A -> B) / k_B T),      ln nu_AB = -(S_KRA + dS/2),

with the state term ``S = sum_i ln nu_i`` (Hz) of the prefactor model ``PRE_S`` (an M_EXT-kind ensemble
trained on ``dS = S_B - S_A``) and the saddle term ``S_KRA = S_saddle - (S_A + S_B)/2`` of ``PRE_KRA`` (a
KRA-kind ensemble, exactly symmetric in A and B). The two terms are computed exactly as M_EXT's ``dE``
and KRA's ``E_KRA``: by an :class:`~dbkmc.kmc.rates.extensive_db.ExtensiveRateModel` on the prefactor
ensembles (its "barrier" ``S_KRA + dS/2`` is ``-ln nu_AB``; its "energy" is the whole-cell ``S_vib``).
Hence

    ln nu_AB - ln nu_BA = S_A - S_B,     k_AB / k_BA = exp(-(E_B - E_A)/k_B T - (S_B - S_A)),

for every jump (to float rounding), and the kMC samples ``pi(S) ∝ exp(-E(S)/k_B T - S_vib(S))``, the
Boltzmann weight times the classical harmonic partition function ``prod_i k_B T / (h nu_i)``.

The kMC engine keeps its single attempt frequency ``nu_ref`` (``kmc.nu``) and receives effective barriers
``E_eff = E_b - k_B T (ln nu_AB - ln nu_ref)`` (:func:`dbkmc.kmc.rates.base.effective_barriers`), so that
``nu_ref exp(-E_eff/k_B T) = nu_AB exp(-E_b/k_B T)`` exactly; models without prefactors are untouched.

Config: ``kmc.runs.<name>.rate_model.prefactor: results/<run>/models/prefactors`` (a folder holding the
``PRE_S/`` and ``PRE_KRA/`` checkpoint folders of the model stage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.models import Ensemble
from dbkmc.kmc.rates.base import RateModel
from dbkmc.kmc.rates.extensive_db import ExtensiveRateModel, build_detailed_balance_rates

KEY = "kmc.rate_model.prefactor"
PREFACTOR_FOLDERS = {"PRE_S": "M_EXT", "PRE_KRA": "KRA"}
"""Sub-folder of a prefactor folder -> the model kind its checkpoints must hold."""


class PrefactorRateModel:
    """Barriers of ``inner`` with the per-path prefactors of ``prefactor`` (see the module docstring).

    A :class:`dbkmc.kmc.rates.base.RateModel` with ``rate_terms`` (:class:`dbkmc.kmc.rates.base.PrefactorRates`).

    Args:
        inner: the barrier model (E_b, and the state energy E when it has one).
        prefactor: an ExtensiveRateModel on the PRE_S (M_EXT kind, dS) and PRE_KRA (KRA kind, S_KRA) ensembles.
    """

    def __init__(self, inner: RateModel, prefactor: ExtensiveRateModel) -> None:
        if prefactor.lattice is not inner.lattice and (prefactor.lattice.kind, prefactor.lattice.n) != \
                (inner.lattice.kind, inner.lattice.n):
            raise ValueError(f"{KEY}: the prefactor model is for another lattice than the barrier model")
        if tuple(prefactor.species) != tuple(inner.species):
            raise ValueError(f"{KEY}: prefactor species {list(prefactor.species)} differ from the barrier "
                             f"model's {list(inner.species)}")
        self.inner, self.prefactor = inner, prefactor
        self.lattice, self.species = inner.lattice, tuple(inner.species)
        self.has_energy = bool(inner.has_energy)
        self.reach = max(float(inner.reach), float(prefactor.reach))

    @property
    def z(self) -> int:
        return self.inner.z

    @torch.no_grad()
    def barriers(self, digits: Tensor, vacancies: Tensor) -> Tensor:
        """(T, m, z) barriers E_b in eV (the inner model's; the prefactors are in :meth:`rate_terms`)."""
        return self.inner.barriers(digits, vacancies)

    @torch.no_grad()
    def energy(self, digits: Tensor) -> Tensor:
        """(T,) state energy E(S) in eV (the inner model's)."""
        return self.inner.energy(digits)

    @torch.no_grad()
    def log_prefactors(self, digits: Tensor, vacancies: Tensor) -> Tensor:
        """(T, m, z) ``ln nu_AB = -(S_KRA + dS/2)`` (nu in Hz), float64."""
        s_kra, d_s = self.prefactor.terms(digits, vacancies)
        return -(s_kra.to(torch.float64) + 0.5 * d_s.to(torch.float64))

    @torch.no_grad()
    def rate_terms(self, digits: Tensor, vacancies: Tensor) -> tuple[Tensor, Tensor]:
        """``(E_b, ln nu_AB)``, each (T, m, z): the rate of path k is ``exp(ln nu_AB) exp(-E_b / k_B T)``."""
        return self.barriers(digits, vacancies), self.log_prefactors(digits, vacancies)

    @torch.no_grad()
    def vibrational_term(self, digits: Tensor) -> Tensor:
        """(T,) ``S_vib(S) = sum_i ln nu_i`` of the whole cell (PRE_S, up to a constant per species count)."""
        return self.prefactor.energy(digits)


def _load_checked(folder: Path, kind: str, device: str) -> Any:
    from dbkmc.detailed_balance.training import load_model

    try:
        loaded = load_model(folder, device)
    except (FileNotFoundError, ValueError, RuntimeError, KeyError) as err:
        raise ValueError(f"{KEY}: {folder} holds no readable {kind} ensemble ({err})") from err
    if loaded.kind != kind:
        raise ValueError(f"{KEY}: {folder} holds a {loaded.kind} ensemble; {folder.name} needs {kind} "
                         f"(a prefactor folder is results/<run>/models/prefactors with PRE_S/ and PRE_KRA/)")
    return loaded


def load_prefactor(folder: str | Path, lattice: Lattice, species: Sequence[str], device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> ExtensiveRateModel:
    """The prefactor terms from ``folder`` (``PRE_S/`` and ``PRE_KRA/`` checkpoints) as an ExtensiveRateModel.

    The site terms of PRE_S run in ``dtype`` (float32, the training precision, by default; float64 on
    request), as the energies of :func:`dbkmc.kmc.rates.extensive_db.load_extensive`. Every error names
    ``kmc.rate_model.prefactor``."""
    from dbkmc.detailed_balance.extensive import energy_model

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{KEY}: no folder {root} (expected results/<run>/models/prefactors with PRE_S/ and "
                         f"PRE_KRA/)")
    missing = [name for name in PREFACTOR_FOLDERS if not (root / name).is_dir()]
    if missing:
        raise ValueError(f"{KEY}: {root} has no {' or '.join(missing)} folder (a prefactor folder holds the "
                         f"PRE_S (M_EXT kind, dS) and PRE_KRA (KRA kind, S_KRA) ensembles)")
    dev = str(device)
    pre_s = _load_checked(root / "PRE_S", "M_EXT", dev)
    pre_kra = _load_checked(root / "PRE_KRA", "KRA", dev)
    for name, loaded in (("PRE_S", pre_s), ("PRE_KRA", pre_kra)):
        if tuple(loaded.species) != tuple(species):
            raise ValueError(f"{KEY}: {name} species {list(loaded.species)} do not match the structure's "
                             f"{list(species)}")
    ext = energy_model(pre_s, dev)
    try:
        terms = Ensemble([m.to(dtype) for m in ext.members])
        return ExtensiveRateModel(terms, ext.descriptors(lattice), pre_kra.ensemble, pre_kra.params, lattice,
                                  species, device)
    except ValueError as err:
        raise ValueError(f"{KEY}: " + str(err).replace("kmc.rate_model.energy", "PRE_S")
                         .replace("kmc.rate_model.kra", "PRE_KRA").replace("M_EXT:", "PRE_S:")) from err


def build_detailed_balance_prefactor(spec: Mapping[str, Any], lattice: Lattice, species: tuple[str, ...],
                                     device: torch.device) -> RateModel:
    """Builder for ``kmc.rate_model.kind: detailed_balance``: the barrier model of
    :func:`dbkmc.kmc.rates.extensive_db.build_detailed_balance_rates`, with the prefactors of
    ``prefactor`` (a folder) when it is given, else the plain model (rates ``kmc.nu exp(-E_b/k_B T)``)."""
    inner = build_detailed_balance_rates(spec, lattice, species, device)
    if not spec.get("prefactor"):
        return inner
    return PrefactorRateModel(inner, load_prefactor(spec["prefactor"], lattice, species, device))
