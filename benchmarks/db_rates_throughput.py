#!/usr/bin/env python3
"""Cost of the detailed-balance rate model's barriers, per vacancy (= per kMC jump with one vacancy).

One barrier evaluation of a vacancy gives the barriers of its z jump paths:
the Kolmogorov fingerprints of A and of the z final states, the z pairs of
transition-wise fingerprints, the M_KOL state energies and the KRA energies
(:class:`dbkmc.kmc.rates.detailed_balance.DetailedBalanceRateModel`). With one vacancy per
trajectory a kMC jump needs exactly one such evaluation, so "per vacancy" is
"per jump".

Ways timed, on random Cu-Ni fcc configurations:

- ``lattice tables``: ``model.barriers`` (precomputed AEV tables, one vacancy
  per trajectory, T trajectories per call), split into fingerprints and networks;
- ``general featurizer``: the same barriers through the model stage's path,
  :func:`dbkmc.detailed_balance.fingerprints.featurize_events` on the z events of each vacancy
  and ``Ensemble.predict`` (the reference the tables replace);
- size check: one trajectory's cost per jump on cells of 864 to 256,000 sites
  (nothing in a barrier evaluation scans the lattice);
- ``kMC``: jumps/s of :mod:`dbkmc.kmc.engine` with this rate model, when the engine is
  importable.

The cost depends on the architecture, not on the weights: with ``--models DIR``
(holding ``M_KOL/`` and ``KRA/`` checkpoints) the trained ensembles are used,
otherwise untrained ones of the default architecture (10 members, hidden
[128, 64], default AEV parameters).

Run with dbkmc importable (``make .venv``, or ``PYTHONPATH=src``)::

    python benchmarks/db_rates_throughput.py
    python benchmarks/db_rates_throughput.py --models results/models_demo/models --device cuda
    python benchmarks/db_rates_throughput.py --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from results_md import torch_machine_description, update_results_md

from dbkmc.detailed_balance.fingerprints import AEVParams, featurize_events
from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.models import Ensemble, barrier, build_model
from dbkmc.kmc.rates.detailed_balance import DetailedBalanceRateModel, load_detailed_balance
from dbkmc.core.sampling import occupation_to_str

SPECIES = ("Cu", "Ni")
A_CUNI = 3.58


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: str, min_time: float = 1.0, min_reps: int = 3) -> float:
    """Seconds per call (one warm-up call, then repeat until ``min_time`` has passed)."""
    fn()
    _sync(device)
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_time:
        fn()
        reps += 1
    _sync(device)
    return (time.perf_counter() - start) / reps


def build(models: Path | None, lattice: Lattice, members: int, device: str) -> tuple[DetailedBalanceRateModel, str]:
    if models is not None:
        model = load_detailed_balance(str(models / "M_KOL"), str(models / "KRA"), lattice, SPECIES, device)
        return model, f"trained ensembles from `{models}` ({model.kol.n_members} members, hidden " \
                      f"{model.kol.arch()['hidden']})"
    params = AEVParams()
    dim = params.dim(len(SPECIES))
    torch.manual_seed(0)
    kol = Ensemble([build_model("M_KOL", dim, (128, 64), 0.05).eval() for _ in range(members)])
    kra = Ensemble([build_model("KRA", dim, (128, 64), 0.05).eval() for _ in range(members)])
    if device != "cpu":
        kol = Ensemble.from_stacked(kol.base, {k: v.to(device) for k, v in kol.params.items()},
                                    {k: v.to(device) for k, v in kol.buffers.items()})
        kra = Ensemble.from_stacked(kra.base, {k: v.to(device) for k, v in kra.params.items()},
                                    {k: v.to(device) for k, v in kra.buffers.items()})
    model = DetailedBalanceRateModel(kol, kra, params, lattice, SPECIES, device)
    return model, f"untrained ensembles, {members} members, hidden [128, 64], default AEV parameters"


def random_state(lattice: Lattice, n: int, seed: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    digits = rng.integers(1, 3, size=(n, lattice.n_sites))
    vac = rng.integers(0, lattice.n_sites, size=n)
    digits[np.arange(n), vac] = 0
    return torch.as_tensor(digits, device=device), torch.as_tensor(vac, device=device).reshape(n, 1)


def time_tables(model: DetailedBalanceRateModel, batches: Sequence[int], device: str) -> list[dict]:
    rows = []
    for t in batches:
        digits, vac = random_state(model.lattice, t, seed=t, device=device)
        total = timed(lambda: model.barriers(digits, vac), device)
        fps = timed(lambda: model.aev.jump_fingerprints(digits, vac), device)
        rows.append({"T": t, "total": total, "fingerprints": fps})
    return rows


def time_sizes(model: DetailedBalanceRateModel, sizes: Sequence[int], device: str) -> list[dict]:
    """One trajectory, ms per vacancy against cell size (the model is rebuilt on each lattice)."""
    rows = []
    for n in sizes:
        lat = Lattice(model.lattice.kind, n, model.lattice.a)
        m = DetailedBalanceRateModel(model.kol, model.kra, model.params, lat, model.species, device)
        digits, vac = random_state(lat, 1, seed=n, device=device)
        rows.append({"n": n, "sites": lat.n_sites, "per": timed(lambda: m.barriers(digits, vac), device)})
    return rows


def time_general(model: DetailedBalanceRateModel, n_vacancies: int) -> float:
    """Seconds per vacancy through featurize_events + Ensemble.predict (CPU featurizer)."""
    lat = model.lattice
    digits, vac = random_state(lat, n_vacancies, seed=99, device="cpu")
    events = [{"occupation": occupation_to_str(digits[t].numpy() - 1), "vacancy_site": int(vac[t, 0]),
               "hop_site": int(lat.neighbors[int(vac[t, 0]), k]), "lattice": lat.kind, "supercell": lat.n,
               "a": lat.a, "species": ",".join(SPECIES)} for t in range(n_vacancies) for k in range(model.z)]

    def run() -> torch.Tensor:
        fps = featurize_events(events, model.params, model.device, species=list(SPECIES))  # float64, as stored
        fps = {k: v.to(model.dtype) for k, v in fps.items()}
        d_e = model.kol.predict(fps["KOL_A"], fps["KOL_B"]).mean
        return barrier(model.kra.predict(fps["TW_A"], fps["TW_B"]).mean, d_e)

    ref = run().reshape(n_vacancies, model.z)
    got = model.barriers(digits.to(model.device), vac.to(model.device))[:, 0].cpu()
    err = float((ref.cpu() - got).abs().max())
    if err > 1e-5:
        raise AssertionError(f"lattice tables and general featurizer disagree by {err:.2e} eV")
    return timed(run, str(model.device)) / n_vacancies


def time_kmc(model: DetailedBalanceRateModel, batches: Sequence[int], jumps: int, device: str) -> list[dict]:
    try:
        from dbkmc.kmc.engine import KMC
    except ImportError:
        return []
    rows = []
    for t in batches:
        digits, _ = random_state(model.lattice, 1, seed=5, device=device)
        temps = np.linspace(600.0, 1200.0, t) if t > 1 else np.array([900.0])
        sim = KMC(model, digits[0], temps, seed=1, device=device)
        sim.run(10)
        _sync(device)
        start = time.perf_counter()
        sim.run(jumps)
        _sync(device)
        wall = time.perf_counter() - start
        rows.append({"T": t, "jumps": jumps * t, "wall": wall})
    return rows


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def markdown_section(date: str, command: str, device: str, model_text: str, lattice: Lattice,
                     tables: list[dict], general: float | None, kmc: list[dict], load: str,
                     z: int, windows: str, sizes: list[dict]) -> str:
    lines = [
        f"## Detailed-balance rate model: barrier cost per jump, {date}", "",
        f"- Machine: {torch_machine_description(device)}; device `{device}`",
        f"- Command: `{command}`",
        f"- Model: E_b = E_KRA + (E_B - E_A)/2, M_KOL + KRA, {model_text}",
        f"- Lattice: Cu-Ni fcc {lattice.n}x{lattice.n}x{lattice.n} ({lattice.n_sites} sites), one vacancy per "
        f"trajectory; one evaluation = the {z} barriers of one vacancy = one kMC jump; {windows}",
        "- Fingerprints are contracted in float64 and rounded to the ensembles' float32, as in the model stage",
        f"- Timings are wall-clock (1-min load average {load}; the machine is shared, so these are lower bounds)", "",
        "| way | trajectories per call | ms per vacancy (jump) | of which fingerprints | vacancies/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in tables:
        per = r["total"] / r["T"]
        lines.append(f"| lattice tables | {r['T']} | {per * 1e3:.3f} | {r['fingerprints'] / r['T'] * 1e3:.3f} "
                     f"| {1.0 / per:,.0f} |")
    if general is not None:
        lines.append(f"| general featurizer + Ensemble.predict | batch | {general * 1e3:.3f} | | {1.0 / general:,.0f} |")
    lines.append("")
    if general is not None and tables:
        best = min(r["total"] / r["T"] for r in tables)
        lines += [f"Lattice tables against the general featurizer: **{general / best:.1f}x** faster per jump "
                  f"(best batch).", ""]
    if sizes:
        lines += ["Per-jump cost against cell size (one trajectory):", "",
                  "| sites | ms per vacancy (jump) |", "|---:|---:|"]
        lines += [f"| {r['sites']:,} | {r['per'] * 1e3:.3f} |" for r in sizes]
        lines.append("")
    if kmc:
        lines += ["| kMC with the DB model | trajectories | jumps | wall [s] | jumps/s (total) |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| dbkmc.kmc.engine | {r['T']} | {r['jumps']} | {r['wall']:.2f} | {r['jumps'] / r['wall']:,.0f} |"
                  for r in kmc]
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--models", type=Path, default=None, help="folder with M_KOL/ and KRA/ checkpoints")
    p.add_argument("--members", type=int, default=10, help="members of the untrained ensembles")
    p.add_argument("--n", type=int, default=10, help="supercell edge (conventional cells)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256])
    p.add_argument("--general-vacancies", type=int, default=32, help="0 skips the general-featurizer row")
    p.add_argument("--sizes", type=int, nargs="*", default=[6, 20, 40], help="cell edges for the size check")
    p.add_argument("--kmc-batches", type=int, nargs="*", default=[1, 20])
    p.add_argument("--kmc-jumps", type=int, default=500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--results-md", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    lattice = Lattice("fcc", args.n, A_CUNI)
    model, model_text = build(args.models, lattice, args.members, args.device)
    windows = (f"windows of {model.aev.kol.n_slots} (Kolmogorov) and {model.aev.tw.n_slots} (transition-wise) "
               f"sites, D = {model.aev.dim}")
    load_before = _load_average()
    tables = time_tables(model, args.batches, args.device)
    general = time_general(model, args.general_vacancies) if args.general_vacancies > 0 else None
    sizes = time_sizes(model, args.sizes, args.device) if args.sizes else []
    kmc = time_kmc(model, args.kmc_batches, args.kmc_jumps, args.device) if args.kmc_batches else []
    load = f"{load_before} before, {_load_average()} after"
    print(f"{model_text}; {windows}")
    for r in tables:
        print(f"T={r['T']:5d}: {r['total'] / r['T'] * 1e3:8.3f} ms/vacancy "
              f"(fingerprints {r['fingerprints'] / r['T'] * 1e3:.3f} ms)")
    if general is not None:
        print(f"general featurizer: {general * 1e3:8.3f} ms/vacancy")
    for r in sizes:
        print(f"{r['sites']:9,d} sites: {r['per'] * 1e3:8.3f} ms/vacancy")
    for r in kmc:
        print(f"kMC T={r['T']}: {r['jumps'] / r['wall']:,.0f} jumps/s")
    if args.results_md is not None:
        date = dt.date.today().isoformat()
        command = "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        update_results_md(args.results_md, "db_rates_throughput", date,
                          markdown_section(date, command, args.device, model_text, lattice, tables, general, kmc,
                                           load, model.z, windows, sizes))
        print(f"wrote a section to {args.results_md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
