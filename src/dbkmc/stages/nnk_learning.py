"""NNK learning curves as file-to-file steps: test MAE against the size of the training set.

- :func:`learning_curve_step` (rule ``nnk_learning_curve``): one architecture on one set, retrained on
  growing shares of its training configurations (all paths of a configuration together, the same split,
  validation and test parts as ``train_nnk``); test and held-out-composition MAE per share.
- :func:`learning_curve_report` (rule ``nnk_learning_curve_report``): every set and architecture in one
  table and one figure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dbkmc.core.io import resolve_device
from dbkmc.figures.nnk import learning_curve_figure
from dbkmc.nnk.training import NNKTrainConfig, predict, regression_metrics, train_nnk
from dbkmc.stages.nnk import prepare_set

log = logging.getLogger(__name__)


def training_subset(events: pd.DataFrame, train: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The rows of ``train`` whose configuration (composition, config_index) is among a random ``fraction`` of
    the training configurations (at least one), all paths of a configuration together; nested: a larger
    fraction keeps every configuration of a smaller one."""
    if not 0 < fraction <= 1:
        raise ValueError(f"nnk.learning_curve_fractions: need values in (0, 1], got {fraction}")
    keys = events["composition"].astype(str).to_numpy()[train] + ":" + events["config_index"].astype(str).to_numpy()[train]
    configs = np.unique(keys)
    order = np.random.default_rng(seed).permutation(len(configs))
    chosen = configs[order[:max(1, int(round(fraction * len(configs))))]]
    return train[np.isin(keys, chosen)]


def learning_curve_step(set_name: str, arch: str, events_path: str | Path, set_cfg: Mapping, params: Mapping,
                        fractions: Sequence[float], out_csv: str | Path, threads: int = 1) -> pd.DataFrame:
    """Train ``arch`` on each share of the training configurations; write one row per share to ``out_csv``."""
    torch.set_num_threads(max(1, int(threads)))
    prep = prepare_set(set_name, events_path, None, set_cfg, params)
    split, images, y = prep.split, prep.images, prep.y
    config = NNKTrainConfig.from_dict(params, arch=arch, device=resolve_device(params["device"], "nnk.device"))
    rows = []
    for fraction in sorted(float(f) for f in fractions):
        idx = training_subset(prep.events, split["train"], fraction, int(params["seed"]))
        fit = train_nnk(images[idx], y[idx], images[split["val"]], y[split["val"]], prep.kind, prep.grid, config)
        pred = predict(fit.model, images)
        row = {"set": set_name, "arch": arch, "fraction": fraction, "n_train": int(len(idx)),
               "n_configurations": int(prep.events.iloc[idx].groupby(["composition", "config_index"]).ngroups),
               "best_epoch": fit.best_epoch, "epochs": len(fit.history)}
        for part in ("test", "held_out"):
            m = regression_metrics(y[split[part]], pred[split[part]])
            row.update({f"{part}_n": m["n"], f"{part}_MAE_eV": m.get("MAE", np.nan),
                        f"{part}_MAE_pct": m.get("MAE_pct", np.nan), f"{part}_MAE_over_std": m.get("MAE_over_std", np.nan)})
        log.info("set %s, %s: %.0f %% of the training configurations (%d paths): test MAE %.4f eV", set_name, arch,
                 100 * fraction, len(idx), row["test_MAE_eV"])
        rows.append(row)
    table = pd.DataFrame(rows)
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    return table


def learning_curve_report(csv_files: Sequence[str | Path], out_csv: str | Path, out_md: str | Path,
                          out_figure: str | Path) -> pd.DataFrame:
    """Every set's and architecture's learning curve in one table (csv, markdown) and one figure."""
    table = pd.concat([pd.read_csv(f) for f in csv_files], ignore_index=True)
    table.to_csv(out_csv, index=False)
    cols = ["set", "arch", "fraction", "n_train", "best_epoch", "test_MAE_eV", "test_MAE_pct", "test_MAE_over_std",
            "held_out_MAE_eV", "held_out_MAE_over_std"]
    Path(out_md).write_text(table[cols].to_markdown(index=False, floatfmt=".4g") + "\n")
    learning_curve_figure(table, out_figure)
    return table
