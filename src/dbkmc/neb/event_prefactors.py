"""Vineyard prefactors of one NEB event: rerun it, three Hessians, QC, one row.

The event's row (events.parquet) gives the ideal cell; :func:`~dbkmc.neb.events.run_event`
relaxes A and B again and reruns the CI-NEB with the dataset's settings, and returns the
relaxed A, the relaxed B and the climbing image (``structures["saddle"]``). The recomputed
E_A, E_B and E_saddle must agree with the stored ones within ``energy_tolerance``; then the
local Hessians (:mod:`dbkmc.neb.hessian`) of the three configurations give S_A, S_B,
S_saddle and the prefactors. Every failed check becomes a reason that names it
(:data:`CHECKS`); an event is never dropped silently and no NaN leaves an accepted row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dbkmc.neb.cell import EnginePool
from dbkmc.neb.events import EventSettings, event_geometry, run_event
from dbkmc.neb.hessian import (N_ZERO_FULL, Modes, force_constants, masses_of, normal_modes, region_atoms,
                               sna_sums, vineyard_terms)

STATES = {"A": "A_relaxed", "B": "B_relaxed", "saddle": "saddle"}
"""Column suffix -> frame name of :func:`run_event`'s structures."""
UNSTABLE = {"A": 0, "B": 0, "saddle": 1}
"""Unstable modes each configuration must have (a minimum none, a first-order saddle one)."""
CHECKS = {
    "input": "the event row is not a valid event (non-finite stored energy, hop_site not a neighbour, ...)",
    "neb": "the rerun of relax + CI-NEB was rejected or its energies differ from the stored ones",
    "hessian": "a minimum has an unstable mode or the saddle has not exactly one",
    "non_finite": "a computed prefactor column is NaN or infinite",
}


@dataclass(frozen=True)
class HessianSettings:
    """The ``hessians`` config block as numbers (radius None = the full Hessian)."""

    event: EventSettings
    radius: float | None = 4.0
    displacement: float = 0.01
    negative_tolerance: float = 1e-3
    energy_tolerance: float = 5e-3
    entropy_temperature: float = 1000.0


@dataclass
class EventConfigurations:
    """What the stage needs for descriptors: relaxed positions, the Hessian atoms, types, box."""

    positions: dict[str, np.ndarray] = field(default_factory=dict)
    atoms: np.ndarray | None = None
    types: np.ndarray | None = None
    box: np.ndarray | None = None


def _stored_energy_problem(event: Mapping) -> str:
    for key in ("E_A", "E_B", "E_saddle"):
        try:
            value = float(event[key])
        except (KeyError, TypeError, ValueError):
            return f"input: {key} missing or not a number"
        if not math.isfinite(value):
            return f"input: stored {key} is not finite"
    return ""


def state_modes(pool: EnginePool, geo, positions: Mapping[str, np.ndarray], atoms: np.ndarray,
                species: list[str], settings: HessianSettings, n_zero: int) -> dict[str, Modes]:
    """Normal modes of A, B and the saddle over ``atoms`` (``n_zero`` zero modes removed)."""
    cell = pool.cells(geo.lattice.box, geo.types, geo.positions_A)[0]
    masses = masses_of(geo.types, species)[atoms]
    out = {}
    for state, frame in STATES.items():
        h = force_constants(cell, positions[frame], atoms, settings.displacement)
        out[state] = normal_modes(h, masses, n_zero, settings.negative_tolerance)
    return out


def mode_problems(modes: Mapping[str, Modes], label: str = "hessian") -> list[str]:
    """QC of the modes: a minimum has no unstable mode, the saddle exactly one."""
    problems = []
    for state, modes_x in modes.items():
        n = modes_x.n_negative
        if n != UNSTABLE[state]:
            what = "a minimum, has" if state != "saddle" else "needs exactly 1, has"
            problems.append(f"{label}: {state} ({what} {n} unstable mode{'s' if n != 1 else ''})")
    return problems


def _mode_columns(modes: Mapping[str, Modes], temperature: float) -> dict:
    row = vineyard_terms(modes["A"], modes["B"], modes["saddle"])
    for state in STATES:
        row[f"min_eig_{state}"] = modes[state].min_eigenvalue
        row[f"n_negative_{state}"] = modes[state].n_negative
    row["s_vib_A"] = modes["A"].entropy(temperature)
    row["s_vib_B"] = modes["B"].entropy(temperature)
    return row


def event_prefactors(event: Mapping, pool: EnginePool, settings: HessianSettings,
                     full_check: bool = False) -> tuple[dict, EventConfigurations]:
    """One event's prefactor row (``status`` accepted/rejected, ``reject_reason``) and its configurations.

    With ``full_check`` the full Hessians are computed as well, in the ``*_full`` columns
    (the collect step moves them to local_vs_full.csv).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    row: dict = dict(event)
    configs = EventConfigurations()
    reasons = _checked_event(event, pool, settings, row, configs, full_check)
    if not reasons:
        bad = [k for k, v in row.items() if k not in event and not k.endswith("_full")
               and isinstance(v, float | list) and not np.isfinite(np.asarray(v, dtype=float)).all()]
        reasons = [f"non_finite: {k}" for k in bad]
    row["event_wall_s"] = time.perf_counter() - t0
    row["event_cpu_s"] = time.process_time() - c0  # the cost on a shared machine, where wall time inflates
    row["status"] = "rejected" if reasons else "accepted"
    row["reject_reason"] = "; ".join(reasons)
    return row, configs


def _checked_event(event: Mapping, pool: EnginePool, settings: HessianSettings, row: dict,
                   configs: EventConfigurations, full_check: bool) -> list[str]:
    problem = _stored_energy_problem(event)
    if problem:
        return [problem]
    try:
        geo = event_geometry(event)
    except (ValueError, KeyError, TypeError) as exc:
        return [f"input: {exc}"]
    neb_row, structures = run_event(event, pool, settings.event)
    if neb_row["status"] != "accepted":
        return [f"neb: the rerun was rejected ({neb_row['reject_reason'] or neb_row['engine_error']})"]
    problems = []
    for key in ("E_A", "E_B", "E_saddle"):
        diff = float(neb_row[key]) - float(event[key])
        row[f"recomputed_{key}_diff"] = diff
        if not abs(diff) <= settings.energy_tolerance:
            problems.append(f"neb: recomputed {key} differs from the stored one by {diff:+.4g} eV "
                            f"(tolerance {settings.energy_tolerance:g})")
    if problems:
        return problems
    species = str(event["species"]).split(",")
    lat = geo.lattice
    centres = lat.positions[[int(event["vacancy_site"]), int(event["hop_site"])]]
    atoms = region_atoms(geo.positions_A, centres, lat.minimum_image, settings.radius, must=[geo.hop_atom])
    configs.positions = {f: structures[f] for f in STATES.values()}
    configs.atoms, configs.types, configs.box = atoms, geo.types, lat.box
    t1 = time.perf_counter()
    n_zero = N_ZERO_FULL if len(atoms) == len(geo.types) else 0  # every atom moves: the full Hessian
    modes = state_modes(pool, geo, structures, atoms, species, settings, n_zero)
    row["hessian_wall_s"] = time.perf_counter() - t1
    row["n_hessian_atoms"] = len(atoms)
    problems = mode_problems(modes)
    for state in STATES:
        row[f"min_eig_{state}"] = modes[state].min_eigenvalue
        row[f"n_negative_{state}"] = modes[state].n_negative
    if problems:
        return problems
    row.update(_mode_columns(modes, settings.entropy_temperature))
    cell = pool.cells(lat.box, geo.types, geo.positions_A)[0]
    for state, frame in STATES.items():
        row[f"sna_{state}"] = sna_sums(cell, structures[frame], atoms, geo.types, len(species)).tolist()
    if full_check:
        row.update(_full_columns(pool, geo, structures, species, settings))
    return []


def _full_columns(pool: EnginePool, geo, structures, species, settings: HessianSettings) -> dict:
    """ln nu of the full Hessian (every atom moves, 3 zero modes left out), for the local-vs-full check."""
    t0 = time.perf_counter()
    atoms = np.arange(len(geo.types))
    modes = state_modes(pool, geo, structures, atoms, species, settings, N_ZERO_FULL)
    problems = mode_problems(modes, "hessian(full)")
    out = {"full_wall_s": time.perf_counter() - t0, "full_status": "; ".join(problems) or "ok",
           "max_zero_mode_full": float(max(np.abs(m.zero_modes).max() for m in modes.values()))}
    if problems:
        return out
    terms = vineyard_terms(modes["A"], modes["B"], modes["saddle"])
    out.update({f"{k}_full": v for k, v in terms.items()})
    return out
