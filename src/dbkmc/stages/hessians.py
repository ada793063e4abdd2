"""Rule ``hessians`` as file-to-file steps: Vineyard prefactors of a dataset's events, then collection.

:func:`select_events` picks a deterministic subset of a dataset's accepted events;
:func:`hessians_shard_step` reruns each of its shard's events (relax + CI-NEB with the dataset's
own NEB settings), computes the local Hessians of A, B and the saddle
(:mod:`dbkmc.neb.event_prefactors`) and the descriptor sums of the Hessian atoms (LAMMPS
``sna/atom`` there, ANI AEVs here); :func:`hessians_collect_step` merges the shards into
prefactors.parquet (accepted), rejects.parquet (event_id and the reason naming the check),
qc_summary.json (counts, tolerances, cost per event) and local_vs_full.csv.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dbkmc.core.io import write_json
from dbkmc.neb.cell import EnginePool
from dbkmc.neb.event_prefactors import CHECKS, EventConfigurations, HessianSettings, event_prefactors
from dbkmc.neb.hessian import SNA
from dbkmc.neb.potentials import Potential
from dbkmc.stages.dataset import event_settings

log = logging.getLogger(__name__)

NEB_KEYS = ("n_images", "spring", "ftol", "max_iter", "climb", "relax_ftol", "relax_max_iter")
"""The NEB settings an event is rerun with: the dataset's own (dataset.json), else the config's ``neb``."""
FULL_COLUMNS = ("ln_nu_AB_full", "ln_nu_BA_full", "S_A_full", "S_B_full", "S_saddle_full", "dS_full", "S_KRA_full",
                "nu_unstable_THz_full", "full_wall_s", "full_status", "max_zero_mode_full")
"""Columns of the full-Hessian check: written to local_vs_full.csv, not to prefactors.parquet."""


def select_events(events: pd.DataFrame, n_events: int) -> pd.DataFrame:
    """The first ``n_events`` accepted events, taken round-robin over the compositions.

    Events are ranked within their composition in file order, then ordered by (rank,
    composition), so any prefix holds the compositions in equal shares. Deterministic.
    """
    if "status" in events.columns:
        events = events[events["status"].astype(str) == "accepted"]
    key = "composition_key" if "composition_key" in events.columns else "composition"
    rank = events.groupby(key, sort=False).cumcount()
    order = pd.DataFrame({"rank": rank.to_numpy(), "key": events[key].astype(str).to_numpy(),
                          "pos": np.arange(len(events))}).sort_values(["rank", "key", "pos"], kind="stable")
    return events.iloc[order["pos"].to_numpy()[:n_events]].reset_index(drop=True)


def dataset_neb_settings(dataset_meta: str | Path | None, neb_cfg: Mapping, qc_cfg: Mapping):
    """EventSettings of the dataset (``parameters.neb``/``qc`` of dataset.json), else the config's."""
    meta = json.loads(Path(dataset_meta).read_text()) if dataset_meta and Path(dataset_meta).exists() else {}
    params = meta.get("parameters", {})
    neb = {k: params.get("neb", {}).get(k, neb_cfg[k]) for k in NEB_KEYS}
    qc = {"max_displacement": params.get("qc", {}).get("max_displacement", qc_cfg["max_displacement"])}
    return event_settings(neb, qc)


def hessian_settings(hessians_cfg: Mapping, event: object) -> HessianSettings:
    return HessianSettings(event=event, radius=hessians_cfg["radius"], displacement=hessians_cfg["displacement"],
                           negative_tolerance=hessians_cfg["negative_tolerance"],
                           energy_tolerance=hessians_cfg["energy_tolerance"],
                           entropy_temperature=hessians_cfg["entropy_temperature"])


def aev_sums(configs: EventConfigurations, frame: str, n_species: int) -> list[float]:
    """ANI AEVs (:class:`~dbkmc.detailed_balance.aev.AEVParams` defaults, 6 A) of the Hessian atoms,
    centred on each atom (itself left out), summed per central species and concatenated."""
    import torch  # noqa: PLC0415 (torch only where the AEVs are made)

    from dbkmc.detailed_balance.aev import AEVParams, aev  # noqa: PLC0415

    params = AEVParams()
    pos, box, types = configs.positions[frame], np.asarray(configs.box), np.asarray(configs.types)
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]) * box
    images = (pos[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    image_species = np.tile(types - 1, len(shifts))
    rows, species = [], []
    for i in configs.atoms:
        d = np.linalg.norm(images - pos[i], axis=1)
        near = (d < params.r_cut) & (d > 1e-8)
        rows.append(images[near] - pos[i])
        species.append(image_species[near])
    width = max(len(r) for r in rows)
    rel = np.zeros((len(rows), width, 3))
    spc = -np.ones((len(rows), width), dtype=np.int64)
    for k, (r, s) in enumerate(zip(rows, species, strict=True)):
        rel[k, : len(r)], spc[k, : len(s)] = r, s
    g = aev(None, torch.from_numpy(rel), torch.from_numpy(spc), n_species, params).numpy()
    central = types[configs.atoms] - 1
    return np.concatenate([g[central == s].sum(axis=0) for s in range(n_species)]).tolist()


def hessians_shard_step(events_path: str | Path, dataset_meta: str | Path | None, shard: int,
                        hessians_cfg: Mapping, neb_cfg: Mapping, qc_cfg: Mapping, potential_name: str,
                        potential_cfg: Mapping, out_table: str | Path) -> pd.DataFrame:
    """Prefactors of one shard: selection index i goes to shard i % n_shards; the first
    ``full_check`` of the selection also get the full Hessian. Writes every row, accepted or not."""
    n_shards = hessians_cfg["n_shards"]
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
    selected = select_events(pd.read_parquet(events_path), hessians_cfg["n_events"])
    settings = hessian_settings(hessians_cfg, dataset_neb_settings(dataset_meta, neb_cfg, qc_cfg))
    import torch  # noqa: PLC0415 (the AEV sums)

    torch.set_num_threads(1)  # the rule holds one core (threads: 1); more threads only contend
    rows = []
    indices = range(shard, len(selected), n_shards)
    pool = None
    try:
        for k, i in enumerate(indices):
            event = selected.iloc[i].to_dict()
            if pool is None:
                pool = EnginePool(Potential.from_config(potential_name, potential_cfg),
                                  str(event["species"]).split(","), settings.event.neb.n_images)
            row, configs = event_prefactors(event, pool, settings, full_check=i < hessians_cfg["full_check"])
            if row["status"] == "accepted":
                t0, c0 = time.perf_counter(), time.process_time()
                n_species = len(str(event["species"]).split(","))
                for state, frame in (("A", "A_relaxed"), ("B", "B_relaxed"), ("saddle", "saddle")):
                    row[f"aev_{state}"] = aev_sums(configs, frame, n_species)
                row["event_wall_s"] += time.perf_counter() - t0
                row["event_cpu_s"] += time.process_time() - c0
            rows.append(row)
            log.info("[%d/%d] %s %s %s (%.2f s)", k + 1, len(indices), row["event_id"], row["status"],
                     row["reject_reason"], row["event_wall_s"])
    finally:
        if pool is not None:
            pool.close()
    table = pd.DataFrame(rows)
    table.to_parquet(out_table, index=False)
    return table


def _check_name(reason: str) -> str:
    return reason.split(":", 1)[0].split("(", 1)[0].strip()


def hessians_collect_step(shard_tables: Sequence[str | Path], hessians_cfg: Mapping, out_prefactors: str | Path,
                          out_rejects: str | Path, out_summary: str | Path, out_local_vs_full: str | Path) -> dict:
    """Merge the shards into prefactors.parquet, rejects.parquet, qc_summary.json, local_vs_full.csv."""
    tables = [t for t in (pd.read_parquet(p) for p in shard_tables) if len(t)]
    columns = [set(t.columns) for t in tables]
    if any(c != columns[0] for c in columns):
        odd = sorted(set.union(*columns) - set.intersection(*columns))
        raise ValueError(f"hessians: the shards do not hold the same columns ({', '.join(odd)}); they were made by "
                         "different versions of the code: rerun the older shards")
    table = pd.concat(tables, ignore_index=True).sort_values("event_id", kind="stable").reset_index(drop=True) \
        if tables else pd.DataFrame({"event_id": [], "status": [], "reject_reason": []})
    accepted = table[table["status"] == "accepted"]
    rejected = table[table["status"] != "accepted"]
    accepted.drop(columns=[c for c in FULL_COLUMNS if c in accepted.columns]).to_parquet(out_prefactors, index=False)
    rejects = pd.DataFrame({"event_id": rejected["event_id"].astype(str),
                            "check": [_check_name(r) for r in rejected["reject_reason"]],
                            "reason": rejected["reject_reason"].astype(str)})
    rejects.to_parquet(out_rejects, index=False)
    local_vs_full(accepted).to_csv(out_local_vs_full, index=False)
    summary = _summary(table, accepted, rejects, hessians_cfg)
    write_json(summary, out_summary)
    log.info("hessians: %d accepted, %d rejected, %s s per event", summary["n_accepted"], summary["n_rejected"],
             summary["cost"]["event_s_mean"])
    return summary


def local_vs_full(accepted: pd.DataFrame) -> pd.DataFrame:
    """ln nu of the local against the full Hessian on the full-check events, and the differences."""
    if "full_status" not in accepted.columns:
        return pd.DataFrame(columns=["event_id", "n_hessian_atoms", "full_status"])
    rows = accepted[accepted["full_status"].notna()]
    out = rows[["event_id", "n_hessian_atoms", "full_status", "max_zero_mode_full"]].copy()
    for key in ("ln_nu_AB", "ln_nu_BA", "dS", "S_KRA", "nu_unstable_THz"):
        full = rows[f"{key}_full"] if f"{key}_full" in rows.columns else np.nan
        out[f"{key}_local"], out[f"{key}_full"] = rows[key], full
        out[f"{key}_diff"] = rows[key] - full
    out["hessian_wall_s"], out["full_wall_s"] = rows["hessian_wall_s"], rows["full_wall_s"]
    return out.reset_index(drop=True)


def _stats(values: pd.Series) -> dict:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if not len(v):
        return {}
    return {"n": len(v), "mean": float(v.mean()), "std": float(v.std()) if len(v) > 1 else None,
            "min": float(v.min()), "max": float(v.max())}


def _column(table: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(table[name], errors="coerce") if name in table.columns else pd.Series(np.nan, index=table.index)


def _mean(values: pd.Series) -> float | None:
    return float(values.mean()) if values.notna().any() else None


def _cost(table: pd.DataFrame) -> dict:
    """Seconds per event: wall and CPU (process time; the wall time grows on a shared machine),
    for every event and for those without the full check; the full check's own cost; totals."""
    wall, cpu, full = _column(table, "event_wall_s"), _column(table, "event_cpu_s"), _column(table, "full_wall_s")
    local = full.isna()
    return {"event_s_mean": _mean(wall), "event_cpu_s_mean": _mean(cpu),
            "local_event_s_mean": _mean(wall[local]), "local_event_cpu_s_mean": _mean(cpu[local]),
            "hessian_s_mean": _mean(_column(table, "hessian_wall_s")), "full_check_s_mean": _mean(full),
            "total_wall_s": float(wall.sum()), "total_cpu_s": float(cpu.sum()) if cpu.notna().any() else None}


def _summary(table: pd.DataFrame, accepted: pd.DataFrame, rejects: pd.DataFrame, cfg: Mapping) -> dict:
    lvf = local_vs_full(accepted)
    return {
        "n_events": len(table), "n_accepted": len(accepted), "n_rejected": len(rejects),
        "checks": {name: int((rejects["check"] == name).sum()) for name in CHECKS}
        | {k: int(v) for k, v in rejects["check"].value_counts().items() if k not in CHECKS},
        "check_descriptions": CHECKS,
        "settings": {k: cfg[k] for k in ("dataset", "n_events", "radius", "displacement", "n_shards", "full_check",
                                         "entropy_temperature", "negative_tolerance", "energy_tolerance")},
        "units": {"eigenvalues": "eV/A^2/amu (mass-weighted)", "S": "sum of ln(nu/Hz)", "s_vib": "k_B",
                  "nu_unstable_THz": "THz"},
        "sna": {"twojmax": SNA.twojmax, "rcutfac": SNA.rcutfac, "radius": SNA.radius, "weights": list(SNA.weights)},
        "cost": _cost(table),
        "ln_nu_AB": _stats(accepted.get("ln_nu_AB", pd.Series(dtype=float))),
        "local_vs_full": {"n": len(lvf), "ln_nu_AB_diff": _stats(lvf["ln_nu_AB_diff"]) if len(lvf) else {}},
    }
