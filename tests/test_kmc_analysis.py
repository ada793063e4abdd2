"""Analyses of kMC configurations (dbkmc.kmc.analysis) and the snapshot files (dbkmc.kmc.io)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dbkmc.kmc import analysis
from dbkmc.core.constants import KB_EV
from dbkmc.kmc.io import read_dump_frames, write_dump_frame
from dbkmc.core.lattice import Lattice


def b2_digits(lat: Lattice) -> np.ndarray:
    """Perfect B2 on bcc: species 1 on the cube corners, species 2 on the centres."""
    return np.where(np.arange(lat.n_sites) % 2 == 0, 1, 2)


def test_bond_counts_add_up_and_random_expectation_sums_to_all_bonds():
    lat = Lattice("fcc", 3, 3.6)
    rng = np.random.default_rng(0)
    d = rng.integers(0, 4, lat.n_sites)
    counts = analysis.bond_counts(d, lat, 3)
    random = analysis.random_bond_counts(d, lat, 3)
    upper = np.triu(np.ones((4, 4), dtype=bool))
    assert counts[upper].sum() == lat.n_sites * 12 / 2
    assert random[upper].sum() == pytest.approx(lat.n_sites * 12 / 2)
    # brute force over the bond list
    i, k = np.nonzero(np.ones_like(lat.neighbors, dtype=bool))
    j = lat.neighbors[i, k]
    keep = i < j
    pairs = np.sort(np.stack([d[i[keep]], d[j[keep]]], 1), 1)
    for a in range(4):
        for b in range(a, 4):
            assert counts[a, b] == np.sum((pairs[:, 0] == a) & (pairs[:, 1] == b))


def test_delta_is_zero_on_average_for_random_arrangements():
    lat = Lattice("bcc", 4, 3.2)
    base = np.repeat([0, 1, 2, 3], [1, 40, 50, 37])
    rng = np.random.default_rng(1)
    draws = np.stack([rng.permutation(base) for _ in range(3000)])
    delta = analysis.delta_ij(draws, lat, ["A", "B", "C"])
    for name, values in delta.items():
        sem = values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean()) < 4 * sem, name
    # and the statistic sees order: B2 has many more A-B bonds than random
    b2 = analysis.delta_ij(b2_digits(lat), lat, ["A", "B"])
    n = lat.n_sites
    n0_ab = n * 8 / 2 * 2 * (n / 2) * (n / 2) / (n * (n - 1))
    assert b2["delta_AB"] == pytest.approx(n * 4 - n0_ab)
    assert b2["delta_AA"] < 0 and b2["delta_BB"] < 0


def test_warren_cowley_of_b2_and_of_a_pure_crystal():
    lat = Lattice("bcc", 3, 3.2)
    alpha = analysis.warren_cowley(b2_digits(lat), lat, ["A", "B"])
    assert alpha["alpha_AB"] == pytest.approx(-1.0)
    assert alpha["alpha_BA"] == pytest.approx(-1.0)
    assert alpha["alpha_AA"] == pytest.approx(1.0)
    rng = np.random.default_rng(3)
    many = np.stack([rng.permutation(b2_digits(lat)) for _ in range(400)])
    assert abs(analysis.warren_cowley(many, lat, ["A", "B"])["alpha_AB"].mean()) < 0.02


def test_jump_randomness_limits_and_safety():
    z = 8
    assert analysis.jump_randomness(np.full(z, 1.3), 500.0) == pytest.approx(1.0)
    e = np.array([0.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5])
    assert analysis.jump_randomness(e, 100.0) == pytest.approx(0.0, abs=1e-12)  # one path takes all
    assert analysis.jump_randomness(e, 1e7) == pytest.approx(1.0, abs=1e-3)
    # a one-hot p gives sigma_max exactly: R = 1 - sigma(p)/sigma(one-hot)
    p = np.exp(-(e - e.min()) / (KB_EV * 3000.0))
    p /= p.sum()
    assert analysis.jump_randomness(e, 3000.0) == pytest.approx(1 - p.std() / (math.sqrt(z - 1) / z))
    rng = np.random.default_rng(0)
    r = analysis.jump_randomness(rng.uniform(1, 3, (1000, z)), np.array([[100.0], [3000.0]]))
    assert np.all((r >= 0) & (r <= 1)) and np.all(np.isfinite(r))
    with pytest.raises(ValueError, match="finite"):
        analysis.jump_randomness(np.array([1.0, np.nan]), 300.0)


def test_bcc_shells_and_b2_cluster_cutoff():
    lat = Lattice("bcc", 4, 3.0)
    d = analysis.shell_distances(lat, 6) / lat.a
    assert np.allclose(d, [math.sqrt(3) / 2, 1, math.sqrt(2), math.sqrt(11) / 2, math.sqrt(3), 2])
    assert analysis.b2_cluster_cutoff(lat) == pytest.approx((math.sqrt(3) + 2) / 2 * 3.0)


def test_b2_units_and_clusters():
    lat = Lattice("bcc", 6, 3.0)
    b2 = b2_digits(lat)
    units = analysis.b2_units(b2, lat, 1, 2)
    assert len(units) == lat.n_sites
    assert [len(c) for c in analysis.b2_clusters(units, lat)] == [lat.n_sites]
    # an A matrix with two B2 motifs: a B atom with 8 A neighbours is a unit; far apart = two clusters
    d = np.ones(lat.n_sites, dtype=np.int64)
    centre_a = lat.site_at(np.array([1, 1, 1]))
    centre_b = lat.site_at(np.array([7, 7, 7]))
    d[[centre_a, centre_b]] = 2
    units = analysis.b2_units(d, lat, 1, 2)
    assert set(units.tolist()) == {centre_a, centre_b}
    assert sorted(len(c) for c in analysis.b2_clusters(units, lat)) == [1, 1]
    # 6 of 8 neighbours (3/4) is enough, 5 is not
    d2 = np.ones(lat.n_sites, dtype=np.int64)
    d2[centre_a] = 2
    d2[lat.neighbors[centre_a][:2]] = 3
    assert centre_a in analysis.b2_units(d2, lat, 1, 2)
    d2[lat.neighbors[centre_a][2]] = 3
    assert centre_a not in analysis.b2_units(d2, lat, 1, 2)
    # periodic images: units on opposite faces within the cutoff join one cluster
    near = lat.site_at(np.array([11, 1, 1]))  # 2 half-steps from centre_a through the boundary
    assert len(analysis.b2_clusters(np.array([centre_a, near]), lat)) == 1


def test_cluster_tracking_follows_overlap():
    snaps = [(10, [np.array([1, 2, 3, 4])]), (20, [np.array([2, 3, 4, 5, 6]), np.array([50])]),
             (30, [np.array([3, 4, 5, 6, 7]), np.array([90])])]
    table = analysis.track_clusters(snaps)
    last = table[table.jumps == 30].set_index("cluster")
    assert last.loc[0, "age_snapshots"] == 2 and last.loc[0, "born_jumps"] == 10
    assert last.loc[1, "age_snapshots"] == 0 and last.loc[1, "born_jumps"] == 30


def test_snapshot_dumps_open_in_ase_and_round_trip(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    lat = Lattice("bcc", 3, 3.24)
    rng = np.random.default_rng(2)
    frames = []
    path = tmp_path / "t.dump"
    with open(path, "w") as fh:
        for jumps in (0, 500):
            d = rng.integers(1, 4, lat.n_sites)
            d[[4, 20]] = 0
            frames.append((jumps, d))
            write_dump_frame(fh, lat, d, ["Nb", "Mo", "Ta"], jumps)
    atoms = ase_io.read(path, index=":", format="lammps-dump-text")
    assert len(atoms) == 2
    for a, (_, d) in zip(atoms, frames, strict=True):
        assert len(a) == lat.n_sites - 2
        symbols = a.get_chemical_symbols()
        for s, name in enumerate(["Nb", "Mo", "Ta"], start=1):
            assert symbols.count(name) == int((d == s).sum())
        assert np.allclose(a.cell.lengths(), 3 * 3.24)
        occupied = np.flatnonzero(d > 0)
        assert np.allclose(np.sort(a.positions, axis=0), np.sort(lat.positions[occupied], axis=0), atol=1e-5)
    back = list(read_dump_frames(path, lat))
    assert [j for j, _ in back] == [0, 500]
    for (_, d), (_, d_back) in zip(frames, back, strict=True):
        assert np.array_equal(d, d_back)


def test_locate_peak_marks_only_a_resolved_maximum():
    from dbkmc.figures.kmc import peak_label
    from dbkmc.kmc.analysis import locate_peak

    T = [500, 600, 700, 800, 900, 1000]
    y = [1.0, 2.0, 5.0, 3.0, 2.0, 1.0]
    p = locate_peak(T, y, [0.1] * 6)
    assert p["kind"] == "peak" and p["x_max"] == 700 and p["x_range"] == (700, 700)
    # 800 K agrees with 700 K within the combined error sqrt(2) * 1.5 = 2.1 (600 K does not): a plateau
    p = locate_peak(T, y, [1.5] * 6)
    assert p["kind"] == "plateau" and p["x_range"] == (700, 800)
    assert "plateau 700-800 K\n(equal within errors" in peak_label(p)
    # a maximum that reaches the end of the range is no peak
    assert locate_peak(T, [1, 2, 3, 4, 5, 6], [0.1] * 6)["kind"] == "edge"
    # without errors (one replica) the maximum is not tested
    p = locate_peak(T, y, None)
    assert p["kind"] == "maximum" and p["x_max"] == 700
    assert locate_peak(T, y, [0.0] * 6)["kind"] == "maximum"
    # unsorted input is sorted by x first
    assert locate_peak(T[::-1], y[::-1], [0.1] * 6)["x_range"] == (700, 700)


def test_variance_sem_matches_the_spread_of_sample_variances():
    from dbkmc.kmc.analysis import variance_sem

    rng = np.random.default_rng(0)
    samples = rng.uniform(size=(4000, 200))
    spread = np.var(samples, axis=1, ddof=1).std()
    estimates = [variance_sem(s) for s in samples[:200]]
    assert np.mean(estimates) == pytest.approx(spread, rel=0.1)
    assert np.isnan(variance_sem(np.ones(3)))
