"""One vacancy-jump event through LAMMPS: relax A and B, CI-NEB, energetics, QC."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dbkmc.neb.cell import EnginePool, LammpsCell, Relaxation, unwrap_like
from dbkmc.core.lattice import Lattice
from dbkmc.neb.cineb import NEBSettings, climbing_image_neb
from dbkmc.neb.qc import qc_reasons
from dbkmc.core.sampling import VACANCY, occupation_from_str


@dataclass(frozen=True)
class EventGeometry:
    """Ideal-lattice end states of an event; atom j sits on lattice site ``sites[j]`` in A."""

    lattice: Lattice
    sites: np.ndarray
    types: np.ndarray        # LAMMPS types, 1-based
    positions_A: np.ndarray
    positions_B: np.ndarray  # the hopping atom moved onto the vacancy (unwrapped)
    hop_atom: int


def event_geometry(event: Mapping) -> EventGeometry:
    lattice = Lattice(event["lattice"], int(event["supercell"]), float(event["a"]))
    occ = occupation_from_str(event["occupation"])
    if len(occ) != lattice.n_sites:
        raise ValueError(f"occupation: {len(occ)} sites, lattice has {lattice.n_sites}")
    vac, hop = int(event["vacancy_site"]), int(event["hop_site"])
    if occ[vac] != VACANCY or np.count_nonzero(occ == VACANCY) != 1:
        raise ValueError(f"occupation: event {event['event_id']} needs exactly one vacancy, at vacancy_site")
    if hop not in lattice.neighbors[vac]:
        raise ValueError(f"hop_site: {hop} is not a first neighbour of vacancy_site {vac}")
    sites = np.flatnonzero(occ != VACANCY)
    pos_a = lattice.positions[sites]
    hop_atom = int(np.searchsorted(sites, hop))
    pos_b = pos_a.copy()
    pos_b[hop_atom] += lattice.minimum_image(lattice.positions[vac] - lattice.positions[hop])
    return EventGeometry(lattice, sites, occ[sites] + 1, pos_a, pos_b, hop_atom)


@dataclass(frozen=True)
class EventSettings:
    neb: NEBSettings
    relax_ftol: float = 1e-3
    relax_max_iter: int = 10000
    max_displacement: float = 1.0


def _max_displacement(lattice: Lattice, relaxed: np.ndarray, ideal: np.ndarray) -> float:
    return float(np.sqrt((lattice.minimum_image(relaxed - ideal) ** 2).sum(axis=1)).max())


def run_event(event: Mapping, pool: EnginePool, settings: EventSettings) -> tuple[dict, dict]:
    """Compute one event. Returns (row, structures); the row says accepted or rejected and why.

    ``structures`` maps a frame name (A_ideal, B_ideal, A_relaxed, B_relaxed,
    saddle) to positions, for the extxyz output.
    """
    t0 = time.perf_counter()
    geo = event_geometry(event)
    row: dict = dict(event)
    structures = {"A_ideal": geo.positions_A, "B_ideal": geo.positions_B}
    try:
        cells = pool.cells(geo.lattice.box, geo.types, geo.positions_A)
        relax_a = cells[0].minimize(geo.positions_A, settings.relax_ftol, settings.relax_max_iter)
        relax_b = cells[0].minimize(geo.positions_B, settings.relax_ftol, settings.relax_max_iter)
        end_b = unwrap_like(relax_b.positions, relax_a.positions, geo.lattice.box)
        image_cells: list[LammpsCell] = cells[1:]
        neb = climbing_image_neb(lambda i, x: image_cells[i - 1].energy_forces(x),
                                 relax_a.positions, end_b, relax_a.energy, relax_b.energy, settings.neb)
    except Exception as exc:  # LAMMPS errors surface as generic exceptions
        row.update(_failed_row(exc))
    else:
        row.update(_energetics(geo, relax_a, relax_b, neb))
        structures.update(A_relaxed=relax_a.positions, B_relaxed=end_b, saddle=neb.images[neb.climb_index])
    row["wall_time_s"] = time.perf_counter() - t0
    reasons = qc_reasons(row, settings.max_displacement)
    row["status"] = "rejected" if reasons else "accepted"
    row["reject_reason"] = ";".join(reasons)
    return row, structures


def _energetics(geo: EventGeometry, relax_a: Relaxation, relax_b: Relaxation, neb) -> dict:
    e_a, e_b, e_s = relax_a.energy, relax_b.energy, neb.saddle_energy
    return {
        "E_A": e_a, "E_B": e_b, "E_saddle": e_s,
        "dE": e_b - e_a,
        "E_KRA": e_s - 0.5 * (e_a + e_b),
        "barrier_forward": e_s - e_a,
        "barrier_backward": e_s - e_b,
        "image_energies": [float(e) for e in neb.energies],
        "climb_index": neb.climb_index,
        "neb_iterations": neb.n_iter,
        "neb_max_force": neb.max_force,
        "neb_converged": neb.converged,
        "relax_A_converged": relax_a.converged,
        "relax_B_converged": relax_b.converged,
        "relax_A_iterations": relax_a.n_iter,
        "relax_B_iterations": relax_b.n_iter,
        "max_displacement_A": _max_displacement(geo.lattice, relax_a.positions, geo.positions_A),
        "max_displacement_B": _max_displacement(geo.lattice, relax_b.positions, geo.positions_B),
        "engine_error": "",
    }


def _failed_row(exc: Exception) -> dict:
    nan = float("nan")
    return {
        "E_A": nan, "E_B": nan, "E_saddle": nan, "dE": nan, "E_KRA": nan,
        "barrier_forward": nan, "barrier_backward": nan, "image_energies": [],
        "climb_index": -1, "neb_iterations": 0, "neb_max_force": nan, "neb_converged": False,
        "relax_A_converged": False, "relax_B_converged": False,
        "relax_A_iterations": 0, "relax_B_iterations": 0,
        "max_displacement_A": nan, "max_displacement_B": nan,
        "engine_error": f"{type(exc).__name__}: {exc}",
    }
