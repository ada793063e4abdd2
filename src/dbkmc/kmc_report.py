"""kMC reports: order against temperature and jumps, randomness figures, B2 clusters (no torch).

The figures reproduce the NNK paper's Figs 3a, 3b, 4b, 4c and 5 from the kMC stage's
outputs. Everything here reads files written by :mod:`dbkmc.kmc_stage` and needs only
numpy, pandas, scipy and matplotlib.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import analysis  # noqa: E402
from .kmc_io import load_final, read_dump_frames  # noqa: E402


def order_summary(timeseries: pd.DataFrame, pair: Sequence[str], average_fraction: float) -> tuple[pd.DataFrame, dict]:
    """Per temperature: delta_ij and alpha_ij averaged over the last ``average_fraction`` of jumps.

    Records with ``jumps >= (1 - average_fraction) * n_jumps`` are averaged per
    trajectory, then over replicas (mean and standard error). The peak temperature is
    where the mean ``delta_<pair>`` is largest.
    """
    n = int(timeseries["jumps"].max())
    tail = timeseries[timeseries["jumps"] >= (1.0 - average_fraction) * n]
    cols = [c for c in timeseries.columns if c.startswith(("delta_", "alpha_", "energy_"))]
    per_traj = tail.groupby(["temperature", "replica"])[cols].mean().reset_index()
    g = per_traj.groupby("temperature")[cols]
    mean = g.mean()
    sem = g.sem(ddof=1).fillna(0.0) if per_traj["replica"].nunique() > 1 else mean * 0.0
    table = mean.join(sem.add_suffix("_sem")).reset_index()
    table["n_records_averaged"] = tail.groupby("temperature")["jumps"].nunique().to_numpy()
    name = f"delta_{pair[0]}{pair[1]}"
    if name not in table:
        name = f"delta_{pair[1]}{pair[0]}"
    if name not in table:
        raise ValueError(f"analysis.order_pair: {list(pair)} is not a species pair of this run")
    peak = table.loc[table[name].idxmax()]
    summary = {"pair": name, "peak_temperature_K": float(peak["temperature"]), "peak_value": float(peak[name]),
               "n_jumps": n, "average_fraction": average_fraction}
    return table, summary


def b2_step(snapshot_dir: str | Path, final: Mapping[str, Any], a: str, b: str, fraction: float,
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """B2 clusters in every snapshot of every trajectory.

    Returns one row per cluster (with its lineage through the snapshots, see
    :func:`dbkmc.analysis.track_clusters`) and one row per snapshot (unit count,
    cluster count, largest and mean cluster size, persistent clusters: those whose
    lineage reaches back at least half of the snapshots taken so far).
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
    per_snap = pd.DataFrame(snap_rows)
    stats = []
    for (traj, jumps), g in clusters.groupby(["trajectory", "jumps"]):
        k = int((per_snap[(per_snap.trajectory == traj)].jumps <= jumps).sum())
        stats.append({"trajectory": traj, "jumps": jumps, "n_clusters": len(g), "largest": int(g["size"].max()),
                      "mean_size": float(g["size"].mean()),
                      "persistent": int((g["age_snapshots"] >= max(1, (k - 1) // 2)).sum())})
    per_snap = per_snap.merge(pd.DataFrame(stats, columns=["trajectory", "jumps", "n_clusters", "largest",
                                                           "mean_size", "persistent"]),
                              on=["trajectory", "jumps"], how="left").fillna(
        {"n_clusters": 0, "largest": 0, "mean_size": 0.0, "persistent": 0})
    return clusters, per_snap


# --- figures -------------------------------------------------------------------------


def _save(fig, out: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def fig3a_delta_vs_temperature(table: pd.DataFrame, summary: Mapping[str, Any], title: str, out: str | Path) -> None:
    """delta_ij (averaged over the end of each run) against T, one line per species pair."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for col in [c for c in table.columns if c.startswith("delta_") and not c.endswith("_sem")]:
        ax.errorbar(table["temperature"], table[col], yerr=table[f"{col}_sem"], marker="o", ms=3, capsize=2,
                    label=col.removeprefix("delta_"))
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.axvline(summary["peak_temperature_K"], color="k", ls=":", lw=1,
               label=f"{summary['pair'].removeprefix('delta_')} peak {summary['peak_temperature_K']:g} K")
    ax.set(xlabel="T (K)", ylabel=r"$\delta_{ij} = N_{ij} - N^0_{ij}$ (bonds)", title=title)
    ax.legend(fontsize=7)
    _save(fig, out)


def fig3b_delta_vs_jumps(timeseries: pd.DataFrame, pair_column: str, title: str, out: str | Path) -> None:
    """delta_<pair> against jumps (log axis), one line per temperature (replica mean)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ts = timeseries[timeseries["jumps"] > 0]
    temps = sorted(ts["temperature"].unique())
    cmap = plt.get_cmap("viridis")
    for i, t in enumerate(temps):
        g = ts[ts["temperature"] == t].groupby("jumps")[pair_column].mean()
        ax.plot(g.index, g.to_numpy(), color=cmap(i / max(1, len(temps) - 1)), lw=1, label=f"{t:g} K")
    ax.set_xscale("log")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set(xlabel="jumps", ylabel=rf"$\delta$ {pair_column.removeprefix('delta_')} (bonds)", title=title)
    ax.legend(fontsize=6, ncol=2)
    _save(fig, out)


def fig4b_randomness_distributions(per_site: pd.DataFrame, temperatures: Sequence[float], title: str,
                                   out: str | Path) -> list[float]:
    """Histograms of R over sites at the run temperatures nearest to ``temperatures``; returns those used."""
    per_site = per_site[per_site["configuration"] == "final"] if "configuration" in per_site else per_site
    available = np.array(sorted(per_site["temperature"].unique()))
    used = sorted({float(available[np.argmin(np.abs(available - t))]) for t in temperatures})
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    bins = np.linspace(0.0, 1.0, 41)
    for t in used:
        r = per_site.loc[per_site["temperature"] == t, "R"]
        ax.hist(r, bins=bins, histtype="step", density=True, lw=1.4, label=f"{t:g} K (Var {np.var(r, ddof=1):.3g})")
    ax.set(xlabel="jump randomness R", ylabel="density of sites", title=title)
    ax.legend(fontsize=7)
    _save(fig, out)
    return used


def fig4c_var_r(per_t: pd.DataFrame, summary: Mapping[str, Any], title: str, out: str | Path) -> None:
    """Var(R) against T on the aged configurations (and, dashed, on the starting configuration)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    if "configuration" not in per_t:
        per_t = per_t.assign(configuration="final")
    final = per_t[per_t["configuration"] == "final"]
    ax.plot(final["temperature"], final["var_R"], "o-", ms=3, label="aged (end of each run)")
    start = per_t[per_t["configuration"] == "initial"]
    if len(start):
        ax.plot(start["temperature"], start["var_R"], "s--", ms=3, color="0.5", label="starting configuration")
    ax.axvline(summary["peak_temperature_K"], color="k", ls=":", lw=1,
               label=f"peak {summary['peak_temperature_K']:g} K")
    ax.set(xlabel="T (K)", ylabel="Var(R) over sites", title=title)
    ax.legend(fontsize=7)
    _save(fig, out)


def fig5_b2_clusters(clusters: pd.DataFrame, per_snap: pd.DataFrame, title: str, out: str | Path) -> None:
    """B2 clusters against jumps: size distribution (box per snapshot), largest and persistent clusters."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    counts = axes[0].twinx()
    for traj, g in per_snap.groupby("trajectory"):
        t = g["temperature"].iloc[0]
        axes[0].plot(g["jumps"], g["largest"], "o-", ms=3, label=f"largest cluster, {t:g} K")
        axes[0].plot(g["jumps"], g["mean_size"], "s--", ms=3, label=f"mean cluster, {t:g} K")
        counts.plot(g["jumps"], g["units"], "v-.", ms=3, color="0.4", label=f"B2 units, {t:g} K")
        counts.plot(g["jumps"], g["persistent"], "^:", ms=3, color="C2", label=f"persistent clusters, {t:g} K")
    axes[0].set(xscale="log", xlabel="jumps", ylabel="cluster size (B2 units)", title=title)
    counts.set_ylabel("count")
    lines = axes[0].get_legend_handles_labels()
    more = counts.get_legend_handles_labels()
    axes[0].legend(lines[0] + more[0], lines[1] + more[1], fontsize=6, loc="upper left")
    if len(clusters):
        last_traj = clusters["trajectory"].iloc[0]
        c = clusters[clusters["trajectory"] == last_traj]
        snaps = sorted(c["jumps"].unique())
        data = [c.loc[c["jumps"] == j, "size"].to_numpy() for j in snaps]
        axes[1].boxplot(data, positions=np.arange(len(snaps)), widths=0.6, showfliers=True)
        axes[1].set_xticks(np.arange(len(snaps)), [f"{j:.0e}" for j in snaps], rotation=45, fontsize=7)
        axes[1].set_yscale("log")
    axes[1].set(xlabel="jumps", ylabel="cluster size (B2 units)", title="cluster-size distribution")
    _save(fig, out)


# --- rule steps ------------------------------------------------------------------------


def order_report_step(timeseries_path: str | Path, pair: Sequence[str], average_fraction: float, run: str,
                      table_out: str | Path, summary_out: str | Path, fig3a_out: str | Path,
                      fig3b_out: str | Path) -> None:
    ts = pd.read_parquet(timeseries_path)
    table, summary = order_summary(ts, pair, average_fraction)
    table.to_csv(table_out, index=False)
    Path(summary_out).write_text(json.dumps({"run": run, **summary}, indent=2) + "\n")
    fig3a_delta_vs_temperature(table, summary, f"{run}: order after {summary['n_jumps']:.2g} jumps", fig3a_out)
    fig3b_delta_vs_jumps(ts, summary["pair"], f"{run}: {summary['pair']} against jumps", fig3b_out)


def randomness_figures_step(per_site_path: str | Path, per_t_path: str | Path, summary_path: str | Path,
                            temperatures: Sequence[float], run: str, fig4b_out: str | Path,
                            fig4c_out: str | Path) -> None:
    per_site = pd.read_parquet(per_site_path)
    per_t = pd.read_csv(per_t_path)
    summary = json.loads(Path(summary_path).read_text())
    fig4b_randomness_distributions(per_site, temperatures, f"{run}: R over sites", fig4b_out)
    fig4c_var_r(per_t, summary, f"{run}: Var(R) against T", fig4c_out)


def b2_report_step(snapshot_dir: str | Path, final_path: str | Path, b2: Mapping[str, Any], run: str,
                   clusters_out: str | Path, per_snap_out: str | Path, fig5_out: str | Path) -> None:
    final = load_final(final_path)
    clusters, per_snap = b2_step(snapshot_dir, final, b2["a"], b2["b"], float(b2["fraction"]))
    clusters.to_csv(clusters_out, index=False)
    per_snap.to_csv(per_snap_out, index=False)
    fig5_b2_clusters(clusters, per_snap, f"{run}: B2 {b2['a']}-{b2['b']} clusters", fig5_out)
