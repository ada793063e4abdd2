r"""PRE_DIRECT: an M_NC network of ln nu_AB from the jump's (A, B) fingerprints, as in the seed.

It is a free function of the ordered pair (A, B): trained on both directions of every event (A -> B
with ln nu_AB, B -> A with ln nu_BA), nothing makes ``ln nu_AB - ln nu_BA`` a difference of state terms,
so its rates break detailed balance (:mod:`~dbkmc.detailed_balance.prefactors.markov` measures by how
much). The fit is the model family's own (:func:`~dbkmc.detailed_balance.training.init_members`,
:func:`~dbkmc.detailed_balance.training.fit_members`: ensembles, per-member early stopping), with the
directed target ``dE`` replaced by ln nu and M_E's output shift set to the mean training ln nu (a dE
target is centred at zero; ln nu is not). The shift is a buffer of the checkpoint: a saved PRE_DIRECT
loads and predicts like any M_NC ensemble.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from dbkmc.detailed_balance.training import DirectedData, EventData, FitResult, Split, TrainConfig
from dbkmc.detailed_balance.training import fit_members, init_members

DIRECT_KIND = "M_NC"


def direct_data(data: EventData, idx: np.ndarray) -> DirectedData:
    """Events ``idx`` in both directions with the target ``dE`` := ln nu of the direction.

    ``data`` holds a renamed prefactor table (:func:`~dbkmc.detailed_balance.prefactors.targets.as_model_events`),
    whose directed ``barrier`` is -ln nu_AB (A -> B rows) and -ln nu_BA (B -> A rows)."""
    d = data.directed(idx)
    return replace(d, y={**d.y, "dE": -d.y["barrier"]})


def train_direct(data: EventData, split: Split, config: TrainConfig) -> FitResult:
    """An ensemble of M_NC networks of ln nu on ``split.train``, early-stopped on ``split.val``."""
    cfg = config.for_kind(DIRECT_KIND)
    train, val = direct_data(data, split.train), direct_data(data, split.val)
    members = init_members(DIRECT_KIND, data.feature_dim_of("TW"), train, cfg, str(data.device),
                           n_species=len(data.species))
    shift = float(train.y["dE"].to(torch.float64).mean())   # M_NC centres a dE target at 0; ln nu sits near 30
    with torch.no_grad():
        for m in members:
            m.energy.y_shift.fill_(shift)
    return fit_members(members, train, val, cfg)
