"""NNK learning curves (dbkmc.stages.nnk_learning): the training subsets keep configurations whole and nest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dbkmc.nnk.training import regression_metrics
from dbkmc.stages.nnk_learning import training_subset


def events(n_configs: int = 20) -> pd.DataFrame:
    rows = [{"composition": comp, "config_index": c, "path": p}
            for comp in ("A", "B") for c in range(n_configs) for p in range(12)]
    return pd.DataFrame(rows)


def configurations(ev: pd.DataFrame, idx: np.ndarray) -> set[tuple[str, int]]:
    return set(zip(ev["composition"].to_numpy()[idx], ev["config_index"].to_numpy()[idx]))


def test_subsets_keep_configurations_whole_and_nest():
    ev = events()
    train = np.flatnonzero(ev["config_index"].to_numpy() < 15)           # 30 training configurations
    previous: set = set()
    for fraction in (0.1, 0.4, 1.0):
        idx = training_subset(ev, train, fraction, seed=3)
        configs = configurations(ev, idx)
        assert len(configs) == max(1, round(fraction * 30))
        assert len(idx) == 12 * len(configs)                           # every path of a chosen configuration
        assert set(idx) <= set(train) and previous <= configs           # inside the training part; nested
        previous = configs
    np.testing.assert_array_equal(np.sort(training_subset(ev, train, 1.0, seed=3)), train)


def test_subset_fraction_must_lie_in_0_1():
    with pytest.raises(ValueError, match="nnk.learning_curve_fractions"):
        training_subset(events(), np.arange(24), 1.5, seed=0)


def test_mae_over_std_divides_the_mae_by_the_spread_of_the_barriers():
    y = np.array([0.5, 0.7, 0.9, 1.1])
    m = regression_metrics(y, np.full_like(y, y.mean()))
    assert m["std_barrier"] == pytest.approx(np.std(y)) and m["MAE_over_std"] == pytest.approx(0.2 / np.std(y))
