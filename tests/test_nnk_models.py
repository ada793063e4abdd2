"""Our own NNK networks: event images, splits, symmetry copies, training, checkpoints (issue 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dbkmc.core.config import ConfigError, validate_config
from dbkmc.core.lattice import NN_VECTORS, Lattice
from dbkmc.nnk.encoder import NNKEncoder, alignment_operation, digits_from_occupation
from dbkmc.nnk.networks import NNKCNN, barriers
from dbkmc.nnk.data import (
    event_images,
    split_configurations,
    stabilizer_operations,
    voxel_permutations,
)
from dbkmc.nnk.training import NNKTrainConfig, load_nnk, predict, regression_metrics, save_nnk, train_nnk
from dbkmc.core.sampling import VACANCY, occupation_from_str, sample_events


def _events(kind="fcc", n=3, a=3.6, n_configs=12, comps=None, seed=1):
    comps = comps or {"A25": {"Cu": 0.25, "Ni": 0.75}, "A50": {"Cu": 0.5, "Ni": 0.5}, "A75": {"Cu": 0.75, "Ni": 0.25}}
    rows = sample_events("t", lattice_kind=kind, supercell=n, mode="all_paths", compositions=comps,
                         n_events=n_configs, seed=seed, species=["Cu", "Ni"],
                         lattice_parameters={c: a for c in comps})
    return pd.DataFrame(rows)


def _synthetic_barrier(ev: pd.DataFrame) -> np.ndarray:
    """A barrier rule computed from the lattice geometry alone (no encoder): the jumping atom's
    species and the Ni count among the sites that neighbour both the vacancy and the jumping atom."""
    out = []
    for r in ev.itertuples():
        lat = Lattice(r.lattice, r.supercell, r.a)
        occ = occupation_from_str(r.occupation)
        common = set(lat.neighbors[r.vacancy_site]) & set(lat.neighbors[r.hop_site])
        n_ni = sum(occ[s] == 1 for s in common)
        out.append(0.7 + 0.25 * (occ[r.hop_site] == 1) + 0.05 * n_ni)
    return np.array(out)


def test_event_images_are_the_encoder_images_of_each_path():
    ev = _events(n_configs=2)
    img = event_images(ev, cutoff=6.0, grid=9)
    assert img.shape == (len(ev), 729) and img.dtype == torch.uint8
    lat = Lattice("fcc", 3, 3.6)
    enc = NNKEncoder(lat, cutoff=6.0, grid=9)
    ref_voxel = 81 * (4 + 1) + 9 * (4 + 1) + 4  # (x, y, z) = (1, 1, 0): the jumping atom
    for i, r in enumerate(ev.itertuples()):
        occ = occupation_from_str(r.occupation)
        want = enc.images(digits_from_occupation(occ)[None], torch.tensor([[r.vacancy_site]]))[0, 0, r.path]
        assert torch.equal(img[i].float(), want)
        assert int(img[i, ref_voxel]) == occ[r.hop_site] + 1
    bad = ev.copy()
    bad.loc[3, "hop_site"] = bad.loc[4, "hop_site"]
    with pytest.raises(ValueError, match="hop_site"):
        event_images(bad, cutoff=6.0, grid=9)


@pytest.mark.parametrize("kind,n_ops", [("bcc", 6), ("fcc", 4)])
def test_symmetry_copies_are_images_of_turned_configurations(kind, n_ops):
    """Turning an aligned image by a stabilizer op P equals the image of the configuration turned
    (about the vacancy) by the lab-frame op M_k^T P M_k, which keeps the jump vector."""
    assert len(stabilizer_operations(kind)) == n_ops
    lat = Lattice(kind, 4, 3.0)
    enc = NNKEncoder(lat, cutoff=4.5, grid=9)
    perms = voxel_permutations(kind, 9)
    rng = np.random.default_rng(3)
    occ = rng.integers(0, 3, size=lat.n_sites)
    vac = 37
    occ[vac] = VACANCY
    hv = lat.half_coords[vac]
    for k, v in enumerate(NN_VECTORS[kind]):
        mk = alignment_operation(kind, v)
        img = enc.images(digits_from_occupation(occ)[None], torch.tensor([[vac]]))[0, 0, k]
        for j, p in enumerate(stabilizer_operations(kind)):
            q = mk.T @ p @ mk  # lab-frame operation
            assert np.array_equal(q @ v, v)
            turned = np.empty_like(occ)
            # the atom at vac + h moves to vac + q h
            h = lat.half_coords - hv
            turned[lat.site_at(hv + h @ q.T)] = occ
            img_turned = enc.images(digits_from_occupation(turned)[None], torch.tensor([[vac]]))[0, 0, k]
            assert torch.equal(img[perms[j]], img_turned)


def test_split_keeps_configurations_whole_and_compositions_out():
    ev = _events(n_configs=10)
    s = split_configurations(ev, [0.8, 0.1, 0.1], held_out=["A50"], seed=0)
    assert set(ev.loc[s["held_out"], "composition"]) == {"A50"}
    seen = np.concatenate([s["train"], s["val"], s["test"]])
    assert "A50" not in set(ev.loc[seen, "composition"])
    assert len(seen) + len(s["held_out"]) == len(ev) and len(np.unique(seen)) == len(seen)
    key = ev["composition"] + ":" + ev["config_index"].astype(str)
    parts = [set(key[s[p]]) for p in ("train", "val", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert all(len(key[s[p]]) == 12 * len(parts[i]) for i, p in enumerate(("train", "val", "test")))
    again = split_configurations(ev, [0.8, 0.1, 0.1], held_out=["A50"], seed=0)
    assert all(np.array_equal(s[p], again[p]) for p in s.parts)
    with pytest.raises(ValueError, match="held_out"):
        split_configurations(ev, [0.8, 0.1, 0.1], held_out=["nope"], seed=0)


def test_mlp_learns_a_path_dependent_rule_and_reloads(tmp_path):
    ev = _events(n_configs=40)  # 3 x 40 x 12 = 1440 paths
    y = _synthetic_barrier(ev)
    img = event_images(ev, cutoff=4.0, grid=5)
    s = split_configurations(ev, [0.7, 0.15, 0.15], held_out=["A50"], seed=0)
    cfg = NNKTrainConfig(arch="mlp", mlp_hidden=(64, 64), max_epochs=40, batch_size=64, lr=3e-3, seed=0)
    fit = train_nnk(img[s["train"]], y[s["train"]], img[s["val"]], y[s["val"]], "fcc", 5, cfg)
    pred = predict(fit.model, img)
    spread = np.mean(np.abs(y - y.mean()))
    test = regression_metrics(y[s["test"]], pred[s["test"]])
    held = regression_metrics(y[s["held_out"]], pred[s["held_out"]])
    assert test["MAE"] < 0.15 * spread, (test, spread)
    assert held["MAE"] < 0.3 * spread, (held, spread)
    assert fit.best_epoch >= 1 and len(fit.history) >= fit.best_epoch
    # the checkpoint reloads to the same predictions, and serves the kMC-facing barriers()
    save_nnk(fit.model, tmp_path / "m.pt", arch="mlp", grid=5, cutoff=4.0, kind="fcc", species=["Cu", "Ni"],
             config=cfg)
    model, meta = load_nnk(tmp_path / "m.pt")
    assert meta["grid"] == 5 and meta["species"] == ["Cu", "Ni"]
    np.testing.assert_allclose(predict(model, img), pred, atol=1e-6)
    r = ev.iloc[0]
    enc = NNKEncoder(Lattice("fcc", 3, 3.6), cutoff=4.0, grid=5)
    e = barriers(model, enc, digits_from_occupation(occupation_from_str(r.occupation))[None],
                 torch.tensor([[r.vacancy_site]]))
    np.testing.assert_allclose(e[0, 0].numpy(), pred[:12], atol=1e-5)


def test_cnn_shapes_and_grid_check():
    net = NNKCNN(9).eval()
    assert net(torch.zeros(2, 3, 729)).shape == (2, 3)
    assert NNKCNN(11).eval()(torch.zeros(4, 1331)).shape == (4,)
    with pytest.raises(ValueError, match="cnn_channels"):
        NNKCNN(7)


def test_nnk_config_errors_name_the_key():
    base = {
        "potentials": {"p": {"pair_style": "eam/alloy", "pair_coeff": "* * {t} {elements}",
                             "files": {"t": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]}},
        "datasets": {"d": {"potential": "p", "lattice": "fcc", "mode": "all_paths",
                           "compositions": {"A": {"Cu": 1.0}, "B": {"Ni": 1.0}}},
                     "pairs": {"potential": "p", "lattice": "fcc", "compositions": {"A": {"Cu": 1.0}}}},
    }
    ok = validate_config({**base, "nnk": {"sets": {"s": {"dataset": "d", "held_out": ["B"]}}}})
    assert ok["nnk"]["architectures"] == ["mlp", "cnn"] and ok["nnk"]["cutoff"] == 7.5
    for nnk, key in [({"sets": {"s": {"dataset": "d", "held_out": ["C"]}}}, "nnk.sets.s.held_out"),
                     ({"sets": {"s": {"dataset": "pairs"}}}, "nnk.sets.s.dataset"),
                     ({"sets": {"s": {"dataset": "d", "transfer_dataset": "d"}}}, "nnk.sets.s.transfer_dataset"),
                     ({"architectures": ["rnn"]}, "nnk.architectures.0"),
                     ({"grid": 8}, "nnk.grid"),
                     ({"published": {"weights": "/nonexistent/w.npy"}}, "nnk.published.weights")]:
        with pytest.raises(ConfigError, match=f"config error at {key}"):
            validate_config({**base, "nnk": nnk})


def test_mae_over_std_divides_the_mae_by_the_spread_of_the_barriers():
    """MAE_over_std: 1 means no better than predicting the mean barrier; it compares spectra of any width."""
    y = np.array([0.5, 0.7, 0.9, 1.1])
    m = regression_metrics(y, np.full_like(y, y.mean()))
    assert m["std_barrier"] == pytest.approx(np.std(y)) and m["MAE_over_std"] == pytest.approx(0.2 / np.std(y))
