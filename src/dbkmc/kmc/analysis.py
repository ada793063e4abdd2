"""Analyses of kMC configurations: chemical order, jump randomness, B2 clusters.

All functions are pure and work on numpy arrays of *digits* (``0`` = vacancy,
``1..S`` = species ``species[d - 1]``), on an ideal :class:`~dbkmc.core.lattice.Lattice`.

* Chemical order over first-neighbour bonds: ``delta_ij = N_ij - N0_ij``, where
  ``N_ij`` counts the bonds joining species i and j and ``N0_ij`` is its expectation
  when the same atoms (and vacancies) are placed on the sites at random. With ``n_i``
  particles of kind i on ``N`` sites and ``B = N z / 2`` bonds, a bond is an (i, j)
  bond with probability ``2 n_i n_j / (N (N - 1))`` for i != j and
  ``n_i (n_i - 1) / (N (N - 1))`` for i = j, so ``delta_ij`` averages exactly to 0
  over random configurations of any size. Negative delta: fewer i-j bonds than random.
* Warren-Cowley ``alpha_ij = 1 - P(j | i) / c_j``: ``P(j | i)`` is the fraction of the
  atom neighbours of i atoms that are j atoms (vacancies left out), ``c_j`` the atomic
  fraction of j. ``alpha_ij < 0``: i attracts j.
* Jump randomness of a barrier vector ``E`` (one per vacancy site): Boltzmann weights
  ``p_k = exp(-E_k / kT) / sum_l exp(-E_l / kT)`` and ``R = 1 - sigma(p) / sigma_max``,
  where ``sigma`` is the (population) standard deviation over the z paths and
  ``sigma_max = sqrt(z - 1) / z`` that of a one-hot p. R = 1: every path equally likely;
  R = 0: one path takes every jump.
* B2 units (bcc): an A atom with at least ``fraction`` (3/4) of its first neighbours B,
  or a B atom with at least that fraction A. Units are grouped into clusters: two units
  belong together when their distance is below the cutoff halfway between the 5th and
  6th neighbour shells.
* Summaries over temperatures and replicas: the order table and its peak
  (:func:`order_summary`, :func:`locate_peak`), standard errors of Var(R)
  (:func:`var_r_errors`) and per-snapshot B2 cluster statistics (:func:`b2_snapshot_stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from dbkmc.core.lattice import Lattice
from dbkmc.core.constants import KB_EV


def species_pairs(species: Sequence[str]) -> list[tuple[int, int, str]]:
    """(i, j, "AB") for every unordered species pair i <= j, digits 1..S."""
    return [(i + 1, j + 1, f"{species[i]}{species[j]}") for i in range(len(species)) for j in range(i, len(species))]


def _check_digits(digits: np.ndarray, lattice: Lattice, n_species: int) -> np.ndarray:
    digits = np.asarray(digits)
    if digits.shape[-1] != lattice.n_sites:
        raise ValueError(f"digits: last axis has {digits.shape[-1]} sites, the lattice has {lattice.n_sites}")
    if digits.min() < 0 or digits.max() > n_species:
        raise ValueError(f"digits: values must lie in 0..{n_species}, got {digits.min()}..{digits.max()}")
    return digits.astype(np.int64)


def bond_counts(digits: np.ndarray, lattice: Lattice, n_species: int) -> np.ndarray:
    """Symmetric ``[..., S+1, S+1]`` counts of first-neighbour bonds by kind (0 = vacancy).

    Off-diagonal entries count each i-j bond once in ``[i, j]`` and once in ``[j, i]``;
    the diagonal counts i-i bonds once. So ``N_ij`` is ``[i, j]`` for every i, j.
    """
    digits = _check_digits(digits, lattice, n_species)
    k = n_species + 1
    a = digits[..., :, None]
    b = digits[..., lattice.neighbors]  # [..., N, z]: every bond seen from both ends
    codes = (a * k + b).reshape(*digits.shape[:-1], -1)
    flat = codes.reshape(-1, codes.shape[-1])
    counts = np.stack([np.bincount(row, minlength=k * k) for row in flat]).reshape(*digits.shape[:-1], k, k)
    # each bond appears twice (once from each end): ordered counts / 2 on the diagonal,
    # ordered counts on the off-diagonal (i->j and j->i are the same bonds)
    out = counts.astype(np.float64)
    diag = np.arange(k)
    out[..., diag, diag] /= 2.0
    return out


def random_bond_counts(digits: np.ndarray, lattice: Lattice, n_species: int) -> np.ndarray:
    """``N0_ij``: the expected bond counts for the same particles placed at random."""
    digits = _check_digits(digits, lattice, n_species)
    k = n_species + 1
    n = np.stack([np.bincount(row, minlength=k) for row in digits.reshape(-1, digits.shape[-1])])
    n = n.reshape(*digits.shape[:-1], k).astype(np.float64)
    N = float(lattice.n_sites)
    bonds = N * lattice.neighbors.shape[1] / 2.0
    pair = n[..., :, None] * n[..., None, :]
    diag = np.arange(k)
    pair[..., diag, diag] = n * (n - 1.0)
    prob = pair / (N * (N - 1.0))
    prob[..., ~np.eye(k, dtype=bool)] *= 2.0
    return bonds * prob


def delta_ij(digits: np.ndarray, lattice: Lattice, species: Sequence[str]) -> dict[str, np.ndarray]:
    """``delta_ij = N_ij - N0_ij`` for every species pair, keyed ``"delta_<A><B>"``."""
    n_species = len(species)
    d = bond_counts(digits, lattice, n_species) - random_bond_counts(digits, lattice, n_species)
    return {f"delta_{name}": d[..., i, j] for i, j, name in species_pairs(species)}


def warren_cowley(digits: np.ndarray, lattice: Lattice, species: Sequence[str]) -> dict[str, np.ndarray]:
    """Warren-Cowley ``alpha_ij`` over first neighbours, keyed ``"alpha_<A><B>"`` (all ordered pairs)."""
    n_species = len(species)
    counts = bond_counts(digits, lattice, n_species)
    ordered = counts.copy()
    diag = np.arange(n_species + 1)
    ordered[..., diag, diag] *= 2.0  # i-i bonds seen from both ends
    atoms = ordered[..., 1:, 1:]
    digits = _check_digits(digits, lattice, n_species)
    n = np.stack([np.bincount(row, minlength=n_species + 1) for row in digits.reshape(-1, digits.shape[-1])])
    n = n.reshape(*digits.shape[:-1], n_species + 1)[..., 1:].astype(np.float64)
    c = n / n.sum(-1, keepdims=True)
    p_j_given_i = atoms / atoms.sum(-1, keepdims=True)
    alpha = 1.0 - p_j_given_i / c[..., None, :]
    return {f"alpha_{species[i]}{species[j]}": alpha[..., i, j]
            for i in range(n_species) for j in range(n_species)}


# --- jump randomness ----------------------------------------------------------


def jump_randomness(barriers: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """R for each barrier vector (last axis = the z paths), at temperature(s) in K.

    The Boltzmann weights are formed after subtracting each vector's smallest barrier,
    so no temperature overflows.
    """
    E = np.asarray(barriers, dtype=np.float64)
    if not np.all(np.isfinite(E)):
        raise ValueError("barriers: R needs finite barriers")
    z = E.shape[-1]
    beta = 1.0 / (KB_EV * np.asarray(temperature, dtype=np.float64))
    w = np.exp(-(E - E.min(-1, keepdims=True)) * np.expand_dims(beta, -1))
    p = w / w.sum(-1, keepdims=True)
    sigma_max = np.sqrt(z - 1.0) / z
    return 1.0 - p.std(-1) / sigma_max


# --- B2 clusters --------------------------------------------------------------


def shell_distances(lattice: Lattice, n_shells: int) -> np.ndarray:
    """Distances (Angstrom) of the first ``n_shells`` neighbour shells of the lattice."""
    span = int(np.ceil(np.sqrt(n_shells))) + 2
    rng = np.arange(-2 * span, 2 * span + 1)
    g = np.stack(np.meshgrid(rng, rng, rng, indexing="ij"), -1).reshape(-1, 3)
    from dbkmc.core.lattice import BASIS_HALF

    on_lattice = np.zeros(len(g), dtype=bool)
    for b in BASIS_HALF[lattice.kind]:
        on_lattice |= np.all(np.mod(g - b, 2) == 0, axis=1)
    d2 = np.unique((g[on_lattice] ** 2).sum(1))
    d2 = d2[d2 > 0][:n_shells]
    if len(d2) < n_shells:
        raise ValueError(f"shell_distances: found only {len(d2)} shells")
    return np.sqrt(d2) * lattice.a / 2.0


def b2_cluster_cutoff(lattice: Lattice) -> float:
    """Halfway between the 5th and 6th neighbour shells."""
    d = shell_distances(lattice, 6)
    return float(0.5 * (d[4] + d[5]))


def b2_units(digits: np.ndarray, lattice: Lattice, a: int, b: int, fraction: float = 0.75) -> np.ndarray:
    """Sites of B2 units: an ``a`` atom with >= fraction of its first neighbours ``b``, or the reverse."""
    digits = np.asarray(digits)
    if digits.shape != (lattice.n_sites,):
        raise ValueError(f"digits: expected shape ({lattice.n_sites},), got {digits.shape}")
    nb = digits[lattice.neighbors]
    need = fraction * lattice.neighbors.shape[1] - 1e-9
    is_unit = ((digits == a) & ((nb == b).sum(1) >= need)) | ((digits == b) & ((nb == a).sum(1) >= need))
    return np.flatnonzero(is_unit)


def b2_clusters(units: np.ndarray, lattice: Lattice, cutoff: float | None = None) -> list[np.ndarray]:
    """Group unit sites into clusters (periodic); largest first, each sorted by site."""
    units = np.asarray(units, dtype=np.int64)
    if len(units) == 0:
        return []
    cutoff = b2_cluster_cutoff(lattice) if cutoff is None else cutoff
    pos = np.mod(lattice.positions[units], lattice.box)
    pairs = cKDTree(pos, boxsize=lattice.box).query_pairs(cutoff, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(units), len(units)))
    n, labels = connected_components(graph, directed=False)
    clusters = [np.sort(units[labels == c]) for c in range(n)]
    return sorted(clusters, key=lambda c: (-len(c), int(c[0])))


def track_clusters(snapshots: Sequence[tuple[int, list[np.ndarray]]], overlap: float = 0.5) -> pd.DataFrame:
    """Follow clusters through snapshots ``[(jumps, clusters), ...]``.

    A cluster continues a cluster of the previous snapshot when at least ``overlap`` of
    the smaller of the two is shared (unit sites in common). Each row is one cluster at
    one snapshot: ``jumps``, ``cluster``, ``size`` (units), ``lineage`` (id of the first
    cluster it descends from), ``born_jumps`` and ``age_snapshots`` (how many earlier
    snapshots the lineage reaches back).
    """
    rows = []
    prev: list[tuple[set[int], int, int, int]] = []  # (sites, lineage, born_jumps, age)
    next_lineage = 0
    for jumps, clusters in snapshots:
        cur = []
        for ci, cl in enumerate(clusters):
            sites = set(int(s) for s in cl)
            best = None
            for p_sites, lin, born, age in prev:
                shared = len(sites & p_sites)
                if shared >= overlap * min(len(sites), len(p_sites)) and shared > 0:
                    if best is None or shared > best[0]:
                        best = (shared, lin, born, age + 1)
            if best is None:
                lin, born, age = next_lineage, jumps, 0
                next_lineage += 1
            else:
                _, lin, born, age = best
            cur.append((sites, lin, born, age))
            rows.append({"jumps": jumps, "cluster": ci, "size": len(sites), "lineage": lin,
                         "born_jumps": born, "age_snapshots": age})
        prev = cur
    return pd.DataFrame(rows, columns=["jumps", "cluster", "size", "lineage", "born_jumps", "age_snapshots"])


def b2_snapshot_stats(clusters: pd.DataFrame, per_snap: pd.DataFrame) -> pd.DataFrame:
    """``per_snap`` (one row per trajectory and snapshot) with its B2 cluster statistics.

    Added columns: ``n_clusters``, ``largest`` and ``mean_size`` (B2 units) and
    ``persistent``: clusters whose lineage (:func:`track_clusters`) reaches back at least
    half of the snapshots taken so far. Snapshots without clusters get zeros.
    """
    stats = []
    for (traj, jumps), g in clusters.groupby(["trajectory", "jumps"]):
        k = int((per_snap[(per_snap.trajectory == traj)].jumps <= jumps).sum())
        stats.append({"trajectory": traj, "jumps": jumps, "n_clusters": len(g), "largest": int(g["size"].max()),
                      "mean_size": float(g["size"].mean()),
                      "persistent": int((g["age_snapshots"] >= max(1, (k - 1) // 2)).sum())})
    return per_snap.merge(pd.DataFrame(stats, columns=["trajectory", "jumps", "n_clusters", "largest",
                                                       "mean_size", "persistent"]),
                          on=["trajectory", "jumps"], how="left").fillna(
        {"n_clusters": 0, "largest": 0, "mean_size": 0.0, "persistent": 0})


# --- summaries over temperatures and replicas ------------------------------------


def locate_peak(x: Sequence[float], y: Sequence[float], err: Sequence[float] | None) -> dict[str, Any]:
    """Where ``y(x)`` is largest, and whether that is a resolved peak.

    ``err`` are the standard errors of ``y``. Starting from the largest point, the
    neighbours on each side whose difference from it is within the combined standard
    error ``sqrt(err_max**2 + err_j**2)`` are added to a plateau. Returned ``kind``:

    - ``"peak"``: the maximum exceeds both neighbours by more than their combined
      errors and is not at either end of the range;
    - ``"plateau"``: points next to the maximum agree with it within their errors
      (``x_range`` gives the first and last of them);
    - ``"edge"``: the maximum (or its plateau) reaches the first or last ``x``;
    - ``"maximum"``: no error estimate (``err`` None, or all zero / NaN): only the
      largest point is known, not whether it is resolved.

    ``x_max`` and ``y_max`` are the largest point.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise ValueError(f"locate_peak: need equal-length 1-d x and y, got shapes {x.shape}, {y.shape}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    e = None if err is None else np.asarray(err, dtype=float)[order]
    i = int(np.nanargmax(y))
    out: dict[str, Any] = {"x_max": float(x[i]), "y_max": float(y[i])}
    if e is None or not np.any(np.nan_to_num(e) > 0):
        return {**out, "kind": "maximum", "x_range": (float(x[i]), float(x[i]))}
    e = np.nan_to_num(e)
    lo = hi = i
    while lo > 0 and y[i] - y[lo - 1] <= np.hypot(e[i], e[lo - 1]):
        lo -= 1
    while hi < len(x) - 1 and y[i] - y[hi + 1] <= np.hypot(e[i], e[hi + 1]):
        hi += 1
    kind = "edge" if lo == 0 or hi == len(x) - 1 else ("peak" if lo == hi else "plateau")
    return {**out, "kind": kind, "x_range": (float(x[lo]), float(x[hi]))}


def order_summary(timeseries: pd.DataFrame, pair: Sequence[str], average_fraction: float) -> tuple[pd.DataFrame, dict]:
    """Per temperature: delta_ij and alpha_ij averaged over the last ``average_fraction`` of jumps.

    Records with ``jumps >= (1 - average_fraction) * n_jumps`` are averaged per
    trajectory, then over replicas (mean and standard error). The peak temperature is
    where the mean ``delta_<pair>`` is largest; ``peak_kind`` and ``peak_range_K`` say
    whether that maximum is resolved against its neighbours (:func:`locate_peak`; with
    one replica there is no error estimate and ``peak_kind`` is ``"maximum"``).
    """
    n = int(timeseries["jumps"].max())
    tail = timeseries[timeseries["jumps"] >= (1.0 - average_fraction) * n]
    cols = [c for c in timeseries.columns if c.startswith(("delta_", "alpha_", "energy_"))]
    per_traj = tail.groupby(["temperature", "replica"])[cols].mean().reset_index()
    g = per_traj.groupby("temperature")[cols]
    mean = g.mean()
    sem = g.sem(ddof=1).fillna(0.0) if per_traj["replica"].nunique() > 1 else mean * 0.0
    table = mean.join(sem.add_suffix("_sem")).reset_index()
    table["n_records_averaged"] = tail.groupby("temperature")["jumps"].nunique().to_numpy()
    name = f"delta_{pair[0]}{pair[1]}"
    if name not in table:
        name = f"delta_{pair[1]}{pair[0]}"
    if name not in table:
        raise ValueError(f"analysis.order_pair: {list(pair)} is not a species pair of this run")
    peak = table.loc[table[name].idxmax()]
    resolved = locate_peak(table["temperature"], table[name],
                           table[f"{name}_sem"] if per_traj["replica"].nunique() > 1 else None)
    summary = {"pair": name, "peak_temperature_K": float(peak["temperature"]), "peak_value": float(peak[name]),
               "peak_kind": resolved["kind"], "peak_range_K": list(resolved["x_range"]),
               "n_jumps": n, "average_fraction": average_fraction}
    return table, summary


def variance_sem(values: np.ndarray) -> float:
    """Standard error of the sample variance of independent values (from the fourth central moment).

    ``Var(s^2) = (m4 - s^4 (n - 3) / (n - 1)) / n``; NaN for fewer than 4 values.
    """
    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 4:
        return float("nan")
    d = v - v.mean()
    s2 = float(np.var(v, ddof=1))
    m4 = float(np.mean(d**4))
    return float(np.sqrt(max(0.0, (m4 - s2**2 * (n - 3) / (n - 1)) / n)))


def var_r_errors(per_t: pd.DataFrame, per_site: pd.DataFrame) -> pd.DataFrame:
    """``per_t`` with ``var_R_sem``: the standard error of each Var(R) from its sites' R values.

    The sites are treated as independent samples, so this is a lower bound where R is
    correlated between neighbouring sites.
    """
    keys = ["configuration", "temperature"] if "configuration" in per_t and "configuration" in per_site \
        else ["temperature"]
    sem = per_site.groupby(keys)["R"].agg(var_R_sem=lambda r: variance_sem(r.to_numpy())).reset_index()
    return per_t.drop(columns=["var_R_sem"], errors="ignore").merge(sem, on=keys, how="left")
