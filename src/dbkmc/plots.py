"""Figures of the detailed-balance paper, drawn with matplotlib (Agg, files only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    ax.plot(table["lambda"], 1000 * table["val_rmse_dE"], "o-", label="validation RMSE dE")
    ax.plot(table["lambda"], 1000 * table["val_ddE"], "s--", label="validation ddE")
    ax.axvline(chosen, color="0.5", lw=0.8, ls=":")
    ax.set(xlabel="lambda", ylabel="meV", title=f"M_SAS penalty sweep (chosen lambda = {chosen:g})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def learning_curve_figure(table: pd.DataFrame, out: str | Path) -> None:
    """Test RMSE (left) and ddE (right) against training-set size for each dE model (Fig 8c, d)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    for model, rows in table.groupby("model", sort=False):
        rows = rows.sort_values("n_train")
        left.plot(rows["n_train"], 1000 * rows["test_rmse_dE"], "o-", label=model)
        right.plot(rows["n_train"], 1000 * rows["test_ddE"] + 1e-6, "o-", label=model)
    left.set(xscale="log", yscale="log", xlabel="training events", ylabel="test RMSE dE (meV)")
    right.set(xscale="log", yscale="log", xlabel="training events", ylabel="test ddE (meV)")
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def table2(metrics: Mapping[str, Mapping], models: Sequence[str] = ("M_NC", "M_SAS", "M_HAS", "M_KOL")) -> pd.DataFrame:
    """Table 2: train and test RMSE of dE and test ddE (eV), ensemble mean and member spread."""
    rows = []
    for name in models:
        m = metrics[name]
        rows.append({
            "model": name,
            "train_rmse_dE": m["train"]["rmse_dE"],
            "test_rmse_dE": m["test"]["rmse_dE"],
            "test_rmse_dE_member_mean": m["test"]["member_rmse_dE_mean"],
            "test_rmse_dE_member_std": m["test"]["member_rmse_dE_std"],
            "test_ddE": m["test"]["ddE"],
        })
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, csv: str | Path, markdown: str | Path, digits: int = 4) -> None:
    table.to_csv(csv, index=False)
    Path(markdown).write_text(table.round(digits).to_markdown(index=False) + "\n")
