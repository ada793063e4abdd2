"""Stage 1 as file-to-file steps: lattice constants, sampling, NEB shards, collection.

Each function is what one Snakemake rule does; the workflow scripts only
unpack ``snakemake.input/output/params`` and call these.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import ase
import ase.io
import numpy as np
import pandas as pd

from dbkmc.core.composition import vegard_lattice_parameter
from dbkmc.neb.events import EventSettings, event_geometry, run_event
from dbkmc.neb.cell import EnginePool
from dbkmc.neb.lammps_env import lammps_version
from dbkmc.neb.lattice_constants import measure_end_members
from dbkmc.neb.cineb import NEBSettings
from dbkmc.neb.potentials import Potential
from dbkmc.core.io import write_json
from dbkmc.core.provenance import code_provenance
from dbkmc.neb.qc import REASONS, summarize
from dbkmc.core.sampling import dataset_species, read_events, sample_events, shard_of, write_events
from dbkmc.stages.dataset_extend import extend_table, read_base

log = logging.getLogger(__name__)

FRAMES = ("A_ideal", "B_ideal", "A_relaxed", "B_relaxed", "saddle")


def species_of(dataset_cfg: Mapping, potential_cfg: Mapping) -> list[str]:
    return dataset_species(dataset_cfg["compositions"], potential_cfg["elements"])


def lattice_constants_step(potential_name: str, potential_cfg: Mapping, species: Sequence[str],
                           lattice_kind: str, ftol: float, out: str | Path) -> dict:
    """Measure the end-member lattice parameters of ``species`` with the potential."""
    pot = Potential.from_config(potential_name, potential_cfg)
    values = measure_end_members(pot, species, lattice_kind, ftol=ftol)
    log.info("end-member lattice parameters (%s, %s): %s", potential_name, lattice_kind, values)
    write_json({"potential": pot.provenance(), "lattice": lattice_kind, "a": values}, out)
    return values


def sample_events_step(dataset: str, dataset_cfg: Mapping, potential_cfg: Mapping,
                       lattice_constants_path: str | Path, out: str | Path) -> list[dict]:
    """Sample the events of one dataset (Vegard lattice parameter per composition)."""
    end_members = json.loads(Path(lattice_constants_path).read_text())["a"]
    a = {label: vegard_lattice_parameter(fr, end_members) for label, fr in dataset_cfg["compositions"].items()}
    events = sample_events(
        dataset, lattice_kind=dataset_cfg["lattice"], supercell=dataset_cfg["supercell"],
        mode=dataset_cfg["mode"], compositions=dataset_cfg["compositions"],
        n_events=dataset_cfg["n_events"], seed=dataset_cfg["seed"],
        species=species_of(dataset_cfg, potential_cfg), lattice_parameters=a)
    write_events(events, out)
    log.info("sampled %d events for dataset %s", len(events), dataset)
    return events


def event_settings(neb_cfg: Mapping, qc_cfg: Mapping) -> EventSettings:
    neb = NEBSettings(n_images=neb_cfg["n_images"], spring=neb_cfg["spring"], ftol=neb_cfg["ftol"],
                      max_iter=neb_cfg["max_iter"], climb=neb_cfg["climb"])
    return EventSettings(neb=neb, relax_ftol=neb_cfg["relax_ftol"], relax_max_iter=neb_cfg["relax_max_iter"],
                         max_displacement=qc_cfg["max_displacement"])


# The frames whose potential energy the dataset holds: frame -> events.parquet column (eV).
FRAME_ENERGIES = {"A_relaxed": "E_A", "B_relaxed": "E_B", "saddle": "E_saddle"}


def structures_to_atoms(event: Mapping, structures: Mapping[str, np.ndarray]) -> list[ase.Atoms]:
    """Frames of one event as ASE atoms (extxyz), each tagged with event_id and frame name.

    ``event`` is the event's row (:func:`dbkmc.neb.events.run_event`): the relaxed end states
    and the saddle carry their potential energy as ``info["energy_eV"]`` (E_A, E_B,
    E_saddle; not ``energy``, which ASE would move into a calculator). The ideal frames
    were never evaluated and carry none.
    """
    geo = event_geometry(event)
    symbols = [event["species"].split(",")[t - 1] for t in geo.types]
    frames = []
    for name in FRAMES:
        if name in structures:
            atoms = ase.Atoms(symbols, positions=structures[name], cell=np.diag(geo.lattice.box), pbc=True)
            atoms.info.update(event_id=event["event_id"], frame=name)
            energy = event.get(FRAME_ENERGIES.get(name, ""))
            if energy is not None and np.isfinite(energy):
                atoms.info["energy_eV"] = float(energy)
            frames.append(atoms)
    return frames


def neb_shard_step(events_path: str | Path, shard: int, n_shards: int, potential_name: str,
                   potential_cfg: Mapping, neb_cfg: Mapping, qc_cfg: Mapping,
                   out_table: str | Path, out_structures: str | Path, progress: bool = False) -> pd.DataFrame:
    """Run every event of one shard; write all rows (accepted and rejected) and structures."""
    events = shard_of(read_events(events_path), shard, n_shards)
    settings = event_settings(neb_cfg, qc_cfg)
    rows, frames = [], []
    if events:
        species = events[0]["species"].split(",")
        pool = EnginePool(Potential.from_config(potential_name, potential_cfg), species, settings.neb.n_images)
        try:
            for i, event in enumerate(events):
                row, structures = run_event(event, pool, settings)
                rows.append(row)
                frames.extend(structures_to_atoms(row, structures))
                log.info("[%d/%d] %s %s %s", i + 1, len(events), event["event_id"], row["status"], row["reject_reason"])
        finally:
            pool.close()
    table = pd.DataFrame(rows)
    table.to_parquet(out_table, index=False)
    ase.io.write(out_structures, frames, format="extxyz")
    return table


def collect_step(shard_tables: Sequence[str | Path], shard_structures: Sequence[str | Path],
                 provenance: Mapping, out_events: str | Path, out_rejects: str | Path,
                 out_summary: str | Path, out_structures: str | Path, out_meta: str | Path,
                 extends: str | Path | None = None) -> dict:
    """Merge shards: accepted events, the rejects table, the QC summary and dataset.json.

    ``extends``: an earlier run's folder whose rows replace the recomputed ones
    (:mod:`dbkmc.stages.dataset_extend`); the structures file keeps this run's geometries."""
    tables = [pd.read_parquet(p) for p in shard_tables]
    table = pd.concat([t for t in tables if len(t)], ignore_index=True) if any(len(t) for t in tables) else pd.DataFrame()
    if len(table):
        table = table.sort_values("event_id", kind="stable").reset_index(drop=True)
    extended = None
    if extends is not None:
        table, extended = extend_table(read_base(extends), table,
                                       key=f"datasets.{provenance.get('dataset', '<name>')}.extends")
    accepted = table[table["status"] == "accepted"] if len(table) else table
    rejected = table[table["status"] == "rejected"] if len(table) else table
    accepted.to_parquet(out_events, index=False)
    rejected.to_parquet(out_rejects, index=False)
    summary = summarize(table.to_dict("records"))
    summary["reason_descriptions"] = REASONS
    if extended is not None:
        summary["extends"] = {"folder": str(extends), **extended}
    write_json(summary, out_summary)
    with open(out_structures, "w", encoding="utf-8") as out:
        for path in shard_structures:
            with open(path, encoding="utf-8") as fh:
                shutil.copyfileobj(fh, out)
    meta = dict(provenance)
    meta.update(lammps_version=lammps_version(), code=code_provenance(), counts=summary)
    write_json(meta, out_meta)
    log.info("dataset: %d accepted, %d rejected", summary["n_accepted"], summary["n_rejected"])
    return summary


REQUIRED_COLUMNS = ("event_id", "composition", "occupation", "vacancy_site", "hop_site", "path",
                    "lattice", "supercell", "a", "species", "E_A", "E_B", "E_saddle", "dE", "E_KRA")
ENERGY_TOLERANCE = 1e-6
"""eV: an imported dE must equal E_B - E_A, and E_KRA equal E_saddle - (E_A + E_B)/2, to this (absolute)."""


def _named(ids, what: str, shown: int = 5) -> str:
    ids = [str(i) for i in ids]
    more = f", ... ({len(ids)} in all)" if len(ids) > shown else ""
    return f"{what} in {len(ids)} event(s): {', '.join(ids[:shown])}{more}"


def import_problems(events: pd.DataFrame) -> list[str]:
    """What is wrong with an imported events table, each problem naming its events (empty: none).

    Checks: required columns; unique event ids; every row accepted (where there is a
    ``status``); finite energies; dE = E_B - E_A and E_KRA = E_saddle - (E_A + E_B)/2
    within :data:`ENERGY_TOLERANCE`; a known lattice and a supercell >= 1; an
    occupation string of one digit per site (0..S-1 for the S species) with its one
    vacancy at ``vacancy_site``; ``hop_site`` a first neighbour of it.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in events.columns]
    if missing:
        return [f"missing columns {missing}"]
    problems = []
    ids = events["event_id"].astype(str)
    dup = ids[ids.duplicated(keep=False)].unique()
    if len(dup):
        problems.append(_named(dup, "duplicate event_id"))
    if "status" in events.columns:
        not_accepted = events["status"].astype(str) != "accepted"
        if not_accepted.any():
            problems.append(_named(ids[not_accepted], "status is not 'accepted' (rejected rows belong in "
                                                     "rejects.parquet)"))
    energies = events[["E_A", "E_B", "E_saddle", "dE", "E_KRA"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    finite = np.isfinite(energies).all(axis=1)
    if not finite.all():
        problems.append(_named(ids[~finite], "non-finite or non-numeric energies"))
    e_a, e_b, e_s, d_e, kra = energies.T
    with np.errstate(invalid="ignore"):
        bad_de = finite & ~(np.abs(d_e - (e_b - e_a)) <= ENERGY_TOLERANCE)
        bad_kra = finite & ~(np.abs(kra - (e_s - 0.5 * (e_a + e_b))) <= ENERGY_TOLERANCE)
    if bad_de.any():
        problems.append(_named(ids[bad_de], f"dE differs from E_B - E_A by more than {ENERGY_TOLERANCE:g} eV"))
    if bad_kra.any():
        problems.append(_named(ids[bad_kra], f"E_KRA differs from E_saddle - (E_A + E_B)/2 by more than "
                                             f"{ENERGY_TOLERANCE:g} eV"))
    problems.extend(_site_problems(events, ids))
    return problems


def _site_problems(events: pd.DataFrame, ids: pd.Series) -> list[str]:
    from dbkmc.core.lattice import Lattice
    from dbkmc.core.sampling import VACANCY_CHAR

    bad: dict[str, list[str]] = {}
    lattices: dict[tuple[str, int], Lattice] = {}
    for eid, kind, n, occ, vac, hop, species in zip(
            ids, events["lattice"], events["supercell"], events["occupation"], events["vacancy_site"],
            events["hop_site"], events["species"], strict=True):
        try:
            n, vac, hop = int(n), int(vac), int(hop)
        except (TypeError, ValueError):
            bad.setdefault("supercell, vacancy_site or hop_site is not an integer", []).append(eid)
            continue
        if kind not in ("fcc", "bcc") or n < 1:
            bad.setdefault("unknown lattice or supercell < 1", []).append(eid)
            continue
        if (kind, n) not in lattices:
            lattices[kind, n] = Lattice(kind, n, 1.0)  # neighbours only: a does not matter
        lat = lattices[kind, n]
        if not (0 <= vac < lat.n_sites and 0 <= hop < lat.n_sites):
            bad.setdefault(f"vacancy_site or hop_site outside the {lat.n_sites} sites", []).append(eid)
            continue
        n_species = len(str(species).split(","))
        digits = set(map(str, range(min(n_species, 10))))
        if not isinstance(occ, str) or len(occ) != lat.n_sites or occ.count(VACANCY_CHAR) != 1 \
                or not set(occ) <= digits | {VACANCY_CHAR}:
            bad.setdefault(f"occupation is not one digit 0..S-1 per site with one vacancy "
                           f"'{VACANCY_CHAR}'", []).append(eid)
            continue
        if occ[vac] != VACANCY_CHAR:
            bad.setdefault("the vacancy is not at vacancy_site", []).append(eid)
        elif hop not in lat.neighbors[vac]:
            bad.setdefault("hop_site is not a first neighbour of vacancy_site", []).append(eid)
    return [_named(v, k) for k, v in bad.items()]


def import_step(source: str | Path, out_events: str | Path, out_rejects: str | Path,
                out_summary: str | Path, out_structures: str | Path, out_meta: str | Path) -> dict:
    """Take a dataset made elsewhere (events.parquet, optional rejects/structures/dataset.json)."""
    src = Path(source)
    events = pd.read_parquet(src / "events.parquet")
    problems = import_problems(events)
    if problems:
        raise ValueError(f"source {src}/events.parquet is not a consistent dataset:\n  " + "\n  ".join(problems))
    log.info("source %s/events.parquet: %d events pass the import checks", src, len(events))
    events.to_parquet(out_events, index=False)
    rejects = src / "rejects.parquet"
    (pd.read_parquet(rejects) if rejects.exists() else events.iloc[:0]).to_parquet(out_rejects, index=False)
    structures = src / "structures.extxyz"
    if structures.exists():
        shutil.copyfile(structures, out_structures)
    else:
        Path(out_structures).write_text("")
    meta = json.loads((src / "dataset.json").read_text()) if (src / "dataset.json").exists() else {}
    meta["imported_from"] = str(src)
    meta["imported_by"] = code_provenance()
    summary = meta.get("counts") or {"n_events": len(events), "n_accepted": len(events), "n_rejected": 0}
    write_json(summary, out_summary)
    write_json(meta, out_meta)
    return summary
