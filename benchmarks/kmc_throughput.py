#!/usr/bin/env python3
"""kMC throughput of dbkmc.kmc.engine with the published NbMoTa NNK network (jumps per second).

Cases (issue 6 targets in brackets):

single
    One trajectory on ``nbmota_16000.dump`` at 2000 K [>= 1e4 jumps/s on CPU; the
    published engine made ~300 jumps/s on this machine type].
batch20
    The 20 temperatures of the paper sweep (100..3000 K) in one batch on
    ``nbmota_1024.dump`` [>= 5e4 total jumps/s on CPU].
scaling
    One trajectory at 2000 K on bcc cells of 2,000 to 1,024,000 sites (the
    1024-site composition redrawn at random): the cost per jump must not grow with
    the cell.
gpu (only with ``--device cuda``)
    Large batches of trajectories on ``nbmota_1024.dump`` [>= 1e7 total jumps/s],
    and the time the full Fig 3a sweep (20 T x 2e7 jumps) would take.

Each case warms up (TorchScript compilation, caches) before it is timed. Rates are
given per wall second and per CPU second of this process; on a shared machine the
CPU-time rate is the steadier figure. Both engine variants are timed: without and
with the exact barrier cache (``cache`` ring entries per trajectory).

Run with dbkmc importable (``make .venv``)::

    python benchmarks/kmc_throughput.py --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from results_md import update_results_md

from dbkmc.kmc.engine import KMC
from dbkmc.stages.kmc import build_structure
from dbkmc.neb.dump import read_dump, to_lattice
from dbkmc.kmc.rates.base import build_rate_model

SHARED = Path(__file__).resolve().parents[1] / "data" / "nnk_nbmota"
SPECIES = ["Nb", "Mo", "Ta"]
PAPER_T = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800, 2000, 2200, 2400, 2600, 2800,
           3000]
REFERENCE_PACE = 300.0  # jumps/s of the published engine, one trajectory, 16000 sites, 2000 K (shared README)


def model_for(lattice, device):
    spec = {"kind": "nnk_published", "weights": str(SHARED / "weights.npy"), "species": SPECIES}
    return build_rate_model(spec, lattice, SPECIES, device)


def dump_digits(name: str):
    st = to_lattice(read_dump(SHARED / name))
    return st.lattice, st.types.astype(np.int64)


def time_engine(model, digits: np.ndarray, temps: Sequence[float], device, n_jumps: int, warmup: int, cache: int,
                seed: int = 1) -> dict:
    d = digits.copy()
    d[0] = 0
    eng = KMC(model, d, temps, seed=seed, device=device, cache=cache)
    eng.run(warmup)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    eng.run(n_jumps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    total = n_jumps * len(temps)
    return {"jumps": total, "wall_s": wall, "cpu_s": cpu, "per_wall_s": total / wall, "per_cpu_s": total / cpu,
            "us_per_step": 1e6 * wall / n_jumps, "hit_rate": eng.cache_hits / max(1, (warmup + n_jumps) * len(temps)),
            "path": eng.path}


def fmt(v: float) -> str:
    return f"{v:,.0f}"


def run(args: argparse.Namespace) -> str:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows, notes = [], []

    lat16, dig16 = dump_digits("nbmota_16000.dump")
    m16 = model_for(lat16, device)
    for cache in (0, args.cache):
        r = time_engine(m16, dig16, [2000.0], device, args.single_jumps, args.warmup, cache)
        rows.append(("single: 1 trajectory, 16000 sites, 2000 K", cache, r, 1e4))

    lat1k, dig1k = dump_digits("nbmota_1024.dump")
    m1k = model_for(lat1k, device)
    for cache in (0, args.cache):
        r = time_engine(m1k, dig1k, PAPER_T, device, args.batch_jumps, args.warmup, cache)
        rows.append(("batch20: 20 temperatures 100-3000 K, 1024 sites", cache, r, 5e4))

    scaling = []
    for n in args.scaling_cells:
        lat, digits, _ = build_structure({"dump": str(SHARED / "nbmota_1024.dump"), "species": SPECIES, "redraw": n,
                                          "repeat": 1}, seed=0)
        model = model_for(lat, device)
        r = time_engine(model, digits, [2000.0], device, args.scaling_jumps, args.warmup, 0)
        scaling.append((lat.n_sites, r))
        del model, lat, digits

    gpu_rows = []
    if device.type == "cuda":
        for t in args.gpu_batches:
            temps = list(np.resize(np.asarray(PAPER_T, dtype=float), t))
            r = time_engine(m1k, dig1k, temps, device, args.gpu_jumps, args.warmup, 0)
            gpu_rows.append((t, r))
        r20 = time_engine(m1k, dig1k, PAPER_T, device, args.gpu_jumps, args.warmup, 0)
        notes.append(f"Full Fig 3a sweep (20 T x 2e7 jumps, 1024 sites) on {device}: "
                     f"{2e7 * r20['us_per_step'] / 1e6 / 60:.1f} min at the measured 20-trajectory step time.")

    load_after = os.getloadavg()[0]
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    date = datetime.date.today().isoformat()
    lines = [
        f"## kMC throughput (published NbMoTa NNK), {date}",
        "",
        f"- Machine: {dev_name}, nproc={os.cpu_count()}, {platform.platform()}, torch {torch.__version__} "
        f"({args.threads} thread{'s' if args.threads > 1 else ''}); device `{device}`",
        f"- Command: `python benchmarks/kmc_throughput.py {' '.join(sys.argv[1:])}`",
        f"- Engine path: {rows[0][2]['path'].split(', exact')[0]}; 1-min load average {load_before:.2f} before, "
        f"{load_after:.2f} after (the machine is shared: per-CPU-second rates are the steadier figures)",
        f"- Reference pace: the published engine, ~{REFERENCE_PACE:.0f} jumps/s (one trajectory, 16000 sites, 2000 K)",
        "",
        "| case | cache | jumps timed | jumps/s (wall) | jumps/s (CPU) | target | x reference | cache hits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case, cache, r, target in rows:
        lines.append(f"| {case} | {cache or 'off'} | {fmt(r['jumps'])} | {fmt(r['per_wall_s'])} | "
                     f"{fmt(r['per_cpu_s'])} | {fmt(target)} | {r['per_wall_s'] / REFERENCE_PACE:.0f} | "
                     f"{r['hit_rate']:.0%} |")
    lines += ["", "Per-jump cost against cell size (one trajectory, 2000 K, no cache):", "",
              "| sites | jumps timed | us/jump (wall) | us/jump (CPU) |", "|---:|---:|---:|---:|"]
    for n_sites, r in scaling:
        lines.append(f"| {fmt(n_sites)} | {fmt(r['jumps'])} | {1e6 * r['wall_s'] / r['jumps']:.1f} | "
                     f"{1e6 * r['cpu_s'] / r['jumps']:.1f} |")
    if gpu_rows:
        lines += ["", "| trajectories | jumps/s total (wall) |", "|---:|---:|"]
        lines += [f"| {t} | {fmt(r['per_wall_s'])} |" for t, r in gpu_rows]
    lines += [""] + [f"- {n}" for n in notes] + ([""] if notes else [])
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--cache", type=int, default=16, help="ring entries of the cached variant")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--single-jumps", type=int, default=20000)
    p.add_argument("--batch-jumps", type=int, default=5000)
    p.add_argument("--scaling-jumps", type=int, default=10000)
    p.add_argument("--scaling-cells", type=int, nargs="+", default=[10, 20, 40, 80],
                   help="bcc cells per side (2 n^3 sites)")
    p.add_argument("--gpu-batches", type=int, nargs="+", default=[20, 1000, 10000, 50000])
    p.add_argument("--gpu-jumps", type=int, default=2000)
    p.add_argument("--results-md", type=Path, default=None, help="write the section into this Markdown file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    section = run(args)
    print(section)
    if args.results_md is not None:
        update_results_md(args.results_md, "kmc_throughput", datetime.date.today().isoformat(), section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
