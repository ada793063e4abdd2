"""Cu-Ni aging with detailed-balance rates: the aging table/figure and a small end-to-end kMC run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dbkmc.kmc.aging import aging_table
from dbkmc.core.config import validate_config
from dbkmc.detailed_balance.fingerprints import AEVParams
from dbkmc.stages.kmc import kmc_step, load_final
from dbkmc.stages.kmc_report import aging_step
from dbkmc.detailed_balance.models import Ensemble, build_model
from dbkmc.kmc.rates.base import build_rate_model
from dbkmc.detailed_balance.training import save_ensemble


def _series() -> pd.DataFrame:
    rows = []
    for temp in (400.0, 1000.0):
        for rep in range(3):
            for jumps in (0, 100, 1000):
                rows.append({"temperature": temp, "replica": rep, "jumps": jumps,
                             "time_s": jumps * (1e-3 if temp < 500 else 1e-7) * (1 + 0.1 * rep),
                             "delta_CuNi": -0.01 * jumps / (1 + rep) * (2 if temp < 500 else 1),
                             "delta_CuCu": 0.0, "energy_eV": -1e-4 * jumps + rep})
    return pd.DataFrame(rows)


def test_aging_table_means_and_errors(tmp_path) -> None:
    series = _series()
    table = aging_table(series, ["Ni", "Cu"])                # either order of the pair
    assert table.attrs["pair"] == "delta_CuNi"
    row = table[(table.temperature == 400.0) & (table.jumps == 1000)].iloc[0]
    deltas = np.array([-20.0, -10.0, -20.0 / 3])
    assert row["n_replicas"] == 3
    assert row["delta"] == pytest.approx(deltas.mean())
    assert row["delta_sem"] == pytest.approx(deltas.std(ddof=1) / np.sqrt(3))
    assert row["time_s"] == pytest.approx(np.mean([1.0, 1.1, 1.2]))
    with pytest.raises(ValueError, match="aging.pair"):
        aging_table(series, ["Cu", "Fe"])
    bad = series.copy()
    bad.loc[5, "energy_eV"] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        aging_table(bad, ["Cu", "Ni"])


def test_cuni_aging_with_detailed_balance_rates(tmp_path) -> None:
    """A kmc run with kind detailed_balance (random M_KOL + KRA checkpoints): time series with energy, figure."""
    params = AEVParams(r_cut=4.0, eta_R=4.0, eta_A=2.0, zeta=8.0, R_s=(1.0, 2.0, 3.0),
                       R_s_angular=(2.0,), theta_s=(0.5, 1.5, 2.5))
    dim = params.dim(2)
    torch.manual_seed(0)
    for kind in ("M_KOL", "KRA"):
        members = [build_model(kind, dim, hidden=(8,), dropout=0.0).eval() for _ in range(2)]
        for m in members:  # O(0.1 eV) energies and a ~0.6 eV KRA level
            m.energy.set_standardization(torch.rand(32, m.energy.in_dim) * 4, 0.6 if kind == "KRA" else 0.0, 0.1)
        save_ensemble(tmp_path / kind, Ensemble(members), params, ["Cu", "Ni"])
    config = yaml.safe_load(open("config/models_demo.yaml"))
    config["kmc"] = {"device": "cpu", "progress": False, "runs": {"aging": {
        "structure": {"species": ["Cu", "Ni"], "lattice": "fcc", "n": 3, "a": 3.6,
                      "composition": {"Cu": 0.5, "Ni": 0.5}},
        "rate_model": {"kind": "detailed_balance", "kol": str(tmp_path / "M_KOL"), "kra": str(tmp_path / "KRA")},
        "temperatures": [400, 1000], "replicas": 1, "n_jumps": 300, "seed": 3,
        "record": {"first": 10, "per_decade": 4, "linear": 3}, "analysis": {"order_pair": ["Cu", "Ni"]}}}}
    run = validate_config(config)["kmc"]["runs"]["aging"]
    out = tmp_path / "kmc"
    files = {"timeseries": out / "timeseries.parquet", "final": out / "final.npz", "snapshots": out / "snapshots",
             "summary": out / "summary.json"}
    out.mkdir()
    kmc_step("aging", run, "cpu", False, files, tmp_path / "work")
    table = aging_step(out / "timeseries.parquet", ["Cu", "Ni"], "aging", tmp_path / "aging.csv",
                       tmp_path / "aging.png")
    assert sorted(table["temperature"].unique()) == [400.0, 1000.0]
    csv = pd.read_csv(tmp_path / "aging.csv")  # units in the header
    assert list(csv.columns) == ["temperature_K", *table.columns[1:]] and "time_s" in csv and "energy_eV" in csv
    np.testing.assert_allclose(csv["temperature_K"], table["temperature"])
    assert table["jumps"].max() == 300 and np.isfinite(table["energy_eV"]).all()
    assert (tmp_path / "aging.png").stat().st_size > 10_000
    # the recorded energy is the model's M_KOL energy of the final configuration
    final = load_final(out / "final.npz")
    model = build_rate_model(run["rate_model"], final["lattice"], final["species"])
    e_final = model.energy(torch.as_tensor(final["digits"].astype(np.int64))).numpy()
    last = table[table["jumps"] == 300].sort_values("temperature")["energy_eV"].to_numpy()
    np.testing.assert_allclose(last, e_final, rtol=0, atol=1e-6)
    assert not np.allclose(table.groupby("temperature")["energy_eV"].std(), 0.0)  # the energy does change
