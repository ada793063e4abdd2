"""kMC stage steps: build a run from its config block, run it, analyse its outputs.

A run is ``kmc.runs.<name>`` in the config. Its trajectories are every
(temperature, replica) pair; trajectory ``i * replicas + r`` is temperature ``i``,
replica ``r``. All start from one configuration (the structure with
``n_vacancies`` vacancies at seeded random sites) and advance together.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dbkmc.core.composition import exact_counts
from dbkmc.core.io import resolve_device
from dbkmc.core.lattice import Lattice
from dbkmc.core.stencil import Stencil
from dbkmc.kmc import analysis
from dbkmc.kmc.driver import RunHooks, Schedule, log_spaced_steps, remove_checkpoints, run_fingerprint, simulate
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.io import load_final, write_dump_frame
from dbkmc.kmc.rates.base import LocalRateModel, RateModel, build_rate_model

log = logging.getLogger(__name__)


# --- building a run -------------------------------------------------------------


def build_structure(spec: Mapping[str, Any], seed: int, key: str = "structure") -> tuple[Lattice, np.ndarray, list[str]]:
    """The starting lattice, its digits (1..S, no vacancy yet) and the species in digit order.

    Either ``dump`` (a LAMMPS dump of a full cubic supercell; type t is ``species[t-1]``),
    optionally tiled ``repeat`` times per side or ``redraw``-n: a new n x n x n cell
    with the dump's exact composition on random sites; or a random solid solution of
    ``composition`` on a ``lattice`` with ``n`` cells of edge ``a``.
    """
    species = list(spec["species"])
    rng = np.random.default_rng([int(seed), 1])
    if spec.get("dump"):
        from dbkmc.neb.dump import read_dump, to_lattice

        st = to_lattice(read_dump(spec["dump"]), kind=spec.get("lattice"))
        lattice, digits = st.lattice, st.types.astype(np.int64)
        if digits.min() < 1 or digits.max() > len(species):
            raise ValueError(f"{key}.species: the dump has types {sorted(set(digits.tolist()))}, "
                             f"but only {len(species)} species are named")
        repeat = int(spec.get("repeat", 1))
        if repeat > 1:
            big = Lattice(lattice.kind, lattice.n * repeat, lattice.a)
            src = lattice.site_at(big.half_coords % (2 * lattice.n))
            lattice, digits = big, digits[src]
        if spec.get("redraw"):
            counts = np.bincount(digits, minlength=len(species) + 1)[1:]
            big = Lattice(lattice.kind, int(spec["redraw"]), lattice.a)
            fractions = dict(zip(species, counts / counts.sum(), strict=True))
            digits = _random_digits(big, fractions, species, rng)
            lattice = big
        return lattice, digits, species
    for need in ("lattice", "n", "a", "composition"):
        if spec.get(need) is None:
            raise ValueError(f"{key}.{need}: needed when no dump is given")
    lattice = Lattice(spec["lattice"], int(spec["n"]), float(spec["a"]))
    unknown = set(spec["composition"]) - set(species)
    if unknown:
        raise ValueError(f"{key}.composition: {sorted(unknown)} not in {key}.species")
    return lattice, _random_digits(lattice, spec["composition"], species, rng), species


def _random_digits(lattice: Lattice, fractions: Mapping[str, float], species: Sequence[str],
                   rng: np.random.Generator) -> np.ndarray:
    counts = exact_counts(fractions, species, lattice.n_sites)
    return rng.permutation(np.repeat(np.arange(1, len(species) + 1), counts)).astype(np.int64)


def insert_vacancies(digits: np.ndarray, n_vacancies: int, seed: int) -> np.ndarray:
    """A copy with ``n_vacancies`` seeded random sites emptied (digit 0)."""
    if not 1 <= n_vacancies < len(digits):
        raise ValueError(f"n_vacancies: need 1 <= n < {len(digits)}, got {n_vacancies}")
    out = np.array(digits, dtype=np.int64)
    out[np.random.default_rng([int(seed), 2]).choice(len(out), n_vacancies, replace=False)] = 0
    return out


def trajectories(temperatures: Sequence[float], replicas: int) -> pd.DataFrame:
    """One row per trajectory: ``trajectory`` id, ``temperature`` (K), ``replica``."""
    rows = [(i * replicas + r, float(t), r) for i, t in enumerate(temperatures) for r in range(replicas)]
    return pd.DataFrame(rows, columns=["trajectory", "temperature", "replica"])


def schedule(run: Mapping[str, Any]) -> Schedule:
    """Record points: log-spaced from ``record.first`` plus ``record.linear`` evenly spaced; snapshots."""
    n = int(run["n_jumps"])
    rec = run["record"]
    points = {0, n, *log_spaced_steps(int(rec["first"]), n, int(rec["per_decade"]))}
    if rec["linear"] > 0:
        points |= {int(round(v)) for v in np.linspace(0, n, int(rec["linear"]) + 1)}
    snap = run["snapshots"]
    snaps: set[int] = set()
    if snap["count"] > 0:
        if snap["spacing"] == "log":
            snaps = set(log_spaced_steps(max(1, n // 10 ** 3), n, max(1, int(np.ceil(snap["count"] / 3)))))
            snaps = set(sorted(snaps)[-snap["count"]:]) | {n}
        else:
            snaps = {int(round(v)) for v in np.linspace(0, n, int(snap["count"]) + 1)[1:]}
    return Schedule(n, sorted(p for p in points if 0 <= p <= n), sorted(snaps), int(run["checkpoint_every"]))


def build_run(name: str, run: Mapping[str, Any], device: str) -> tuple[KMC, RateModel, pd.DataFrame, Lattice, list[str]]:
    key = f"kmc.runs.{name}"
    lattice, digits, species = build_structure(run["structure"], run["seed"], key=f"{key}.structure")
    dev = resolve_device(device, key="kmc.device")
    model = build_rate_model(run["rate_model"], lattice, species, dev, key=f"{key}.rate_model")
    digits = insert_vacancies(digits, int(run["n_vacancies"]), run["seed"])
    table = trajectories(run["temperatures"], int(run["replicas"]))
    engine = KMC(model, digits, table["temperature"].tolist(), nu=float(run["nu"]), seed=int(run["seed"]),
                 trajectory_ids=table["trajectory"].tolist(), device=dev, block=int(run["block"]),
                 cache=int(run["cache"]))
    return engine, model, table, lattice, species


# --- running ---------------------------------------------------------------------


def observables(engine: KMC, table: pd.DataFrame, lattice: Lattice, species: Sequence[str],
                model: RateModel) -> list[dict]:
    """One row per trajectory: jumps, simulated time, delta_ij, alpha_ij, energy (when defined)."""
    digits = engine.digits.cpu().numpy()
    delta = analysis.delta_ij(digits, lattice, species)
    alpha = analysis.warren_cowley(digits, lattice, species)
    energy = model.energy(engine.digits).cpu().numpy() if model.has_energy else None
    times = engine.time.cpu().numpy()
    rows = []
    for t in range(engine.T):
        row = {"trajectory": int(table.trajectory[t]), "temperature": float(table.temperature[t]),
               "replica": int(table.replica[t]), "jumps": int(engine.step), "time_s": float(times[t])}
        row.update({k: float(v[t]) for k, v in delta.items()})
        row.update({k: float(v[t]) for k, v in alpha.items()})
        if energy is not None:
            row["energy_eV"] = float(energy[t])
        rows.append(row)
    return rows


def kmc_step(name: str, run: Mapping[str, Any], device: str, progress: bool, out: Mapping[str, str | Path],
             work_dir: str | Path, stop_after: int | None = None, progress_file: Any = None) -> None:
    """Rule kmc: run ``kmc.runs.<name>``.

    ``out`` names the outputs: ``timeseries`` (parquet), ``final`` (npz), ``snapshots``
    (a folder of LAMMPS dumps with ``index.csv``) and ``summary`` (json).
    ``work_dir`` holds the checkpoint (written every ``checkpoint_every`` jumps) and the
    snapshots written so far. A rerun with the same parameters on the same device
    resumes from that checkpoint; the folder is removed once the run completes. It is
    not a rule output, so Snakemake leaves it in place when a job is killed.
    """
    work = Path(work_dir)
    staged = work / "snapshots"
    staged.mkdir(parents=True, exist_ok=True)
    engine, model, table, lattice, species = build_run(name, run, device)
    sched = schedule(run)
    fingerprint = run_fingerprint({"run": dict(run), "device": str(engine.device), "T": engine.T})

    def snapshot_name(traj: int, jumps: int) -> str:
        return f"t{traj:03d}_{jumps:011d}.dump"

    def snapshot(eng: KMC) -> None:
        digits = eng.digits.cpu().numpy()
        for t in range(eng.T):
            tmp = staged / (snapshot_name(int(table.trajectory[t]), eng.step) + ".tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                write_dump_frame(fh, lattice, digits[t], species, eng.step)
            tmp.replace(tmp.with_suffix(""))

    hooks = RunHooks(record=lambda eng: observables(eng, table, lattice, species, model), snapshot=snapshot)
    checkpoint = work / "checkpoint.pt"
    t0 = time.perf_counter()
    rows = simulate(engine, sched, hooks, checkpoint=checkpoint if sched.checkpoint_every else None,
                    fingerprint=fingerprint, progress=progress, stop_after=stop_after, progress_file=progress_file)
    wall = time.perf_counter() - t0

    snap_out = Path(out["snapshots"])
    snap_out.mkdir(parents=True, exist_ok=True)
    index = []
    for s in sched.snapshots:
        for t in range(engine.T):
            fname = snapshot_name(int(table.trajectory[t]), s)
            (staged / fname).replace(snap_out / fname)
            index.append({"trajectory": int(table.trajectory[t]), "temperature": float(table.temperature[t]),
                          "replica": int(table.replica[t]), "jumps": s, "file": fname})
    pd.DataFrame(index, columns=["trajectory", "temperature", "replica", "jumps", "file"]).to_csv(
        snap_out / "index.csv", index=False)
    frame = pd.DataFrame(rows).sort_values(["trajectory", "jumps"], kind="stable").reset_index(drop=True)
    frame.to_parquet(out["timeseries"], index=False)
    np.savez_compressed(
        out["final"], digits=engine.digits.cpu().numpy().astype(np.int8),
        vacancies=engine.vacancies.cpu().numpy(), time_s=engine.time.cpu().numpy(), jumps=engine.step,
        trajectory=table.trajectory.to_numpy(), temperature=table.temperature.to_numpy(),
        replica=table.replica.to_numpy(), lattice_kind=lattice.kind, lattice_n=lattice.n, lattice_a=lattice.a,
        species=np.array(species))
    summary = {"run": name, "device": str(engine.device), "trajectories": engine.T, "n_sites": lattice.n_sites,
               "n_vacancies": engine.V, "jumps_per_trajectory": engine.step,
               "wall_s_this_job": round(wall, 3), "rate_model": run["rate_model"]["kind"],
               "has_energy": bool(model.has_energy), "engine_path": engine.path,
               # the model's folders and options (energy, kra, prefactor, ...), so a summary says what ran
               "rate_model_spec": {k: v for k, v in run["rate_model"].items() if k != "kind"},
               "cache_hits": engine.cache_hits}
    Path(out["summary"]).write_text(json.dumps(summary, indent=2) + "\n")
    remove_checkpoints(checkpoint)  # and the one before it
    for leftover in staged.glob("*"):
        leftover.unlink()
    staged.rmdir()
    if not any(work.iterdir()):
        work.rmdir()
    log.info("kMC %s: %d trajectories x %d jumps in %.1f s (%s)", name, engine.T, engine.step, wall, engine.path)


# --- analyses --------------------------------------------------------------------


def site_barriers(model: RateModel, digits: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Barriers ``[n_sites, z]`` with the vacancy placed on each atom site in turn.

    Vacancies already in ``digits`` stay. A site next to one of them (a path into a
    vacancy) or vacant itself gets NaN and ``usable = False``.
    """
    lattice = model.lattice
    d = torch.as_tensor(np.asarray(digits, dtype=np.int64))
    nbr = torch.as_tensor(lattice.neighbors)
    usable = (d != 0) & (d[nbr] != 0).all(1)
    out = torch.full((lattice.n_sites, nbr.shape[1]), float("nan"), dtype=torch.float64)
    sites = torch.nonzero(usable)[:, 0]
    device = getattr(model, "device", None) or torch.device("cpu")
    if isinstance(model, LocalRateModel):
        stencil = Stencil(lattice, model.stencil_offsets)
        for i in range(0, len(sites), chunk):
            s = sites[i : i + chunk]
            local = d[stencil.sites(s)]  # the centre is not in the stencil: its atom is ignored
            out[s] = model.barriers_local(local.to(device)).double().cpu()
    else:
        for i in range(0, len(sites), 256):
            s = sites[i : i + 256]
            rows = d.repeat(len(s), 1)
            rows[torch.arange(len(s)), s] = 0
            out[s] = model.barriers(rows.to(device), s[:, None].to(device))[:, 0].double().cpu()
    e = out.numpy()
    if not np.all(np.isfinite(e[usable.numpy()])):
        raise ValueError("barriers: the rate model returned NaN or inf for a site")
    return e, usable.numpy()


def randomness_step(final: Mapping[str, Any], model: RateModel,
                    initial: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Jump randomness R of every usable site of every trajectory's final configuration, at its T.

    With ``initial`` (the run's starting digits) R is also computed on that
    configuration at every run temperature (``configuration`` = ``initial``), which
    separates what the temperature does to R from what the aging does. Returns the
    per-site table, the per-temperature table (mean R, Var(R), per configuration) and
    the peaks of Var(R) against T.
    """
    species = final["species"]
    jobs = [("final", t, final["digits"][t].astype(np.int64)) for t in range(len(final["trajectory"]))]
    if initial is not None:
        jobs += [("initial", t, np.asarray(initial, dtype=np.int64)) for t in range(len(final["trajectory"]))]
    cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    start = time.perf_counter()
    for i, (config, t, digits) in enumerate(jobs):
        key = (config, t if config == "final" else -1)
        if key not in cache:
            cache[key] = site_barriers(model, digits)
        e, usable = cache[key]
        temp = float(final["temperature"][t])
        log.info("randomness %d/%d: %s configuration of trajectory %d (T = %g K), %d sites, %.1f s",
                 i + 1, len(jobs), config, int(final["trajectory"][t]), temp, int(usable.sum()),
                 time.perf_counter() - start)
        sites = np.flatnonzero(usable)
        rows.append(pd.DataFrame({
            "configuration": config, "trajectory": int(final["trajectory"][t]), "temperature": temp,
            "replica": int(final["replica"][t]), "site": sites,
            "species": np.asarray(species, dtype=object)[digits[sites] - 1],
            "R": analysis.jump_randomness(e[sites], temp),
            "barrier_min_eV": e[sites].min(1), "barrier_mean_eV": e[sites].mean(1)}))
    per_site = pd.concat(rows, ignore_index=True)
    per_t = per_site.groupby(["configuration", "temperature"])["R"].agg(
        mean_R="mean", var_R=lambda x: float(np.var(x, ddof=1)), n_sites="size").reset_index()
    summary = {}
    for config, g in per_t.groupby("configuration"):
        peak = g.loc[g["var_R"].idxmax()]
        prefix = "" if config == "final" else "initial_"
        summary.update({f"{prefix}peak_temperature_K": float(peak["temperature"]),
                        f"{prefix}peak_var_R": float(peak["var_R"])})
    summary["temperatures_K"] = sorted(per_t["temperature"].unique().tolist())
    return per_site, per_t, summary


def randomness_rule_step(name: str, run: Mapping[str, Any], device: str, final_path: str | Path,
                         per_site_out: str | Path, per_t_out: str | Path, summary_out: str | Path) -> None:
    """Rule kmc_randomness: R of every site of every final (and the initial) configuration, Var(R) against T."""
    final = load_final(final_path)
    model = build_rate_model(run["rate_model"], final["lattice"], final["species"],
                             resolve_device(device, key="kmc.device"),
                             key=f"kmc.runs.{name}.rate_model")
    lattice, digits, _ = build_structure(run["structure"], run["seed"], key=f"kmc.runs.{name}.structure")
    initial = insert_vacancies(digits, int(run["n_vacancies"]), run["seed"])
    per_site, per_t, summary = randomness_step(final, model, initial=initial)
    per_site.to_parquet(per_site_out, index=False)
    per_t.rename(columns={"temperature": "temperature_K"}).to_csv(per_t_out, index=False)
    summary.update({"run": name, "jumps_per_trajectory": int(final["jumps"])})
    Path(summary_out).write_text(json.dumps(summary, indent=2) + "\n")
