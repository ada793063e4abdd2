"""Figures of the vibrational prefactors (matplotlib, Agg, files only): compensation plot, parity, histograms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _size(n: int) -> float:
    """Marker area: small dots for thousands of events, visible ones for a handful."""
    return 4.0 if n > 200 else 14.0


def compensation_figure(barrier: np.ndarray, ln_nu: np.ndarray, ln_nu0: float, slope: float, r: float,
                        out: str | Path) -> None:
    """ln nu_AB against E_b (the seed's compensation plot) with the Meyer-Neldel line ln nu_0 + E_b / E_MN."""
    x, y = np.asarray(barrier, float), np.asarray(ln_nu, float)
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    ax.scatter(x, y, s=_size(len(x)), alpha=0.35 if len(x) > 200 else 0.8, lw=0)
    xs = np.linspace(x.min(), x.max(), 50)
    e_mn = 1.0 / slope if slope != 0 else float("inf")
    ax.plot(xs, ln_nu0 + slope * xs, color="C3", lw=1.2,
            label=f"ln nu0 = {ln_nu0:.2f}, 1/E_MN = {slope:.2f}/eV\n(E_MN = {e_mn:.3g} eV), r = {r:.2f}")
    ax.set(xlabel="E_b (eV)", ylabel="ln nu_AB (nu in Hz)", title="Meyer-Neldel compensation")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def parity_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], out: str | Path) -> None:
    """One parity panel of ln nu per (title, reference, prediction), with RMSE / std and R² in the title."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.9), squeeze=False)
    for ax, (title, y, p) in zip(axes[0], panels, strict=True):
        y, p = np.asarray(y, float), np.asarray(p, float)
        lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
        pad = 0.05 * (hi - lo or 1.0)
        rmse = float(np.sqrt(np.mean((p - y) ** 2)))
        std = float(y.std())
        r2 = 1.0 - float(((p - y) ** 2).sum()) / float(((y - y.mean()) ** 2).sum() or np.nan)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.8)
        ax.scatter(y, p, s=_size(len(y)), alpha=0.4 if len(y) > 200 else 0.8, lw=0)
        ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), aspect="equal",
               xlabel="Hessian ln nu_AB", ylabel="predicted ln nu_AB",
               title=f"{title} (test)\nRMSE/std {rmse / std if std else np.nan:.2f}, R² {r2:.2f}")
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def histogram_figure(samples: Mapping[str, np.ndarray], out: str | Path, bins: int = 50) -> None:
    """Histograms of ln nu (one per labelled sample)."""
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for label, v in samples.items():
        v = np.asarray(v, float)
        ax.hist(v, bins=bins, alpha=0.6, label=f"{label}: mean {v.mean():.2f}, std {v.std():.2f}")
    ax.set(xlabel="ln nu (nu in Hz)", ylabel="events")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def detailed_balance_figure(differences: Mapping[str, np.ndarray], reference: np.ndarray, out: str | Path) -> None:
    """Predicted ln nu_AB - ln nu_BA against the Hessians' S_A - S_B, one series per model."""
    ref = np.asarray(reference, float)
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    lo, hi = float(ref.min()), float(ref.max())
    ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8)
    for label, d in differences.items():
        ax.scatter(ref, np.asarray(d, float), s=_size(len(ref)), alpha=0.5, lw=0, label=label)
    ax.set(xlabel="S_A - S_B (Hessians)", ylabel="predicted ln nu_AB - ln nu_BA", title="forward vs reverse (test)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
