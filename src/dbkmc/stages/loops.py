"""Closed-loop drift and the Markov-chain check as file-to-file steps (rules ``loop_drift`` and ``markov_check``).

Each function is what one Snakemake rule does; the workflow scripts only
unpack ``snakemake.*`` and call these.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dbkmc.core.composition import vegard_lattice_parameter
from dbkmc.core.io import resolve_device
from dbkmc.detailed_balance.drift import common_species, drift_summary, loop_energy_sums, markov_check
from dbkmc.figures.drift import loop_drift_figure
from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.loops import cycle_basis, grow_loops, lattice_graph, requested_lengths
from dbkmc.detailed_balance.markov import enumerate_states
from dbkmc.core.sampling import VACANCY
from dbkmc.detailed_balance.training import LoadedModel, load_model

log = logging.getLogger(__name__)


def load_models(model_dirs: Mapping[str, str | Path], device: str) -> dict[str, LoadedModel]:
    """The ensembles ``{name: LoadedModel}`` from their checkpoint folders."""
    models = {name: load_model(path, device) for name, path in model_dirs.items()}
    for name, model in models.items():
        if model.kind != name:
            raise ValueError(f"{model_dirs[name]}: holds a {model.kind} ensemble, expected {name}")
    return models


def dataset_lattice(events_path: str | Path, dataset_json: str | Path, fractions: Mapping[str, float],
                    supercell: int | None) -> Lattice:
    """The model dataset's lattice kind and supercell, with Vegard's ``a`` at ``fractions``.

    The end-member lattice parameters come from ``dataset.json``
    (``lattice_constants``); ``supercell`` overrides the dataset's.
    """
    events = pd.read_parquet(events_path, columns=["lattice", "supercell"])
    kinds = events["lattice"].unique()
    if len(kinds) != 1:
        raise ValueError(f"{events_path}: events mix lattices {list(kinds)}")
    meta = json.loads(Path(dataset_json).read_text())
    end_members = meta.get("lattice_constants")
    if not end_members:
        raise ValueError(f"{dataset_json}: no 'lattice_constants' (end-member lattice parameters) for Vegard's law")
    n = int(supercell) if supercell is not None else int(events["supercell"].max())
    return Lattice(str(kinds[0]), n, vegard_lattice_parameter(fractions, end_members))


def loop_composition(loops_cfg: Mapping[str, Any], species: list[str]) -> dict[str, float]:
    """``loops.composition``, or equal fractions of the model's species when null."""
    comp = loops_cfg.get("composition")
    if not comp:
        return {s: 1.0 / len(species) for s in species}
    unknown = [e for e in comp if e not in species]
    if unknown:
        raise ValueError(f"loops.composition: elements {unknown} are not among the model's species {species}")
    return {s: float(comp.get(s, 0.0)) for s in species}


def loop_drift_step(model_dirs: Mapping[str, str | Path], events_path, dataset_json, loops_cfg: Mapping[str, Any],
                    device: str, out_table, out_loops, out_figure) -> pd.DataFrame:
    """Fig 9: random loops, E_net per loop and model, ``<|E_net|>(L)`` as CSV and figure."""
    models = load_models(model_dirs, resolve_device(device, "models.device"))
    species = common_species(models)
    composition = loop_composition(loops_cfg, species)
    lattice = dataset_lattice(events_path, dataset_json, composition, loops_cfg["supercell"])
    lengths = requested_lengths(loops_cfg["L_min"], loops_cfg["L_max"], loops_cfg["L_step"])
    t0 = time.perf_counter()
    basis = cycle_basis(lattice_graph(lattice))
    budget = loops_cfg["max_trajectories"] or 20 * loops_cfg["n_loops"]
    loop_set = grow_loops(basis, lengths, loops_cfg["n_loops"], np.random.default_rng(loops_cfg["seed"]), budget)
    log.info("%s %dx%dx%d: cycle basis of %d cycles, loops for %d lengths from %d trajectories in %.1f s",
             lattice.kind, lattice.n, lattice.n, lattice.n, len(basis), len(lengths), loop_set.trajectories,
             time.perf_counter() - t0)
    for length, status in loop_set.status.items():
        if status != "ok":
            log.warning("L = %d: %s", length, status)
    t0 = time.perf_counter()
    per_loop = loop_energy_sums(models, lattice, loop_set, composition, loops_cfg["loop_species"],
                                loops_cfg["seed"])
    log.info("E_net of %d loops x %d models in %.1f s", len(per_loop) // max(len(models), 1), len(models),
             time.perf_counter() - t0)
    summary = drift_summary(per_loop, loop_set, list(models))
    summary.to_csv(out_table, index=False)
    stored = per_loop.assign(E_net_members=[list(map(float, v)) for v in per_loop["E_net_members"]])
    stored.to_parquet(out_loops, index=False)
    loop_drift_figure(summary, out_figure)
    return summary


def markov_start(lattice: Lattice, species: list[str], markov_cfg: Mapping[str, Any], seed: int) -> np.ndarray:
    """Starting occupation of the chain: host everywhere, ``n_solutes`` solute atoms and one vacancy, shuffled."""
    host = markov_cfg["host"] or species[0]
    solute = markov_cfg["solute"] or species[-1]
    for key, element in (("host", host), ("solute", solute)):
        if element not in species:
            raise ValueError(f"loops.markov.{key}: {element!r} is not among the model's species {species}")
    n_solutes = int(markov_cfg["n_solutes"])
    if not 0 <= n_solutes <= lattice.n_sites - 2:
        raise ValueError(f"loops.markov.n_solutes: {n_solutes} does not fit a cell of {lattice.n_sites} sites")
    occ = np.full(lattice.n_sites, species.index(host), dtype=np.int8)
    occ[1:1 + n_solutes] = species.index(solute)
    occ[0] = VACANCY
    return np.random.default_rng(seed).permutation(occ).astype(np.int8)


def markov_fractions(lattice_sites: int, species: list[str], markov_cfg: Mapping[str, Any]) -> dict[str, float]:
    """Atomic fractions of the chain's cell (for Vegard's law)."""
    host = markov_cfg["host"] or species[0]
    solute = markov_cfg["solute"] or species[-1]
    n_atoms = lattice_sites - 1
    x = int(markov_cfg["n_solutes"]) / n_atoms
    return {host: 1.0 - x, solute: x} if host != solute else {host: 1.0}


def markov_check_step(model_dirs: Mapping[str, str | Path], kra_dir, events_path, dataset_json,
                      loops_cfg: Mapping[str, Any], device: str, out_csv, out_md) -> pd.DataFrame:
    """The exact Markov-chain check of every dE model with the KRA model: CSV and Markdown table."""
    dev = resolve_device(device, "models.device")
    models = load_models(model_dirs, dev)
    kra = load_models({"KRA": kra_dir}, dev)["KRA"]
    species = common_species({**models, "KRA": kra})
    cfg = loops_cfg["markov"]
    events = pd.read_parquet(events_path, columns=["lattice"])
    n_sites = Lattice(str(events["lattice"].iloc[0]), int(cfg["supercell"]), 1.0).n_sites
    lattice = dataset_lattice(events_path, dataset_json, markov_fractions(n_sites, species, cfg), cfg["supercell"])
    space = enumerate_states(lattice, markov_start(lattice, species, cfg, loops_cfg["seed"]))
    log.info("Markov chain on %s %dx%dx%d: %d states, %d jumps", lattice.kind, lattice.n, lattice.n, lattice.n,
             space.n_states, space.n_jumps)
    table = markov_check(models, kra, lattice, space, cfg["temperature"], cfg["attempt_frequency"])
    table.insert(1, "cell", f"{lattice.kind} {lattice.n}x{lattice.n}x{lattice.n}, "
                            f"{cfg['n_solutes']} solute(s), 1 vacancy")
    table.to_csv(out_csv, index=False)
    Path(out_md).write_text(table.to_markdown(index=False, floatfmt=".3g") + "\n", encoding="utf-8")
    for row in table.itertuples():
        log.info("%s: max relative flux imbalance %.3g, net flux fraction %.3g", row.model,
                 row.max_rel_flux_imbalance, row.net_flux_fraction)
    return table

