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


def aging_comparison(reference: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Per temperature, how a change of the rates (e.g. vibrational prefactors against a fixed nu) changes the
    simulated time and the ordering kinetics, from two :func:`aging_table` outputs of runs with the same jumps.

    Columns (``_ref`` / ``_other`` for the two runs): ``time_per_jump_s`` (simulated time at the last record
    over its jumps), ``time_ratio`` (other / reference), ``delta_final`` (the pair's delta_ij at the last
    record), ``jumps_half`` and ``t_half_s`` (the first record where delta has made half of its change from the
    first to the last record: the ordering speed in jumps and in simulated time) and ``t_half_ratio``.
    The tables may name the temperature ``temperature_K`` (rule kmc_aging's CSV).
    """
    reference, other = (t.rename(columns={"temperature_K": "temperature"}) for t in (reference, other))  # the CSVs
    rows = []
    for temperature in sorted(set(reference["temperature"]) & set(other["temperature"])):
        row: dict[str, float] = {"temperature": float(temperature)}
        for tag, table in (("ref", reference), ("other", other)):
            t = table[table["temperature"] == temperature].sort_values("jumps")
            last = t.iloc[-1]
            d0, d1 = float(t["delta"].iloc[0]), float(last["delta"])
            half = d0 + 0.5 * (d1 - d0)
            crossed = (t["delta"] - half) * np.sign(d1 - d0 if d1 != d0 else 1.0) >= 0
            first = t[crossed.to_numpy()].iloc[0]
            row.update({f"time_per_jump_s_{tag}": float(last["time_s"]) / float(last["jumps"]),
                        f"delta_final_{tag}": d1, f"jumps_half_{tag}": float(first["jumps"]),
                        f"t_half_s_{tag}": float(first["time_s"])})
        row["time_ratio"] = row["time_per_jump_s_other"] / row["time_per_jump_s_ref"]
        row["t_half_ratio"] = row["t_half_s_other"] / row["t_half_s_ref"]
        rows.append(row)
    return pd.DataFrame(rows)
