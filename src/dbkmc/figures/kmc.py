"""kMC figures: order against temperature and jumps, randomness, B2 clusters, aging (no torch).

The figures reproduce the NNK paper's Figs 3a, 3b, 4b, 4c and 5, and the aging curves
of detailed-balance runs. Every function takes tables (pandas DataFrames of the kMC
stage's outputs, already summarised by :mod:`dbkmc.kmc.analysis`) and an output path;
nothing here reads the stage's files or imports the rest of dbkmc.
"""

from __future__ import annotations

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


def peak_label(peak: Mapping[str, Any], unit: str = "K") -> str:
    """A legend text for a peak (a :func:`dbkmc.kmc.analysis.locate_peak` result)."""
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


# --- figures -------------------------------------------------------------------------


def _save(fig, out: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def fig3a_delta_vs_temperature(table: pd.DataFrame, pair: str, peak: Mapping[str, Any], title: str,
                               out: str | Path) -> None:
    """delta_ij (averaged over the end of each run) against T, one line per species pair.

    ``table`` is :func:`dbkmc.kmc.analysis.order_summary`'s; ``pair`` (``delta_<A><B>``)
    is the column whose ``peak`` (:func:`dbkmc.kmc.analysis.locate_peak`) is marked.
    """
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    for col in [c for c in table.columns if c.startswith("delta_") and not c.endswith("_sem")]:
        ax.errorbar(table["temperature"], table[col], yerr=table[f"{col}_sem"], marker="o", ms=3, capsize=2,
                    label=col.removeprefix("delta_"))
    ax.axhline(0.0, color="0.6", lw=0.8)
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


def fig4c_var_r(per_t: pd.DataFrame, peak: Mapping[str, Any], title: str, out: str | Path) -> None:
    """Var(R) against T on the aged configurations (and, dashed, on the starting configuration).

    With a ``var_R_sem`` column (see :func:`dbkmc.kmc.analysis.var_r_errors`) the aged
    points get error bars. ``peak`` is the aged Var(R)'s maximum
    (:func:`dbkmc.kmc.analysis.locate_peak`), marked as a peak only where resolved.
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
    mark_peak(ax, peak)
    ax.set(xlabel="T (K)", ylabel="Var(R) over sites", title=title)
    ax.legend(fontsize=7)
    _save(fig, out)


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



def aging_figure(timeseries: pd.DataFrame, table: pd.DataFrame, column: str, out: str | Path,
                 title: str = "", energy_label: str = "state energy (eV)") -> None:
    """delta_AB (and the state energy, if recorded) against simulated time, one colour per temperature.

    ``timeseries`` is the kMC time series, ``table`` its replica average
    (:func:`dbkmc.kmc.aging.aging_table`) and ``column`` the pair's ``delta_<A><B>``
    column. Thin lines: single replicas; thick line with markers: the replica mean at
    each record point, plotted at the mean time.
    """
    has_energy = "energy_eV" in timeseries.columns
    fig, axes = plt.subplots(1, 2 if has_energy else 1, figsize=(10 if has_energy else 5.2, 4), squeeze=False)
    axes[0, 0].axhline(0.0, color="0.6", lw=0.6)  # the random solution
    panels = [(axes[0, 0], column, "delta", f"{column.replace('delta_', 'delta ')} (bonds)")]
    if has_energy:
        panels.append((axes[0, 1], "energy_eV", "energy_eV", energy_label))
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
    _save(fig, out)
