r"""Far-field noise floor (Fig 11 of the detailed-balance paper).

A model whose fingerprints see the atoms within ``r_cut`` of the jump cannot
know where the atoms farther away sit, yet they shift ``dE`` and ``E_KRA`` a
little. The spread this causes is an error floor that no model with that cutoff
can beat. To measure it, one transition in a large random cell (6x6x6 fcc
Cu50Ni50 by default) is fixed; for each ``r_cut`` the species of every site
within ``r_cut`` of either vacancy site (the vacancy of A and the vacancy of B)
are frozen and the species of all other sites are shuffled among themselves
(so the cell keeps its exact composition), N times. Every redrawn cell runs
through the dataset stage's NEB unchanged; the standard deviation of ``dE`` and
``E_KRA`` over the N cells, against ``r_cut``, is the noise floor.

:func:`far_field_events` writes these cells as ordinary event rows of a
pseudo-dataset (``far-field``) with three extra fields: ``r_cut``,
``far_field_sample`` and ``n_frozen``. Each redraw has its own random stream,
seeded from ``(seed, composition, r_cut, sample)``, so asking for more samples
or another cutoff never changes the existing cells. :func:`noise_floor`
reduces the NEB results; a sampled cell that is in neither the accepted events
nor the rejects is an error, and rejected cells are counted per ``r_cut``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from dbkmc.core.composition import composition_key, exact_counts
from dbkmc.core.constants import FAR_FIELD_DATASET
from dbkmc.core.lattice import COORDINATION, Lattice
from dbkmc.core.sampling import event_row, random_configuration


_MILLI = 1000  # r_cut enters the seed in mÅ


def composition_label(fractions: Mapping[str, float]) -> str:
    """E.g. ``Cu50Ni50`` for {Cu: 0.5, Ni: 0.5} (percent, rounded)."""
    return "".join(f"{e}{round(100 * float(x)):d}" for e, x in fractions.items() if float(x) > 0)


def far_field_composition(ff_cfg: Mapping[str, Any], elements: Sequence[str]) -> dict[str, float]:
    """``far_field.composition``, or equal fractions of the potential's elements when it is null."""
    comp = ff_cfg.get("composition")
    if comp:
        return {str(k): float(v) for k, v in comp.items()}
    return {e: 1.0 / len(elements) for e in elements}


def far_field_potential(ff_cfg: Mapping[str, Any], potentials: Mapping[str, Any]) -> str:
    """``far_field.potential``, or the only potential of the config when it is null."""
    name = ff_cfg.get("potential")
    if name is None:
        if len(potentials) != 1:
            raise ValueError(f"far_field.potential: several potentials ({', '.join(potentials)}); name one")
        name = next(iter(potentials))
    if name not in potentials:
        raise ValueError(f"far_field.potential: unknown potential {name!r}")
    return str(name)


def far_field_dataset(ff_cfg: Mapping[str, Any], potentials: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The dataset entry (as under ``datasets:``) of the far-field pseudo-dataset."""
    potential = far_field_potential(ff_cfg, potentials)
    composition = far_field_composition(ff_cfg, potentials[potential]["elements"])
    return {
        "potential": potential, "lattice": ff_cfg["lattice"], "supercell": int(ff_cfg["supercell"]),
        "mode": "pairs", "compositions": {composition_label(composition): composition},
        "n_events": int(ff_cfg["n_samples"]) * len(ff_cfg["r_cuts"]), "seed": int(ff_cfg["seed"]), "source": None,
    }


def frozen_sites(lattice: Lattice, vacancy: int, hop: int, r_cut: float) -> np.ndarray:
    """Boolean mask of the sites within ``r_cut`` (minimum image) of either vacancy site."""
    pos = lattice.positions
    near = np.zeros(lattice.n_sites, dtype=bool)
    for site in (vacancy, hop):
        d = np.linalg.norm(lattice.minimum_image(pos - pos[site]), axis=1)
        near |= d <= r_cut + 1e-9
    return near


def redraw_rng(seed: int, comp_key: str, r_cut: float, sample: int) -> np.random.Generator:
    """The random stream of one redraw."""
    return np.random.default_rng(np.random.SeedSequence(
        [int(seed), zlib.crc32(comp_key.encode()), int(round(r_cut * _MILLI)), int(sample)]))


def far_field_events(
    *, lattice_kind: str, supercell: int, a: float, label: str, fractions: Mapping[str, float],
    species: Sequence[str], r_cuts: Sequence[float], n_samples: int, seed: int,
    dataset: str = FAR_FIELD_DATASET,
) -> list[dict]:
    """Event rows: ``n_samples`` redraws of the far field of one transition for each ``r_cut``.

    The transition (configuration, vacancy, jump path) is drawn from the
    stream ``(seed, composition, -1)``. Raises if an ``r_cut`` reaches half
    the box (the frozen region would wrap around the cell).
    """
    lattice = Lattice(lattice_kind, supercell, a)
    half_box = 0.5 * float(lattice.box.min())
    bad = [r for r in r_cuts if not 0 < r < half_box]
    if bad:
        raise ValueError(f"far_field.r_cuts: {bad} must lie in (0, {half_box:.3f}) Å, half the "
                         f"{supercell}x{supercell}x{supercell} box; enlarge far_field.supercell")
    key = composition_key(fractions, species)
    counts = exact_counts(fractions, species, lattice.n_sites - 1)
    base_rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(key.encode()), 2**32 - 1]))
    base, vacancy = random_configuration(base_rng, lattice, counts)
    path = int(base_rng.integers(COORDINATION[lattice_kind]))
    hop = int(lattice.neighbors[vacancy, path])
    events = []
    for r_cut in r_cuts:
        free = np.flatnonzero(~frozen_sites(lattice, vacancy, hop, float(r_cut)))
        for sample in range(int(n_samples)):
            occ = base.copy()
            occ[free] = base[free][redraw_rng(seed, key, float(r_cut), sample).permutation(len(free))]
            row = event_row(dataset, label, key, sample, path, "pairs", lattice, int(seed), occ, vacancy, species)
            row.update(event_id=f"{dataset}:{label}:rc{float(r_cut):.2f}:{sample:06d}", r_cut=float(r_cut),
                       far_field_sample=sample, n_frozen=int(lattice.n_sites - len(free)))
            events.append(row)
    return events


def noise_floor(sampled: pd.DataFrame, accepted: pd.DataFrame, rejected: pd.DataFrame,
                quantities: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Spread of dE and E_KRA (or of ``quantities``: column -> unit suffix) per ``r_cut``: one row per cutoff.

    ``sampled``: the far-field events as sampled; ``accepted``/``rejected``:
    the dataset stage's events and rejects. Columns: ``r_cut_angstrom``, ``n_frozen``,
    ``n_sampled``, ``n_accepted``, ``n_rejected``, ``mean_dE_eV``, ``std_dE_eV``,
    ``std_dE_se_eV``, ``mean_E_KRA_eV``, ``std_E_KRA_eV``, ``std_E_KRA_se_eV``
    (sample standard deviations, ``se`` = std / sqrt(2 (n - 1))), ``status``.
    """
    quantities = dict(quantities or {"dE": "_eV", "E_KRA": "_eV"})
    seen = set(accepted.get("event_id", [])) | set(rejected.get("event_id", []))
    missing = sorted(set(sampled["event_id"]) - seen)
    if missing:
        raise ValueError(f"far field: {len(missing)} sampled events are neither accepted nor rejected, "
                         f"e.g. {missing[:3]}; rerun the neb and collect_dataset rules")
    names = list(quantities)
    values = accepted[names].to_numpy(np.float64) if len(accepted) else np.empty((0, len(names)))
    if not np.isfinite(values).all():
        raise ValueError(f"far field: accepted events with non-finite {' or '.join(names)}")
    rows = []
    for r_cut, design in sampled.groupby("r_cut", sort=True):
        acc = accepted[accepted["r_cut"] == r_cut] if len(accepted) else accepted
        n_rej = int((rejected["r_cut"] == r_cut).sum()) if len(rejected) else 0
        row: dict[str, Any] = {"r_cut_angstrom": float(r_cut), "n_frozen": int(design["n_frozen"].iloc[0]),
                               "n_sampled": len(design), "n_accepted": len(acc), "n_rejected": n_rej}
        n = len(acc)
        for q, unit in quantities.items():
            x = acc[q].to_numpy(np.float64) if n else np.empty(0)
            std = float(np.std(x, ddof=1)) if n > 1 else float("nan")
            row[f"mean_{q}{unit}"] = float(np.mean(x)) if n else float("nan")
            row[f"std_{q}{unit}"] = std
            row[f"std_{q}_se{unit}"] = std / np.sqrt(2.0 * (n - 1)) if n > 1 else float("nan")
        row["status"] = "ok" if n > 1 else f"too few accepted events ({n})"
        rows.append(row)
    return pd.DataFrame(rows)


PREFACTOR_QUANTITIES = {"ln_nu_AB": "", "S_KRA": "", "dS": ""}
"""The prefactor terms whose far-field spread :func:`noise_floor` reports (dimensionless: ln of a frequency)."""


def model_rmse(metrics: Mapping[str, Mapping[str, Any]], part: str = "test") -> dict[str, float]:
    """Test RMSE (ensemble mean, eV) of each model from its metrics.json: dE for dE models, E_KRA for KRA."""
    out = {}
    for name, m in metrics.items():
        quantity = "E_KRA" if name == "KRA" else "dE"
        try:
            out[name] = float(m[part][quantity]["ensemble"])
        except KeyError as err:
            raise ValueError(f"far field: metrics of {name} lack {part}.{quantity}.ensemble") from err
    return out
