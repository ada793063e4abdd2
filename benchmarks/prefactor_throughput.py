#!/usr/bin/env python3
"""kMC throughput with vibrational prefactors (:mod:`dbkmc.kmc.rates.prefactor`) against the fixed ``nu``.

The rate model is M_EXT + KRA (``E_b = E_KRA + dE/2``, :class:`dbkmc.kmc.rates.extensive_db.ExtensiveRateModel`);
with prefactors every jump also needs ``ln nu_AB = -(S_KRA + dS/2)``: the same two computations on the
PRE_S (M_EXT kind) and PRE_KRA (KRA kind) ensembles. Timed on Cu50Ni50 fcc with one vacancy, on one thread
unless ``--threads``: jumps/s of :class:`dbkmc.kmc.engine.KMC` for one trajectory and for a batch of
temperatures, with and without prefactors, and the parts of one jump.

The cost depends on the architectures, not on the weights: with ``--models DIR`` (``M_EXT/``, ``KRA/``) and
``--prefactor DIR`` (``PRE_S/``, ``PRE_KRA/``) trained ensembles are used, otherwise untrained ones of the
default architectures (as in ``benchmarks/mext_throughput.py``; the prefactor ensembles like the energy ones).

    python benchmarks/prefactor_throughput.py
    python benchmarks/prefactor_throughput.py --models results/prefactors_cuni/models \\
        --prefactor results/prefactors_cuni/models/prefactors
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from mext_throughput import A_CUNI, SPECIES, best_time, build, load_average, start_state, time_kmc
from results_md import torch_machine_description, update_results_md

from dbkmc.core.lattice import Lattice
from dbkmc.kmc.rates.prefactor import PrefactorRateModel, load_prefactor


def build_prefactor(folder: Path | None, lattice: Lattice, members: int, kra_hidden: Sequence[int],
                    device: str) -> tuple[object, str]:
    """The prefactor terms: trained (``folder``) or untrained ensembles (the cost does not depend on the weights)."""
    if folder is not None:
        return load_prefactor(folder, lattice, SPECIES, device), f"trained PRE_S + PRE_KRA from `{folder}`"
    model, _ = build(None, lattice, members, kra_hidden, device)
    return model, f"untrained PRE_S (M_EXT 32-32 per species) + PRE_KRA (KRA {list(kra_hidden)}), {members} members"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=None, help="folder with M_EXT/ and KRA/ checkpoints")
    p.add_argument("--prefactor", type=Path, default=None, help="folder with PRE_S/ and PRE_KRA/ checkpoints")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n", type=int, default=10, help="fcc cell n x n x n (4 n^3 sites)")
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--kra-hidden", type=int, nargs="+", default=[64, 32])
    p.add_argument("--batch", type=int, default=20, help="temperatures in the batched run")
    p.add_argument("--jumps", type=int, default=300)
    p.add_argument("--results-md", type=Path, default=None, help="write a dated section into this file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = load_average()
    lattice = Lattice("fcc", args.n, A_CUNI)
    plain, model_text = build(args.models, lattice, args.members, args.kra_hidden, args.device)
    inner, _ = build(args.models, lattice, args.members, args.kra_hidden, args.device)
    terms, pre_text = build_prefactor(args.prefactor, lattice, args.members, args.kra_hidden, args.device)
    with_pre = PrefactorRateModel(inner, terms)
    d = start_state(lattice).to(args.device)[None]
    vac = torch.zeros(1, 1, dtype=torch.long, device=args.device)
    part = {"E_b (dE + E_KRA)": best_time(lambda: plain.barriers(d, vac), args.device),
            "ln nu_AB (dS + S_KRA)": best_time(lambda: with_pre.log_prefactors(d, vac), args.device)}
    rows = []
    for name, model in (("nu = 1e13 (no prefactor)", plain), ("prefactors (PRE_S + PRE_KRA)", with_pre)):
        for n_traj, jumps in ((1, args.jumps), (args.batch, max(20, args.jumps // 5))):
            wall, cpu = time_kmc(model, lattice, n_traj, jumps, args.device)
            rows.append(f"| {name} | {n_traj} | {wall * 1e6:,.0f} | {cpu * 1e6:,.0f} | {1 / cpu:,.0f} |")
    text = "\n".join([
        f"- Machine: {torch_machine_description(args.device)}; device `{args.device}`; {args.threads} thread(s); "
        f"1-min load average {load_before} before, {load_average()} after (wall includes waiting for a core)",
        f"- Barriers: {model_text}; prefactors: {pre_text}",
        f"- Lattice: Cu50Ni50 fcc {args.n}x{args.n}x{args.n} ({lattice.n_sites:,} sites), one vacancy per trajectory",
        "", "| part of one jump (one trajectory) | us (wall) | us (CPU) |", "|---|---:|---:|",
        *[f"| {k} | {w * 1e6:,.0f} | {c * 1e6:,.0f} |" for k, (w, c) in part.items()], "",
        "| kMC rates | trajectories | us per jump (wall) | us per jump (CPU) | jumps/s (CPU) |",
        "|---|---:|---:|---:|---:|", *rows])
    print(text)
    if args.results_md is not None:
        date = dt.date.today().isoformat()
        command = "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        update_results_md(args.results_md, "prefactor_throughput", date,
                          f"## kMC with vibrational prefactors, {date}\n\n- Command: `{command}`\n{text}\n")
        print(f"wrote a section to {args.results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
