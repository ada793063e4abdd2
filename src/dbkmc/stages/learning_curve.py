"""Fig 8 as file-to-file steps: one learning-curve point per (dE model, training fraction), and the report.

Each point is its own job, so a paper-scale curve (five models, seven fractions, 10-member
ensembles) resumes where it stopped and spreads over a cluster. The 100 % point is the
model stage's own ensemble (rules ``train``/``evaluate``: the same split, seed and settings),
so it is read from there rather than trained twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from dbkmc.core.io import resolve_device, write_json
from dbkmc.detailed_balance.training import flat_de_metrics, learning_curve_point, stop_epochs
from dbkmc.figures import models as plots
from dbkmc.stages.models import (
    de_columns_eV,
    load_event_data,
    model_split,
    needs_cells,
    predictions_table,
    train_config,
)


def point_step(model: str, fraction: float, events_path, fingerprints_path, models_cfg: Mapping,
               sas_lambda_json, out_json, out_predictions) -> dict:
    """Train ``model`` on a nested stratified ``fraction`` of the training set; write its test metrics
    (with the epochs it stopped at) and its test predictions."""
    if not 0 < float(fraction) <= 1:
        raise ValueError(f"models.learning_curve_fractions: {fraction} is not in (0, 1]")
    device = resolve_device(models_cfg["device"], "models.device")
    data = load_event_data(events_path, fingerprints_path, device, cells=needs_cells(models_cfg, [model]))
    changes = {"sas_lambda": json.loads(Path(sas_lambda_json).read_text())["lambda"]} if model == "M_SAS" else {}
    split = model_split(data, models_cfg)
    row, fit = learning_curve_point(data, split, model, float(fraction), train_config(models_cfg, **changes))
    row = {"model": row.pop("kind"), "n_train": row.pop("n_train_events"), **row, "train_wall_s": fit.seconds}
    write_json(row, out_json)
    predictions_table(model, fit.ensemble, data, split, parts=("test",)).to_parquet(out_predictions, index=False)
    return row


def full_point(model: str, metrics_json, training_json) -> dict:
    """The 100 % point from the model stage's ensemble: its metrics.json and training.json."""
    metrics = json.loads(Path(metrics_json).read_text())
    training = json.loads(Path(training_json).read_text())
    if "n_events" not in metrics:
        raise KeyError(f"{metrics_json}: no n_events (written by an older evaluate rule; rerun it)")
    return {"model": model, "n_train": int(metrics["n_events"]["train"]), "fraction": 1.0,
            **flat_de_metrics(metrics["test"], "test"), **stop_epochs(training["best_epoch"], training["n_epochs"]),
            "train_wall_s": training.get("seconds")}


def report_step(points: Sequence[str], full: Mapping[str, Mapping[str, str]], parity_predictions: Sequence[str],
                out_csv, out_png, out_parity_png) -> pd.DataFrame:
    """Fig 8: the learning-curve table (test RMSE and ddE of dE, the epochs each fit stopped at), the
    curves (8c, d) and the test parity panels (8a, b) of ``parity_predictions``: each model's
    predictions at the smallest fraction.

    ``full``: model -> {"metrics", "training"} of the model stage's ensembles, for the 100 % point.
    """
    rows = [json.loads(Path(p).read_text()) for p in points]
    rows += [full_point(m, f["metrics"], f["training"]) for m, f in full.items()]
    if not rows:
        raise ValueError("models.learning_curve_fractions: no point to report")
    table = pd.DataFrame(rows).sort_values(["model", "fraction"], kind="stable").reset_index(drop=True)
    table = table.rename(columns=de_columns_eV(table, ("test",)))
    table.to_csv(out_csv, index=False)
    plots.learning_curve_figure(table, out_png)
    smallest = table[table["fraction"] == table["fraction"].min()].set_index("model")["n_train"]
    panels = []
    for path in parity_predictions:
        pred = pd.read_parquet(path)
        model = str(pred["model"].iloc[0])
        fwd = pred[(pred["direction"] == "forward") & (pred["split"] == "test")]
        panels.append((f"{model}, {int(smallest[model])} training events", fwd["target"].to_numpy(),
                       fwd["prediction"].to_numpy()))
    plots.parity_figure(panels, "dE", out_parity_png)
    return table
