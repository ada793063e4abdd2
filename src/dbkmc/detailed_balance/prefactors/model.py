r"""Trained prefactor models as ln nu_AB and ln nu_BA of events.

:class:`PrefactorModel` is the detailed-balance model: PRE_S (an M_EXT ensemble of dS) and PRE_KRA (a
KRA ensemble of S_KRA), ensemble means in float64,

    ln nu_AB = -(S_KRA(A, B) + dS(A, B)/2),   ln nu_BA = -(S_KRA(B, A) + dS(B, A)/2),

with dS(B, A) = -dS(A, B) and S_KRA(B, A) = S_KRA(A, B) exactly (M_EXT is a difference of window sums,
KRA reads a symmetric input), so ``ln nu_AB - ln nu_BA = -dS(A, B)`` to float rounding.
:func:`direct_ln_nu` evaluates PRE_DIRECT the same way, in both directions, with no such tie.
``load_prefactor_model(folder)`` reads ``<folder>/PRE_S`` and ``<folder>/PRE_KRA``
(``results/<run>/models/prefactors``; the kMC's ``prefactor:`` folder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dbkmc.detailed_balance.drift import Featurizer, member_predictions
from dbkmc.detailed_balance.training import LoadedModel, load_model


@dataclass(frozen=True)
class LnNu:
    """ln nu of N jumps in both directions (ensemble means, float64) and the two terms behind them."""

    ln_nu_AB: np.ndarray
    ln_nu_BA: np.ndarray
    dS: np.ndarray | None = None        # dS(A, B) (detailed-balance model only)
    S_KRA: np.ndarray | None = None


@dataclass(frozen=True)
class PrefactorModel:
    """The detailed-balance prefactor model: ``state`` = PRE_S (M_EXT on dS), ``saddle`` = PRE_KRA (KRA on S_KRA)."""

    state: LoadedModel
    saddle: LoadedModel

    def __post_init__(self) -> None:
        if self.state.kind != "M_EXT" or self.saddle.kind != "KRA":
            raise ValueError(f"prefactors: need PRE_S of kind M_EXT and PRE_KRA of kind KRA, got "
                             f"{self.state.kind} and {self.saddle.kind}")
        if list(self.state.species) != list(self.saddle.species):
            raise ValueError(f"prefactors: PRE_S species {self.state.species} != PRE_KRA {self.saddle.species}")

    @property
    def species(self) -> list[str]:
        return list(self.state.species)

    def ln_nu(self, events: Sequence[Mapping] | object) -> LnNu:
        """ln nu_AB, ln nu_BA of the jumps A -> B of ``events`` (a DataFrame or a list of event rows)."""
        featurize = Featurizer()
        fs, fk = featurize(self.state, events), featurize(self.saddle, events)
        ds_ab = member_predictions(self.state, fs).mean(0)
        ds_ba = member_predictions(self.state, fs, swap=True).mean(0)
        kra_ab = member_predictions(self.saddle, fk).mean(0)
        kra_ba = member_predictions(self.saddle, fk, swap=True).mean(0)
        return LnNu(-(kra_ab + 0.5 * ds_ab), -(kra_ba + 0.5 * ds_ba), ds_ab, kra_ab)


def load_prefactor_model(folder: str | Path, device: str = "cpu") -> PrefactorModel:
    """PRE_S and PRE_KRA from ``<folder>/PRE_S`` and ``<folder>/PRE_KRA``."""
    folder = Path(folder)
    return PrefactorModel(load_model(folder / "PRE_S", device), load_model(folder / "PRE_KRA", device))


def direct_ln_nu(model: LoadedModel, events: Sequence[Mapping] | object) -> LnNu:
    """PRE_DIRECT's ln nu_AB = f(A, B) and ln nu_BA = f(B, A) (ensemble means, float64)."""
    if model.kind != "M_NC":
        raise ValueError(f"prefactors: PRE_DIRECT is an M_NC ensemble, got {model.kind}")
    fps = Featurizer()(model, events)
    return LnNu(member_predictions(model, fps).mean(0), member_predictions(model, fps, swap=True).mean(0))
