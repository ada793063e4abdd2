"""kMC reports: order against temperature and jumps, randomness figures, B2 clusters (no torch).

The figures reproduce the NNK paper's Figs 3a, 3b, 4b, 4c and 5 from the kMC stage's
outputs. Everything here reads files written by :mod:`dbkmc.stages.kmc` and needs only
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
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
import pandas as pd  # noqa: E402

from dbkmc.kmc import analysis  # noqa: E402
from dbkmc.kmc.io import load_final, read_dump_frames  # noqa: E402


def locate_peak(x: Sequence[float], y: Sequence[float], err: Sequence[float] | None) -> dict[str, Any]:
    """Where ``y(x)`` is largest, and whether that is a resolved peak.

    ``err`` are the standard errors of ``y``. Starting from the largest point, the
    neighbours on each side whose difference from it is within the combined standard
    error ``sqrt(err_max**2 + err_j**2)`` are added to a plateau. Returned ``kind``:

    - ``"peak"``: the maximum exceeds both neighbours by more than their combined
      errors and is not at either end of the range;
    - ``"plateau"``: points next to the maximum agree with it within their errors
      (``x_range`` gives the first and last of them);
    - ``"edge"``: the maximum (or its plateau) reaches the first or last ``x``;
    - ``"maximum"``: no error estimate (``err`` None, or all zero / NaN): only the
      largest point is known, not whether it is resolved.

    ``x_max`` and ``y_max`` are the largest point.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise ValueError(f"locate_peak: need equal-length 1-d x and y, got shapes {x.shape}, {y.shape}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    e = None if err is None else np.asarray(err, dtype=float)[order]
    i = int(np.nanargmax(y))
    out: dict[str, Any] = {"x_max": float(x[i]), "y_max": float(y[i])}
    if e is None or not np.any(np.nan_to_num(e) > 0):
        return {**out, "kind": "maximum", "x_range": (float(x[i]), float(x[i]))}
    e = np.nan_to_num(e)
    lo = hi = i
    while lo > 0 and y[i] - y[lo - 1] <= np.hypot(e[i], e[lo - 1]):
        lo -= 1
    while hi < len(x) - 1 and y[i] - y[hi + 1] <= np.hypot(e[i], e[hi + 1]):
        hi += 1
    kind = "edge" if lo == 0 or hi == len(x) - 1 else ("peak" if lo == hi else "plateau")
    return {**out, "kind": kind, "x_range": (float(x[lo]), float(x[hi]))}


def peak_label(peak: Mapping[str, Any], unit: str = "K") -> str:
    """A legend text for :func:`locate_peak`'s result."""
    lo, hi = peak["x_range"]
    if peak["kind"] == "peak":
        return f"peak {peak['x_max']:g} {unit}"
    if peak["kind"] == "plateau":
        return f"plateau {lo:g}-{hi:g} {unit}\n(equal within errors; max {peak['x_max']:g} {unit})"
    if peak["kind"] == "edge":
        return f"largest at the range edge\n({lo:g}-{hi:g} {unit}): no peak"
    return f"largest at {peak['x_max']:g} {unit}\n(no error estimate: peak not tested)"


def mark_peak(ax, peak: Mapping[str, Any], unit: str = "K", prefix: str = "") -> None:
    """A dotted line at a resolved peak; a shaded band over a plateau; otherwise only the legend text."""
    lo, hi = peak["x_range"]
    label = prefix + peak_label(peak, unit)
    if peak["kind"] == "peak":
        ax.axvline(peak["x_max"], color="k", ls=":", lw=1, label=label)
    elif peak["kind"] == "plateau":
        ax.axvspan(lo, hi, color="0.85", zorder=0, label=label)
    else:
        ax.plot([], [], " ", label=label)


def variance_sem(values: np.ndarray) -> float:
    """Standard error of the sample variance of independent values (from the fourth central moment).

    ``Var(s^2) = (m4 - s^4 (n - 3) / (n - 1)) / n``; NaN for fewer than 4 values.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 4:
        return float("nan")
    d = v - v.mean()
    s2 = float(np.var(v, ddof=1))
    m4 = float(np.mean(d**4))
    return float(np.sqrt(max(0.0, (m4 - s2**2 * (n - 3) / (n - 1)) / n)))


def order_summary(timeseries: pd.DataFrame, pair: Sequence[str], average_fraction: float) -> tuple[pd.DataFrame, dict]:
    """Per temperature: delta_ij and alpha_ij averaged over the last ``average_fraction`` of jumps.

    Records with ``jumps >= (1 - average_fraction) * n_jumps`` are averaged per
    trajectory, then over replicas (mean and standard error). The peak temperature is
    where the mean ``delta_<pair>`` is largest; ``peak_kind`` and ``peak_range_K`` say
    whether that maximum is resolved against its neighbours (:func:`locate_peak`; with
    one replica there is no error estimate and ``peak_kind`` is ``"maximum"``).
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
    resolved = locate_peak(table["temperature"], table[name],
                           table[f"{name}_sem"] if per_traj["replica"].nunique() > 1 else None)
    summary = {"pair": name, "peak_temperature_K": float(peak["temperature"]), "peak_value": float(peak[name]),
               "peak_kind": resolved["kind"], "peak_range_K": list(resolved["x_range"]),
               "n_jumps": n, "average_fraction": average_fraction}
    return table, summary


def b2_step(snapshot_dir: str | Path, final: Mapping[str, Any], a: str, b: str, fraction: float,
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """B2 clusters in every snapshot of every trajectory.

    Returns one row per cluster (with its lineage through the snapshots, see
    :func:`dbkmc.kmc.analysis.track_clusters`) and one row per snapshot (unit count,
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
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for col in [c for c in table.columns if c.startswith("delta_") and not c.endswith("_sem")]:
        ax.errorbar(table["temperature"], table[col], yerr=table[f"{col}_sem"], marker="o", ms=3, capsize=2,
                    label=col.removeprefix("delta_"))
    ax.axhline(0.0, color="0.6", lw=0.8)
    pair = summary["pair"]
    replicated = bool(np.any(table[f"{pair}_sem"].to_numpy() > 0))
    peak = locate_peak(table["temperature"], table[pair], table[f"{pair}_sem"] if replicated else None)
    mark_peak(ax, peak, prefix=f"{pair.removeprefix('delta_')}: ")
    ax.set(xlabel="T (K)", ylabel=r"$\delta_{ij} = N_{ij} - N^0_{ij}$ (bonds)", title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, out)


def fig3b_delta_vs_jumps(timeseries: pd.DataFrame, pair_column: str, title: str, out: str | Path) -> None:
    """delta_<pair> against jumps (log axis), one line per temperature (replica mean)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ts = timeseries[timeseries["jumps"] > 0]
    temps = sorted(ts["temperature"].unique())
    norm = Normalize(vmin=min(temps), vmax=max(temps) if max(temps) > min(temps) else min(temps) + 1)
    cmap = plt.get_cmap("viridis")
    for t in temps:
        g = ts[ts["temperature"] == t].groupby("jumps")[pair_column].mean()
        ax.plot(g.index, g.to_numpy(), color=cmap(norm(t)), lw=1)
    ax.set_xscale("log")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set(xlabel="jumps", ylabel=rf"$\delta$ {pair_column.removeprefix('delta_')} (bonds)", title=title)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
    bar.set_label("T (K)")
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
    """Var(R) against T on the aged configurations (and, dashed, on the starting configuration).

    With a ``var_R_sem`` column (see :func:`var_r_errors`) the aged points get error bars
    and the maximum is marked as a peak only where :func:`locate_peak` resolves one.
    """
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    if "configuration" not in per_t:
        per_t = per_t.assign(configuration="final")
    final = per_t[per_t["configuration"] == "final"]
    ax.plot(final["temperature"], final["var_R"], "o-", ms=3, label="aged (end of each run)")
    start = per_t[per_t["configuration"] == "initial"]
    if len(start):
        ax.plot(start["temperature"], start["var_R"], "s--", ms=3, color="0.5", label="starting configuration")
    err = final["var_R_sem"] if "var_R_sem" in final else None
    if err is not None:
        ax.errorbar(final["temperature"], final["var_R"], yerr=err, fmt="none", ecolor="C0", capsize=2, lw=0.8)
    mark_peak(ax, locate_peak(final["temperature"], final["var_R"], err))
    ax.set(xlabel="T (K)", ylabel="Var(R) over sites", title=title)
    ax.legend(fontsize=7)
    _save(fig, out)


def var_r_errors(per_t: pd.DataFrame, per_site: pd.DataFrame) -> pd.DataFrame:
    """``per_t`` with ``var_R_sem``: the standard error of each Var(R) from its sites' R values.

    The sites are treated as independent samples, so this is a lower bound where R is
    correlated between neighbouring sites.
    """
    keys = ["configuration", "temperature"] if "configuration" in per_t and "configuration" in per_site \
        else ["temperature"]
    sem = per_site.groupby(keys)["R"].agg(var_R_sem=lambda r: variance_sem(r.to_numpy())).reset_index()
    return per_t.drop(columns=["var_R_sem"], errors="ignore").merge(sem, on=keys, how="left")


def fig5_b2_clusters(clusters: pd.DataFrame, per_snap: pd.DataFrame, title: str, out: str | Path) -> None:
    """B2 clusters against jumps: cluster sizes, counts, and the size distribution (box per snapshot).

    Sizes (largest and mean cluster) and counts (B2 units, persistent clusters) get
    their own panels with one y axis each; the sizes' axis is logarithmic, so a mean
    of a few units stays readable beside a largest cluster of hundreds.
    """
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.9))
    sizes, counts = axes[0], axes[1]
    for k, (traj, g) in enumerate(per_snap.groupby("trajectory")):
        t = g["temperature"].iloc[0]
        colour = f"C{k % 10}"
        sizes.plot(g["jumps"], g["largest"], "o-", ms=3, color=colour, label=f"largest, {t:g} K")
        mean = g["mean_size"].where(g["n_clusters"] > 0)  # no cluster: no mean size
        sizes.plot(g["jumps"], mean, "s--", ms=3, color=colour, alpha=0.7, label=f"mean, {t:g} K")
        counts.plot(g["jumps"], g["units"], "v-", ms=3, color=colour, label=f"B2 units, {t:g} K")
        counts.plot(g["jumps"], g["persistent"], "^:", ms=3, color=colour, alpha=0.7,
                    label=f"persistent clusters, {t:g} K")
    for ax in (sizes, counts):
        ax.set_xscale("log")
        ax.legend(fontsize=6)
    sizes.set_yscale("log")  # sizes are >= 1 B2 unit
    counts.set_ylim(bottom=0)
    sizes.set(xlabel="jumps", ylabel="cluster size (B2 units)", title=title)
    counts.set(xlabel="jumps", ylabel="count", title="B2 units and persistent clusters")
    if len(clusters):
        last_traj = clusters["trajectory"].iloc[0]
        c = clusters[clusters["trajectory"] == last_traj]
        snaps = sorted(c["jumps"].unique())
        data = [c.loc[c["jumps"] == j, "size"].to_numpy() for j in snaps]
        axes[2].boxplot(data, positions=np.arange(len(snaps)), widths=0.6, showfliers=True)
        axes[2].set_xticks(np.arange(len(snaps)), [f"{j:.0e}" for j in snaps], rotation=45, fontsize=7)
        axes[2].set_yscale("log")
        t = float(c["temperature"].iloc[0]) if "temperature" in c else float("nan")
        axes[2].set_title(f"cluster-size distribution, {t:g} K")
    axes[2].set(xlabel="jumps", ylabel="cluster size (B2 units)")
    _save(fig, out)


# --- rule steps ------------------------------------------------------------------------


def order_report_step(timeseries_path: str | Path, pair: Sequence[str], average_fraction: float, run: str,
                      table_out: str | Path, summary_out: str | Path, fig3a_out: str | Path,
                      fig3b_out: str | Path) -> None:
    ts = pd.read_parquet(timeseries_path)
    table, summary = order_summary(ts, pair, average_fraction)
    table.rename(columns={"temperature": "temperature_K"}).to_csv(table_out, index=False)
    Path(summary_out).write_text(json.dumps({"run": run, **summary}, indent=2) + "\n")
    fig3a_delta_vs_temperature(table, summary, f"{run}: order after {summary['n_jumps']:.2g} jumps", fig3a_out)
    fig3b_delta_vs_jumps(ts, summary["pair"], f"{run}: {summary['pair']} against jumps", fig3b_out)


def randomness_figures_step(per_site_path: str | Path, per_t_path: str | Path, summary_path: str | Path,
                            temperatures: Sequence[float], run: str, fig4b_out: str | Path,
                            fig4c_out: str | Path) -> None:
    per_site = pd.read_parquet(per_site_path)
    per_t = pd.read_csv(per_t_path).rename(columns={"temperature_K": "temperature"})
    summary = json.loads(Path(summary_path).read_text())
    per_t = var_r_errors(per_t, per_site)
    fig4b_randomness_distributions(per_site, temperatures, f"{run}: R over sites", fig4b_out)
    fig4c_var_r(per_t, summary, f"{run}: Var(R) against T", fig4c_out)


def b2_report_step(snapshot_dir: str | Path, final_path: str | Path, b2: Mapping[str, Any], run: str,
                   clusters_out: str | Path, per_snap_out: str | Path, fig5_out: str | Path) -> None:
    final = load_final(final_path)
    clusters, per_snap = b2_step(snapshot_dir, final, b2["a"], b2["b"], float(b2["fraction"]))
    clusters.rename(columns={"temperature": "temperature_K"}).to_csv(clusters_out, index=False)
    per_snap.rename(columns={"temperature": "temperature_K"}).to_csv(per_snap_out, index=False)
    fig5_b2_clusters(clusters, per_snap, f"{run}: B2 {b2['a']}-{b2['b']} clusters", fig5_out)
