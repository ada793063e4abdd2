"""Far-field noise floor as file-to-file steps (rules ``far_field_events`` and ``far_field``).

The NEB between them is the dataset stage's own ``neb``/``collect_dataset``
rules, run on the pseudo-dataset :data:`dbkmc.detailed_balance.far_field.FAR_FIELD_DATASET`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from dbkmc.core.composition import vegard_lattice_parameter
from dbkmc.figures.drift import far_field_figure
from dbkmc.detailed_balance.far_field import PREFACTOR_QUANTITIES, far_field_events, model_rmse, noise_floor
from dbkmc.core.sampling import dataset_species, read_events, write_events

log = logging.getLogger(__name__)


def far_field_events_step(dataset: str, dataset_cfg: Mapping[str, Any], potential_cfg: Mapping[str, Any],
                          ff_cfg: Mapping[str, Any], lattice_constants_path, out) -> list[dict]:
    """Write the far-field cells as ``events_sampled.jsonl`` of the pseudo-dataset ``dataset``."""
    (label, fractions), = dataset_cfg["compositions"].items()
    species = dataset_species(dataset_cfg["compositions"], potential_cfg["elements"])
    end_members = json.loads(Path(lattice_constants_path).read_text())["a"]
    events = far_field_events(
        lattice_kind=dataset_cfg["lattice"], supercell=dataset_cfg["supercell"],
        a=vegard_lattice_parameter(fractions, end_members), label=label, fractions=fractions, species=species,
        r_cuts=ff_cfg["r_cuts"], n_samples=ff_cfg["n_samples"], seed=dataset_cfg["seed"], dataset=dataset)
    write_events(events, out)
    log.info("far field: %d cells (%d cutoffs x %d samples), %d sites", len(events), len(ff_cfg["r_cuts"]),
             ff_cfg["n_samples"], len(events[0]["occupation"]) if events else 0)
    return events


def far_field_step(sampled_path, events_path, rejects_path, metrics_paths: Mapping[str, str],
                   model_r_cut: float | None, out_csv, out_png, prefactors_path=None,
                   prefactor_rejects_path=None) -> pd.DataFrame:
    """Fig 11: std of dE and E_KRA against r_cut (CSV and figure), with the models' test RMSEs; with the
    prefactors of the far-field cells (rule hessians on the pseudo-dataset), also the std of ln nu_AB,
    S_KRA and dS (columns ``*_ln_nu_AB``, ``*_S_KRA``, ``*_dS``, ``n_prefactors``, and a third panel)."""
    sampled = pd.DataFrame(read_events(sampled_path))
    rejects = pd.read_parquet(rejects_path)
    table = noise_floor(sampled, pd.read_parquet(events_path), rejects)
    if prefactors_path:
        pre_rejects = pd.concat([rejects, pd.read_parquet(prefactor_rejects_path)], ignore_index=True) \
            if prefactor_rejects_path else rejects
        pre = noise_floor(sampled, pd.read_parquet(prefactors_path), pre_rejects, PREFACTOR_QUANTITIES)
        keep = ["r_cut_angstrom"] + [c for c in pre.columns if any(c.endswith(q) or c.endswith(f"{q}_se")
                                                                   for q in PREFACTOR_QUANTITIES)]
        table = table.merge(pre[keep].assign(n_prefactors=pre["n_accepted"]), on="r_cut_angstrom", how="left")
    metrics = {name: json.loads(Path(p).read_text()) for name, p in metrics_paths.items()}
    rmse = model_rmse(metrics)
    for name, value in rmse.items():
        table[f"test_rmse_{name}_eV"] = value
    table.to_csv(out_csv, index=False)
    far_field_figure(table, rmse, model_r_cut if rmse else None, out_png)
    for row in table.itertuples():
        log.info("r_cut %.2f A: %d accepted, %d rejected, std dE %.4f eV, std E_KRA %.4f eV", row.r_cut_angstrom,
                 row.n_accepted, row.n_rejected, row.std_dE_eV, row.std_E_KRA_eV)
    return table
