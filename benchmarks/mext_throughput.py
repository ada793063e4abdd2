#!/usr/bin/env python3
"""kMC throughput of the detailed-balance rate model with M_EXT energies (``E_b = E_KRA + dE/2``).

:class:`dbkmc.kmc.rates.extensive_db.ExtensiveRateModel` in the kMC engine on Cu50Ni50 fcc with one vacancy
per trajectory. Timed, on one thread unless ``--threads``:

- the two parts of one barrier evaluation on the tensor path: dE from the cached site terms and the window
  update (M_EXT), and E_KRA (transition-wise fingerprints from the lattice tables + the KRA ensemble);
- jumps/s of :class:`dbkmc.kmc.engine.KMC` for one trajectory (tensor path; compiled CPU path,
  :mod:`dbkmc.kmc.rates.extensive_fast`; with the exact state memo), for a batch of 20 temperatures (with
  and without the memo) and for the same temperatures run one trajectory at a time;
- one trajectory's cost per jump against the cell size.

Every run starts from empty caches. With ``--models DIR`` (holding ``M_EXT/`` and ``KRA/``) the trained
ensembles are used, otherwise untrained ones (M_EXT 32-32 per species, KRA ``--kra-hidden``, ``--members``
members, default shells and AEV parameters). On the compiled path the cost depends on the weights too: the
trajectory decides how often the site-energy and E_KRA tables and the state memo serve a step.

    python benchmarks/mext_throughput.py
    python benchmarks/mext_throughput.py --models results/models_demo/models --results-md benchmarks/RESULTS.md
    python benchmarks/mext_throughput.py --device cuda
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

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.fingerprints import AEVParams
from dbkmc.detailed_balance.models import Ensemble, build_model
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.rates.extensive_db import ExtensiveRateModel, load_extensive

SPECIES = ("Cu", "Ni")
A_CUNI = 3.58


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def best_time(fn: Callable[[], object], device: str, reps: int = 30, rounds: int = 5) -> tuple[float, float]:
    """(wall, CPU) seconds per call, each the best of ``rounds`` rounds of ``reps`` calls (the machine is
    shared: the process CPU time is the cost of the work itself, the wall time includes waiting for a core)."""
    fn()
    wall, cpu = [], []
    for _ in range(rounds):
        sync(device)
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(reps):
            fn()
        sync(device)
        wall.append((time.perf_counter() - w0) / reps)
        cpu.append((time.process_time() - c0) / reps)
    return min(wall), min(cpu)


def build(models: Path | None, lattice: Lattice, members: int, kra_hidden: Sequence[int],
          device: str, compiled: bool = True) -> tuple[ExtensiveRateModel, str]:
    if models is not None:
        model = load_extensive(str(models / "M_EXT"), str(models / "KRA"), lattice, SPECIES, device,
                               compiled=compiled)
        return model, (f"trained ensembles from `{models}` ({model.energy_ensemble.n_members} M_EXT members, "
                       f"{model.kra.n_members} KRA members, KRA hidden {model.kra.arch()['hidden']})")
    params = AEVParams()
    desc = SiteDescriptors(lattice, len(SPECIES), device=device)
    energy = Ensemble([build_model("M_EXT", len(SPECIES) + desc.n_features, hidden=(32, 32), dropout=0.0,
                                   n_species=len(SPECIES)).eval() for _ in range(members)])
    kra = Ensemble([build_model("KRA", params.dim(len(SPECIES)), hidden=tuple(kra_hidden), dropout=0.0).eval()
                    for _ in range(members)])
    model = ExtensiveRateModel(on_device(energy, device), desc, on_device(kra, device), params, lattice, SPECIES,
                               device, compiled)
    return model, (f"untrained ensembles, {members} members: M_EXT 32-32 per species, KRA {list(kra_hidden)}, "
                   "float32 (as `load_extensive` gives them)")


def on_device(ens: Ensemble, device: str) -> Ensemble:
    return Ensemble.from_stacked(ens.base, {k: v.to(device) for k, v in ens.params.items()},
                                 {k: v.to(device) for k, v in ens.buffers.items()})


def start_state(lattice: Lattice, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    d = rng.integers(1, len(SPECIES) + 1, lattice.n_sites)
    d[0] = 0
    return torch.as_tensor(d)


def time_parts(model: ExtensiveRateModel, lattice: Lattice, device: str) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds per evaluation of the dE part and of the E_KRA part (one vacancy, one trajectory) on
    the tensor path (the compiled path's cost shows in the kMC rows)."""
    d = start_state(lattice).to(device)[None]
    vac = torch.zeros(1, 1, dtype=torch.long, device=device)
    return {"dE": best_time(lambda: model.energy_changes(d, vac), device),
            "KRA": best_time(lambda: model.kra_energies(d, vac), device)}


def time_kmc(model: ExtensiveRateModel, lattice: Lattice, n_traj: int, jumps: int,
             device: str, cache: int = 0, temps: Sequence[float] | None = None) -> tuple[float, float, float]:
    """(wall, CPU) seconds per jump (all trajectories together) of the engine, the best of three runs, and the
    fraction of jumps the exact state memo served (``cache`` entries; 0 = off). The trajectories run at
    ``temps`` (default 500-1400 K evenly; one trajectory: 500 K)."""
    temps = list(np.linspace(500.0, 1400.0, n_traj)) if temps is None else list(temps)
    kmc = KMC(model, start_state(lattice), temps, seed=1, device=device, cache=cache)
    kmc.run(20)
    hits0 = kmc.cache_hits
    wall, cpu = best_time(lambda: kmc.run(jumps), device, reps=1, rounds=3)
    return wall / (jumps * n_traj), cpu / (jumps * n_traj), (kmc.cache_hits - hits0) / ((kmc.step - 20) * n_traj)


def arithmetic_floor(model: ExtensiveRateModel, device: str) -> tuple[float, int]:
    """(CPU seconds, rows): the networks' own arithmetic for one jump that no cache can skip, nothing else.

    After a jump, 11 of the 12 paths of the new vacancy lead to states never evaluated (the 12th is the way
    back). They need the M_EXT site networks on their window sites (all but the vacancy and hop slots: 11 x
    (M - 2) rows, half of each species here), the transition-wise angular contraction of both end states
    (one GEMM) and the KRA networks on 11 paths, as the rate model runs them (``StackedSiteEnergy._one``,
    ``StackedEnergy``). Index work, descriptor updates and the engine step are left out."""
    gen = torch.Generator().manual_seed(0)
    rows = 11 * (model.desc.window_size - 2)
    dim = model.desc.n_features
    g = [torch.randint(0, 4, (n, dim), generator=gen).to(device=device, dtype=model.dtype)
         for n in (rows // 2, rows - rows // 2)]
    aev = model.aev
    e = torch.randint(0, 2, (2 * 11 * aev.n_species, aev.tw.angular.shape[0]), generator=gen).to(
        device=device, dtype=aev.dtype)
    x = torch.randn(11, 2 * aev.dim, generator=gen).to(device=device, dtype=model._kra_energy.dtype)

    def work() -> None:
        for s, gs in enumerate(g):
            model.site_energy._one(s % model.site_energy.n_species, gs)
        e @ aev.tw.angular
        model._kra_energy(x)

    with torch.no_grad():
        return best_time(work, device)[1], rows


def op_count(model: ExtensiveRateModel, lattice: Lattice, device: str, jumps: int = 50) -> tuple[float, float]:
    """(tensor operations per jump, us per operation on a 10-element tensor): how many top-level ATen calls one
    jump of one trajectory makes (views included: each is a dispatch), and the dispatch cost of the cheapest one."""
    from torch.profiler import ProfilerActivity, profile

    kmc = KMC(model, start_state(lattice), [800.0], seed=1, device=device)
    kmc.run(20)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        kmc.run(jumps)
    ops = sum(1 for e in prof.events() if e.cpu_parent is None and e.name.startswith("aten::"))
    x = torch.ones(10, device=device)
    wall, cpu = best_time(lambda: x + x, device, reps=2000, rounds=5)
    return ops / jumps, cpu * 1e6


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=None, help="folder with M_EXT/ and KRA/ checkpoints")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n", type=int, default=10, help="fcc cell n x n x n (4 n^3 sites)")
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--kra-hidden", type=int, nargs="+", default=[64, 32])
    p.add_argument("--batch", type=int, default=20, help="temperatures in the batched run")
    p.add_argument("--cache", type=int, default=100_000, help="entries of the exact state memo in the memo run")
    p.add_argument("--jumps", type=int, default=300)
    p.add_argument("--sizes", type=int, nargs="*", default=[6, 20, 30], help="cells n for the size check")
    p.add_argument("--results-md", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = load_average()
    lattice = Lattice("fcc", args.n, A_CUNI)
    model, model_text = build(args.models, lattice, args.members, args.kra_hidden, args.device)
    parts = time_parts(model, lattice, args.device)
    compiled = model._compiled is not None

    def fresh(compiled: bool = True) -> ExtensiveRateModel:        # every run starts with empty caches
        return build(args.models, lattice, args.members, args.kra_hidden, args.device, compiled)[0]

    tensor_one = time_kmc(fresh(False), lattice, 1, max(100, args.jumps // 10), args.device)
    one = time_kmc(fresh(), lattice, 1, args.jumps, args.device)
    memo_model = fresh()
    memo = time_kmc(memo_model, lattice, 1, args.jumps, args.device, cache=args.cache)
    floor, floor_rows = arithmetic_floor(model, args.device)
    ops, us_per_op = op_count(fresh(), lattice, args.device)
    batch_jumps = max(20, args.jumps // args.batch * 2)
    batch = time_kmc(fresh(), lattice, args.batch, batch_jumps, args.device)
    batch_memo = time_kmc(fresh(), lattice, args.batch, batch_jumps, args.device, cache=args.cache)
    # the batch's temperatures one trajectory at a time (five of them, evenly spread), with the memo
    sweep = [time_kmc(fresh(), lattice, 1, args.jumps, args.device, cache=args.cache, temps=[t])
             for t in np.linspace(500.0, 1400.0, 5)]
    serial = tuple(float(np.mean([r[i] for r in sweep])) for i in range(3))
    step = memo_model._compiled
    site_share = (f"; in the memo run of one trajectory the site-energy table served "
                  f"{1 - step.rows_evaluated / step.rows_seen:.0%} of the window sites' energies"
                  if compiled and step.rows_seen else "")
    sizes = []
    for n in args.sizes:
        lat = Lattice("fcc", n, A_CUNI)
        m, _ = build(args.models, lat, args.members, args.kra_hidden, args.device)
        sizes.append((lat.n_sites, time_kmc(m, lat, 1, args.jumps, args.device)[:2]))
    load = f"{load_before} before, {load_average()} after"
    rows = [f"| dE (M_EXT, cached site terms + window update), tensor path | {parts['dE'][0] * 1e6:,.0f} | "
            f"{parts['dE'][1] * 1e6:,.0f} |",
            f"| E_KRA (TW fingerprints + KRA ensemble), tensor path | {parts['KRA'][0] * 1e6:,.0f} | "
            f"{parts['KRA'][1] * 1e6:,.0f} |"]
    text = "\n".join([
        f"- Machine: {torch_machine_description(args.device)}; device `{args.device}`; 1-min load average {load} "
        "(shared machine: wall times include waiting for a core; CPU = this process's CPU time)",
        f"- Model: E_b = E_KRA + dE/2 with M_EXT energies, {model_text}; descriptors: radial shells "
        f"{model.desc.radial_shells}, triplet shells {model.desc.triplet_shells} (D = {model.desc.n_features}), "
        f"window M = {model.desc.window_size} sites per path, {model.z} paths",
        f"- Lattice: Cu50Ni50 fcc {args.n}x{args.n}x{args.n} ({lattice.n_sites:,} sites), one vacancy per trajectory",
        "", "| part of one jump (one trajectory) | us (wall) | us (CPU) |", "|---|---:|---:|", *rows, "",
        "| kMC (dbkmc.kmc.engine) | trajectories | us per jump (wall) | us per jump (CPU) | jumps/s (CPU) |",
        "|---|---:|---:|---:|---:|",
        f"| one trajectory (500 K), tensor path only | 1 | {tensor_one[0] * 1e6:,.0f} | {tensor_one[1] * 1e6:,.0f} | "
        f"{1 / tensor_one[1]:,.0f} |",
        f"| one trajectory (500 K){', compiled path' if compiled else ''} | 1 | {one[0] * 1e6:,.0f} | "
        f"{one[1] * 1e6:,.0f} | {1 / one[1]:,.0f} |",
        f"| one trajectory (500 K), exact state memo of {args.cache:,} ({memo[2]:.0%} of the jumps served) | 1 | "
        f"{memo[0] * 1e6:,.0f} | {memo[1] * 1e6:,.0f} | {1 / memo[1]:,.0f} |",
        f"| batch of temperatures (500-1400 K) | {args.batch} | {batch[0] * 1e6:,.0f} | {batch[1] * 1e6:,.0f} | "
        f"{1 / batch[1]:,.0f} |",
        f"| batch of temperatures (500-1400 K), state memo per trajectory ({batch_memo[2]:.0%} served) | "
        f"{args.batch} | {batch_memo[0] * 1e6:,.0f} | {batch_memo[1] * 1e6:,.0f} | {1 / batch_memo[1]:,.0f} |",
        f"| the same temperatures one trajectory at a time (500, 725, 950, 1175, 1400 K; mean), state memo "
        f"({serial[2]:.0%} served) | 1 | {serial[0] * 1e6:,.0f} | {serial[1] * 1e6:,.0f} | {1 / serial[1]:,.0f} |",
        "",
        f"- Trained or not, the same code: the site energies come from the networks or from the site-energy "
        f"table of the compiled path{site_share}.",
        f"- One jump of one trajectory makes {ops:.0f} tensor operations (top-level ATen calls, views included); "
        f"the cheapest one (adding two 10-element tensors) costs {us_per_op:.2f} us, so dispatch alone is "
        f"{ops * us_per_op:,.0f} us per jump before any arithmetic (2,000 jumps/s allows 500 us in all).",
        f"- The networks alone on the 11 new paths of a jump, every row evaluated (M_EXT on {floor_rows} window "
        f"sites, the TW angular contraction, KRA on 11 paths; `arithmetic_floor`), take {floor * 1e6:,.0f} us of "
        f"CPU ({1 / floor:,.0f} jumps/s at most); the compiled path's site-energy and E_KRA tables are what lets "
        f"a step cost less.", "",
        "| sites | us per jump, one trajectory (wall) | (CPU) |", "|---:|---:|---:|",
        *[f"| {s:,} | {t[0] * 1e6:,.0f} | {t[1] * 1e6:,.0f} |" for s, t in sizes]])
    print(text)
    if args.results_md is not None:
        date = dt.date.today().isoformat()
        command = "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        section = (f"## kMC with M_EXT + KRA detailed-balance rates, {date}\n\n- Command: `{command}`\n{text}\n")
        update_results_md(args.results_md, "mext_throughput", date, section)
        print(f"wrote a section to {args.results_md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
