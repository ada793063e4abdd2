"""NNK stage as file-to-file steps (one function per Snakemake rule).

- :func:`train_step` (rule ``train_nnk``): images of an ``all_paths`` dataset, split
  by configuration with whole compositions held out, one network trained, then
  predicted on every part and on a larger-cell transfer dataset.
- :func:`report_step` (rule ``nnk_report``): the metrics table of every set and
  architecture and the barrier-spectrum figures (Fig 2b-style).
- :func:`ternary_step` (rule ``nnk_ternary``): mean barrier over a ternary
  composition triangle with the published network (Fig 2c-style).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dbkmc.figures import nnk as nnk_plots
from dbkmc.core.composition import exact_counts
from dbkmc.core.lattice import Lattice
from dbkmc.nnk.encoder import NNKEncoder
from dbkmc.nnk.networks import PublishedNNK, barriers
from dbkmc.nnk.data import TARGET, check_events, dataset_grid, event_images, split_configurations
from dbkmc.nnk.training import NNKTrainConfig, predict, regression_metrics, save_nnk, train_nnk
from dbkmc.core.io import resolve_device, write_json
from dbkmc.core.provenance import provenance_record

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test", "held_out", "transfer")


def transfer_summary(metrics: Mapping[str, Mapping], tolerance: float) -> dict | None:
    """Larger-cell MAE against the small-cell test MAE: ratio and whether it stays within ``tolerance``."""
    small, big = metrics.get("test", {}), metrics.get("transfer", {})
    if not small.get("n") or not big.get("n"):
        return None
    ratio = big["MAE"] / small["MAE"]
    return {"small_cell_test_MAE": small["MAE"], "large_cell_MAE": big["MAE"], "ratio": ratio,
            "tolerance": tolerance, "within_tolerance": bool(ratio <= 1.0 + tolerance)}


def per_composition(predictions: pd.DataFrame) -> list[dict]:
    """MAE (eV and % of the mean barrier) of each (part, composition) of a predictions table."""
    per_comp = (predictions.assign(abs_err=(predictions["barrier_pred"] - predictions["barrier_neb"]).abs())
                .groupby(["part", "composition"])
                .agg(n=("abs_err", "size"), MAE=("abs_err", "mean"), mean_barrier=("barrier_neb", "mean")))
    per_comp["MAE_pct"] = 100 * per_comp["MAE"] / per_comp["mean_barrier"]
    return [{"part": p, "composition": c, **{k: float(v) for k, v in row.items()}} for (p, c), row in per_comp.iterrows()]


def train_step(set_name: str, arch: str, events_path: str | Path, transfer_path: str | Path | None,
               set_cfg: Mapping, params: Mapping, out_dir: str | Path, threads: int = 1) -> dict:
    """Train one architecture on one set; write model.pt, training.json, predictions.parquet, metrics.json."""
    torch.set_num_threads(max(1, int(threads)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    events = pd.read_parquet(events_path).reset_index(drop=True)
    species = check_events(events, str(events_path))
    kind = str(events["lattice"].iloc[0])
    cutoff = float(params["cutoff"])
    transfer = None
    if transfer_path:
        transfer = pd.read_parquet(transfer_path).reset_index(drop=True)
        if check_events(transfer, str(transfer_path)) != species or transfer["lattice"].iloc[0] != kind:
            raise ValueError(f"nnk.sets.{set_name}.transfer_dataset: species/lattice differ from the training dataset")
    grid = dataset_grid(events if transfer is None else pd.concat([events, transfer]), cutoff)
    if params.get("grid") is not None:
        if int(params["grid"]) < grid:
            raise ValueError(f"nnk.grid: {params['grid']} voxels per axis do not hold the {cutoff} A cutoff "
                             f"ball (need {grid})")
        grid = int(params["grid"])
    images = event_images(events, cutoff, grid)
    y = events[TARGET].to_numpy(dtype=float)
    split = split_configurations(events, params["split"], list(set_cfg.get("held_out") or []), int(params["seed"]))
    config = NNKTrainConfig.from_dict(params, arch=arch, device=resolve_device(params["device"], "nnk.device"))
    log.info("set %s, %s: %d events (%s), grid %d^3, cutoff %.2f A, split %s", set_name, arch, len(events),
             kind, grid, cutoff, {k: len(v) for k, v in split.parts.items()})
    fit = train_nnk(images[split["train"]], y[split["train"]], images[split["val"]], y[split["val"]],
                    kind, grid, config)
    save_nnk(fit.model, out / "model.pt", arch=arch, grid=grid, cutoff=cutoff, kind=kind, species=species,
             config=config, extra={"set": set_name, "best_epoch": fit.best_epoch})

    frames, metrics = [], {}
    parts = {name: split[name] for name in ("train", "val", "test", "held_out")}
    pred = predict(fit.model, images)
    for name, idx in parts.items():
        metrics[name] = regression_metrics(y[idx], pred[idx])
        frames.append(pd.DataFrame({"event_id": events["event_id"].to_numpy()[idx], "part": name,
                                    "composition": events["composition"].to_numpy()[idx],
                                    "config_index": events["config_index"].to_numpy()[idx],
                                    "supercell": events["supercell"].to_numpy()[idx],
                                    "path": events["path"].to_numpy()[idx],
                                    "barrier_neb": y[idx], "barrier_pred": pred[idx]}))
    if transfer is not None:
        yt = transfer[TARGET].to_numpy(dtype=float)
        pt = predict(fit.model, event_images(transfer, cutoff, grid))
        metrics["transfer"] = regression_metrics(yt, pt)
        frames.append(pd.DataFrame({"event_id": transfer["event_id"].to_numpy(), "part": "transfer",
                                    "composition": transfer["composition"].to_numpy(),
                                    "config_index": transfer["config_index"].to_numpy(),
                                    "supercell": transfer["supercell"].to_numpy(),
                                    "path": transfer["path"].to_numpy(),
                                    "barrier_neb": yt, "barrier_pred": pt}))
    predictions = pd.concat(frames, ignore_index=True)
    predictions.to_parquet(out / "predictions.parquet", index=False)
    record = {
        "set": set_name, "arch": arch, "lattice": kind, "species": species, "grid": grid, "cutoff": cutoff,
        "held_out": list(set_cfg.get("held_out") or []), "n_parameters": sum(p.numel() for p in fit.model.parameters()),
        "best_epoch": fit.best_epoch, "epochs": len(fit.history), "metrics": metrics,
        "per_composition": per_composition(predictions),
        "transfer": transfer_summary(metrics, float(params["transfer_tolerance"])),
    }
    write_json(record, out / "metrics.json")
    write_json({"history": fit.history, "config": config.to_dict(),
                 "split": {k: int(len(v)) for k, v in split.parts.items()},
                 "provenance": provenance_record({"nnk": dict(params), "set": dict(set_cfg)}, {},
                                                 events_path)},
                out / "training.json")
    log.info("test MAE %.4f eV (%.2f %%), held-out composition %s", metrics["test"].get("MAE", float("nan")),
             metrics["test"].get("MAE_pct", float("nan")), metrics["held_out"].get("MAE"))
    return record


def metrics_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """One row per (set, architecture): MAE (eV, % of mean barrier) per part and the size-transfer check."""
    rows = []
    for r in records:
        row = {"set": r["set"], "arch": r["arch"], "lattice": r["lattice"], "species": "-".join(r["species"]),
               "n_parameters": r["n_parameters"], "best_epoch": r["best_epoch"]}
        for part in PARTS:
            m = r["metrics"].get(part, {})
            row[f"{part}_n"] = m.get("n", 0)
            row[f"{part}_MAE_eV"] = m.get("MAE", np.nan)
            row[f"{part}_MAE_pct"] = m.get("MAE_pct", np.nan)
            row[f"{part}_MAE_over_std"] = m.get("MAE_over_std", np.nan)
        t = r.get("transfer") or {}
        row["transfer_ratio"] = t.get("ratio", np.nan)
        row["transfer_within_tolerance"] = t.get("within_tolerance", None)
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(table: pd.DataFrame) -> str:
    cols = ["set", "arch", "species", "train_n", "test_n", "test_MAE_eV", "test_MAE_pct", "test_MAE_over_std",
            "held_out_n", "held_out_MAE_eV", "held_out_MAE_pct", "held_out_MAE_over_std", "transfer_n", "transfer_MAE_eV",
            "transfer_ratio", "transfer_within_tolerance"]
    return table[cols].to_markdown(index=False, floatfmt=".4g") + "\n"


def spectrum_compositions(predictions: pd.DataFrame, chosen: Sequence[str] | None) -> list[tuple[str, str]]:
    """(composition, part) of the two spectrum panels: the given labels, else the largest test
    composition and the first held-out one (or the two largest test compositions)."""
    unseen = predictions[predictions["part"].isin(["test", "held_out"])]
    if chosen:
        out = []
        for c in chosen:
            parts = unseen.loc[unseen["composition"] == c, "part"].unique()
            if len(parts) == 0:
                raise ValueError(f"spectrum_compositions: {c!r} has no test or held-out events")
            out.append((c, "held_out" if "held_out" in parts else "test"))
        return out
    test = unseen[unseen["part"] == "test"]["composition"].value_counts()
    held = list(dict.fromkeys(unseen[unseen["part"] == "held_out"]["composition"]))
    picks = [(test.index[0], "test")] if len(test) else []
    picks += [(c, "held_out") for c in held[:1]]
    picks += [(c, "test") for c in test.index[1:]]
    return picks[:2]


def report_step(metric_files: Sequence[str | Path], prediction_files: Sequence[str | Path],
                set_cfgs: Mapping[str, Mapping], out_csv: str | Path, out_md: str | Path,
                figure_dir: str | Path) -> pd.DataFrame:
    records = [json.loads(Path(f).read_text()) for f in metric_files]
    table = metrics_table(records)
    table.to_csv(out_csv, index=False)
    Path(out_md).write_text(_markdown(table), encoding="utf-8")
    fig_dir = Path(figure_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    by_set: dict[str, dict[str, pd.DataFrame]] = {}
    for rec, pf in zip(records, prediction_files, strict=True):
        by_set.setdefault(rec["set"], {})[rec["arch"]] = pd.read_parquet(pf)
    for set_name, preds in by_set.items():
        first = next(iter(preds.values()))
        panels = spectrum_compositions(first, set_cfgs.get(set_name, {}).get("spectrum_compositions"))
        nnk_plots.spectrum_figure(preds, panels, f"NNK {set_name}", fig_dir / f"spectrum_{set_name}.png")
        nnk_plots.parity_figure(preds, f"NNK {set_name}", fig_dir / f"parity_{set_name}.png")
    return table


# --------------------------------------------------------------------------- ternary map

def ternary_grid(step: float) -> np.ndarray:
    """(n, 3) compositions on the triangle, fractions multiples of ``step`` summing to 1."""
    m = round(1.0 / step)
    if not np.isclose(m * step, 1.0):
        raise ValueError(f"nnk.published.composition_step: 1/{step} is not an integer")
    return np.array([(i / m, j / m, (m - i - j) / m) for i in range(m + 1) for j in range(m + 1 - i)])


def ternary_mean_barriers(model: torch.nn.Module, lattice: Lattice, compositions: np.ndarray,
                          n_configurations: int, seed: int, cutoff: float = 7.5) -> pd.DataFrame:
    """Mean barrier over every path of ``n_configurations`` random configurations per composition.

    Each configuration: exact species counts on ``n_sites - 1`` sites (largest remainder),
    shuffled, one vacancy at a random site. Digits are species index + 1.
    """
    enc = NNKEncoder(lattice, cutoff=cutoff)
    rows = []
    for ci, x in enumerate(compositions):
        rng = np.random.default_rng([int(seed), ci])
        counts = exact_counts(dict(enumerate(x)), list(range(len(x))), lattice.n_sites - 1)
        digits = np.empty((n_configurations, lattice.n_sites), dtype=np.int64)
        vac = rng.integers(lattice.n_sites, size=n_configurations)
        for t in range(n_configurations):
            atoms = rng.permutation(np.repeat(np.arange(len(x)), counts)) + 1
            digits[t] = np.insert(atoms, vac[t], 0)
        e = barriers(model, enc, torch.as_tensor(digits), torch.as_tensor(vac)[:, None]).double().numpy()
        if not np.all(np.isfinite(e)):
            raise ValueError(f"barrier: NaN or inf at composition {x.tolist()}")
        rows.append({**{f"x{k}": float(v) for k, v in enumerate(x)}, "mean_barrier_eV": float(e.mean()),
                     "std_barrier_eV": float(e.std()), "n_paths": int(e.size)})
    return pd.DataFrame(rows)


def ternary_step(weights: str | Path, params: Mapping, out_csv: str | Path, out_figure: str | Path) -> pd.DataFrame:
    """Fig 2c-style map with the published network on random bcc configurations."""
    model = PublishedNNK.from_file(weights)
    species = list(params["species"])
    lattice = Lattice("bcc", int(params["supercell"]), float(params["a"]))
    table = ternary_mean_barriers(model, lattice, ternary_grid(float(params["composition_step"])),
                                  int(params["n_configurations"]), int(params["seed"]))
    table = table.rename(columns={f"x{k}": f"x_{s}" for k, s in enumerate(species)})
    table.to_csv(out_csv, index=False)
    nnk_plots.ternary_figure(table, species, "published NNK, random bcc " + "-".join(species), out_figure)
    best = table.loc[table["mean_barrier_eV"].idxmax()]
    log.info("highest mean barrier %.4f eV at %s", best["mean_barrier_eV"],
             {s: best[f"x_{s}"] for s in species})
    return table
