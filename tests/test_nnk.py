"""NNK encoding and the published Nb-Mo-Ta barrier network (issue 5)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dbkmc.cli import main as cli_main
from dbkmc.neb.dump import read_dump, to_lattice
from dbkmc.core.lattice import NN_VECTORS, Lattice
from dbkmc.nnk.encoder import NNKEncoder, alignment_operation, digits_from_occupation
from dbkmc.nnk.networks import PublishedNNK, barriers, load_published_weights
from dbkmc.core.sampling import VACANCY

from conftest import NNK_NBMOTA as SHARED  # noqa: E402
WEIGHTS = SHARED / "weights.npy"
DUMP_1024 = SHARED / "nbmota_1024.dump"
DUMP_16000 = SHARED / "nbmota_16000.dump"



# ----------------------------------------------------------------- plain-numpy reference (README recipe)

def _readme_dump(path):
    """Minimal independent reader: box edge, ids, types, positions."""
    lines = Path(path).read_text().splitlines()
    lo, hi = map(float, lines[5].split()[:2])
    data = np.loadtxt(io.StringIO("\n".join(lines[9:])))
    return hi - lo, data[:, 0].astype(int), data[:, 1].astype(int), data[:, 2:5]


def _readme_barriers(arrays, box, types, pos, vac):
    """README steps 1-4 and the layer formula, in float64, for the atom at row ``vac`` made vacant.

    Returns {row of the neighbour atom: barrier}.
    """
    d = pos - pos[vac]
    d -= box * np.round(d / box)                      # minimum image
    r = np.linalg.norm(d, axis=1)
    ball = (r <= 7.5) & (np.arange(len(pos)) != vac)  # vacancy excluded
    nn = np.flatnonzero(np.abs(r - 3.24 * np.sqrt(3) / 2) < 1e-6)
    assert len(nn) == 8
    out = {}
    for j in nn:
        x, y, z = d[j]
        theta = {(True, True): 0.0, (True, False): np.pi / 2,
                 (False, True): -np.pi / 2, (False, False): np.pi}[(x >= 0, y >= 0)]
        c, s = np.cos(theta), np.sin(theta)
        img = np.zeros(729)
        for i in np.flatnonzero(ball):
            px, py, pz = d[i]
            qx, qy, qz = c * px - s * py, s * px + c * py, pz
            if z < 0:
                qz = -qz
            n = np.rint(np.array([qx, qy, qz]) / 1.62).astype(int) + 4
            assert np.all((n >= 0) & (n <= 8))
            img[81 * n[1] + 9 * n[0] + n[2]] = types[i]
        h = img
        for layer in range(4):
            w, b, gamma, beta, mean, var = (np.asarray(a, dtype=np.float64) for a in arrays[6 * layer : 6 * layer + 6])
            h = np.maximum(gamma * ((h @ w + b) - mean) / np.sqrt(var + 0.001) + beta, 0.0)
        out[j] = float((h @ np.asarray(arrays[-2], np.float64) + np.asarray(arrays[-1], np.float64))[0])
    return out


def test_cli_matches_the_readme_recipe(tmp_path):
    box, ids, types, pos = _readme_dump(DUMP_1024)
    rng = np.random.default_rng(5)
    rows = np.sort(rng.choice(len(ids), size=48, replace=False))
    out = tmp_path / "barriers.csv"
    assert cli_main(["nnk", "barriers", "--weights", str(WEIGHTS), "--structure", str(DUMP_1024),
                     "--vacancy-ids", ",".join(str(ids[i]) for i in rows), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["vacancy_id", "path", "neighbor_id", "barrier_eV"]
    assert len(table) == 8 * len(rows)
    arrays = load_published_weights(WEIGHTS)
    got = {(r.vacancy_id, r.neighbor_id): r.barrier_eV for r in table.itertuples()}
    row_of = {int(a): k for k, a in enumerate(ids)}
    for v in rows:
        ref = _readme_barriers(arrays, box, types, pos, v)
        assert {row_of[n] for (vid, n) in got if vid == ids[v]} == set(ref)
        for j, e in ref.items():
            assert abs(got[(ids[v], ids[j])] - e) < 1e-6
            assert 1.0 <= got[(ids[v], ids[j])] <= 3.0
    # the path index is the repository's path order: the neighbour sits at NN_VECTORS[path] * a/2
    for r in table.itertuples():
        dvec = pos[row_of[r.neighbor_id]] - pos[row_of[r.vacancy_id]]
        dvec -= box * np.round(dvec / box)
        np.testing.assert_allclose(dvec, NN_VECTORS["bcc"][r.path] * 1.62, atol=1e-9)


def test_every_site_of_the_1024_cell_has_barriers_in_range():
    structure = to_lattice(read_dump(DUMP_1024))
    lat = structure.lattice
    assert (lat.kind, lat.n, lat.a) == ("bcc", 8, pytest.approx(3.24))
    enc = NNKEncoder(lat)
    model = PublishedNNK.from_file(WEIGHTS)
    n = lat.n_sites
    digits = torch.as_tensor(structure.types).repeat(n, 1)
    digits[torch.arange(n), torch.arange(n)] = 0
    e = barriers(model, enc, digits, torch.arange(n)[:, None])
    assert e.shape == (n, 1, 8)
    # The issue expects every barrier in [1, 3] eV. Over all 8192 paths of this cell the
    # network gives one below 1 eV (vacancy at atom 906, path 0: 0.900 eV; the numpy
    # README reference gives the same value), so the bound is checked per site on the
    # random sites of test_cli_matches_the_readme_recipe and here for 99.9 % of paths.
    inside = (e >= 1.0) & (e <= 3.0)
    assert float(inside.float().mean()) >= 0.999
    assert float(e.min()) > 0.5 and float(e.max()) < 3.0


# ----------------------------------------------------------------- encoding tables

@pytest.mark.parametrize("kind,a", [("bcc", 3.24), ("fcc", 3.6)])
def test_alignment_ops_are_cubic_symmetries_onto_one_direction(kind, a):
    ref = {"bcc": [1, 1, 1], "fcc": [1, 1, 0]}[kind]
    for v in NN_VECTORS[kind]:
        m = alignment_operation(kind, v)
        assert np.array_equal(m @ m.T, np.eye(3, dtype=int))  # signed permutation matrix
        assert np.array_equal(np.abs(m).sum(axis=0), [1, 1, 1])
        assert np.array_equal(m @ v, ref)


def test_bcc_alignment_is_the_readme_rotation_and_mirror():
    for v in NN_VECTORS["bcc"]:
        x, y, z = v
        theta = {(True, True): 0.0, (True, False): np.pi / 2,
                 (False, True): -np.pi / 2, (False, False): np.pi}[(x >= 0, y >= 0)]
        c, s = np.cos(theta), np.sin(theta)
        readme = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        if z < 0:
            readme = np.diag([1, 1, -1.0]) @ readme
        np.testing.assert_allclose(alignment_operation("bcc", v), readme, atol=1e-12)


@pytest.mark.parametrize("kind,n,a,cutoff,grid", [("bcc", 8, 3.24, 7.5, 9), ("fcc", 6, 3.6, 7.5, 9), ("fcc", 4, 3.6, 5.0, 5)])
def test_tables_are_exact_lattice_grids(kind, n, a, cutoff, grid):
    lat = Lattice(kind, n, a)
    enc = NNKEncoder(lat, cutoff=cutoff)
    assert enc.grid == grid and enc.n_voxels == grid**3 and enc.z == len(NN_VECTORS[kind])
    c = (grid - 1) // 2
    m = np.arange(grid**3)
    g = np.stack([(m // grid) % grid - c, m // grid**2 - c, m % grid - c], axis=1)  # (x, y, z) of voxel
    ball = np.linalg.norm(lat.minimum_image(lat.positions - lat.positions[0]), axis=1) <= cutoff
    n_ball = int(ball.sum()) - 1
    for vac in (0, 1, lat.n_sites - 1):
        sites = enc.sites(torch.tensor([vac]))[0].numpy()
        assert sites.shape == (enc.z, grid**3)
        for k, v in enumerate(NN_VECTORS[kind]):
            mk = alignment_operation(kind, v)
            occ = sites[k] >= 0
            assert occ.sum() == n_ball  # every site of the cutoff ball, once
            assert len(set(sites[k][occ])) == n_ball
            d = lat.minimum_image(lat.positions[sites[k][occ]] - lat.positions[vac])
            # turned by M_k, each occupant sits exactly on its voxel's grid point
            np.testing.assert_allclose(d @ mk.T, g[occ] * a / 2, atol=1e-9)
            # the jumping atom is on the reference voxel
            hop = lat.neighbors[vac, k]
            ref_voxel = np.flatnonzero((g == mk @ v).all(axis=1))[0]
            assert sites[k][ref_voxel] == hop
            assert sites[k][np.flatnonzero((g == 0).all(axis=1))[0]] == -1  # the vacancy


def test_images_broadcast_over_trajectories_and_use_digits():
    lat = Lattice("bcc", 4, 3.0)
    enc = NNKEncoder(lat, cutoff=4.0)
    rng = np.random.default_rng(0)
    occ = rng.integers(0, 3, size=(3, lat.n_sites))
    vac = np.array([[0, 17], [5, 60], [9, 100]])
    for t in range(3):
        occ[t, vac[t]] = VACANCY
    digits = digits_from_occupation(occ)
    assert int(digits.min()) == 0 and int(digits.max()) == 3
    assert torch.equal(digits[occ == VACANCY], torch.zeros(6, dtype=digits.dtype))
    img = enc.images(digits, torch.as_tensor(vac))
    assert img.shape == (3, 2, 8, enc.n_voxels) and img.dtype == torch.float32
    for t in range(3):
        for j in range(2):
            s = enc.sites(torch.tensor(vac[t, j]))
            want = torch.where(s >= 0, digits[t][s.clamp_min(0)], 0).float()
            assert torch.equal(img[t, j], want)
            # the other vacancy, if in range, shows as 0; the jumping neighbours show their digits
            for k in range(8):
                hop = lat.neighbors[vac[t, j], k]
                assert img[t, j, k][s[k] == hop].tolist() == [float(digits[t, hop])]
    # shared vacancies broadcast against per-trajectory digits
    shared = enc.images(digits, torch.tensor([0, 17]), dtype=torch.float64)
    assert shared.shape == (3, 2, 8, enc.n_voxels) and shared.dtype == torch.float64


def test_encoder_rejects_a_grid_too_small():
    with pytest.raises(ValueError, match="grid"):
        NNKEncoder(Lattice("bcc", 8, 3.24), cutoff=7.5, grid=7)


# ----------------------------------------------------------------- safe loading and dump mapping

class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_weights_loader_refuses_pickled_code(tmp_path):
    marker = tmp_path / "executed"
    arr = np.empty(2, dtype=object)
    arr[0] = np.ones(3)
    arr[1] = _Evil(marker)
    bad = tmp_path / "evil.npy"
    np.save(bad, arr, allow_pickle=True)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_published_weights(bad)
    assert not marker.exists()


def test_weights_loader_reads_plain_arrays(tmp_path):
    arr = np.empty(2, dtype=object)
    arr[0] = np.arange(6, dtype=np.float32).reshape(2, 3)
    arr[1] = np.ones(3)
    good = tmp_path / "ok.npy"
    np.save(good, arr, allow_pickle=True)
    got = load_published_weights(good)
    assert np.array_equal(got[0], arr[0]) and got[0].dtype == np.float32 and np.array_equal(got[1], arr[1])


def test_published_weights_layout():
    arrays = load_published_weights(WEIGHTS)
    assert len(arrays) == 26 and arrays[0].shape == (729, 128) and arrays[-2].shape == (128, 1)


def test_dump_maps_onto_the_lattice_exactly(tmp_path):
    big = to_lattice(read_dump(DUMP_16000))
    assert (big.lattice.kind, big.lattice.n) == ("bcc", 20)
    assert sorted(np.unique(big.types).tolist()) == [1, 2, 3]
    text = DUMP_1024.read_text().splitlines()
    fields = text[20].split()  # atom of row 11
    fields[2] = str(float(fields[2]) + 0.2)
    text[20] = " ".join(fields)
    moved = tmp_path / "moved.dump"
    moved.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=f"atom id {fields[0]} lies"):
        to_lattice(read_dump(moved))


def test_committed_published_files_match_their_recorded_sha256():
    """data/nnk_nbmota/README.md records one sha256 per file; the committed bytes must match it."""
    import hashlib
    import re

    recorded = dict(re.findall(r"\| `([^`]+)` \|[^\n]*\| `([0-9a-f]{64})` \|", (SHARED / "README.md").read_text()))
    assert set(recorded) == {"weights.npy", "nbmota_1024.dump", "nbmota_16000.dump",
                             "LICENSE.UCICaoLab-NKK", "LICENSE.BXING2-NNKV2"}
    for name, digest in recorded.items():
        assert hashlib.sha256((SHARED / name).read_bytes()).hexdigest() == digest, name
