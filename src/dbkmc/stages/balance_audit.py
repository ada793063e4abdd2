"""Stage function of rule ``balance_audit``: loop drift and the exact Markov check of the kMC runs' rate models.

For every kMC run named in ``balance_audit.runs`` (:mod:`dbkmc.kmc.balance_audit`): the run's rate model on
the run's own structure for the closed-loop drift, and the same model on a tiny cell of the same lattice
(``markov_supercell``, or the run's entry of ``markov_supercells``; the run's most abundant species with one atom of every other species and one
vacancy) for the Markov check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dbkmc.core.io import resolve_device
from dbkmc.core.lattice import Lattice
from dbkmc.core.sampling import VACANCY
from dbkmc.figures.drift import loop_drift_figure
from dbkmc.kmc.balance_audit import drift_table, loop_drift, markov_audit
from dbkmc.kmc.rates.base import build_rate_model
from dbkmc.stages.kmc import build_structure


def tiny_start(lattice: Lattice, digits: np.ndarray, species: Sequence[str]) -> np.ndarray:
    """Occupation (-1 = vacancy) of the Markov cell: the host (most abundant species of ``digits``) everywhere,
    one atom of every other species on sites spread over the cell, the vacancy on site 0."""
    counts = np.bincount(digits, minlength=len(species) + 1)[1:]
    host = int(np.argmax(counts))
    occ = np.full(lattice.n_sites, host, dtype=np.int8)
    others = [s for s in range(len(species)) if s != host]
    if len(others) + 1 > lattice.n_sites:
        raise ValueError(f"balance_audit.markov_supercell: {lattice.n_sites} sites cannot hold {len(species)} species")
    spots = np.linspace(1, lattice.n_sites - 1, len(others) + 2).astype(int)[1:-1]
    occ[spots] = others
    occ[0] = VACANCY
    return occ


def audit_run(name: str, run: Mapping[str, Any], cfg: Mapping[str, Any], device: str) -> tuple[pd.DataFrame, dict]:
    """(per-loop E_net table, Markov row) of one kMC run's rate model."""
    key = f"kmc.runs.{name}"
    lattice, digits, species = build_structure(run["structure"], int(run["seed"]), key=f"{key}.structure")
    model = build_rate_model(run["rate_model"], lattice, species, device, key=f"{key}.rate_model")
    counts = np.bincount(digits, minlength=len(species) + 1)[1:]
    composition = dict(zip(species, counts / counts.sum(), strict=True))
    per_loop, status = loop_drift(model, lattice, species, composition, cfg["loop_lengths"], int(cfg["n_loops"]),
                                  seed=int(cfg["seed"]))
    missing = {L: s for L, s in status.items() if s != "ok"}
    if missing:
        raise ValueError(f"balance_audit.loop_lengths: run {name}: no full set of loops for {missing}")
    tiny = Lattice(lattice.kind, int(cfg["markov_supercells"].get(name, cfg["markov_supercell"])), lattice.a)
    tiny_model = build_rate_model(run["rate_model"], tiny, species, device, key=f"{key}.rate_model")
    temperature = float(cfg["temperature"])
    row = markov_audit(tiny_model, tiny, tiny_start(tiny, digits, species), temperature)
    row = {"run": name, "rate_model": run["rate_model"]["kind"],
           "cell": f"{tiny.kind} {tiny.n}x{tiny.n}x{tiny.n}, 1 vacancy", **row}
    return per_loop.assign(run=name), row


def audit_step(runs: Mapping[str, Mapping[str, Any]], cfg: Mapping[str, Any], device: str,
               out: Mapping[str, str | Path]) -> None:
    """Tables (loops, drift per L, Markov), their Markdown summary and the drift figure."""
    loops, markov_rows = [], []
    device = resolve_device(device, key="kmc.device")              # "auto": CUDA when there is one
    for name in cfg["runs"]:
        if name not in runs:
            raise ValueError(f"balance_audit.runs: {name!r} is not a kmc run (known: {sorted(runs)})")
        per_loop, row = audit_run(name, runs[name], cfg, device)
        loops.append(per_loop)
        markov_rows.append(row)
    per_loop = pd.concat(loops, ignore_index=True)
    drift = pd.concat([drift_table(rows).assign(model=run) for run, rows in per_loop.groupby("run", sort=False)],
                      ignore_index=True)
    markov = pd.DataFrame(markov_rows)
    per_loop.to_csv(out["loops"], index=False)
    drift.to_csv(out["drift"], index=False)
    markov.to_csv(out["markov"], index=False)
    wide = drift.pivot(index="model", columns="L", values="mean_abs_E_net_eV")
    wide.columns = [f"<|E_net|> L={L} (eV)" for L in wide.columns]
    table = markov.set_index("run")[["rate_model", "cell", "max_rel_flux_imbalance", "net_flux_fraction",
                                     "max_abs_dE_implied_eV"]].join(wide)
    Path(out["markdown"]).write_text(
        "# Detailed-balance audit of the kMC rate models\n\n"
        "dE_implied = E_b(A->B) - E_b(B->A); E_net = its sum around a closed vacancy loop (zero with detailed "
        f"balance). Markov check at {float(cfg['temperature']):g} K on the tiny cell.\n\n"
        + table.reset_index().to_markdown(index=False, floatfmt=".3g") + "\n")
    loop_drift_figure(drift, out["figure"])
