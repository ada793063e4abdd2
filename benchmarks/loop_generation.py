#!/usr/bin/env python3
"""Cost of the closed-loop drift stage (Fig 9): cycle basis, loop growth, and featurising the hops.

1. Cycle basis of the periodic first-neighbour graph: :func:`dbkmc.detailed_balance.loops.cycle_basis`
   (girth cycles plus fundamental cycles, greedy over GF(2)) against networkx's
   ``minimum_cycle_basis`` (the same cycle lengths; skipped above ``--nx-max-sites``).
2. :func:`dbkmc.detailed_balance.loops.grow_loops`: ``--n-loops`` distinct loops for every L in
   ``--l-min .. --l-max``.
3. Featurising the hops (:func:`dbkmc.detailed_balance.fingerprints.featurize_events`, default AEV
   parameters) for ``--featurize-loops`` loops of length ``--l-max``, in hops per second.
   This is the part that dominates the rule: the paper setting (L = 3..100, 100 loops)
   has 505,000 hops.

Run with dbkmc importable (``make .venv``, or ``PYTHONPATH=src``)::

    python benchmarks/loop_generation.py                     # fcc 4x4x4, L = 3..100, 100 loops
    python benchmarks/loop_generation.py --lattice bcc --n 4
"""

from __future__ import annotations

import argparse
import time

import networkx as nx
import numpy as np

from dbkmc.detailed_balance.fingerprints import AEVParams, featurize_events
from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.loops import cycle_basis, grow_loops, lattice_graph, loop_hop_events, loop_states, requested_lengths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lattice", default="fcc", choices=["fcc", "bcc"])
    ap.add_argument("--n", type=int, default=4, help="supercell n x n x n")
    ap.add_argument("--a", type=float, default=3.5675)
    ap.add_argument("--l-min", type=int, default=3)
    ap.add_argument("--l-max", type=int, default=100)
    ap.add_argument("--n-loops", type=int, default=100)
    ap.add_argument("--featurize-loops", type=int, default=20)
    ap.add_argument("--nx-max-sites", type=int, default=40, help="largest cell for networkx.minimum_cycle_basis")
    args = ap.parse_args()

    lattice = Lattice(args.lattice, args.n, args.a)
    graph = lattice_graph(lattice)
    print(f"{args.lattice} {args.n}x{args.n}x{args.n}: {graph.number_of_nodes()} sites, {graph.number_of_edges()} edges")

    t0 = time.perf_counter()
    basis = cycle_basis(graph)
    t_basis = time.perf_counter() - t0
    lengths = np.bincount([len(c) for c in basis.cycles])
    print(f"cycle_basis: {len(basis)} cycles {dict((k, int(v)) for k, v in enumerate(lengths) if v)} in {t_basis:.2f} s")
    small = Lattice(args.lattice, 2, args.a)
    if small.n_sites <= args.nx_max_sites:
        g2 = lattice_graph(small)
        t0 = time.perf_counter()
        ref = nx.minimum_cycle_basis(g2)
        t_nx = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = cycle_basis(g2)
        t_ours = time.perf_counter() - t0
        print(f"2x2x2 cell: networkx.minimum_cycle_basis {t_nx:.2f} s (total length {sum(map(len, ref))}), "
              f"cycle_basis {t_ours:.3f} s (total length {sum(map(len, ours.cycles))})")

    wanted = requested_lengths(args.l_min, args.l_max, 1)
    t0 = time.perf_counter()
    loops = grow_loops(basis, wanted, args.n_loops, np.random.default_rng(0), 20 * args.n_loops)
    t_grow = time.perf_counter() - t0
    ok = sum(s == "ok" for s in loops.status.values())
    n_hops = sum(len(v) * L for L, v in loops.loops.items())
    print(f"grow_loops: {args.n_loops} loops for {ok}/{len(wanted)} lengths ({n_hops} hops in all) "
          f"from {loops.trajectories} trajectories in {t_grow:.2f} s")

    chosen = loops.loops[args.l_max][:args.featurize_loops]
    species = ["Cu", "Ni"]
    occ, _ = loop_states(lattice, chosen, species, {"Cu": 0.5, "Ni": 0.5}, None, np.random.default_rng(0))
    t0 = time.perf_counter()
    events = loop_hop_events(lattice, chosen, occ, species)
    t_events = time.perf_counter() - t0
    t0 = time.perf_counter()
    featurize_events(events, AEVParams(), species=species)
    t_feat = time.perf_counter() - t0
    rate = len(events) / (t_events + t_feat)
    print(f"hop events + featurize_events: {len(events)} hops in {t_events:.2f} + {t_feat:.2f} s "
          f"({rate:,.0f} hops/s; all {n_hops} hops: ~{n_hops / rate / 60:.1f} min)")


if __name__ == "__main__":
    main()
