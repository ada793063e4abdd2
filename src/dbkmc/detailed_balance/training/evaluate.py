"""Metrics of trained ensembles: RMSE of dE, E_KRA and both barriers, and the antisymmetry defect ddE.

RMSE of ``dE``, ``E_KRA`` and both barriers (``E_KRA ± dE/2`` against NEB),
and ``ddE = sqrt(mean (dE(A,B) + dE(B,A))^2)``, each from the ensemble mean
(``ensemble``) and per member (``member_mean``, ``member_std``), always over
both directions of every event (:meth:`~dbkmc.detailed_balance.training.data.EventData.directed`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import Tensor

from dbkmc.detailed_balance.models import Ensemble, barrier
from dbkmc.detailed_balance.training.data import DirectedData, EventData, Split

log = logging.getLogger(__package__)  # one logger for the training package: dbkmc.detailed_balance.training


def _rmse(pred: Tensor, target: Tensor) -> Tensor:
    """Root mean square of ``pred - target`` over the last dimension (member-wise for (M, N))."""
    return torch.sqrt(((pred - target) ** 2).mean(-1))


def _stats(member_values: Tensor, ensemble_value: Tensor) -> dict[str, float]:
    v = member_values.detach().to("cpu", torch.float64)
    return {"ensemble": float(ensemble_value), "member_mean": float(v.mean()),
            "member_std": float(v.std(unbiased=False)) if len(v) > 1 else 0.0}


def directed_predictions(ensemble: Ensemble, data: DirectedData, batch_size: int = 8192) -> Tensor:
    """Member predictions (M, 2n) on directed data."""
    x_a, x_b = data.inputs(ensemble.fingerprint)
    return ensemble(x_a, x_b, batch_size)


def prediction_metrics(d_e: Tensor | None, e_kra: Tensor | None, data: DirectedData) -> dict[str, dict[str, float]]:
    """Metrics from member predictions (M, 2n) of dE and/or E_KRA on ``data``.

    Keys: ``dE`` (RMSE over both directions), ``ddE``, ``E_KRA``, and, when
    both are given, ``barrier_forward``/``barrier_backward`` (``E_KRA +
    dE/2`` of A -> B and of B -> A against NEB; member k of dE is paired with
    member k of E_KRA). Each value: ``{"ensemble", "member_mean", "member_std"}``.
    """
    n = data.n_events
    out: dict[str, dict[str, float]] = {}
    y = {k: v.to(torch.float64) for k, v in data.y.items()}
    if d_e is not None:
        de = d_e.to(torch.float64)
        mean = de.mean(0)
        out["dE"] = _stats(_rmse(de, y["dE"]), _rmse(mean, y["dE"]))
        out["ddE"] = _stats(_rmse(de[:, :n] + de[:, n:], 0.0), _rmse(mean[:n] + mean[n:], 0.0))
    if e_kra is not None:
        kra = e_kra.to(torch.float64)
        out["E_KRA"] = _stats(_rmse(kra, y["E_KRA"]), _rmse(kra.mean(0), y["E_KRA"]))
    if d_e is not None and e_kra is not None:
        if d_e.shape[0] != e_kra.shape[0]:
            members = min(d_e.shape[0], e_kra.shape[0])
            d_e, e_kra = d_e[:members], e_kra[:members]
        bar = barrier(e_kra.to(torch.float64), d_e.to(torch.float64))
        mean = bar.mean(0)
        for name, sl in (("barrier_forward", slice(0, n)), ("barrier_backward", slice(n, 2 * n))):
            out[name] = _stats(_rmse(bar[:, sl], y["barrier"][sl]), _rmse(mean[sl], y["barrier"][sl]))
    return out


def model_metrics(ensemble: Ensemble, data: EventData, split: Split,
                  kra: Ensemble | None = None, batch_size: int = 8192) -> dict[str, dict[str, dict[str, float]]]:
    """``{train|val|test: prediction_metrics(...)}`` for a dE ensemble (with barriers if ``kra``) or a KRA ensemble."""
    out = {}
    for name in ("train", "val", "test"):
        d = data.directed(split[name])
        pred = directed_predictions(ensemble, d, batch_size)
        if ensemble.target == "E_KRA":
            out[name] = prediction_metrics(None, pred, d)
        else:
            kra_pred = directed_predictions(kra, d, batch_size) if kra is not None else None
            out[name] = prediction_metrics(pred, kra_pred, d)
        log.info("%s %s set: %d events, %s RMSE %.4g eV", ensemble.kind, name, len(split[name]),
                 ensemble.target, out[name][ensemble.target]["ensemble"])
    return out


def flat_de_metrics(metrics: Mapping[str, Mapping[str, float]], prefix: str) -> dict[str, float]:
    """The dE metrics of one set as table columns: ``{prefix}_rmse`` (ensemble), ``_member_mean``, ``_member_std``, ``{prefix}_ddE``."""
    de, dde = metrics["dE"], metrics["ddE"]
    return {f"{prefix}_rmse": de["ensemble"], f"{prefix}_rmse_member_mean": de["member_mean"],
            f"{prefix}_rmse_member_std": de["member_std"], f"{prefix}_ddE": dde["ensemble"]}
