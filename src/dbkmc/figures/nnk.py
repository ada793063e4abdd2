"""NNK figures (matplotlib, Agg): barrier spectra (Fig 2b-style), parity, ternary map (Fig 2c-style)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.tri as mtri  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

_PART_LABEL = {"test": "held-out configurations", "held_out": "unseen composition"}


def spectrum_figure(predictions: Mapping[str, pd.DataFrame], panels: Sequence[tuple[str, str]], title: str,
                    out: str | Path) -> None:
    """Per panel (composition, part): histogram of the NEB barriers and of each network's predictions."""
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4.6 * max(1, len(panels)), 3.8), squeeze=False)
    for ax, (comp, part) in zip(axes[0], panels, strict=False):
        first = next(iter(predictions.values()))
        sel = first[(first["composition"] == comp) & (first["part"] == part)]
        y = sel["barrier_neb"].to_numpy()
        lo, hi = float(y.min()), float(y.max())
        for df in predictions.values():
            p = df[(df["composition"] == comp) & (df["part"] == part)]["barrier_pred"]
            lo, hi = min(lo, float(p.min())), max(hi, float(p.max()))
        bins = np.linspace(lo - 0.02, hi + 0.02, 25)
        ax.hist(y, bins=bins, color="0.7", label=f"NEB (n={len(y)})")
        for k, (arch, df) in enumerate(predictions.items()):
            s = df[(df["composition"] == comp) & (df["part"] == part)]
            mae = float(np.mean(np.abs(s["barrier_pred"] - s["barrier_neb"])))
            ax.hist(s["barrier_pred"], bins=bins, histtype="step", lw=1.6, color=f"C{k}",
                    label=f"{arch.upper()} (MAE {1000 * mae:.0f} meV)")
        ax.set(xlabel="barrier (eV)", ylabel="paths", title=f"{comp}: {_PART_LABEL.get(part, part)}")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def parity_figure(predictions: Mapping[str, pd.DataFrame], title: str, out: str | Path) -> None:
    """Predicted against NEB barrier per architecture, coloured by part."""
    fig, axes = plt.subplots(1, len(predictions), figsize=(4.2 * len(predictions), 4.2), squeeze=False)
    for ax, (arch, df) in zip(axes[0], predictions.items(), strict=True):
        lo = float(min(df["barrier_neb"].min(), df["barrier_pred"].min()))
        hi = float(max(df["barrier_neb"].max(), df["barrier_pred"].max()))
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
        for k, part in enumerate(("train", "test", "held_out", "transfer")):
            s = df[df["part"] == part]
            if len(s):
                mae = float(np.mean(np.abs(s["barrier_pred"] - s["barrier_neb"])))
                ax.scatter(s["barrier_neb"], s["barrier_pred"], s=5, alpha=0.5, lw=0, color=f"C{k}",
                           label=f"{part} (n={len(s)}, MAE {1000 * mae:.0f} meV)")
        ax.set(xlabel="NEB barrier (eV)", ylabel="predicted barrier (eV)", title=f"{title}: {arch.upper()}",
               aspect="equal")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def _ternary_ticks(ax, species: Sequence[str], step: float = 0.2) -> None:
    """Composition ticks (at.%) on the triangle's edges, one species per edge, read anticlockwise.

    Corners: ``species[0]`` bottom left, ``species[1]`` bottom right, ``species[2]`` top.
    The bottom edge carries the fraction of ``species[1]``, the right edge that of
    ``species[2]``, the left edge that of ``species[0]``; each tick is a short mark
    outward from its edge, labelled in at.%.
    """
    h = np.sqrt(3) / 2
    corner = {0: np.array([0.0, 0.0]), 1: np.array([1.0, 0.0]), 2: np.array([0.5, h])}
    # (start corner, end corner, outward normal); a tick at f is the fraction f of the end corner's species
    edges = [(0, 1, (0.0, -1.0)), (1, 2, (np.sqrt(3) / 2, 0.5)), (2, 0, (-np.sqrt(3) / 2, 0.5))]
    for start, end, normal in edges:
        normal = np.asarray(normal)
        for f in np.arange(step, 1.0 - 1e-9, step):
            p = corner[start] + f * (corner[end] - corner[start])  # fraction f of species `end`
            q = p + 0.025 * normal
            ax.plot([p[0], q[0]], [p[1], q[1]], color="k", lw=0.8)
            t = p + 0.06 * normal
            ax.text(t[0], t[1], f"{100 * f:.0f}", ha="center", va="center", fontsize=7)
        mid = corner[start] + 0.5 * (corner[end] - corner[start]) + 0.14 * normal
        angle = np.degrees(np.arctan2(*(corner[end] - corner[start])[::-1]))
        ax.text(mid[0], mid[1], f"{species[end]} (at.%)", ha="center", va="center", fontsize=8,
                rotation=angle if abs(angle) <= 90 else angle - 180)


def ternary_figure(table: pd.DataFrame, species: Sequence[str], title: str, out: str | Path) -> None:
    """Mean barrier over the composition triangle; the highest mean is marked with a star."""
    a, b, c = (table[f"x_{s}"].to_numpy() for s in species)
    # corners: species[0] bottom left, species[1] bottom right, species[2] top
    px = b + 0.5 * c
    py = (np.sqrt(3) / 2) * c
    z = table["mean_barrier_eV"].to_numpy()
    fig, ax = plt.subplots(figsize=(5.4, 4.6))
    tri = mtri.Triangulation(px, py)
    pc = ax.tripcolor(tri, z, shading="gouraud", cmap="viridis")
    ax.scatter(px, py, s=4, color="k", alpha=0.3)
    best = int(np.argmax(z))
    ax.scatter([px[best]], [py[best]], marker="*", s=220, color="red", edgecolor="white",
               label=f"max {z[best]:.3f} eV at " + "".join(f"{s}{100 * x:.0f}" for s, x in
                                                            zip(species, (a[best], b[best], c[best]), strict=True)))
    ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="k", lw=0.8)
    for (x, y), s, ha in zip([(0, 0), (1, 0), (0.5, np.sqrt(3) / 2)], species, ("right", "left", "center"),
                             strict=True):
        ax.text(x + {"right": -0.02, "left": 0.02, "center": 0.0}[ha], y + (0.03 if ha == "center" else -0.01), s,
                ha=ha, va="bottom" if ha == "center" else "top", fontsize=11)
    _ternary_ticks(ax, species)
    fig.colorbar(pc, ax=ax, label="mean barrier (eV)")
    ax.set(title=title, aspect="equal", xlim=(-0.16, 1.16), ylim=(-0.22, 0.95))
    ax.axis("off")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, -0.1), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
