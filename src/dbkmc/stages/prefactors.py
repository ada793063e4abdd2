"""Vibrational prefactors as file-to-file steps (rules of ``workflow/rules/prefactors.smk``).

The input is the prefactor table of the rule ``hessians``
(``results/<run>/datasets/<dataset>/hessians/prefactors.parquet``). :func:`events_step` renames it into
an events table (dE := dS, E_KRA := S_KRA, barriers := -ln nu); the model stage's own
:func:`~dbkmc.stages.models.fingerprints_step`, :func:`~dbkmc.stages.models.train_step` and
:func:`~dbkmc.stages.models.evaluate_step` then train and evaluate PRE_S (M_EXT) and PRE_KRA (KRA);
:func:`direct_train_step` trains PRE_DIRECT. Each function is what one rule does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from dbkmc.core.io import resolve_device, write_json
from dbkmc.core.lattice import Lattice
from dbkmc.core.provenance import code_provenance, provenance_record
from dbkmc.detailed_balance.markov import enumerate_states
from dbkmc.detailed_balance.prefactors.direct import DIRECT_KIND, direct_data, train_direct
from dbkmc.detailed_balance.prefactors.markov import prefactor_markov_check
from dbkmc.detailed_balance.prefactors.metrics import meyer_neldel_fit, regression_metrics
from dbkmc.detailed_balance.prefactors.model import PrefactorModel
from dbkmc.detailed_balance.prefactors.surrogate import DESCRIPTORS, descriptor_matrix, fit_surrogate
from dbkmc.detailed_balance.prefactors.targets import as_model_events
from dbkmc.detailed_balance.training import directed_predictions, load_model, save_ensemble, split_events
from dbkmc.figures import prefactors as plots
from dbkmc.stages.loops import dataset_lattice, markov_fractions, markov_start
from dbkmc.stages.models import evaluate_step, load_event_data, train_config, write_table

log = logging.getLogger(__name__)

PARTS: tuple[str, ...] = ("train", "val", "test")


def events_step(prefactors_path, dataset_json, out_events, out_dataset_json) -> pd.DataFrame:
    """The prefactor table as a model events table (:func:`~dbkmc.detailed_balance.prefactors.targets.as_model_events`),
    with the dataset's ``dataset.json`` beside it (provenance, lattice constants) naming the prefactor table."""
    table = as_model_events(pd.read_parquet(prefactors_path))
    table.to_parquet(out_events, index=False)
    meta = json.loads(Path(dataset_json).read_text(encoding="utf-8"))
    meta["prefactors"] = {"table": str(prefactors_path), "renamed": {"dE": "dS", "E_KRA": "S_KRA",
                          "barrier_forward": "-ln_nu_AB", "barrier_backward": "-ln_nu_BA"}}
    write_json(meta, out_dataset_json)
    log.info("%d events: ln nu_AB mean %.3f, std %.3f; dS std %.3f; S_KRA std %.3f", len(table),
             -table["barrier_forward"].mean(), table["barrier_forward"].std(), table["dE"].std(), table["E_KRA"].std())
    return table


def split_of(events_path, models_cfg: Mapping):
    """The train/val/test split of the model stage (same function, fractions and seed: same split for the same events)."""
    events = pd.read_parquet(events_path, columns=["event_id", "composition"])
    return split_events([str(e) for e in events["event_id"]], [str(c) for c in events["composition"]],
                        tuple(models_cfg["split"]), models_cfg["seed"])


def direct_train_step(events_path, fingerprints_path, models_cfg: Mapping, out_dir) -> None:
    """PRE_DIRECT: an M_NC ensemble of ln nu (both directions), saved like every ensemble."""
    device = resolve_device(models_cfg["device"], "prefactors.device")
    data = load_event_data(events_path, fingerprints_path, device)
    cfg = train_config(models_cfg)
    fit = train_direct(data, split_of(events_path, models_cfg), cfg)
    record = provenance_record({"prefactors": {k: models_cfg[k] for k in sorted(models_cfg)},
                                "fingerprints": data.params.to_dict(), "model": "PRE_DIRECT"},
                               {"models.seed": models_cfg["seed"]}, events_path)
    lattice = str(pd.read_parquet(events_path, columns=["lattice"])["lattice"].iloc[0])
    extra = {"train_config": cfg.for_kind(DIRECT_KIND).to_dict(), "provenance": record, "lattice": lattice,
             "target": "ln_nu"}
    save_ensemble(out_dir, fit.ensemble, data.params, data.species, extra=extra)
    write_json({"model": "PRE_DIRECT", "kind": DIRECT_KIND, "device": device, **fit.summary(),
                "train_config": cfg.for_kind(DIRECT_KIND).to_dict(), "provenance": record},
               Path(out_dir) / "training.json")
    log.info("PRE_DIRECT: %d members, %d epochs", fit.ensemble.n_members, fit.n_epochs)


def _direct_metrics(ensemble, data, split) -> dict:
    out = {}
    for part in PARTS:
        d = direct_data(data, split[part])
        pred = directed_predictions(ensemble, d).to("cpu", torch.float64)
        y = d.y["dE"].to("cpu", torch.float64)
        n = d.n_events
        members = [regression_metrics(y.numpy(), p.numpy())["rmse"] for p in pred]
        out[part] = {"ln_nu": {"ensemble": regression_metrics(y.numpy(), pred.mean(0).numpy())["rmse"],
                               "member_mean": float(np.mean(members)), "member_std": float(np.std(members))},
                     "ln_nu_AB": regression_metrics(y[:n].numpy(), pred.mean(0)[:n].numpy())}
    return out


def evaluate_step_all(events_path, fingerprints_path, model_dirs: Mapping[str, str], models_cfg: Mapping,
                      out_metrics: Mapping[str, str], out_predictions) -> pd.DataFrame:
    """metrics.json of PRE_S (with PRE_KRA: the "barrier" RMSEs are those of -ln nu), PRE_KRA and PRE_DIRECT,
    and one table of ln nu predictions, both directions of every event (``prefactors_predictions.parquet``)."""
    device = resolve_device(models_cfg["device"], "prefactors.device")
    for name, kind in (("PRE_S", "M_EXT"), ("PRE_KRA", "KRA")):
        evaluate_step(kind, events_path, fingerprints_path, model_dirs[name], model_dirs["PRE_KRA"], models_cfg,
                      out_metrics[name], Path(model_dirs[name]) / "predictions.parquet")
    data = load_event_data(events_path, fingerprints_path, device)
    split = split_of(events_path, models_cfg)
    pre_s, pre_kra, direct = (load_model(model_dirs[m], device).ensemble for m in ("PRE_S", "PRE_KRA", "PRE_DIRECT"))
    metrics = _direct_metrics(direct, data, split)
    metrics.update(n_events={p: int(len(split[p])) for p in PARTS}, code=code_provenance())
    write_json(metrics, out_metrics["PRE_DIRECT"])
    frames = []
    for part in PARTS:
        d = direct_data(data, split[part])
        ds = directed_predictions(pre_s, d).to("cpu", torch.float64).mean(0)
        kra = directed_predictions(pre_kra, d).to("cpu", torch.float64).mean(0)
        n = d.n_events
        frames.append(pd.DataFrame({
            "split": part, "event_id": [data.event_id[i] for i in split[part]] * 2,
            "direction": ["forward"] * n + ["reverse"] * n,
            "ln_nu": d.y["dE"].to("cpu", torch.float64).numpy(),
            "PRE_DB": (-(kra + 0.5 * ds)).numpy(), "dS_pred": ds.numpy(), "S_KRA_pred": kra.numpy(),
            "PRE_DIRECT": directed_predictions(direct, d).to("cpu", torch.float64).mean(0).numpy()}))
    table = pd.concat(frames, ignore_index=True)
    table.to_parquet(out_predictions, index=False)
    return table


def surrogate_step(prefactors_path, models_cfg: Mapping, alphas: Sequence[float], out_csv, out_predictions) -> pd.DataFrame:
    """The seed's ridge surrogate on D_min ⊕ D_saddle, with sna and with aev sums: validation RMSE per
    alpha (CSV) and the chosen fits' forward predictions."""
    table = pd.read_parquet(prefactors_path).reset_index(drop=True)
    split = split_of(prefactors_path, models_cfg)
    y = table["ln_nu_AB"].to_numpy(np.float64)
    rows, preds = [], pd.DataFrame({"event_id": table["event_id"].astype(str), "ln_nu": y})
    preds["split"] = ""
    for part in PARTS:
        preds.loc[split[part], "split"] = part
    for name in DESCRIPTORS:
        try:
            x = descriptor_matrix(table, name)
        except ValueError as err:
            log.warning("surrogate %s: %s", name, err)
            continue
        fit = fit_surrogate(x, y, split, alphas, name)
        for alpha, rmse in fit.alphas.items():
            rows.append({"descriptor": name, "n_features": x.shape[1], "alpha": alpha, "val_rmse": rmse,
                         "chosen": alpha == fit.model.alpha,
                         **{f"{p}_{k}": v for p in PARTS for k, v in fit.metrics[p].items()
                            if alpha == fit.model.alpha and k in ("rmse", "std", "rmse_over_std", "r2")}})
        preds[f"ridge_{name}"] = fit.model.predict(x)
        log.info("ridge on %s: alpha %g, test R2 %.3f, RMSE/std %.3f", name, fit.model.alpha,
                 fit.metrics["test"]["r2"], fit.metrics["test"]["rmse_over_std"])
    out = pd.DataFrame(rows)
    out.to_csv(out_csv, index=False)
    preds.to_parquet(out_predictions, index=False)
    return out


def markov_step(ext_dir, kra_dir, prefactor_dirs: Mapping[str, str], events_path, dataset_json,
                markov_cfg: Mapping[str, Any], seed: int, device: str, out_csv, out_md) -> pd.DataFrame:
    """The exact Markov chain with M_EXT + KRA barriers and (1) nu = const, (2) PRE_S + PRE_KRA, (3) PRE_DIRECT."""
    dev = resolve_device(device, "prefactors.device")
    ext, kra = load_model(ext_dir, dev), load_model(kra_dir, dev)
    pre = PrefactorModel(load_model(prefactor_dirs["PRE_S"], dev), load_model(prefactor_dirs["PRE_KRA"], dev))
    direct = load_model(prefactor_dirs["PRE_DIRECT"], dev)
    species = list(ext.species)
    kind = str(pd.read_parquet(events_path, columns=["lattice"])["lattice"].iloc[0])
    n_sites = Lattice(kind, int(markov_cfg["supercell"]), 1.0).n_sites
    lattice = dataset_lattice(events_path, dataset_json, markov_fractions(n_sites, species, markov_cfg),
                              markov_cfg["supercell"])
    space = enumerate_states(lattice, markov_start(lattice, species, markov_cfg, seed))
    table = prefactor_markov_check(ext, kra, pre, direct, lattice, space, markov_cfg["temperature"],
                                   markov_cfg["attempt_frequency"])
    table.insert(1, "cell", f"{lattice.kind} {lattice.n}x{lattice.n}x{lattice.n}, "
                            f"{markov_cfg['n_solutes']} solute(s), 1 vacancy")
    table.to_csv(out_csv, index=False)
    Path(out_md).write_text(table.to_markdown(index=False, floatfmt=".3g") + "\n", encoding="utf-8")
    for row in table.itertuples():
        log.info("%s: max relative flux imbalance %.3g", row.prefactor_model, row.max_rel_flux_imbalance)
    return table


def metrics_table(predictions: pd.DataFrame, surrogate: pd.DataFrame) -> pd.DataFrame:
    """RMSE, std, RMSE/std and R² of ln nu_AB (forward jumps) per model and set; the network models also
    over both directions."""
    rows = []
    fwd = predictions[predictions["direction"] == "forward"]
    for model in ("PRE_DB", "PRE_DIRECT"):
        for part in PARTS:
            for label, sel in (("forward", fwd), ("both", predictions)):
                s = sel[sel["split"] == part]
                rows.append({"model": model, "split": part, "directions": label,
                             **regression_metrics(s["ln_nu"].to_numpy(), s[model].to_numpy())})
    for col in [c for c in surrogate.columns if c.startswith("ridge_")]:
        for part in PARTS:
            s = surrogate[surrogate["split"] == part]
            rows.append({"model": col, "split": part, "directions": "forward",
                         **regression_metrics(s["ln_nu"].to_numpy(), s[col].to_numpy())})
    return pd.DataFrame(rows)


def report_step(prefactors_path, predictions_path, surrogate_predictions_path, out_metrics_csv, out_metrics_md,
                out_mn_csv, figure_dir) -> pd.DataFrame:
    """Tables of the models' ln nu metrics and the Meyer-Neldel fit; the compensation, parity and histogram figures."""
    table = pd.read_parquet(prefactors_path)
    pred = pd.read_parquet(predictions_path)
    sur = pd.read_parquet(surrogate_predictions_path)
    metrics = metrics_table(pred, sur)
    write_table(metrics, out_metrics_csv, out_metrics_md)
    ln_nu, e_b = table["ln_nu_AB"].to_numpy(np.float64), table["barrier_forward"].to_numpy(np.float64)
    both = np.concatenate([ln_nu, table["ln_nu_BA"].to_numpy(np.float64)])
    mn = meyer_neldel_fit(ln_nu, e_b)
    pd.DataFrame([{**mn.to_dict(), "ln_nu_mean": float(ln_nu.mean()), "ln_nu_std": float(ln_nu.std()),
                   "ln_nu_min": float(ln_nu.min()), "ln_nu_max": float(ln_nu.max())}]).to_csv(out_mn_csv, index=False)
    log.info("Meyer-Neldel: slope %.3f /eV (E_MN %.3f eV), r = %.3f over %d events", mn.slope_per_eV, mn.E_MN_eV,
             mn.r, mn.n)
    figure_dir = Path(figure_dir)
    figure_dir.mkdir(parents=True, exist_ok=True)
    plots.compensation_figure(e_b, ln_nu, mn.ln_nu0, mn.slope_per_eV, mn.r, figure_dir / "prefactors_compensation.png")
    plots.histogram_figure({"ln nu_AB and ln nu_BA": both}, figure_dir / "prefactors_ln_nu_hist.png")
    test = pred[(pred["split"] == "test") & (pred["direction"] == "forward")]
    tsur = sur[sur["split"] == "test"]
    panels = [(m, test["ln_nu"].to_numpy(), test[m].to_numpy()) for m in ("PRE_DB", "PRE_DIRECT")]
    panels += [(c, tsur["ln_nu"].to_numpy(), tsur[c].to_numpy()) for c in tsur.columns if c.startswith("ridge_")]
    plots.parity_figure(panels, figure_dir / "prefactors_parity.png")
    rev = pred[(pred["split"] == "test")]
    f, r = (rev[rev["direction"] == d].set_index("event_id") for d in ("forward", "reverse"))
    r = r.reindex(f.index)
    plots.detailed_balance_figure({m: (f[m] - r[m]).to_numpy() for m in ("PRE_DB", "PRE_DIRECT")},
                                  (f["ln_nu"] - r["ln_nu"]).to_numpy(), figure_dir / "prefactors_forward_reverse.png")
    return metrics
