"""Training, evaluation and checkpoints of the model family in :mod:`dbkmc.detailed_balance.models`.

- :mod:`~dbkmc.detailed_balance.training.config`: :class:`TrainConfig`, the hyper-parameters of one ensemble;
- :mod:`~dbkmc.detailed_balance.training.data`: :class:`EventData` (fingerprints and targets, both
  directions of every jump) and the stratified train/val/test split;
- :mod:`~dbkmc.detailed_balance.training.cells`: :class:`CellStates`, the whole cells of state A and E_A;
- :mod:`~dbkmc.detailed_balance.training.energy_term`: M_EXT's whole-cell energy term (``energy_weight``);
- :mod:`~dbkmc.detailed_balance.training.fit`: fitting the members of a voting ensemble, batched
  (one ``vmap``) or one after another, with per-member early stopping;
- :mod:`~dbkmc.detailed_balance.training.evaluate`: RMSE of dE, E_KRA and the barriers, and ddE;
- :mod:`~dbkmc.detailed_balance.training.sweeps`: the SAS lambda sweep and the learning curve;
- :mod:`~dbkmc.detailed_balance.training.checkpoint`: ``member_<k>.pt`` files and :class:`LoadedModel`.

Every module logs to the logger ``dbkmc.detailed_balance.training``.
"""

from dbkmc.detailed_balance.training.checkpoint import (
    CHECKPOINT_FORMAT,
    LoadedModel,
    load_member,
    load_model,
    save_ensemble,
    save_member,
)
from dbkmc.detailed_balance.training.cells import CellStates
from dbkmc.detailed_balance.training.config import ENERGY_TERM_KINDS, PROGRESS_EVERY, TrainConfig
from dbkmc.detailed_balance.training.data import (
    SPLIT_FRACTIONS,
    TARGETS,
    DirectedData,
    EventData,
    Split,
    split_events,
    subsample,
)
from dbkmc.detailed_balance.training.evaluate import (
    directed_predictions,
    flat_de_metrics,
    model_metrics,
    prediction_metrics,
)
from dbkmc.detailed_balance.training.energy_term import (
    EnergyTerm,
    cell_energies,
    cell_energy_metrics,
    reference_energies,
)
from dbkmc.detailed_balance.training.fit import FitResult, fit_members, init_members, target_scale, train_model
from dbkmc.detailed_balance.training.sweeps import (
    LEARNING_CURVE_FRACTIONS,
    SAS_LAMBDAS,
    SweepResult,
    learning_curve,
    learning_curve_point,
    sas_lambda_sweep,
    stop_epochs,
)

__all__ = [
    "CHECKPOINT_FORMAT", "ENERGY_TERM_KINDS", "LEARNING_CURVE_FRACTIONS", "PROGRESS_EVERY", "SAS_LAMBDAS", "SPLIT_FRACTIONS", "TARGETS",
    "CellStates", "DirectedData", "EnergyTerm", "EventData", "FitResult", "LoadedModel", "Split", "SweepResult", "TrainConfig",
    "cell_energies", "cell_energy_metrics", "directed_predictions", "fit_members", "flat_de_metrics", "init_members", "learning_curve", "learning_curve_point", "load_member",
    "load_model", "model_metrics", "prediction_metrics", "reference_energies", "sas_lambda_sweep", "save_ensemble", "save_member", "stop_epochs",
    "split_events", "subsample", "target_scale", "train_model",
]
