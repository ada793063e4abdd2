"""Aging curves of a kMC run: chemical order (delta_ij) and state energy against simulated time.

Input is a kMC time series (:func:`dbkmc.stages.kmc.kmc_step`'s ``timeseries.parquet``:
one row per trajectory and record point, with ``temperature``, ``replica``,
``jumps``, ``time_s``, ``delta_<AB>`` and, for models with state energies,
``energy_eV``). Pure functions apart from writing the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


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


def aging_figure(timeseries: pd.DataFrame, pair: Sequence[str], out: str | Path, title: str = "") -> None:
    """delta_AB (and the state energy, if recorded) against simulated time, one colour per temperature.

    Thin lines: single replicas; thick line with markers: the replica mean at
    each record point, plotted at the mean time.
    """
    col = order_column(timeseries, pair)
    table = aging_table(timeseries, pair)
    has_energy = "energy_eV" in timeseries.columns
    fig, axes = plt.subplots(1, 2 if has_energy else 1, figsize=(10 if has_energy else 5.2, 4), squeeze=False)
    axes[0, 0].axhline(0.0, color="0.6", lw=0.6)  # the random solution
    panels = [(axes[0, 0], col, "delta", f"{col.replace('delta_', 'delta ')} (bonds)")]
    if has_energy:
        panels.append((axes[0, 1], "energy_eV", "energy_eV", "M_KOL state energy (eV)"))
    for i, (temp, group) in enumerate(timeseries.groupby("temperature")):
        colour = f"C{i}"
        mean = table[table["temperature"] == temp]
        for ax, raw, avg, _ in panels:
            for _, rep in group.groupby("replica"):
                rep = rep[rep["time_s"] > 0].sort_values("jumps")
                ax.plot(rep["time_s"], rep[raw], color=colour, lw=0.6, alpha=0.35)
            m = mean[mean["time_s"] > 0]
            ax.plot(m["time_s"], m[avg], "o-", color=colour, ms=3, lw=1.6,
                    label=f"{temp:g} K ({int(m['n_replicas'].max())} replicas)")
    for ax, _, _, label in panels:
        ax.set(xscale="log", xlabel="simulated time (s)", ylabel=label)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def aging_step(timeseries_path: str | Path, pair: Sequence[str], run: str, out_table: str | Path,
               out_figure: str | Path) -> pd.DataFrame:
    """Rule kmc_aging: the replica-averaged aging table (CSV) and the figure of one kMC run."""
    timeseries = pd.read_parquet(timeseries_path)
    table = aging_table(timeseries, pair)
    table.rename(columns={"temperature": "temperature_K"}).to_csv(out_table, index=False)
    temps = ", ".join(f"{t:g} K" for t in sorted(timeseries["temperature"].unique()))
    aging_figure(timeseries, pair, out_figure, title=f"kMC run {run}: aging at {temps}")
    return table
