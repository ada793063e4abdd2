"""Detailed-balance model family: symmetries, batched ensembles, checkpoints and the data split."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from dbkmc.detailed_balance.fingerprints import AEVParams
from dbkmc.detailed_balance.models import MODEL_KINDS, Ensemble, build_model
from dbkmc.detailed_balance.training import (
    EventData,
    TrainConfig,
    fit_members,
    init_members,
    load_model,
    model_metrics,
    prediction_metrics,
    save_ensemble,
    split_events,
    subsample,
    train_model,
)

D = 12  # fingerprint size of the random inputs
COMPOSITIONS = ("Cu25Ni75", "Cu50Ni50", "Cu75Ni25")


def _random_pair(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, D, generator=g) * 3, torch.rand(n, D, generator=g) * 3


def _untrained(kind: str, seed: int = 0) -> torch.nn.Module:
    """A fresh model with non-trivial (random) standardisation, in eval mode."""
    torch.manual_seed(seed)
    model = build_model(kind, D, hidden=(16, 8), dropout=0.1)
    x_a, x_b = _random_pair(32, seed + 1)
    model.fit_standardization(x_a, x_b, torch.randn(32))
    return model.eval()


def _synthetic(n: int = 300, seed: int = 0, dtype: torch.dtype = torch.float32) -> EventData:
    """Random fingerprints with a learnable dE = e(KOL_B) - e(KOL_A) and a symmetric E_KRA."""
    g = torch.Generator().manual_seed(seed)
    fp = {k: torch.rand(n, D, generator=g, dtype=dtype) for k in ("KOL_A", "KOL_B", "TW_A", "TW_B")}
    w = torch.randn(D, generator=g, dtype=dtype)

    def energy(f: torch.Tensor) -> torch.Tensor:
        return 0.2 * torch.tanh(f @ w - 0.5 * w.sum())

    d_e = energy(fp["KOL_B"]) - energy(fp["KOL_A"])
    e_kra = 0.7 + 0.05 * torch.cos((fp["TW_A"] + fp["TW_B"]) @ w)
    targets = {"dE": d_e, "E_KRA": e_kra, "barrier_forward": e_kra + d_e / 2, "barrier_backward": e_kra - d_e / 2}
    comps = [COMPOSITIONS[i % 3] for i in range(n)]
    ids = [f"syn:{c}:{i:05d}" for i, c in enumerate(comps)]
    return EventData(fp, targets, ids, comps, AEVParams(), ["Cu", "Ni"])


SMALL = TrainConfig(hidden=(16, 8), dropout=0.0, lr=3e-3, batch_size=32, max_epochs=15, patience=15, n_members=3)


# --------------------------------------------------------------------------- symmetries


@pytest.mark.parametrize("kind", ["M_HAS", "M_KOL"])
def test_antisymmetric_models_have_zero_ddE_untrained(kind: str) -> None:
    model = _untrained(kind)
    x_a, x_b = _random_pair()
    with torch.no_grad():
        forward, reverse = model(x_a, x_b), model(x_b, x_a)
    assert forward.abs().max() > 1e-3                       # not trivially zero
    assert (forward + reverse).abs().max() <= 1e-6
    ens = Ensemble([_untrained(kind, s) for s in range(3)])
    assert (ens(x_a, x_b) + ens(x_b, x_a)).abs().max() <= 1e-6


def test_kra_is_symmetric_under_swap() -> None:
    model = _untrained("KRA")
    x_a, x_b = _random_pair()
    with torch.no_grad():
        assert torch.equal(model(x_a, x_b), model(x_b, x_a))
    ens = Ensemble([_untrained("KRA", s) for s in range(3)])
    assert (ens(x_a, x_b) - ens(x_b, x_a)).abs().max() <= 1e-6


@pytest.mark.parametrize("kind", ["M_NC", "M_SAS"])
def test_non_conservative_model_is_not_antisymmetric(kind: str) -> None:
    model = _untrained(kind)
    x_a, x_b = _random_pair()
    with torch.no_grad():
        assert (model(x_a, x_b) + model(x_b, x_a)).abs().max() > 1e-3


def test_kolmogorov_state_energy_difference() -> None:
    model = _untrained("M_KOL")
    x_a, x_b = _random_pair()
    with torch.no_grad():
        assert torch.allclose(model(x_a, x_b), model.state_energy(x_b) - model.state_energy(x_a))
    ens = Ensemble([_untrained("M_KOL", s) for s in range(2)])
    assert torch.allclose(ens(x_a, x_b), ens.state_energy(x_b).members - ens.state_energy(x_a).members, atol=1e-6)


def test_directed_data_has_both_directions() -> None:
    data = _synthetic(30)
    d = data.directed(np.arange(10))
    assert len(d) == 20
    assert torch.equal(d.y["dE"][10:], -d.y["dE"][:10])
    assert torch.equal(d.x["TW_A"][10:], d.x["TW_B"][:10]) and torch.equal(d.x["KOL_B"][10:], d.x["KOL_A"][:10])
    assert torch.equal(d.y["barrier"][10:], data.targets["barrier_backward"][:10])


# --------------------------------------------------------------------------- ensembles


def _ext_pair(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random M_EXT window inputs (n, 5 sites, 2 species one-hot + D - 2 descriptors)."""
    g = torch.Generator().manual_seed(seed)
    own = torch.randint(0, 3, (2, n, 5), generator=g)
    onehot = (own.unsqueeze(-1) == torch.arange(1, 3)).float()
    x = torch.cat([onehot, torch.rand(2, n, 5, D - 2, generator=g) * 3], -1)
    return x[0], x[1]


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_vmapped_ensemble_matches_plain_members(kind: str) -> None:
    if kind == "M_EXT":
        members = []
        for s in range(4):
            torch.manual_seed(s)
            members.append(build_model(kind, D, hidden=(16, 8), dropout=0.0, n_species=2))
            members[-1].fit_standardization(*_ext_pair(32, s + 1), torch.randn(32))
        members = [m.eval() for m in members]
    else:
        members = [_untrained(kind, s) for s in range(4)]
    ens = Ensemble(members)
    x_a, x_b = _ext_pair() if kind == "M_EXT" else _random_pair()
    batched = ens(x_a, x_b)
    with torch.no_grad():
        plain = torch.stack([m(x_a, x_b) for m in members])
    assert batched.shape == (4, len(x_a))
    torch.testing.assert_close(batched, plain, rtol=1e-5, atol=1e-6)
    pred = ens.predict(x_a, x_b)
    torch.testing.assert_close(pred.mean, plain.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(pred.std, plain.std(0, unbiased=False), rtol=1e-4, atol=1e-6)


def test_batched_training_reduces_loss_and_matches_sequential() -> None:
    data = _synthetic(dtype=torch.float64)  # float64: rounding differences do not grow over the epochs
    split = split_events(data.event_id, data.composition)
    train, val = data.directed(split.train), data.directed(split.val)
    members = init_members("M_KOL", D, train, SMALL)
    before = Ensemble(members)
    batched = fit_members(members, train, val, SMALL)
    sequential = fit_members(init_members("M_KOL", D, train, SMALL), train, val, SMALL, batched=False)

    def mse(ens: Ensemble) -> torch.Tensor:
        return ((ens(*train.inputs("KOL")) - train.y["dE"]) ** 2).mean(1)

    assert (mse(batched.ensemble) < 0.5 * mse(before)).all()
    assert batched.best_epoch == sequential.best_epoch
    x_a, x_b = val.inputs("KOL")
    torch.testing.assert_close(batched.ensemble(x_a, x_b), sequential.ensemble(x_a, x_b), rtol=1e-7, atol=1e-9)


def test_training_and_evaluation_log_progress(caplog) -> None:
    """A line per PROGRESS_EVERY epochs (and the first and last) with the losses, a line per
    member of the sequential pass, and a line per set in the metrics."""
    data = _synthetic(120)
    split = split_events(data.event_id, data.composition)
    cfg = SMALL.replace(max_epochs=12, patience=50)  # no early stop: epochs 1, 10, 12
    with caplog.at_level(logging.INFO, logger="dbkmc.detailed_balance.training"):
        fit = train_model("M_KOL", data, split, cfg)
        model_metrics(fit.ensemble, data, split)
        fit_members(init_members("KRA", D, data.directed(split.train), cfg.replace(max_epochs=2)),
                    data.directed(split.train), data.directed(split.val), cfg.replace(max_epochs=2), batched=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "dbkmc.detailed_balance.training"]
    epochs = [line for line in lines if line.startswith("M_KOL epoch")]
    assert [line.split()[2].rstrip(":") for line in epochs] == ["1/12", "10/12", "12/12"]
    last = fit.history[-1]
    assert f"val loss {np.mean(last['val_loss']):.4g}" in epochs[-1] and "3/3 members training" in epochs[-1]
    assert sum(line.startswith("M_KOL train set") for line in lines) == 1
    assert any(line.startswith("M_KOL test set") and "dE RMSE" in line for line in lines)
    assert sum(line.startswith("KRA member") for line in lines) == 3


def test_training_is_reproducible_with_dropout() -> None:
    data = _synthetic(120)
    split = split_events(data.event_id, data.composition)
    cfg = SMALL.replace(dropout=0.2, max_epochs=3)
    first, second = (train_model("M_SAS", data, split, cfg) for _ in range(2))
    x_a, x_b = data.directed(split.test).inputs("TW")
    assert torch.equal(first.ensemble(x_a, x_b), second.ensemble(x_a, x_b))
    members = first.ensemble(x_a, x_b)
    assert not torch.equal(members[0], members[1])          # members differ (own init, data order, dropout)


def test_metrics_report_zero_ddE_for_kolmogorov() -> None:
    data = _synthetic(120)
    split = split_events(data.event_id, data.composition)
    kol = train_model("M_KOL", data, split, SMALL.replace(max_epochs=2)).ensemble
    kra = train_model("KRA", data, split, SMALL.replace(max_epochs=2)).ensemble
    metrics = model_metrics(kol, data, split, kra=kra)
    assert set(metrics) == {"train", "val", "test"}
    assert metrics["test"]["ddE"]["ensemble"] <= 1e-6 and metrics["test"]["ddE"]["member_mean"] <= 1e-6
    assert {"dE", "barrier_forward", "barrier_backward"} <= set(metrics["test"])
    d = data.directed(split.test)
    exact = prediction_metrics(d.y["dE"].repeat(2, 1), d.y["E_KRA"].repeat(2, 1), d)
    assert exact["dE"]["ensemble"] == 0 and exact["barrier_backward"]["member_mean"] < 1e-6


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("kind", ["M_HAS", "KRA"])
def test_checkpoint_round_trip_is_bit_identical(kind: str, tmp_path) -> None:
    data = _synthetic(120)
    split = split_events(data.event_id, data.composition)
    fit = train_model(kind, data, split, SMALL.replace(max_epochs=2, dropout=0.1))
    params = AEVParams(r_cut=5.5, zeta=16.0)
    paths = save_ensemble(tmp_path / kind, fit.ensemble, params, ["Cu", "Ni"], extra={"config": SMALL.to_dict()})
    assert [p.name for p in paths] == ["member_0.pt", "member_1.pt", "member_2.pt"]
    loaded = load_model(tmp_path / kind)
    assert loaded.kind == kind and loaded.species == ["Cu", "Ni"] and loaded.params == params
    assert loaded.extra["config"]["hidden"] == [16, 8]
    x_a, x_b = data.directed(split.test).inputs(fit.ensemble.fingerprint)
    assert torch.equal(loaded.ensemble(x_a, x_b), fit.ensemble(x_a, x_b))
    payload = torch.load(paths[0], weights_only=True)
    assert payload["arch"]["hidden"] == [16, 8] and payload["fingerprint_params"]["r_cut"] == 5.5


# --------------------------------------------------------------------------- split


def _ids(n_per: int = 200) -> tuple[list[str], list[str]]:
    comps = [c for c in COMPOSITIONS for _ in range(n_per)]
    return [f"d:{c}:{i:06d}" for i, c in enumerate(comps)], comps


def test_split_is_stratified_disjoint_and_75_15_10() -> None:
    ids, comps = _ids()
    split = split_events(ids, comps, seed=7)
    sets = [set(split.train), set(split.val), set(split.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sets[0] | sets[1] | sets[2] == set(range(len(ids)))
    for c in COMPOSITIONS:
        counts = [sum(comps[i] == c for i in s) for s in (split.train, split.val, split.test)]
        assert counts == [150, 30, 20]


def test_split_is_deterministic_and_order_independent() -> None:
    ids, comps = _ids(50)
    first, again = split_events(ids, comps, seed=3), split_events(ids, comps, seed=3)
    assert all(np.array_equal(first[s], again[s]) for s in ("train", "val", "test"))
    perm = np.random.default_rng(0).permutation(len(ids))
    shuffled = split_events([ids[i] for i in perm], [comps[i] for i in perm], seed=3)
    for s in ("train", "val", "test"):
        assert sorted(ids[perm[i]] for i in shuffled[s]) == sorted(ids[i] for i in first[s])
    other = split_events(ids, comps, seed=4)
    assert not np.array_equal(first.test, other.test)


def test_subsample_is_nested_and_stratified() -> None:
    ids, comps = _ids(40)
    split = split_events(ids, comps)
    small, large = (set(subsample(split.train, ids, comps, f)) for f in (0.25, 0.5))
    assert small < large <= set(split.train)
    assert len(small) == 3 * round(0.25 * 30)


def test_features_below_float32_resolution_are_standardised_as_constants() -> None:
    """A feature whose spread is below float32 resolution of the input's largest feature (a |TW_A - TW_B|
    component that is zero up to rounding) gets std 1: divided by its own std of 1e-8, rounding noise would
    become an input of order one, and E_KRA of a jump and of its reverse would differ by meV in the kMC."""
    from dbkmc.detailed_balance.model_base import EnergyMLP

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(200, 4, generator=gen, dtype=torch.float64) * 10.0
    x[:, 1] = 1e-8 * torch.rand(200, generator=gen, dtype=torch.float64)     # rounding-level noise around 0
    x[:, 2] = 5.0 + 1e-3 * torch.rand(200, generator=gen, dtype=torch.float64)  # small but real spread
    x[:, 3] = 7.0                                                            # exactly constant
    mlp = EnergyMLP(4, hidden=(8,), dropout=0.0)
    mlp.set_standardization(x)
    std = mlp.x_std.to(torch.float64)
    assert std[1] == 1.0 and std[3] == 1.0
    assert torch.isclose(std[2], x[:, 2].std(unbiased=False), rtol=1e-5)
    assert torch.isclose(std[0], x[:, 0].std(unbiased=False), rtol=1e-5)
