"""Aging curves of a kMC run: chemical order (delta_ij) and state energy against simulated time.

Input is a kMC time series (:func:`dbkmc.stages.kmc.kmc_step`'s ``timeseries.parquet``:
one row per trajectory and record point, with ``temperature``, ``replica``,
``jumps``, ``time_s``, ``delta_<AB>`` and, for models with state energies,
``energy_eV``). Pure functions; the figure is :func:`dbkmc.figures.kmc.aging_figure`
and rule ``kmc_aging`` is :func:`dbkmc.stages.kmc_report.aging_step`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def order_column(timeseries: pd.DataFrame, pair: Sequence[str]) -> str:
    """The ``delta_<A><B>`` column of the species pair (either order), or a clear error."""
    a, b = pair
    for name in (f"delta_{a}{b}", f"delta_{b}{a}"):
        if name in timeseries.columns:
            return name
    found = sorted(c for c in timeseries.columns if c.startswith("delta_"))
    raise ValueError(f"aging.pair: no delta column for {a}-{b} in the time series (has {found})")


def aging_table(timeseries: pd.DataFrame, pair: Sequence[str]) -> pd.DataFrame:
    """Per temperature and record point: mean and standard error over replicas of time, delta and energy.

    Columns: ``temperature``, ``jumps``, ``n_replicas``, ``time_s`` (mean),
    ``time_s_sem``, ``delta`` (the pair's delta_ij), ``delta_sem`` and, when
    the series has them, ``energy_eV`` and ``energy_eV_sem``.
    """
    col = order_column(timeseries, pair)
    for need in ("temperature", "replica", "jumps", "time_s"):
        if need not in timeseries.columns:
            raise ValueError(f"aging: the time series lacks the column {need!r}")
    values = ["time_s", col] + (["energy_eV"] if "energy_eV" in timeseries.columns else [])
    bad = ~np.isfinite(timeseries[values].to_numpy(np.float64)).all(axis=1)
    if bad.any():
        rows = timeseries.loc[bad, ["temperature", "replica", "jumps"]].head(3).to_dict("records")
        raise ValueError(f"aging: non-finite time, {col} or energy in {int(bad.sum())} records, e.g. {rows}")
    g = timeseries.groupby(["temperature", "jumps"])[values]
    mean = g.mean()
    sem = g.sem(ddof=1) if timeseries["replica"].nunique() > 1 else mean * 0.0
    out = pd.concat([mean, sem.fillna(0.0).add_suffix("_sem")], axis=1)
    out.insert(0, "n_replicas", timeseries.groupby(["temperature", "jumps"])["replica"].nunique())
    out = out.rename(columns={col: "delta", f"{col}_sem": "delta_sem"}).reset_index()
    out.attrs["pair"] = col
    return out
