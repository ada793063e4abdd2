r"""The prefactor table (rule ``hessians``) as an events table the model family trains on.

The detailed-balance prefactor model reuses the dE/E_KRA machinery unchanged by renaming columns:

    dE               <- dS = S_B - S_A          (M_EXT learns it: PRE_S)
    E_KRA            <- S_KRA = S_sad - (S_A + S_B)/2   (KRA learns it: PRE_KRA)
    barrier_forward  <- -ln nu_AB = S_KRA + dS/2
    barrier_backward <- -ln nu_BA = S_KRA - dS/2

so the "barrier" metrics of :func:`dbkmc.detailed_balance.training.model_metrics` are the RMSE of
-ln nu in both directions. The energy columns are kept as ``energy_dE``, ``energy_E_KRA``,
``energy_barrier_forward``, ``energy_barrier_backward`` (eV). Event ids and compositions are unchanged,
so :func:`~dbkmc.detailed_balance.training.split_events` gives the same split as on the energy table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PREFACTOR_COLUMNS: tuple[str, ...] = ("S_A", "S_B", "S_saddle", "ln_nu_AB", "ln_nu_BA", "dS", "S_KRA")
"""Vineyard terms of each event (sums of ln nu_i with nu_i in Hz)."""

RENAMED: dict[str, str] = {"dE": "dS", "E_KRA": "S_KRA"}
ENERGY_COLUMNS: tuple[str, ...] = ("dE", "E_KRA", "barrier_forward", "barrier_backward")


def check_prefactors(table: pd.DataFrame, atol: float = 1e-6) -> None:
    """Raise if a column is missing or non-finite, or the Vineyard terms disagree with each other
    (ln nu_AB = S_A - S_saddle, ln nu_BA = S_B - S_saddle, dS = S_B - S_A, S_KRA = -(ln nu_AB + ln nu_BA)/2)."""
    missing = [c for c in (*PREFACTOR_COLUMNS, *ENERGY_COLUMNS, "event_id", "composition") if c not in table]
    if missing:
        raise ValueError(f"prefactors: columns {missing} missing from the prefactor table")
    values = table[list(PREFACTOR_COLUMNS)].to_numpy(np.float64)
    if not np.isfinite(values).all():
        bad = table["event_id"][~np.isfinite(values).all(axis=1)]
        raise ValueError(f"prefactors: non-finite Vineyard terms in events {list(bad[:5])}")
    t = {c: table[c].to_numpy(np.float64) for c in PREFACTOR_COLUMNS}
    checks = {"ln_nu_AB = S_A - S_saddle": t["ln_nu_AB"] - (t["S_A"] - t["S_saddle"]),
              "ln_nu_BA = S_B - S_saddle": t["ln_nu_BA"] - (t["S_B"] - t["S_saddle"]),
              "dS = S_B - S_A": t["dS"] - (t["S_B"] - t["S_A"]),
              "S_KRA = -(ln_nu_AB + ln_nu_BA)/2": t["S_KRA"] + 0.5 * (t["ln_nu_AB"] + t["ln_nu_BA"])}
    for name, diff in checks.items():
        scale = 1.0 + np.abs(t["S_A"])
        if np.any(np.abs(diff) > atol * scale):
            raise ValueError(f"prefactors: {name} fails by up to {np.abs(diff).max():.3g}")


def as_model_events(table: pd.DataFrame) -> pd.DataFrame:
    """The prefactor table with dE := dS, E_KRA := S_KRA, barrier_forward/backward := -ln nu_AB / -ln nu_BA
    (the energies kept under ``energy_<name>``), ready for the model family's fingerprints and training."""
    check_prefactors(table)
    out = table.copy()
    for col in ENERGY_COLUMNS:
        out[f"energy_{col}"] = table[col]
    out["dE"] = table["dS"].astype(np.float64)
    out["E_KRA"] = table["S_KRA"].astype(np.float64)
    out["barrier_forward"] = -table["ln_nu_AB"].astype(np.float64)
    out["barrier_backward"] = -table["ln_nu_BA"].astype(np.float64)
    return out.reset_index(drop=True)


def ln_nu_from_terms(ds: np.ndarray, s_kra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ln nu_AB, ln nu_BA) = (-(S_KRA + dS/2), -(S_KRA - dS/2))."""
    ds, s_kra = np.asarray(ds, np.float64), np.asarray(s_kra, np.float64)
    return -(s_kra + 0.5 * ds), -(s_kra - 0.5 * ds)
