#!/usr/bin/env python3
"""kMC start-up: the time before the first jump, and a short run as a whole process.

Each repeat starts a fresh ``python`` process (cold: nothing imported, no TorchScript
kernel compiled) that runs one trajectory of the published NbMoTa NNK on
``nbmota_16000.dump`` at 2000 K for ``--jumps`` jumps (default 3000, one thread).
The child reports, with ``time.perf_counter``:

- imports: ``import torch`` and the dbkmc modules of the library path
  (``dbkmc.kmc.engine``, ``dbkmc.kmc.rates.base``, ``dbkmc.neb.dump``);
- start-up: from the start of the run (after the imports) to the end of the first
  jump: read the dump, map it onto the lattice, build the rate model (which imports
  ``dbkmc.nnk.networks`` and loads the weights), build the engine, compile the TorchScript
  kernel and make one jump (each phase listed; wall time, and the process's CPU time
  for the whole start-up, which a loaded machine distorts less);
- loop: the remaining jumps.

The parent times the whole process (``subprocess.run``, interpreter start to exit).
Medians over ``--repeats`` runs are reported.

    python benchmarks/kmc_startup.py --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from results_md import cpu_model, update_results_md

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "nnk_nbmota"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import torch
torch.set_num_threads(1)
t_torch = time.perf_counter()
from dbkmc.kmc import kernel
from dbkmc.kmc.engine import KMC
from dbkmc.neb.dump import read_dump, to_lattice
from dbkmc.kmc.rates.base import build_rate_model
t1 = time.perf_counter()
c1 = time.process_time()
data, n_jumps = sys.argv[1], int(sys.argv[2])
species = ["Nb", "Mo", "Ta"]
p = {}
t = time.perf_counter()
frame = read_dump(f"{data}/nbmota_16000.dump"); p["read dump"] = time.perf_counter() - t; t += p["read dump"]
st = to_lattice(frame); p["map onto lattice"] = time.perf_counter() - t; t += p["map onto lattice"]
model = build_rate_model({"kind": "nnk_published", "weights": f"{data}/weights.npy", "species": species},
                         st.lattice, species, torch.device("cpu"))
p["rate model"] = time.perf_counter() - t; t += p["rate model"]
digits = st.types.astype(np.int64)
digits[0] = 0
eng = KMC(model, digits, [2000.0], seed=1); p["engine"] = time.perf_counter() - t; t += p["engine"]
kernel.scripted_local_mlp(); p["TorchScript compile"] = time.perf_counter() - t; t += p["TorchScript compile"]
eng.run(1); p["first jump"] = time.perf_counter() - t
t2 = time.perf_counter()
c2 = time.process_time()
eng.run(n_jumps - 1)
t3 = time.perf_counter()
print(json.dumps({"torch": t_torch - t0, "imports": t1 - t0, "startup": t2 - t1, "startup_cpu": c2 - c1, "imports_cpu": c1, "loop": t3 - t2, "phases": p,
                  "path": eng.path}))
"""


def one(jumps: int) -> dict:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(DATA), str(jumps)], capture_output=True, text=True,
                         check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["process"] = time.perf_counter() - t
    return r


def run(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    runs = [one(args.jumps) for _ in range(args.repeats)]
    load_after = os.getloadavg()[0]

    def med(f) -> float:
        return statistics.median(f(r) for r in runs)

    phases = list(runs[0]["phases"])
    proc = med(lambda r: r["process"])
    loop_rate = (args.jumps - 1) / med(lambda r: r["loop"])
    lines = [
        f"## kMC start-up (published NbMoTa NNK, one trajectory), {args.date}",
        "",
        f"- Machine: {cpu_model()}, {os.cpu_count()} CPUs, CPU only, 1 torch thread; shared with other work "
        f"(1-min load average {load_before:.2f} before, {load_after:.2f} after), so single runs vary by tens of ms",
        f"- Command: `python benchmarks/kmc_startup.py {' '.join(sys.argv[1:])}`",
        f"- Run: `nbmota_16000.dump`, 2000 K, {args.jumps} jumps, a fresh process each time; medians of "
        f"{args.repeats} runs; engine path {runs[0]['path']}",
        "",
        "| phase | s |",
        "|---|---:|",
        f"| `import torch` | {med(lambda r: r['torch']):.3f} |",
        f"| all imports (torch, numpy, dbkmc) | {med(lambda r: r['imports']):.3f} |",
        f"| all imports, CPU time | {med(lambda r: r['imports_cpu']):.3f} |",
    ]
    lines += [f"| start-up: {k} | {med(lambda r, k=k: r['phases'][k]):.3f} |" for k in phases]
    lines += [
        f"| **start-up, start of the run to the end of the first jump** | "
        f"**{med(lambda r: r['startup']):.3f}** |",
        f"| start-up, CPU time of this process (steadier under load) | {med(lambda r: r['startup_cpu']):.3f} |",
        f"| loop, {args.jumps - 1} jumps ({loop_rate:,.0f} jumps/s) | {med(lambda r: r['loop']):.3f} |",
        f"| **whole process** (`python -c`, interpreter start to exit) | **{proc:.3f}** |",
        "",
        f"Whole-process rate: {args.jumps / proc:,.0f} jumps/s.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--jumps", type=int, default=3000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--date", default=datetime.date.today().isoformat(), help="date of the RESULTS.md section")
    p.add_argument("--results-md", type=Path, default=None, help="write the section into this Markdown file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.jumps < 2 or args.repeats < 1:
        raise SystemExit("--jumps: need >= 2; --repeats: need >= 1")
    section = run(args)
    print(section)
    if args.results_md is not None:
        update_results_md(args.results_md, "kmc_startup", args.date, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
