"""Snakemake integration of the model stage on the reference dataset (tiny ensembles, few epochs)."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from dbkmc.detailed_balance.training import load_model
from snakemake_helpers import REPO, snakemake, write_config

CUNI = {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
        "files": {"table": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]}
TINY = {
    "run": "tiny_models",
    "potentials": {"cuni_eam": CUNI},
    "datasets": {"reference": {
        "potential": "cuni_eam", "lattice": "fcc", "source": str(REPO / "data" / "reference_cuni"),
        "compositions": {"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}, "Cu25Ni75": {"Cu": 0.25, "Ni": 0.75},
                         "Cu75Ni25": {"Cu": 0.75, "Ni": 0.25}},
    }},
    "models": {"dataset": "reference", "n_members": 2, "hidden": [16], "max_epochs": 3, "patience": 2,
               "batch_size": 512, "sas_lambdas": [0.0, 1.0], "learning_curve_fractions": [0.25, 1.0],
               "device": "cpu"},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("models")
    out = snakemake(work, write_config(work / "tiny.yaml", TINY), timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    return work / "results" / "tiny_models"


def test_table2_and_exact_detailed_balance(run):
    table = pd.read_csv(run / "tables" / "table2.csv")
    assert list(table["model"]) == ["M_NC", "M_SAS", "M_HAS", "M_KOL", "M_EXT"]   # M_EXT joins Table 2 (issue 14)
    ddE = table.set_index("model")["test_ddE_eV"]
    assert ddE["M_HAS"] <= 1e-6 and ddE["M_KOL"] <= 1e-6 and ddE["M_EXT"] <= 1e-6
    assert ddE["M_NC"] > 1e-6  # an unconstrained model is not antisymmetric
    assert (run / "tables" / "table2.md").read_text().count("M_") >= 4
    for name in ("sas_sweep.png", "fig8_learning_curves.png", "models/parity_KRA.png",
                 "models/forward_reverse_M_NC.png", "models/parity_M_KOL.png"):
        assert (run / "figures" / name).stat().st_size > 0


def test_learning_curve_points_and_the_full_point_from_table2(run):
    """One job per (model, fraction) below 1; the 100 % point is Table 2's ensemble, not a second fit."""
    curve = pd.read_csv(run / "tables" / "learning_curve.csv")
    models = ["M_EXT", "M_HAS", "M_KOL", "M_NC", "M_SAS"]
    assert sorted(set(curve["model"])) == models and len(curve) == 2 * len(models)
    for m in models:
        assert (run / "models" / "learning_curve" / m / "0.25" / "point.json").exists()
        assert not (run / "models" / "learning_curve" / m / "1").exists()
    full = curve[curve["fraction"] == 1.0].set_index("model")
    table2 = pd.read_csv(run / "tables" / "table2.csv").set_index("model")
    assert (full["test_rmse_dE_eV"] - table2.loc[full.index, "test_rmse_dE_eV"]).abs().max() < 1e-12
    small = curve[curve["fraction"] == 0.25].set_index("model")
    assert (small["n_train"] < full.loc[small.index, "n_train"]).all()
    assert (curve["best_epoch_min"] >= 1).all() and (curve["best_epoch_max"] <= curve["n_epochs"]).all() and (curve["n_epochs"] >= 1).all()
    assert (run / "figures" / "fig8_parity_smallest.png").stat().st_size > 0


UNIT_SUFFIXES = ("_eV", "_meV", "_K", "_s", "_angstrom", "_pct")
# a column whose name says it holds an energy, a temperature, a time or a length
PHYSICAL = re.compile(r"rmse|ddE|dE|E_KRA|E_net|barrier|energy|temperature|time|r_cut")


def test_every_csv_header_carries_its_units(run):
    """A column of a physical quantity names its unit (``test_rmse_dE_eV``, ``temperature_K``)."""
    tables = sorted((run / "tables").glob("*.csv"))
    assert {"table2.csv", "sas_sweep.csv", "learning_curve.csv"} <= {t.name for t in tables}
    for path in tables:
        header = pd.read_csv(path, nrows=0).columns
        bare = [c for c in header if PHYSICAL.search(c) and not c.endswith(UNIT_SUFFIXES)]
        assert not bare, f"{path.name}: columns without a unit: {bare}"


def test_metrics_cover_every_target(run):
    m = json.loads((run / "models" / "M_KOL" / "metrics.json").read_text())
    for part in ("train", "val", "test"):
        assert {"dE", "ddE", "barrier_forward", "barrier_backward"} <= set(m[part])
    assert m["n_events"]["train"] + m["n_events"]["val"] + m["n_events"]["test"] == 5400
    kra = json.loads((run / "models" / "KRA" / "metrics.json").read_text())
    assert "E_KRA" in kra["test"]


def test_model_loads_back_from_its_files_alone(run):
    model = load_model(run / "models" / "M_KOL")
    events = pd.read_parquet(REPO / "data" / "reference_cuni" / "events.parquet").iloc[:50]
    pred = model.predict_events(events)
    again = load_model(run / "models" / "M_KOL").predict_events(events)
    assert torch.equal(pred.members, again.members)
    stored = pd.read_parquet(run / "models" / "M_KOL" / "predictions.parquet")
    fwd = stored[stored["direction"] == "forward"].set_index("event_id")["prediction"]
    common = [e for e in events["event_id"] if e in fwd.index]
    got = pd.Series(pred.mean.double().numpy(), index=events["event_id"])[common]
    np.testing.assert_allclose(got.to_numpy(), fwd[common].to_numpy(), atol=1e-6)
