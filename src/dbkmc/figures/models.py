"""Figures of the detailed-balance paper, drawn with matplotlib (Agg, files only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _parity_axes(ax, y_true: np.ndarray, y_pred: np.ndarray, title: str, quantity: str) -> None:
    lo = float(min(np.min(y_true), np.min(y_pred)))
    hi = float(max(np.max(y_true), np.max(y_pred)))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", lw=0.8)
    ax.scatter(y_true, y_pred, s=3, alpha=0.4, lw=0)
    ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), aspect="equal",
           xlabel=f"NEB {quantity} (eV)", ylabel=f"predicted {quantity} (eV)",
           title=f"{title}\nRMSE {1000 * _rmse(y_true, y_pred):.1f} meV")


def parity_figure(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], quantity: str, out: str | Path) -> None:
    """One parity panel per (title, NEB value, prediction), e.g. train and test."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2), squeeze=False)
    for ax, (title, y_true, y_pred) in zip(axes[0], panels, strict=True):
        _parity_axes(ax, y_true, y_pred, title, quantity)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def forward_reverse_figure(dE_forward: np.ndarray, dE_reverse: np.ndarray, title: str, out: str | Path) -> None:
    """Predicted dE(A,B) against -dE(B,A); the inset histograms the antisymmetry error dE(A,B) + dE(B,A)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    _parity_axes(ax, dE_forward, -np.asarray(dE_reverse), title, "dE")
    ax.set(xlabel="predicted dE(A,B) (eV)", ylabel="-predicted dE(B,A) (eV)")
    err = 1000 * (np.asarray(dE_forward) + np.asarray(dE_reverse))
    inset = ax.inset_axes([0.58, 0.1, 0.38, 0.3])
    inset.hist(err, bins=40, color="C3")
    inset.set_xlabel("dE(A,B)+dE(B,A) (meV)", fontsize=7)
    inset.tick_params(labelsize=6)
    ax.set_title(f"{title}\nddE {np.sqrt(np.mean(err**2)):.2g} meV")
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def sweep_figure(table: pd.DataFrame, chosen: float, out: str | Path) -> None:
    """M_SAS lambda sweep: validation RMSE and ddE against lambda."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(table["lambda"], 1000 * table["val_rmse_dE_eV"], "o-", label="validation RMSE dE")
    ax.plot(table["lambda"], 1000 * table["val_ddE_eV"], "s--", label="validation ddE")
    ax.axvline(chosen, color="0.5", lw=0.8, ls=":")
    ax.set(xlabel="lambda", ylabel="meV", title=f"M_SAS penalty sweep (chosen lambda = {chosen:g})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_STYLES = ("-", "--", "-.", ":")


def learning_curve_figure(table: pd.DataFrame, out: str | Path) -> None:
    """Test RMSE (left) and ddE (right) against training-set size for each dE model (Fig 8c, d).

    Each model has its own colour, marker and line style, and its points are shifted
    sideways by a few per cent (log axis) so that equal curves stay visible. A model
    with exact detailed balance has ddE identically 0, which a log axis cannot show:
    such points go to a strip below the ddE axis labelled "exactly 0", one row per model.
    """
    fig = plt.figure(figsize=(9.5, 4.2))
    grid = fig.add_gridspec(2, 2, height_ratios=(5, 1), hspace=0.08)
    left = fig.add_subplot(grid[:, 0])
    right = fig.add_subplot(grid[0, 1])
    zero = fig.add_subplot(grid[1, 1], sharex=right)
    models = list(dict.fromkeys(table["model"]))
    k_mid = (len(models) - 1) / 2
    zero_rows: list[str] = []
    for k, model in enumerate(models):
        rows = table[table["model"] == model].sort_values("n_train")
        x = rows["n_train"].to_numpy(dtype=float) * 1.04 ** (k - k_mid)
        style = dict(marker=_MARKERS[k % len(_MARKERS)], ls=_STYLES[k % len(_STYLES)], color=f"C{k}", ms=5,
                     mfc="none" if k % 2 else None, label=model)
        left.plot(x, 1000 * rows["test_rmse_dE_eV"].to_numpy(), **style)
        dde = 1000 * rows["test_ddE_eV"].to_numpy(dtype=float)
        exact = dde == 0.0
        right.plot(np.where(exact, np.nan, x), np.where(exact, np.nan, dde), **style)
        if exact.any():
            zero_rows.append(model)
            zero.plot(x[exact], np.full(exact.sum(), len(zero_rows) - 1), **{**style, "ls": "none"})
    left.set(xscale="log", yscale="log", xlabel="training events", ylabel="test RMSE dE (meV)")
    left.legend(fontsize=8)
    right.set(xscale="log", ylabel="test ddE (meV)")
    if any(line.get_ydata().size and np.isfinite(line.get_ydata()).any() for line in right.get_lines()):
        right.set_yscale("log")
    right.tick_params(which="both", labelbottom=False)  # minor log ticks carry labels too
    zero.set(xlabel="training events", ylim=(-0.7, max(1, len(zero_rows)) - 0.3))
    zero.set_yticks(range(len(zero_rows)), zero_rows, fontsize=7)
    zero.set_ylabel("exactly 0", fontsize=8, rotation=0, ha="right", va="center")
    if not zero_rows:
        zero.text(0.5, 0.5, "no model with ddE = 0", transform=zero.transAxes, ha="center", va="center",
                  fontsize=7, color="0.4")
    right.legend(fontsize=8)
    fig.text(0.99, 0.01, "points of each model offset sideways by a few % so that equal curves stay visible",
             ha="right", va="bottom", fontsize=6, color="0.4")
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.95, wspace=0.38)
    fig.savefig(out, dpi=150)
    plt.close(fig)
