#!/usr/bin/env python3
"""Where the dE error floor of the reference Cu-Ni dataset comes from (issue 3 diagnostics).

Three figures, each in meV, printed as a table (and optionally written into
``benchmarks/RESULTS.md``):

far field
    For a few Cu50Ni50 events of the reference dataset: freeze the species of
    every site within ``r_cut`` of either vacancy site, shuffle the species on
    the other sites, and rerun the pipeline's NEB (:func:`dbkmc.neb.events.run_event`).
    The spread (std) of dE and E_KRA is the error no model with that window can
    beat: the far-field noise floor of issue 4's Fig 11, here in the reference
    4x4x4 cell.
linear fits
    Ridge regression of dE on ``F_B - F_A`` for the Kolmogorov and the
    transition-wise fingerprints (default AEV parameters), a random 5400/900
    split: how much of dE the fingerprints carry linearly.
pair cluster expansion
    Ridge regression of dE on the exact change of the whole cell's first six
    shells of Ni-Ni, Ni-vacancy and Cu-vacancy pair counts: the best an
    effective pair model of the lattice does.

Run with dbkmc importable::

    python benchmarks/kol_floor.py                    # ~2 minutes on 2 cores
    python benchmarks/kol_floor.py --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from results_md import write_dated_section

from dbkmc.neb.events import EventSettings, run_event
from dbkmc.neb.cell import EnginePool
from dbkmc.detailed_balance.fingerprints import AEVParams, featurize_events
from dbkmc.core.lattice import Lattice
from dbkmc.neb.cineb import NEBSettings
from dbkmc.neb.potentials import Potential
from dbkmc.core.sampling import VACANCY, occupation_from_str, occupation_to_str

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference_cuni" / "events.parquet"
N_SHELLS = 6


def cuni_potential() -> Potential:
    """The reference dataset's potential (data/reference_cuni/dataset.json: CuNi.eam.alloy)."""
    return Potential.from_config("cuni_eam", {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
                                              "files": {"table": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]})


def far_field_spread(events: pd.DataFrame, r_cuts, n_events: int, n_samples: int, seed: int) -> pd.DataFrame:
    """std of dE and E_KRA over far-field redraws, per event and r_cut."""
    base_rows = events[events["composition"] == "Cu50Ni50"].iloc[:n_events]
    species = base_rows["species"].iloc[0].split(",")
    pool = EnginePool(cuni_potential(), species, n_images=5)
    settings = EventSettings(NEBSettings())
    rng = np.random.default_rng(seed)
    rows = []
    try:
        for _, base in base_rows.iterrows():
            lattice = Lattice(base["lattice"], int(base["supercell"]), float(base["a"]))
            occ0 = occupation_from_str(base["occupation"])
            dist = np.minimum(*[np.linalg.norm(lattice.minimum_image(lattice.positions - lattice.positions[s]), axis=1)
                                for s in (int(base["vacancy_site"]), int(base["hop_site"]))])
            for r_cut in r_cuts:
                free = np.flatnonzero((dist > r_cut) & (occ0 != VACANCY))
                d_e, e_kra = [], []
                for _ in range(n_samples):
                    occ = occ0.copy()
                    occ[free] = rng.permutation(occ0[free])
                    row, _ = run_event({**base.to_dict(), "occupation": occupation_to_str(occ)}, pool, settings)
                    if row["status"] != "accepted":
                        raise RuntimeError(f"far-field redraw of {base['event_id']} rejected: {row['reject_reason']}")
                    d_e.append(row["dE"])
                    e_kra.append(row["E_KRA"])
                rows.append({"event_id": base["event_id"], "r_cut": r_cut, "free_sites": len(free),
                             "std_dE_meV": 1e3 * np.std(d_e), "std_E_KRA_meV": 1e3 * np.std(e_kra)})
    finally:
        pool.close()
    return pd.DataFrame(rows)


def ridge_rmse(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, lam: float) -> tuple[float, float]:
    """Train and test RMSE (meV) of a standardized ridge fit with intercept."""
    x = np.c_[x, np.ones(len(x))]
    x = x / (x[train].std(axis=0) + 1e-12)
    x[:, -1] = 1.0
    w = np.linalg.solve(x[train].T @ x[train] + lam * np.eye(x.shape[1]), x[train].T @ y[train])
    r = x @ w - y
    return 1e3 * float(np.sqrt(np.mean(r[train] ** 2))), 1e3 * float(np.sqrt(np.mean(r[test] ** 2)))


def pair_count_changes(events: pd.DataFrame) -> np.ndarray:
    """Per event: change (B - A) of the whole cell's Ni-Ni, Ni-V and Cu-V pair counts in shells 1..N_SHELLS."""
    first = events.iloc[0]
    lattice = Lattice(first["lattice"], int(first["supercell"]), float(first["a"]))
    m = 2 * lattice.n
    d = (lattice.half_coords[:, None, :] - lattice.half_coords[None, :, :] + lattice.n) % m - lattice.n
    r2 = (d**2).sum(-1)
    shells = [(r2 == s).astype(float) for s in sorted(set(np.unique(r2)) - {0})[:N_SHELLS]]

    def counts(occ: np.ndarray) -> np.ndarray:
        ni, cu, vac = ((occ == k).astype(float) for k in (1, 0, VACANCY))
        return np.array([v for a in shells for v in (ni @ a @ ni / 2, ni @ a @ vac, cu @ a @ vac)])

    out = []
    for occ_text, vac, hop in zip(events["occupation"], events["vacancy_site"], events["hop_site"], strict=True):
        occ_a = occupation_from_str(occ_text)
        occ_b = occ_a.copy()
        occ_b[vac], occ_b[hop] = occ_a[hop], VACANCY
        out.append(counts(occ_b) - counts(occ_a))
    return np.array(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=Path, default=REFERENCE)
    p.add_argument("--far-events", type=int, default=3)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results-md", type=Path, default=None)
    args = p.parse_args(argv)

    events = pd.read_parquet(args.events)
    events = events[events["status"] == "accepted"] if "status" in events else events
    y = events["dE"].to_numpy(np.float64)
    order = np.random.default_rng(args.seed).permutation(len(y))
    n_test = len(y) // 6
    test, train = order[:n_test], order[n_test:]

    species = events["species"].iloc[0].split(",")
    fps = {k: v.numpy() for k, v in featurize_events(events, AEVParams(), species=species).items()}
    fits = {
        "ridge on F_B^KOL - F_A^KOL": ridge_rmse(fps["KOL_B"] - fps["KOL_A"], y, train, test, 1e-3),
        "ridge on F_{A∪B:B} - F_{A∪B:A}": ridge_rmse(fps["TW_B"] - fps["TW_A"], y, train, test, 1e-3),
        f"pair cluster expansion, {N_SHELLS} shells, whole cell": ridge_rmse(pair_count_changes(events), y, train, test, 1e-6),
    }
    far = far_field_spread(events, (6.0, 8.0), args.far_events, args.samples, args.seed)

    lines = [f"dE of {len(y)} events: std {1e3 * y.std():.1f} meV; split {len(train)} train / {len(test)} test", "",
             "| fit | train RMSE dE [meV] | test RMSE dE [meV] |", "|---|---:|---:|"]
    lines += [f"| {name} | {tr:.1f} | {te:.1f} |" for name, (tr, te) in fits.items()]
    lines += ["", f"Far-field spread ({args.far_events} Cu50Ni50 events, {args.samples} redraws each, NEB rerun):", "",
              "| r_cut [A] | free sites | std dE [meV] | std E_KRA [meV] |", "|---:|---:|---:|---:|"]
    for r_cut, g in far.groupby("r_cut"):
        lines.append(f"| {r_cut:g} | {int(g['free_sites'].iloc[0])} | {g['std_dE_meV'].mean():.1f} | "
                     f"{g['std_E_KRA_meV'].mean():.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.results_md:
        write_dated_section(args.results_md, "kol_floor", "dE error floor of the reference dataset", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
