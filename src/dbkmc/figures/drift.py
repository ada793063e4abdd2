"""Figures 9 (closed-loop drift) and 11 (far-field noise floor), drawn with matplotlib (Agg, files only)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

_PLAIN = FuncFormatter(lambda v, _: f"{v:g}")
_PLAIN_2_5 = FuncFormatter(lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** np.floor(np.log10(v))) in (2, 5) else "")
_FLOOR = 1e-12  # log axes: values below this (exact zeros) are drawn at the floor
_DASHES = ["--", ":", "-.", (0, (6, 2, 1, 2))]  # model RMSE lines stay apart where two coincide
_STYLES = {"M_NC": "-", "M_SAS": "--", "M_HAS": "-.", "M_KOL": "-"}  # M_SAS dashed: visible where it equals M_NC


def loop_drift_figure(summary: pd.DataFrame, out: str | Path) -> None:
    """Fig 9: <|E_net|> against loop length L per model, band = ± std over loops; linear and log axes."""
    fig, (lin, log) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in summary.groupby("model", sort=False):
        rows = rows[rows["n_loops"] > 0].sort_values("L")
        if not len(rows):
            continue
        L = rows["L"].to_numpy()
        mean = rows["mean_abs_E_net_eV"].to_numpy()
        std = rows["std_abs_E_net_eV"].to_numpy()
        style = _STYLES.get(str(name), "-")
        line, = lin.plot(L, mean, style, lw=1.4, label=name)
        lin.fill_between(L, np.maximum(mean - std, 0), mean + std, color=line.get_color(), alpha=0.12, lw=0)
        log.plot(L, np.maximum(mean, _FLOOR), style, lw=1.4, color=line.get_color(), label=name)
    lin.set(xlabel="loop length L (hops)", ylabel="<|E_net|> (eV)", title="Closed-loop drift")
    log.set(xlabel="loop length L (hops)", ylabel="<|E_net|> (eV)", yscale="log", title="same, log scale")
    lin.legend(fontsize=8)
    missing = summary[summary["n_loops"] == 0]["L"].unique()
    if len(missing):
        fig.text(0.01, 0.01, f"no loops for L = {', '.join(map(str, sorted(missing)[:12]))}"
                 f"{' ...' if len(missing) > 12 else ''} (see the CSV status)", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def far_field_figure(table: pd.DataFrame, model_rmse: Mapping[str, float], model_r_cut: float | None,
                     out: str | Path) -> None:
    """Fig 11: std of dE (left) and E_KRA (right) against r_cut, with the models' test RMSEs at their cutoff;
    a third panel with the spread of the prefactor terms (ln nu_AB, S_KRA, dS) when the table has them."""
    prefactors = "std_ln_nu_AB" in table.columns
    fig, axes = plt.subplots(1, 3 if prefactors else 2, figsize=(15 if prefactors else 10, 4))
    left, right = axes[0], axes[1]
    ok = table[table["n_accepted"] > 1]
    for ax, q in ((left, "dE"), (right, "E_KRA")):
        ax.errorbar(ok["r_cut_angstrom"], 1000 * ok[f"std_{q}_eV"], yerr=1000 * ok[f"std_{q}_se_eV"], fmt="ko-", capsize=3,
                    label=f"NEB spread of {q} (far field redrawn)")
        names = [n for n in model_rmse if (n == "KRA") == (q == "E_KRA")]
        for i, name in enumerate(names):
            color = f"C{i}"
            ax.axhline(1000 * model_rmse[name], color=color, ls=_DASHES[i % len(_DASHES)], lw=1.2,
                       label=f"{name} test RMSE")
            if model_r_cut is not None:
                ax.plot([model_r_cut], [1000 * model_rmse[name]], "D", color=color)
        ax.set(xlabel="r_cut (Å)", ylabel=f"std / RMSE of {q} (meV)", yscale="log", title=f"Far-field noise floor: {q}")
        ax.yaxis.set_major_formatter(_PLAIN)
        ax.yaxis.set_minor_formatter(_PLAIN_2_5)
        ax.legend(fontsize=7)
    if prefactors:
        pre = table[table["n_prefactors"] > 1]
        for i, q in enumerate(("ln_nu_AB", "S_KRA", "dS")):
            axes[2].errorbar(pre["r_cut_angstrom"], pre[f"std_{q}"], yerr=pre[f"std_{q}_se"], fmt="os^"[i] + "-",
                             color=f"C{i}", capsize=3, label=f"spread of {q}")
        axes[2].set(xlabel="r_cut (Å)", ylabel="std (ln of a frequency)", yscale="log",
                    title="Far-field floor: prefactor terms")
        axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
