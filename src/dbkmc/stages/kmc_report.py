"""kMC report steps: read a run's outputs, summarise them, write the tables and figures.

Rules ``kmc_order`` (Figs 3a, 3b), ``kmc_randomness_figures`` (Figs 4b, 4c), ``kmc_b2``
(Fig 5) and ``kmc_aging``. Each step reads the files :mod:`dbkmc.stages.kmc` wrote, calls
the pure summaries of :mod:`dbkmc.kmc.analysis` / :mod:`dbkmc.kmc.aging`, writes the
tables (``temperature_K`` in the CSV headers) and hands plain tables to
:mod:`dbkmc.figures.kmc`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dbkmc.figures import kmc as kmc_figures
from dbkmc.kmc import analysis
from dbkmc.kmc.aging import aging_table, order_column
from dbkmc.kmc.io import load_final, read_dump_frames


def order_report_step(timeseries_path: str | Path, pair: Sequence[str], average_fraction: float, run: str,
                      table_out: str | Path, summary_out: str | Path, fig3a_out: str | Path,
                      fig3b_out: str | Path) -> None:
    """Rule kmc_order: delta_ij and alpha_ij per temperature (CSV), the order peak (JSON), Figs 3a and 3b."""
    ts = pd.read_parquet(timeseries_path)
    table, summary = analysis.order_summary(ts, pair, average_fraction)
    table.rename(columns={"temperature": "temperature_K"}).to_csv(table_out, index=False)
    Path(summary_out).write_text(json.dumps({"run": run, **summary}, indent=2) + "\n")
    name = summary["pair"]
    replicated = bool(np.any(table[f"{name}_sem"].to_numpy() > 0))
    peak = analysis.locate_peak(table["temperature"], table[name], table[f"{name}_sem"] if replicated else None)
    kmc_figures.fig3a_delta_vs_temperature(table, name, peak, f"{run}: order after {summary['n_jumps']:.2g} jumps",
                                           fig3a_out)
    kmc_figures.fig3b_delta_vs_jumps(ts, name, f"{run}: {name} against jumps", fig3b_out)


def randomness_figures_step(per_site_path: str | Path, per_t_path: str | Path, summary_path: str | Path,
                            temperatures: Sequence[float], run: str, fig4b_out: str | Path,
                            fig4c_out: str | Path) -> None:
    """Rule kmc_randomness_figures: R over sites (Fig 4b) and Var(R) against T with its errors (Fig 4c).

    ``summary_path`` (``randomness_summary.json``) is a rule input only: the figures
    use the per-site and per-temperature tables.
    """
    per_site = pd.read_parquet(per_site_path)
    per_t = pd.read_csv(per_t_path).rename(columns={"temperature_K": "temperature"})
    per_t = analysis.var_r_errors(per_t, per_site)
    aged = per_t[per_t["configuration"] == "final"] if "configuration" in per_t else per_t
    peak = analysis.locate_peak(aged["temperature"], aged["var_R"], aged["var_R_sem"])
    kmc_figures.fig4b_randomness_distributions(per_site, temperatures, f"{run}: R over sites", fig4b_out)
    kmc_figures.fig4c_var_r(per_t, peak, f"{run}: Var(R) against T", fig4c_out)


def b2_tables(snapshot_dir: str | Path, final: Mapping[str, Any], a: str, b: str, fraction: float,
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """B2 clusters in every snapshot of every trajectory (the dumps listed in ``index.csv``).

    Returns one row per cluster (with its lineage through the snapshots, see
    :func:`dbkmc.kmc.analysis.track_clusters`) and one row per snapshot (unit count and
    :func:`dbkmc.kmc.analysis.b2_snapshot_stats`). One trajectory's snapshots are read
    at a time.
    """
    lattice, species = final["lattice"], final["species"]
    for s in (a, b):
        if s not in species:
            raise ValueError(f"analysis.b2: species {s!r} not in {species}")
    da, db = species.index(a) + 1, species.index(b) + 1
    index = pd.read_csv(Path(snapshot_dir) / "index.csv")
    cutoff = analysis.b2_cluster_cutoff(lattice)
    clusters_rows, snap_rows = [], []
    for traj, group in index.groupby("trajectory"):
        snaps = []
        for _, row in group.sort_values("jumps").iterrows():
            (jumps, digits), = list(read_dump_frames(Path(snapshot_dir) / row["file"], lattice))
            units = analysis.b2_units(digits, lattice, da, db, fraction)
            snaps.append((int(jumps), analysis.b2_clusters(units, lattice, cutoff)))
            snap_rows.append({"trajectory": traj, "temperature": row["temperature"], "replica": row["replica"],
                              "jumps": int(jumps), "units": len(units)})
        tracked = analysis.track_clusters(snaps)
        tracked.insert(0, "trajectory", traj)
        tracked.insert(1, "temperature", float(group["temperature"].iloc[0]))
        clusters_rows.append(tracked)
    clusters = pd.concat(clusters_rows, ignore_index=True) if clusters_rows else pd.DataFrame()
    return clusters, analysis.b2_snapshot_stats(clusters, pd.DataFrame(snap_rows))


def b2_report_step(snapshot_dir: str | Path, final_path: str | Path, b2: Mapping[str, Any], run: str,
                   clusters_out: str | Path, per_snap_out: str | Path, fig5_out: str | Path) -> None:
    """Rule kmc_b2: B2 clusters per snapshot (two CSVs) and Fig 5."""
    final = load_final(final_path)
    clusters, per_snap = b2_tables(snapshot_dir, final, b2["a"], b2["b"], float(b2["fraction"]))
    clusters.rename(columns={"temperature": "temperature_K"}).to_csv(clusters_out, index=False)
    per_snap.rename(columns={"temperature": "temperature_K"}).to_csv(per_snap_out, index=False)
    kmc_figures.fig5_b2_clusters(clusters, per_snap, f"{run}: B2 {b2['a']}-{b2['b']} clusters", fig5_out)


def aging_step(timeseries_path: str | Path, pair: Sequence[str], run: str, out_table: str | Path,
               out_figure: str | Path, energy_model: str = "M_KOL") -> pd.DataFrame:
    """Rule kmc_aging: the replica-averaged aging table (CSV) and the figure of one kMC run (``energy_model``
    names the state energy of the time series: M_KOL's window energy or M_EXT's whole-cell energy)."""
    timeseries = pd.read_parquet(timeseries_path)
    table = aging_table(timeseries, pair)
    table.rename(columns={"temperature": "temperature_K"}).to_csv(out_table, index=False)
    temps = ", ".join(f"{t:g} K" for t in sorted(timeseries["temperature"].unique()))
    kmc_figures.aging_figure(timeseries, table, order_column(timeseries, pair), out_figure,
                             title=f"kMC run {run}: aging at {temps}",
                             energy_label=f"{energy_model} {'whole-cell' if energy_model == 'M_EXT' else 'state'} energy (eV)")
    return table
