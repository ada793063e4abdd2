"""Figure of the equilibrium check: alpha_1 of the three samplers, M_EXT vs LAMMPS dE far from training."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def equilibrium_figure(table: pd.DataFrame, comparisons: pd.DataFrame, far: pd.DataFrame | None,
                       r: float | None, path: str) -> None:
    """(a) alpha_1 vs T with 2 SE bars per sampler; (b) mean M_EXT energy, kMC vs swap MC;
    (c) M_EXT vs LAMMPS energy differences on the ordered / clustered cells."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    ax = axes[0]
    methods = list(dict.fromkeys(table["method"]))
    for k, (method, marker) in enumerate(zip(methods, "osD^v")):
        g = table[table["method"] == method]
        ax.errorbar(g["temperature"] + 8 * (k - 1), g["alpha_1"], yerr=2 * g["alpha_1_se"], fmt=marker,
                    capsize=3, label=method)
    ax.axhline(0, color="0.7", lw=0.8)
    ax.set_xlabel("T (K)")
    ax.set_ylabel(r"$\alpha_1$ (Cu-Ni), bars: 2 SE")
    ax.legend(fontsize=7)
    ax.set_title("(a) short-range order")
    ax = axes[1]
    g = table[table["method"] != "swap MC, LAMMPS relaxed"]
    for k, (method, marker) in enumerate(zip(dict.fromkeys(g["method"]), "os")):
        h = g[g["method"] == method]
        ax.errorbar(h["temperature"] + 8 * k, h["energy_mean"], yerr=2 * h["energy_se"], fmt=marker, capsize=3,
                    label=method)
    ax.set_xlabel("T (K)")
    ax.set_ylabel("<E> of M_EXT (eV), bars: 2 SE")
    ax.legend(fontsize=7)
    ax.set_title("(b) mean energy")
    ax = axes[2]
    if far is not None and len(far):
        ax.scatter(far["dE_lammps"], far["dE_model"], c=far["alpha_1"], cmap="coolwarm", vmin=-0.5, vmax=0.5)
        lo = float(min(far["dE_lammps"].min(), far["dE_model"].min()))
        hi = float(max(far["dE_lammps"].max(), far["dE_model"].max()))
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
        ax.set_title(f"(c) far from training: r = {r:.3f}")
    else:
        ax.set_title("(c) far from training: not run")
    ax.set_xlabel("dE LAMMPS to cell 0 (eV)")
    ax.set_ylabel("dE M_EXT to cell 0 (eV)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
