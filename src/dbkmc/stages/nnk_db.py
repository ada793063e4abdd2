"""DB-NNK (rule ``train_nnk_db``): the NNK barrier task with a model that obeys detailed balance exactly.

NNK predicts the forward barrier of each path from the initial state alone, so nothing ties
``E_b(A->B) - E_b(B->A)`` to a state function. This step trains, on the same ``all_paths`` set,
the same split by configuration and the same held-out compositions as the NNK networks:

- M_EXT for dE (an extensive state energy: dE = E(B) - E(A), exactly), and
- KRA for E_KRA (symmetric in A and B),

and predicts the barrier ``E_b = E_KRA + dE/2``. Its metrics and predictions have the NNK
networks' format (architecture ``db``), so the NNK table sets it beside the MLP and CNN; its
ensembles are saved as the model stage saves them, so a kMC run (``kind: detailed_balance``)
and the balance audit take them as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dbkmc.core.io import resolve_device, write_json
from dbkmc.core.provenance import provenance_record
from dbkmc.detailed_balance.models import barrier
from dbkmc.detailed_balance.training import EventData, Split, directed_predictions, train_model
from dbkmc.nnk.data import TARGET, check_events, split_configurations
from dbkmc.nnk.training import regression_metrics
from dbkmc.stages.models import load_event_data, needs_cells, save_fit, train_config
from dbkmc.stages.nnk import per_composition, transfer_summary

log = logging.getLogger(__name__)

DB_KINDS = ("M_EXT", "KRA")
"""dE from an extensive state energy, E_KRA from a symmetric network."""


def rows_of(data: EventData, event_ids) -> np.ndarray:
    """EventData indices of ``event_ids`` (each must be in the fingerprint file)."""
    index = {e: i for i, e in enumerate(data.event_id)}
    missing = [str(e) for e in event_ids if str(e) not in index]
    if missing:
        raise ValueError(f"nnk db: events {missing[:5]} have no fingerprints; rerun the fingerprints rule")
    return np.array([index[str(e)] for e in event_ids], dtype=np.int64)


@torch.no_grad()
def forward_barriers(ensembles: Mapping, data: EventData, idx: np.ndarray) -> np.ndarray:
    """Ensemble-mean forward barrier E_KRA + dE/2 (member k of dE with member k of E_KRA)."""
    if len(idx) == 0:
        return np.zeros(0)
    d = data.directed(idx)
    d_e = directed_predictions(ensembles["M_EXT"], d)[:, : d.n_events]
    e_kra = directed_predictions(ensembles["KRA"], d)[:, : d.n_events]
    members = min(d_e.shape[0], e_kra.shape[0])
    return barrier(e_kra[:members].double(), d_e[:members].double()).mean(0).cpu().numpy()


def _frame(events: pd.DataFrame, part: str, y: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"event_id": events["event_id"].to_numpy(), "part": part,
                         "composition": events["composition"].to_numpy(),
                         "config_index": events["config_index"].to_numpy(),
                         "supercell": events["supercell"].to_numpy(), "path": events["path"].to_numpy(),
                         "barrier_neb": y, "barrier_pred": pred})


def train_db_step(set_name: str, events_path, fingerprints_path, transfer_events_path, transfer_fingerprints_path,
                  set_cfg: Mapping, nnk_params: Mapping, models_cfg: Mapping, out_dir) -> dict:
    """Train M_EXT and KRA on an NNK set (nnk.split, nnk.seed, the set's held_out; models.* training settings);
    write ``M_EXT/``, ``KRA/``, predictions.parquet, metrics.json and training.json in the NNK format."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events = pd.read_parquet(events_path).reset_index(drop=True)
    species = check_events(events, str(events_path))
    kind = str(events["lattice"].iloc[0])
    split = split_configurations(events, nnk_params["split"], list(set_cfg.get("held_out") or []),
                                 int(nnk_params["seed"]))
    device = resolve_device(models_cfg["device"], "models.device")
    data = load_event_data(events_path, fingerprints_path, device, cells=needs_cells(models_cfg, ["M_EXT"]))
    rows = {name: rows_of(data, events["event_id"].to_numpy()[split[name]])
            for name in ("train", "val", "test", "held_out")}
    model_split = Split(train=rows["train"], val=rows["val"], test=rows["test"])
    cfg = train_config(models_cfg)
    ensembles, summaries = {}, {}
    for model in DB_KINDS:
        fit = train_model(model, data, model_split, cfg)
        save_fit(model, fit, data, cfg, models_cfg, events_path, out / model,
                 {"nnk_set": set_name, "split": "nnk configurations"})
        ensembles[model], summaries[model] = fit.ensemble, fit.summary()
    y = events[TARGET].to_numpy(dtype=float)
    frames, metrics = [], {}
    for name in ("train", "val", "test", "held_out"):
        pred = forward_barriers(ensembles, data, rows[name])
        metrics[name] = regression_metrics(y[split[name]], pred)
        frames.append(_frame(events.iloc[split[name]], name, y[split[name]], pred))
    if transfer_events_path:
        transfer = pd.read_parquet(transfer_events_path).reset_index(drop=True)
        if check_events(transfer, str(transfer_events_path)) != species or transfer["lattice"].iloc[0] != kind:
            raise ValueError(f"nnk.sets.{set_name}.transfer_dataset: species/lattice differ from the training dataset")
        tdata = load_event_data(transfer_events_path, transfer_fingerprints_path, device)
        pred = forward_barriers(ensembles, tdata, rows_of(tdata, transfer["event_id"].to_numpy()))
        yt = transfer[TARGET].to_numpy(dtype=float)
        metrics["transfer"] = regression_metrics(yt, pred)
        frames.append(_frame(transfer, "transfer", yt, pred))
    predictions = pd.concat(frames, ignore_index=True)
    predictions.to_parquet(out / "predictions.parquet", index=False)
    n_parameters = sum(v[0].numel() for m in ensembles.values() for v in m.params.values())  # one member each
    record = {
        "set": set_name, "arch": "db", "lattice": kind, "species": species, "grid": None, "cutoff": None,
        "held_out": list(set_cfg.get("held_out") or []), "n_parameters": int(n_parameters),
        "best_epoch": max(max(s["best_epoch"]) for s in summaries.values()),
        "epochs": max(s["n_epochs"] for s in summaries.values()), "metrics": metrics,
        "per_composition": per_composition(predictions),
        "transfer": transfer_summary(metrics, float(nnk_params["transfer_tolerance"])),
        "models": {m: {"best_epoch": s["best_epoch"], "n_epochs": s["n_epochs"]} for m, s in summaries.items()},
    }
    write_json(record, out / "metrics.json")
    write_json({"models": {m: s for m, s in summaries.items()},
                "split": {k: int(len(v)) for k, v in split.parts.items()},
                "provenance": provenance_record({"nnk": dict(nnk_params), "set": dict(set_cfg),
                                                 "models": dict(models_cfg)}, {}, events_path)},
               out / "training.json")
    log.info("DB-NNK %s: test MAE %.4f eV (%.2f %%), held-out composition %s", set_name,
             metrics["test"].get("MAE", float("nan")), metrics["test"].get("MAE_pct", float("nan")),
             metrics["held_out"].get("MAE"))
    return record
