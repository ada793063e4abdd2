"""Figures: what is drawn where (axes inspected, not pixels)."""

import numpy as np
import pandas as pd
import pytest

from dbkmc.figures import models as plots


@pytest.fixture
def captured(monkeypatch):
    figs = []
    monkeypatch.setattr(plots.plt, "close", figs.append)
    return figs


def test_learning_curves_put_exact_zero_ddE_on_their_own_row(tmp_path, captured):
    n = [100, 300, 1000]
    rows = []
    for model, rmse, dde in [("M_NC", [60, 40, 30], [20, 12, 8]), ("M_HAS", [57, 38, 28], [0, 0, 0]),
                             ("M_KOL", [57, 38, 28], [0, 0, 0])]:
        rows += [{"model": model, "n_train": a, "test_rmse_dE_eV": b / 1e3, "test_ddE_eV": c / 1e3}
                 for a, b, c in zip(n, rmse, dde, strict=True)]
    plots.learning_curve_figure(pd.DataFrame(rows), tmp_path / "fig8.png")
    assert (tmp_path / "fig8.png").stat().st_size > 0
    left, right, zero = captured[0].axes
    assert [t.get_text() for t in zero.get_yticklabels()] == ["M_HAS", "M_KOL"]
    assert zero.get_ylabel() == "exactly 0"
    # the ddE axis holds no floor value: the exact-zero models have no finite point there
    finite = {ln.get_label(): np.isfinite(np.asarray(ln.get_ydata(), dtype=float)).sum() for ln in right.get_lines()}
    assert finite == {"M_NC": 3, "M_HAS": 0, "M_KOL": 0}
    assert right.get_yscale() == "log" and min(ln.get_ydata().min() for ln in right.get_lines()[:1]) == 8
    # equal RMSE curves are drawn apart: different x positions and markers
    has, kol = left.get_lines()[1], left.get_lines()[2]
    assert np.array_equal(has.get_ydata(), kol.get_ydata())
    assert not np.allclose(has.get_xdata(), kol.get_xdata()) and has.get_marker() != kol.get_marker()
