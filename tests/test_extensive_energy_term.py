"""M_EXT's whole-cell energy term (``energy_weight``, issue 14): off by default and then exactly today's
training; on, it fits the relaxed whole-cell energies E_A; reference energies start at least squares;
other kinds and negative weights are refused with the key named."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dbkmc.core.config import ConfigError, validate_config
from dbkmc.detailed_balance.aev import AEVParams
from dbkmc.detailed_balance.ext_fingerprints import featurize_ext_events
from dbkmc.detailed_balance.training import (
    TARGETS,
    CellStates,
    EnergyTerm,
    EventData,
    TrainConfig,
    cell_energies,
    cell_energy_metrics,
    init_members,
    split_events,
    train_model,
)
from dbkmc.stages.models import needs_cells

REPO = Path(__file__).resolve().parents[1]
SPECIES = ["Cu", "Ni"]


def ext_config(energy_weight: float | None = None, epochs: int = 4, members: int = 1) -> TrainConfig:
    ext = {"hidden": [16, 16], "dropout": 0.0, "lr": 3e-3, "lr_final": 1e-3, "max_epochs": epochs, "batch_size": 32}
    if energy_weight is not None:
        ext["energy_weight"] = energy_weight
    return TrainConfig(n_members=members, seed=3, per_kind={"M_EXT": ext})


@pytest.fixture(scope="module")
def data() -> EventData:
    """30 events per composition of the committed reference dataset: EXT windows, dE, whole cells and E_A."""
    events = pd.read_parquet(REPO / "data" / "reference_cuni" / "events.parquet")
    events = events.groupby("composition", sort=True).head(30).reset_index(drop=True)
    torch.manual_seed(0)
    return EventData(
        fingerprints=featurize_ext_events(events, SPECIES),
        targets={t: torch.tensor(events[t].to_numpy(np.float64), dtype=torch.float32) for t in TARGETS},
        event_id=[str(e) for e in events["event_id"]], composition=[str(c) for c in events["composition"]],
        params=AEVParams(), species=SPECIES, cells=CellStates.from_events(events, SPECIES))


@pytest.fixture(scope="module")
def split(data: EventData):
    return split_events(data.event_id, data.composition, (0.6, 0.2, 0.2), seed=0)


def weights(fit) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in fit.ensemble.params.items()}


def test_weight_zero_is_the_training_without_the_term(data: EventData, split) -> None:
    """energy_weight 0 (the default, or given) trains bit for bit as without whole cells at all."""
    without = copy.copy(data)
    without.cells = None
    plain = weights(train_model("M_EXT", without, split, ext_config(epochs=2, members=2)))
    given = weights(train_model("M_EXT", data, split, ext_config(0.0, epochs=2, members=2)))
    assert plain.keys() == given.keys()
    for k in plain:
        assert torch.equal(plain[k], given[k]), k
    assert torch.equal(plain["mu"], torch.zeros_like(plain["mu"]))       # nothing fits the reference energies
    assert TrainConfig().energy_weight == 0.0


def test_reference_energies_start_at_least_squares(data: EventData, split) -> None:
    cfg = ext_config(1.0, members=2).for_kind("M_EXT")
    train, val = data.directed(split.train), data.directed(split.val)
    members = init_members("M_EXT", data.feature_dim_of("EXT"), train, cfg, n_species=2)
    fresh = [copy.deepcopy(m) for m in members]
    EnergyTerm.build(members, train, val, cfg, scale=0.1)
    cells = data.cells.select(split.train)
    x, counts = cells.inputs(), cells.counts().numpy()
    for before, after in zip(fresh, members):
        with torch.no_grad():
            eps = before.site_energies(x.float()).sum(-1).double().numpy()
        mu, *_ = np.linalg.lstsq(counts, cells.energy.numpy() - eps, rcond=None)
        np.testing.assert_allclose(after.mu.detach().double().numpy(), mu, rtol=1e-6)
        # the normal equations hold: the residual is orthogonal to the species counts
        resid = cells.energy.numpy() - eps - counts @ mu
        assert np.abs(counts.T @ resid).max() < 1e-6 * np.abs(counts.T @ cells.energy.numpy()).max()


def test_energy_term_fits_whole_cell_energies(data: EventData, split) -> None:
    """With the term, test E_A beats the dE-only model even after that one gets its best reference energies."""
    test_cells = data.cells.select(split.test)
    with_term = train_model("M_EXT", data, split, ext_config(1.0, epochs=6)).ensemble
    rmse_with = cell_energy_metrics(with_term, test_cells)["E_A"]["ensemble"]

    dE_only = train_model("M_EXT", data, split, ext_config(0.0, epochs=6)).ensemble
    train_cells = data.cells.select(split.train)
    e_train = cell_energies(dE_only, train_cells.inputs()).double().mean(0)
    mu, *_ = np.linalg.lstsq(train_cells.counts().numpy(), (train_cells.energy - e_train).numpy(), rcond=None)
    e_test = cell_energies(dE_only, test_cells.inputs()).double().mean(0) + test_cells.counts() @ torch.as_tensor(mu)
    rmse_without = float(torch.sqrt(((e_test - test_cells.energy) ** 2).mean()))
    print(f"test RMSE of E_A: {rmse_with:.4f} eV with the term, {rmse_without:.4f} eV without")
    assert rmse_with < 0.5 * rmse_without, (rmse_with, rmse_without)
    assert set(cell_energy_metrics(with_term, test_cells)["E_A"]) == {"ensemble", "member_mean", "member_std"}


def test_other_kinds_refuse_the_term_naming_the_key(data: EventData, split) -> None:
    with pytest.raises(ValueError, match=r"models\.per_kind\.M_KOL\.energy_weight"):
        TrainConfig(per_kind={"M_KOL": {"energy_weight": 0.5}}).for_kind("M_KOL")
    with pytest.raises(ValueError, match=r"models\.energy_weight"):
        train_model("M_HAS", data, split, TrainConfig(energy_weight=1.0))
    models_cfg = {"hidden": [8], "dropout": 0.0, "lr": 1e-3, "weight_decay": 0.0, "batch_size": 8, "max_epochs": 1,
                  "patience": 1, "n_members": 1, "seed": 0, "per_kind": {"KRA": {"energy_weight": 2.0}}}
    with pytest.raises(ValueError, match=r"models\.per_kind\.KRA\.energy_weight"):
        needs_cells(models_cfg, ["KRA"])
    assert needs_cells({**models_cfg, "per_kind": {"M_EXT": {"energy_weight": 2.0}}}, ["M_EXT"])
    assert not needs_cells({**models_cfg, "per_kind": {}}, ["M_EXT", "M_KOL"])


def test_term_without_whole_cells_says_so(data: EventData, split) -> None:
    without = copy.copy(data)
    without.cells = None
    with pytest.raises(ValueError, match="whole cells"):
        train_model("M_EXT", without, split, ext_config(1.0, epochs=1))


def test_schema_rejects_a_negative_weight(tmp_path: Path) -> None:
    table = tmp_path / "CuNi.eam.alloy"
    table.write_text("stand-in\n")
    cfg = {"potentials": {"cuni": {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
                                   "files": {"table": str(table)}, "elements": ["Cu", "Ni"]}},
           "datasets": {"d": {"potential": "cuni", "lattice": "fcc", "compositions": {"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}}}},
           "models": {"per_kind": {"M_EXT": {"energy_weight": -0.1}}}}
    with pytest.raises(ConfigError, match=r"config error at models\.per_kind\.M_EXT\.energy_weight: .*minimum"):
        validate_config(cfg)
    cfg["models"]["per_kind"]["M_EXT"]["energy_weight"] = 0.5
    assert validate_config(cfg)["models"]["per_kind"]["M_EXT"]["energy_weight"] == 0.5
