r"""Metrics of ln nu models and the Meyer-Neldel (compensation) fit.

``regression_metrics``: RMSE of the prediction, the standard deviation of the target over the same set,
their ratio (1 = no better than the mean, as the issue asks to report it) and R² = 1 - SSE / SST.

Meyer-Neldel: ``ln nu_AB = ln nu_0 + E_b / E_MN`` (E_b = barrier_forward, eV), least squares. The slope
is 1/E_MN (1/eV); E_MN > 0 is compensation (higher barriers, higher prefactors), E_MN < 0 the reverse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def regression_metrics(target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """``n``, ``rmse``, ``std`` (of the target), ``rmse_over_std``, ``r2``, ``mae``, ``bias`` (float64)."""
    y = np.asarray(target, np.float64)
    p = np.asarray(prediction, np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"metrics: target {y.shape} and prediction {p.shape} must be equal 1-d shapes")
    if len(y) == 0:
        nan = float("nan")
        return {"n": 0, "rmse": nan, "std": nan, "rmse_over_std": nan, "r2": nan, "mae": nan, "bias": nan}
    err = p - y
    rmse = float(np.sqrt(np.mean(err**2)))
    std = float(y.std())
    sst = float(((y - y.mean()) ** 2).sum())
    return {"n": int(len(y)), "rmse": rmse, "std": std, "rmse_over_std": rmse / std if std > 0 else float("nan"),
            "r2": 1.0 - float((err**2).sum()) / sst if sst > 0 else float("nan"),
            "mae": float(np.abs(err).mean()), "bias": float(err.mean())}


@dataclass(frozen=True)
class MeyerNeldel:
    """ln nu = ln_nu0 + slope E_b, slope = 1/E_MN (1/eV); r the Pearson correlation of ln nu and E_b."""

    slope_per_eV: float
    ln_nu0: float
    E_MN_eV: float
    r: float
    n: int
    slope_stderr: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def line(self, e_b: np.ndarray) -> np.ndarray:
        return self.ln_nu0 + self.slope_per_eV * np.asarray(e_b, np.float64)


def meyer_neldel_fit(ln_nu: np.ndarray, barrier: np.ndarray) -> MeyerNeldel:
    """Least-squares line ln nu = ln nu_0 + E_b / E_MN over the events."""
    y = np.asarray(ln_nu, np.float64)
    x = np.asarray(barrier, np.float64)
    if y.shape != x.shape or len(y) < 3:
        raise ValueError("Meyer-Neldel: need ln nu and barriers of the same (>= 3) events")
    xm, ym = x.mean(), y.mean()
    sxx, syy, sxy = ((x - xm) ** 2).sum(), ((y - ym) ** 2).sum(), ((x - xm) * (y - ym)).sum()
    if sxx <= 0:
        raise ValueError("Meyer-Neldel: all barriers are equal")
    slope = sxy / sxx
    resid = y - (ym + slope * (x - xm))
    stderr = float(np.sqrt((resid**2).sum() / (len(y) - 2) / sxx))
    r = float(sxy / np.sqrt(sxx * syy)) if syy > 0 else float("nan")
    return MeyerNeldel(float(slope), float(ym - slope * xm), float(1.0 / slope) if slope != 0 else float("inf"),
                       r, int(len(y)), stderr)
