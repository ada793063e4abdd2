"""A larger run of a dataset that keeps an earlier, smaller run's rows byte for byte (``datasets.<name>.extends``).

The sampler draws event i of a composition from (seed, composition, i) alone, so a run with more events
per composition holds every event of a smaller run with the same seed. Its NEB results need not be
bit-identical, though: the optimiser's settings may have changed between the runs (the reference Cu-Ni
dataset predates FIRE's alpha_start = 0.25; the recomputed saddle energies differ by a fraction of a meV).
So the earlier run's rows (accepted and rejected) replace the recomputed ones, after a check that both
runs sampled the same events, and the difference of the recomputed energies is reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SAMPLED_COLUMNS = ("dataset", "composition", "composition_key", "config_index", "mode", "seed", "lattice",
                   "supercell", "a", "species", "occupation", "vacancy_site", "hop_site", "hop_species", "path",
                   "jump_x", "jump_y", "jump_z")
"""Columns the sampler writes: they must agree between the two runs."""

COMPARED = ("E_A", "E_B", "E_saddle", "barrier_forward")
"""Energies whose recomputation against the kept rows goes into the QC summary (meV)."""


def read_base(folder: str | Path) -> pd.DataFrame:
    """The accepted and rejected rows of an earlier run (``events.parquet`` and ``rejects.parquet``)."""
    folder = Path(folder)
    parts = [pd.read_parquet(folder / "events.parquet")]
    if (folder / "rejects.parquet").is_file():
        parts.append(pd.read_parquet(folder / "rejects.parquet"))
    return pd.concat([p for p in parts if len(p)], ignore_index=True)


def _differs(a: pd.Series, b: pd.Series) -> np.ndarray:
    return np.array([not (x == y or (isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y)))
                     for x, y in zip(a, b, strict=True)])


def extend_table(base: pd.DataFrame, table: pd.DataFrame, key: str = "datasets.<name>.extends") -> tuple[pd.DataFrame, dict]:
    """This run's rows ``table`` with every event of ``base`` replaced by base's row, and a report.

    Errors name ``key`` and the first offending events: base events this run did not sample, columns
    missing on either side, and sampled columns (occupation, sites, lattice parameter, ...) that differ.
    """
    base_ids, ids = base["event_id"].astype(str), table["event_id"].astype(str)
    if base_ids.duplicated().any():
        raise ValueError(f"{key}: the base dataset repeats event ids, e.g. {base_ids[base_ids.duplicated()].iloc[0]}")
    missing = sorted(set(base_ids) - set(ids))
    if missing:
        raise ValueError(f"{key}: {len(missing)} event(s) of the base dataset are not among this run's, e.g. "
                         f"{missing[0]} (the base has more events per composition, or another seed)")
    if set(base.columns) != set(table.columns):
        raise ValueError(f"{key}: the base dataset's columns differ from this run's: "
                         f"{sorted(set(base.columns) ^ set(table.columns))}")
    mine = table.set_index(ids).loc[base_ids.to_numpy()]
    theirs = base.set_index(base_ids)
    for col in SAMPLED_COLUMNS:
        if col in theirs.columns:
            bad = _differs(theirs[col], mine[col])
            if bad.any():
                event = theirs.index[np.flatnonzero(bad)[0]]
                raise ValueError(f"{key}: event {event} has another {col} in the base dataset than in this run's "
                                 f"sample ({int(bad.sum())} event(s) differ); the events were drawn with other settings")
    both = (theirs["status"] == "accepted").to_numpy() & (mine["status"] == "accepted").to_numpy()
    report = {"n_from_base": int(len(base)), "n_recomputed_accepted_both": int(both.sum()),
              "recomputed_minus_kept_meV": {}}
    for col in COMPARED:
        d = 1000.0 * (mine[col].to_numpy(float)[both] - theirs[col].to_numpy(float)[both])
        report["recomputed_minus_kept_meV"][col] = (
            {"mean": float(d.mean()), "rms": float(np.sqrt((d**2).mean())), "max_abs": float(np.abs(d).max())}
            if len(d) else {})
    merged = pd.concat([table[~ids.isin(set(base_ids))], base[table.columns]], ignore_index=True)
    return merged.sort_values("event_id", kind="stable").reset_index(drop=True), report
