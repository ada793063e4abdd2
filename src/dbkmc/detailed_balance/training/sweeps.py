"""Model selection and data-size studies: the SAS lambda sweep and the learning curve (Fig 8)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dbkmc.detailed_balance.models import DE_KINDS
from dbkmc.detailed_balance.training.config import TrainConfig
from dbkmc.detailed_balance.training.data import EventData, Split, subsample
from dbkmc.detailed_balance.training.evaluate import directed_predictions, flat_de_metrics, model_metrics, prediction_metrics
from dbkmc.detailed_balance.training.fit import FitResult, train_model

log = logging.getLogger(__package__)  # one logger for the training package: dbkmc.detailed_balance.training

SAS_LAMBDAS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
LEARNING_CURVE_FRACTIONS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)


@dataclass
class SweepResult:
    """SAS lambda sweep: the table, the chosen lambda and its trained ensemble."""

    table: pd.DataFrame
    best_lambda: float
    best: FitResult


def sas_lambda_sweep(data: EventData, split: Split, lambdas: Iterable[float] = SAS_LAMBDAS,
                     config: TrainConfig | None = None, device: str | None = None, *,
                     rule: str = "min") -> SweepResult:
    """Train M_SAS for each lambda and choose lambda on the validation set.

    ``rule="min"``: the lambda with the lowest validation dE RMSE of the
    ensemble mean. ``rule="one_se"``: the largest lambda whose member-mean
    validation RMSE is within one member standard deviation of the lowest
    one (the one-standard-error rule: the most antisymmetric model among
    those the validation set cannot tell apart).

    Table columns: ``lambda``, ``val_rmse``, ``val_rmse_member_mean``,
    ``val_rmse_member_std``, ``val_ddE``, ``test_rmse``,
    ``test_rmse_member_mean``, ``test_rmse_member_std``, ``test_ddE``, ``chosen``.
    """
    if rule not in ("min", "one_se"):
        raise ValueError(f"training: unknown lambda rule {rule!r} (min or one_se)")
    cfg = config or TrainConfig()
    rows, fits = [], []
    lambdas = list(lambdas)
    for i, lam in enumerate(lambdas):
        log.info("SAS sweep: lambda %g (%d/%d)", lam, i + 1, len(lambdas))
        fit = train_model("M_SAS", data, split, cfg.replace(sas_lambda=float(lam)), device)
        m = model_metrics(fit.ensemble, data, split)
        rows.append({"lambda": float(lam), **flat_de_metrics(m["val"], "val"), **flat_de_metrics(m["test"], "test")})
        fits.append(fit)
    if not rows:
        raise ValueError("training: empty lambda grid")
    table = pd.DataFrame(rows)
    best = _choose_lambda(table, rule)
    table["chosen"] = np.arange(len(table)) == best
    return SweepResult(table, float(table["lambda"].iloc[best]), fits[best])


def _choose_lambda(table: pd.DataFrame, rule: str) -> int:
    if rule == "min":
        return int(table["val_rmse"].to_numpy().argmin())
    member = table["val_rmse_member_mean"].to_numpy()
    k = int(member.argmin())
    ok = np.flatnonzero(member <= member[k] + table["val_rmse_member_std"].to_numpy()[k])
    return int(ok[table["lambda"].to_numpy()[ok].argmax()])


def stop_epochs(best_epoch: Sequence[int] | int, n_epochs: int) -> dict[str, int]:
    """Where early stopping left a fit: the earliest and latest best-validation epoch over the members
    (1-based) and the number of epochs run."""
    best = [int(b) for b in (best_epoch if isinstance(best_epoch, Sequence) else [best_epoch])]
    return {"best_epoch_min": min(best), "best_epoch_max": max(best), "n_epochs": int(n_epochs)}


def learning_curve_point(data: EventData, split: Split, kind: str, fraction: float,
                         config: TrainConfig | None = None, device: str | None = None) -> tuple[dict, FitResult]:
    """One point of the learning curve: ``kind`` trained on a nested stratified ``fraction`` of ``split.train``.

    Returns the row (``kind``, ``fraction``, ``n_train_events``, ``test_rmse`` (+ ``_member_mean``/
    ``_member_std``), ``test_ddE``, the epochs of :func:`stop_epochs`) and the fit.
    """
    cfg = config or TrainConfig()
    idx = subsample(split.train, data.event_id, data.composition, float(fraction), cfg.seed)
    log.info("learning curve: %s on %d training events (fraction %g)", kind, len(idx), fraction)
    fit = train_model(kind, data, split, cfg, device, train_idx=idx)
    test = data.directed(split.test)
    m = prediction_metrics(directed_predictions(fit.ensemble, test), None, test)
    row = {"kind": kind, "fraction": float(fraction), "n_train_events": len(idx), **flat_de_metrics(m, "test"),
           **stop_epochs(fit.best_epoch, fit.n_epochs)}
    return row, fit


def learning_curve(data: EventData, split: Split, kinds: Sequence[str] = DE_KINDS,
                   fractions: Sequence[float] = LEARNING_CURVE_FRACTIONS, config: TrainConfig | None = None,
                   device: str | None = None) -> pd.DataFrame:
    """Test dE RMSE and ddE against training-set size (nested stratified subsets of ``split.train``):
    one row of :func:`learning_curve_point` per (kind, fraction)."""
    return pd.DataFrame([learning_curve_point(data, split, kind, fraction, config, device)[0]
                         for fraction in fractions for kind in kinds])
