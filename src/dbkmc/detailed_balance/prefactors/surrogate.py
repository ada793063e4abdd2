r"""The seed's linear surrogate (Lapointe et al., Phys. Rev. Materials 6, 113803 (2022)).

ln nu_AB is a linear function of the sums of per-atom descriptors of the minimum and of the saddle,

    ln nu_AB ≈ w · (D_min ⊕ D_saddle) + b,

fitted by ridge regression on standardised columns. The descriptor sums come from the rule ``hessians``
as list columns: ``sna_A``/``sna_saddle`` (LAMMPS ``compute sna/atom`` bispectrum, SO(4)) and
``aev_A``/``aev_saddle`` (dbkmc's ANI AEVs). The ridge weight alpha is chosen on the validation set (the
same split as every model); the chosen fit is reported on the test set. Forward jumps only: the table
holds no descriptor of state B.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dbkmc.detailed_balance.prefactors.metrics import regression_metrics

RIDGE_ALPHAS: tuple[float, ...] = (1e-6, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3)
DESCRIPTORS: tuple[str, ...] = ("sna", "aev")


def descriptor_matrix(table: pd.DataFrame, name: str) -> np.ndarray:
    """(N, D_min + D_saddle): ``<name>_A`` ⊕ ``<name>_saddle`` of every event (float64)."""
    cols = [f"{name}_A", f"{name}_saddle"]
    missing = [c for c in cols if c not in table]
    if missing:
        raise ValueError(f"surrogate: columns {missing} missing from the prefactor table")
    parts = [np.stack([np.asarray(v, np.float64) for v in table[c]]) for c in cols]
    x = np.concatenate(parts, axis=1)
    if not np.isfinite(x).all():
        raise ValueError(f"surrogate: non-finite {name} descriptors")
    return x


@dataclass
class Ridge:
    """y ≈ ((x - mean) / scale) · w + b."""

    mean: np.ndarray
    scale: np.ndarray
    w: np.ndarray
    b: float
    alpha: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.w + self.b


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> Ridge:
    """Ridge regression on standardised columns (constant columns left at zero weight); the intercept is free."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    b = float(y.mean())
    w = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - b))
    return Ridge(mean, scale, w, b, float(alpha))


@dataclass
class SurrogateResult:
    """The chosen ridge fit, the validation RMSE per alpha, and metrics per set."""

    descriptor: str
    model: Ridge
    alphas: dict[float, float]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def fit_surrogate(x: np.ndarray, y: np.ndarray, split, alphas=RIDGE_ALPHAS, descriptor: str = "") -> SurrogateResult:
    """Fit on ``split.train`` for every alpha, keep the one with the lowest validation RMSE (train RMSE
    if there is no validation set), and report train/val/test metrics."""
    tr, va = split["train"], split["val"]
    scores = {}
    for a in alphas:
        m = fit_ridge(x[tr], y[tr], a)
        on = va if len(va) else tr
        scores[float(a)] = float(np.sqrt(np.mean((m.predict(x[on]) - y[on]) ** 2)))
    best = min(scores, key=scores.get)
    model = fit_ridge(x[tr], y[tr], best)
    metrics = {part: regression_metrics(y[split[part]], model.predict(x[split[part]]))
               for part in ("train", "val", "test")}
    return SurrogateResult(descriptor, model, scores, metrics)
