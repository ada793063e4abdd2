"""The NNK stage through Snakemake on the committed Cu-Ni all_paths datasets (tiny networks, few epochs)."""

import json

import numpy as np
import pandas as pd
import pytest

from dbkmc.nnk.training import load_nnk, predict
from dbkmc.nnk.data import event_images
from dbkmc.detailed_balance.training import directed_predictions, load_model
from dbkmc.stages.models import load_event_data
from snakemake_helpers import REPO, snakemake, write_config

WEIGHTS = REPO / "data" / "nnk_nbmota" / "weights.npy"
DATA = REPO / "data" / "nnk_results"
CUNI = {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
        "files": {"table": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]}
COMPS = {"Cu20Ni80": {"Cu": 0.2, "Ni": 0.8}, "Cu35Ni65": {"Cu": 0.35, "Ni": 0.65},
         "Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}, "Cu65Ni35": {"Cu": 0.65, "Ni": 0.35},
         "Cu80Ni20": {"Cu": 0.8, "Ni": 0.2}}
TINY = {
    "run": "tiny_nnk",
    "potentials": {"cuni_eam": CUNI},
    "datasets": {
        "paths": {"potential": "cuni_eam", "lattice": "fcc", "supercell": 4, "mode": "all_paths",
                  "compositions": COMPS, "source": str(DATA / "cuni_paths")},
        "big": {"potential": "cuni_eam", "lattice": "fcc", "supercell": 8, "mode": "all_paths",
                "compositions": {k: v for k, v in COMPS.items() if k != "Cu50Ni50"},
                "source": str(DATA / "cuni_paths_big")},
    },
    "nnk": {"sets": {"cuni": {"dataset": "paths", "held_out": ["Cu50Ni50"], "transfer_dataset": "big"}},
            "cutoff": 5.1, "grid": 9, "mlp_hidden": [32, 32], "cnn_channels": [4, 4, 4, 4], "cnn_dense": 16,
            "max_epochs": 2, "device": "cpu", "architectures": ["mlp", "cnn", "db"],
            "published": {"weights": str(WEIGHTS), "composition_step": 0.5, "n_configurations": 2,
                          "supercell": 4}},
    "models": {"n_members": 2, "hidden": [16], "max_epochs": 2, "device": "cpu",
               "per_kind": {"M_EXT": {"hidden": [8], "max_epochs": 2}}},
}



@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("nnk")
    out = snakemake(work, write_config(work / "tiny.yaml", TINY), timeout=900)
    assert out.returncode == 0, out.stderr[-4000:]
    return work / "results" / "tiny_nnk"


def test_metrics_table_covers_every_part(run):
    table = pd.read_csv(run / "tables" / "nnk_metrics.csv")
    assert list(table["arch"]) == ["mlp", "cnn", "db"]
    events = pd.read_parquet(DATA / "cuni_paths" / "events.parquet")
    n_held = int((events["composition"] == "Cu50Ni50").sum())
    for r in table.itertuples():
        assert r.train_n + r.val_n + r.test_n + r.held_out_n == len(events)
        assert r.held_out_n == n_held and r.test_n > 0 and r.transfer_n > 0
        assert np.isfinite([r.test_MAE_pct, r.held_out_MAE_pct, r.transfer_ratio]).all()
    m = json.loads((run / "nnk" / "cuni" / "mlp" / "metrics.json").read_text())
    assert m["transfer"]["within_tolerance"] == (m["transfer"]["ratio"] <= 1.2)
    for name in ("spectrum_cuni.png", "parity_cuni.png", "ternary_published.png"):
        assert (run / "figures" / "nnk" / name).stat().st_size > 0
    tern = pd.read_csv(run / "tables" / "nnk_ternary.csv")
    assert len(tern) == 6 and np.allclose(tern[["x_Nb", "x_Mo", "x_Ta"]].sum(axis=1), 1.0)
    assert (tern["mean_barrier_eV"] > 0).all() and (tern["std_barrier_eV"] >= 0).all()


def test_model_reloads_to_its_stored_predictions(run):
    model, meta = load_nnk(run / "nnk" / "cuni" / "cnn" / "model.pt")
    assert (meta["arch"], meta["grid"], meta["cutoff"], meta["species"]) == ("cnn", 9, 5.1, ["Cu", "Ni"])
    stored = pd.read_parquet(run / "nnk" / "cuni" / "cnn" / "predictions.parquet")
    big = pd.read_parquet(DATA / "cuni_paths_big" / "events.parquet")
    got = predict(model, event_images(big, meta["cutoff"], meta["grid"]))
    want = stored[stored["part"] == "transfer"].set_index("event_id").loc[big["event_id"], "barrier_pred"]
    np.testing.assert_allclose(got, want.to_numpy(), atol=1e-5)


def test_db_nnk_is_exactly_detailed_balanced_and_reloads(run):
    """DB-NNK (M_EXT + KRA on the NNK set): dE antisymmetric and E_KRA symmetric for every path, so
    E_b(A->B) - E_b(B->A) = E(B) - E(A); the stored barriers are E_KRA + dE/2 of the saved ensembles."""
    folder = run / "nnk" / "cuni" / "db"
    ext, kra = load_model(folder / "M_EXT").ensemble, load_model(folder / "KRA").ensemble
    data = load_event_data(run / "datasets" / "paths" / "events.parquet", run / "fingerprints" / "paths.pt")
    d = data.directed(np.arange(len(data.event_id)))
    n = d.n_events
    d_e, e_kra = directed_predictions(ext, d).double(), directed_predictions(kra, d).double()
    assert float((d_e[:, :n] + d_e[:, n:]).abs().max()) < 1e-5          # float32 members
    assert float((e_kra[:, :n] - e_kra[:, n:]).abs().max()) < 1e-5
    assert float(d_e[:, :n].abs().max()) > 1e-3                           # not trivially zero
    stored = pd.read_parquet(folder / "predictions.parquet")
    barrier = (e_kra[:, :n] + 0.5 * d_e[:, :n]).mean(0).numpy()
    want = pd.Series(barrier, index=data.event_id)
    part = stored[stored["part"] != "transfer"].set_index("event_id")["barrier_pred"]
    np.testing.assert_allclose(part.to_numpy(), want.loc[part.index].to_numpy(), atol=1e-5)
    m = json.loads((folder / "metrics.json").read_text())
    assert m["arch"] == "db" and m["metrics"]["held_out"]["n"] > 0 and m["metrics"]["transfer"]["n"] > 0
    assert set(m["models"]) == {"M_EXT", "KRA"}
