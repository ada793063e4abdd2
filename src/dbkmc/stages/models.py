"""Stage 2-3 as file-to-file steps: fingerprints, ensemble training, evaluation, report.

Each function is what one Snakemake rule does; the workflow scripts only
unpack ``snakemake.*`` and call these.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dbkmc.figures import models as plots
from dbkmc.detailed_balance.ext_fingerprints import DEFAULT_SHELLS, featurize_ext_events
from dbkmc.detailed_balance.fingerprints import AEVParams, featurize_events
from dbkmc.detailed_balance.kinds import DE_KINDS
from dbkmc.core.io import resolve_device, write_json
from dbkmc.stages.keys import TRAIN_CONFIG_KEYS
from dbkmc.core.provenance import code_provenance, provenance_record
from dbkmc.detailed_balance.training import (
    TARGETS,
    CellStates,
    EventData,
    TrainConfig,
    directed_predictions,
    load_model,
    cell_energy_metrics,
    model_metrics,
    sas_lambda_sweep,
    save_ensemble,
    split_events,
    train_model,
)

log = logging.getLogger(__name__)

FINGERPRINT_FORMAT = "dbkmc-fingerprints/1"


def fingerprints_step(events_path: str | Path, params: Mapping, out: str | Path) -> None:
    """Ideal-lattice Kolmogorov and transition-wise fingerprints of every accepted event, and the EXT
    window fingerprints of M_EXT (per-site species and lattice descriptors)."""
    events = pd.read_parquet(events_path)
    aev = AEVParams.from_dict(dict(params))
    species = events["species"].iloc[0].split(",")
    fps = featurize_events(events, aev, "cpu", species=species)
    ext = featurize_ext_events(events, species, **DEFAULT_SHELLS)
    fps.update({k: v.to(torch.int16) for k, v in ext.items()})    # integer counts: exact, and small on disk
    provenance = provenance_record({"fingerprints": aev.to_dict()}, {}, events_path)
    torch.save({"format": FINGERPRINT_FORMAT, "params": aev.to_dict(), "species": species,
                "ext_shells": dict(DEFAULT_SHELLS),
                "event_id": [str(e) for e in events["event_id"]], "fingerprints": fps,
                "provenance": provenance}, out)
    log.info("fingerprints of %d events, %d features each", len(events), fps["TW_A"].shape[1])


def load_event_data(events_path: str | Path, fingerprints_path: str | Path, device: str = "cpu",
                    dtype: torch.dtype = torch.float32, *, cells: bool = False) -> EventData:
    """Targets from ``events.parquet`` with the stored fingerprints (checked to belong together); with
    ``cells``, also the whole cells of state A and their E_A (M_EXT's energy term)."""
    events = pd.read_parquet(events_path)
    stored = torch.load(fingerprints_path, map_location="cpu", weights_only=True)
    if stored.get("format") != FINGERPRINT_FORMAT:
        raise ValueError(f"{fingerprints_path}: not a {FINGERPRINT_FORMAT} file")
    if stored["event_id"] != [str(e) for e in events["event_id"]]:
        raise ValueError(f"{fingerprints_path}: event ids differ from {events_path}; rerun the fingerprints rule")
    bad = ~np.isfinite(events[list(TARGETS)].to_numpy()).all(axis=1)
    if bad.any():
        raise ValueError(f"{events_path}: non-finite targets in events {list(events['event_id'][bad][:5])}")
    return EventData(
        fingerprints={k: v.to(device=device, dtype=dtype) for k, v in stored["fingerprints"].items()},
        targets={t: torch.tensor(events[t].to_numpy(np.float64), dtype=dtype, device=device) for t in TARGETS},
        event_id=list(stored["event_id"]),
        composition=[str(c) for c in events["composition"]],
        params=AEVParams.from_dict(stored["params"]),
        species=list(stored["species"]),
        cells=CellStates.from_events(events, stored["species"], stored.get("ext_shells")).to(device) if cells else None,
    )


def train_config(models_cfg: Mapping, **changes) -> TrainConfig:
    """The TrainConfig of the ``models`` block (its :data:`~dbkmc.stages.keys.TRAIN_CONFIG_KEYS`), with ``changes``."""
    return TrainConfig.from_dict({k: models_cfg[k] for k in TRAIN_CONFIG_KEYS}).replace(**changes)


def needs_cells(models_cfg: Mapping, kinds: Sequence[str]) -> bool:
    """Whether any of ``kinds`` trains with M_EXT's energy term (``energy_weight`` > 0)."""
    cfg = train_config(models_cfg)
    return any(cfg.for_kind(k).energy_weight > 0 for k in kinds)


def model_split(data: EventData, models_cfg: Mapping):
    """The model stage's train/val/test split (models.split, models.seed)."""
    return split_events(data.event_id, data.composition, tuple(models_cfg["split"]), models_cfg["seed"])


def de_columns_eV(table: pd.DataFrame, prefixes: Sequence[str]) -> dict[str, str]:
    """CSV names with units of the dE metrics of :func:`dbkmc.detailed_balance.training.flat_de_metrics`:
    ``test_rmse`` -> ``test_rmse_dE_eV``, ``test_rmse_member_std`` -> ``test_rmse_dE_member_std_eV``,
    ``test_ddE`` -> ``test_ddE_eV``."""
    names = {}
    for p in prefixes:
        names.update({f"{p}_rmse": f"{p}_rmse_dE_eV", f"{p}_rmse_member_mean": f"{p}_rmse_dE_member_mean_eV",
                      f"{p}_rmse_member_std": f"{p}_rmse_dE_member_std_eV", f"{p}_ddE": f"{p}_ddE_eV"})
    missing = set(names) - set(table.columns)
    if missing:
        raise KeyError(f"dE metric columns {sorted(missing)} not in the table")
    return names


def sas_sweep_step(events_path, fingerprints_path, models_cfg: Mapping, out_csv, out_png, out_json) -> float:
    """Train M_SAS for each lambda of the grid; choose lambda on the validation set."""
    device = resolve_device(models_cfg["device"], "models.device")
    data = load_event_data(events_path, fingerprints_path, device)
    sweep = sas_lambda_sweep(data, model_split(data, models_cfg), models_cfg["sas_lambdas"], train_config(models_cfg))
    table = sweep.table.rename(columns=de_columns_eV(sweep.table, ("val", "test")))
    table.to_csv(out_csv, index=False)
    plots.sweep_figure(table, sweep.best_lambda, out_png)
    write_json({"lambda": sweep.best_lambda}, out_json)
    log.info("M_SAS: chosen lambda %g", sweep.best_lambda)
    return sweep.best_lambda


def train_step(model: str, events_path, fingerprints_path, models_cfg: Mapping, out_dir,
               sas_lambda_json=None, provenance: Mapping | None = None) -> None:
    """Train one voting ensemble and save ``member_<k>.pt`` checkpoints plus a training record."""
    device = resolve_device(models_cfg["device"], "models.device")
    data = load_event_data(events_path, fingerprints_path, device, cells=needs_cells(models_cfg, [model]))
    changes = {}
    if model == "M_SAS":
        changes["sas_lambda"] = json.loads(Path(sas_lambda_json).read_text())["lambda"]
    cfg = train_config(models_cfg, **changes)
    fit = train_model(model, data, model_split(data, models_cfg), cfg)
    save_fit(model, fit, data, cfg, models_cfg, events_path, out_dir,
             {**({"sas_lambda": changes["sas_lambda"]} if changes else {})}, provenance)


def save_fit(model: str, fit, data: EventData, cfg: TrainConfig, models_cfg: Mapping, events_path, out_dir,
             settings: Mapping | None = None, provenance: Mapping | None = None) -> None:
    """Save a trained ensemble as the model stage does: ``member_<k>.pt`` and ``training.json`` in ``out_dir``
    (what :func:`~dbkmc.detailed_balance.training.load_model` and the kMC rate models read)."""
    record = provenance_record(
        {"models": {k: models_cfg[k] for k in sorted(models_cfg)}, "fingerprints": data.params.to_dict(),
         "model": model, **dict(settings or {})},
        {"models.seed": models_cfg["seed"]}, events_path)
    record.update(provenance or {})
    extra = {"train_config": cfg.for_kind(model).to_dict(), "provenance": record, "ext_shells": dict(DEFAULT_SHELLS),
             "lattice": str(pd.read_parquet(events_path, columns=["lattice"])["lattice"].iloc[0])}
    save_ensemble(out_dir, fit.ensemble, data.params, data.species, extra=extra)
    write_json({"model": model, "device": str(data.device), **fit.summary(),
                "train_config": cfg.for_kind(model).to_dict(), "provenance": record}, Path(out_dir) / "training.json")
    log.info("%s: %d members, %d epochs", model, fit.ensemble.n_members, fit.n_epochs)


def predictions_table(name: str, ensemble, data: EventData, split, parts: Sequence[str] = ("train", "val", "test")) -> pd.DataFrame:
    """Per-event ensemble predictions (mean, member std) of both directions on the sets ``parts``."""
    frames = []
    for part in parts:
        d = data.directed(split[part])
        pred = directed_predictions(ensemble, d).to("cpu", torch.float64)
        n = d.n_events
        target = d.y["E_KRA" if ensemble.target == "E_KRA" else "dE"].to("cpu", torch.float64)
        ids = [data.event_id[i] for i in split[part]]
        frames.append(pd.DataFrame({
            "model": name, "split": part, "event_id": ids * 2,
            "direction": ["forward"] * n + ["reverse"] * n,
            "target": target.numpy(), "prediction": pred.mean(0).numpy(), "prediction_std": pred.std(0).numpy(),
        }))
    return pd.concat(frames, ignore_index=True)


def evaluate_step(model: str, events_path, fingerprints_path, model_dir, kra_dir, models_cfg: Mapping,
                  out_metrics, out_predictions) -> dict:
    """metrics.json (train/val/test RMSE of dE, E_KRA and both barriers; ddE; with M_EXT's energy term, the
    RMSE of the whole-cell energy E_A in eV per cell) and per-event predictions."""
    device = resolve_device(models_cfg["device"], "models.device")
    data = load_event_data(events_path, fingerprints_path, device, cells=needs_cells(models_cfg, [model]))
    split = model_split(data, models_cfg)
    ensemble = load_model(model_dir, device).ensemble
    kra = load_model(kra_dir, device).ensemble if model != "KRA" else None
    metrics = model_metrics(ensemble, data, split, kra=kra)
    if data.cells is not None:
        for part in ("train", "val", "test"):
            metrics[part].update(cell_energy_metrics(ensemble, data.cells.select(split[part])))
    metrics["n_events"] = {part: int(len(split[part])) for part in ("train", "val", "test")}
    metrics["code"] = code_provenance()
    write_json(metrics, out_metrics)
    predictions_table(model, ensemble, data, split).to_parquet(out_predictions, index=False)
    return metrics


def table2(metrics: Mapping[str, Mapping], models: Sequence[str] = DE_KINDS) -> pd.DataFrame:
    """Table 2: train and test RMSE of dE and test ddE (eV), ensemble mean and member spread."""
    rows = []
    for name in models:
        m = metrics[name]
        rows.append({
            "model": name,
            "train_rmse_dE_eV": m["train"]["rmse_dE"],
            "test_rmse_dE_eV": m["test"]["rmse_dE"],
            "test_rmse_dE_member_mean_eV": m["test"]["member_rmse_dE_mean"],
            "test_rmse_dE_member_std_eV": m["test"]["member_rmse_dE_std"],
            "test_ddE_eV": m["test"]["ddE"],
        })
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, csv: str | Path, markdown: str | Path, digits: int = 4) -> None:
    """The table as CSV (full precision) and as markdown (rounded to ``digits``)."""
    table.to_csv(csv, index=False)
    Path(markdown).write_text(table.round(digits).to_markdown(index=False) + "\n")


def report_step(metrics_paths: Mapping[str, str], predictions_paths: Mapping[str, str],
                out_table_csv, out_table_md, figure_dir) -> pd.DataFrame:
    """Table 2 and the parity / forward-reverse figures (Figs 3-7)."""
    metrics = {}
    for name, path in metrics_paths.items():
        m = json.loads(Path(path).read_text())
        key = "E_KRA" if name == "KRA" else "dE"
        metrics[name] = {part: {"rmse_dE": m[part][key]["ensemble"],
                                "member_rmse_dE_mean": m[part][key]["member_mean"],
                                "member_rmse_dE_std": m[part][key]["member_std"],
                                "ddE": m[part].get("ddE", {}).get("ensemble", float("nan"))}
                         for part in ("train", "val", "test")}
    table = table2(metrics)
    write_table(table, out_table_csv, out_table_md)
    figure_dir = Path(figure_dir)
    figure_dir.mkdir(parents=True, exist_ok=True)
    for name, path in predictions_paths.items():
        pred = pd.read_parquet(path)
        fwd = pred[pred["direction"] == "forward"]
        quantity = "E_KRA" if name == "KRA" else "dE"
        panels = [(f"{name} {part}", rows["target"].to_numpy(), rows["prediction"].to_numpy())
                  for part, rows in fwd.groupby("split", sort=False) if part in ("train", "test")]
        plots.parity_figure(panels, quantity, figure_dir / f"parity_{name}.png")
        if name != "KRA":
            test = pred[pred["split"] == "test"]
            f = test[test["direction"] == "forward"].set_index("event_id")["prediction"]
            r = test[test["direction"] == "reverse"].set_index("event_id")["prediction"].reindex(f.index)
            plots.forward_reverse_figure(f.to_numpy(), r.to_numpy(), f"{name} (test)",
                                         figure_dir / f"forward_reverse_{name}.png")
    return table

