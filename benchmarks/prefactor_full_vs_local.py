#!/usr/bin/env python3
"""Is the full-Hessian prefactor easier to learn than the local one? (issue 16)

The prefactor runs use local Hessians (atoms within 4 A of the two jump sites move, the rest is fixed).
Against the full Hessian (every atom of the 255-atom cell moves) they differ by 0.10 rms in ln nu_AB on 20
events (``docs/prefactors/local_vs_full.csv``). This script takes the events that both runs hold,

- ``config/prefactors_cuni_full.yaml`` (full Hessians; its finished shards are enough), and
- ``config/prefactors_cuni_all.yaml`` (local Hessians of all 5,400 reference events),

and prints, for ln nu_AB, S_KRA and dS, the spread of each and their correlation, and the 5-fold
cross-validated R^2 of a ridge fit on the ideal-lattice transition-wise fingerprints of the model stage
(S_KRA on the symmetric input [TW_A + TW_B, |TW_A - TW_B|], dS on [KOL_B - KOL_A, TW_B - TW_A], ln nu_AB
on both): the same inputs and the same fit for both targets.

Run from the repository root, with dbkmc importable::

    python benchmarks/prefactor_full_vs_local.py
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np
import pandas as pd
import torch

FULL = "results/prefactors_cuni_full/datasets/reference/hessians"
LOCAL = "results/prefactors_cuni_all/datasets/reference/hessians/prefactors.parquet"
FINGERPRINTS = "results/prefactors_cuni_all/prefactors/fingerprints.pt"
TERMS = ("ln_nu_AB", "S_KRA", "dS")


def ridge_cv(x: np.ndarray, y: np.ndarray, folds: int = 5, alphas=np.logspace(-3, 4, 15)) -> tuple[float, float]:
    """Best 5-fold cross-validated R^2 over ``alphas`` (standardised inputs) and its alpha."""
    n = len(y)
    fold = np.random.default_rng(0).permutation(np.arange(n) % folds)
    best = (-np.inf, np.nan)
    for alpha in alphas:
        pred = np.zeros(n)
        for j in range(folds):
            tr, te = fold != j, fold == j
            mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-9
            z = (x - mu) / sd
            w = np.linalg.solve(z[tr].T @ z[tr] + alpha * np.eye(x.shape[1]), z[tr].T @ (y[tr] - y[tr].mean()))
            pred[te] = z[te] @ w + y[tr].mean()
        r2 = 1.0 - ((pred - y) ** 2).mean() / y.var()
        best = max(best, (float(r2), float(alpha)))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", default=FULL, help="folder of the full-Hessian run's shard_*.parquet")
    ap.add_argument("--local", default=LOCAL)
    ap.add_argument("--fingerprints", default=FINGERPRINTS)
    ap.add_argument("--csv", default=None, help="write the matched events' terms here")
    args = ap.parse_args()
    shards = sorted(glob.glob(str(Path(args.full) / "shard_*.parquet")))
    if not shards:
        raise SystemExit(f"no shard_*.parquet in {args.full}: run config/prefactors_cuni_full.yaml first")
    full = pd.concat([pd.read_parquet(f) for f in shards])
    full = full[full["status"] == "accepted"].set_index("event_id")
    local = pd.read_parquet(args.local).set_index("event_id")
    ids = [e for e in full.index if e in local.index]
    print(f"{len(ids)} events with both Hessians ({len(shards)} shards of the full run)")
    stored = torch.load(args.fingerprints, weights_only=False)
    pos = {e: i for i, e in enumerate(stored["event_id"])}
    rows = [pos[e] for e in ids]
    fp = {k: v[rows].double().numpy() for k, v in stored["fingerprints"].items() if k in ("TW_A", "TW_B", "KOL_A", "KOL_B")}
    sym = np.hstack([fp["TW_A"] + fp["TW_B"], np.abs(fp["TW_A"] - fp["TW_B"])])
    anti = np.hstack([fp["KOL_B"] - fp["KOL_A"], fp["TW_B"] - fp["TW_A"]])
    inputs = {"S_KRA": sym, "dS": anti, "ln_nu_AB": np.hstack([sym, anti])}
    print(f"{'term':10s} {'std full':>9s} {'std local':>9s} {'corr':>6s} {'R2 full':>8s} {'R2 local':>8s}")
    for term in TERMS:
        a, b = full.loc[ids, term].to_numpy(float), local.loc[ids, term].to_numpy(float)
        r2_full, r2_local = ridge_cv(inputs[term], a)[0], ridge_cv(inputs[term], b)[0]
        print(f"{term:10s} {a.std():9.4f} {b.std():9.4f} {np.corrcoef(a, b)[0, 1]:6.3f} {r2_full:8.3f} {r2_local:8.3f}")
    if args.csv:
        out = pd.DataFrame({"event_id": ids, **{f"{t}_full": full.loc[ids, t].to_numpy() for t in TERMS},
                            **{f"{t}_local": local.loc[ids, t].to_numpy() for t in TERMS}})
        out.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
