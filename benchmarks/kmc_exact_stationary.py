#!/usr/bin/env python3
"""Does the kMC engine sample the exact stationary distribution of M_EXT + KRA rates? (a validation run)

A 4x4x4 fcc Cu cell with one Ni atom and one vacancy has 65,280 states. Every state reachable by vacancy
hops is enumerated (``dbkmc.detailed_balance.markov``), every jump's barrier comes from the kMC rate model
(``dbkmc.kmc.balance_audit.state_barriers``), and the stationary distribution pi of the chain is solved
exactly. The engine (:class:`dbkmc.kmc.engine.KMC`, the compiled path, a batch of trajectories started
from states drawn from pi) then estimates the probability that the Ni atom is a first neighbour of the
vacancy with the residence-time weights of ``dbkmc.kmc.equilibrium.kmc_samples``. With exact detailed
balance and a correct engine the two agree within the standard error (one trajectory = one block).

    python benchmarks/kmc_exact_stationary.py --models results/models_demo/models --temperature 500 --jumps 8000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance import markov
from dbkmc.kmc.balance_audit import path_index, state_barriers
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.equilibrium import kmc_samples
from dbkmc.kmc.rates.base import build_rate_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=Path, default=Path("results/models_demo/models"), help="holds M_EXT/ and KRA/")
    ap.add_argument("--temperature", type=float, default=500.0)
    ap.add_argument("--jumps", type=int, default=8000)
    ap.add_argument("--trajectories", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    lat = Lattice("fcc", 4, 3.5675)
    spec = {"kind": "detailed_balance", "energy": str(args.models / "M_EXT"), "kra": str(args.models / "KRA"),
            "kol": None, "prefactor": None}
    model = build_rate_model(spec, lat, ("Cu", "Ni"), "cpu", key="rate_model")
    start = np.zeros(lat.n_sites, np.int8)
    start[lat.n_sites // 2], start[0] = 1, -1
    t0 = time.time()
    space = markov.enumerate_states(lat, start, max_states=200_000)
    barriers = state_barriers(model, lat, space.states, space.vacancy)
    i, j = space.jumps[:, 0], space.jumps[:, 1]
    e_f = barriers[i, path_index(lat, space.vacancy[i], space.hop_site)]
    e_b = barriers[j, path_index(lat, space.vacancy[j], space.vacancy[i])]
    t = args.temperature
    pi = markov.stationary_distribution(markov.rate_matrix(space.n_states, space.jumps, markov.rates(e_f, t, 1e13),
                                                           markov.rates(e_b, t, 1e13)))
    neighbours = [set(row.tolist()) for row in lat.neighbors]
    solute = np.argmax(space.states == 1, axis=1)
    exact = float(pi @ np.array([s in neighbours[v] for s, v in zip(solute, space.vacancy)], float))
    print(f"{space.n_states} states at {t:g} K: exact P(Ni next to the vacancy) = {exact:.5f} "
          f"(random {12 / (lat.n_sites - 1):.5f}); {time.time() - t0:.0f} s")

    def next_to_vacancy(d: np.ndarray) -> np.ndarray:
        d = d.reshape(-1, lat.n_sites)
        v, s = np.argmax(d == 0, 1), np.argmax(d == 2, 1)
        return np.array([b in neighbours[a] for a, b in zip(v, s)], float)

    rng = np.random.default_rng(args.seed)
    starts = space.states[rng.choice(space.n_states, args.trajectories, p=pi / pi.sum())].astype(np.int64) + 1
    engine = KMC(model, starts, [t] * args.trajectories, seed=args.seed)
    samples = kmc_samples(engine, next_to_vacancy, args.jumps, record_every=4)
    per = (samples.energies * samples.weights).sum(0) / samples.weights.sum(0)
    se = per.std(ddof=1) / np.sqrt(len(per))
    print(f"kMC, time-weighted over {args.trajectories} trajectories of {args.jumps} jumps: {per.mean():.5f} "
          f"± {se:.5f} ({(per.mean() - exact) / se:+.1f} SE); {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
