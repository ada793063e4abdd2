"""Alloy compositions: exact species counts and Vegard's law."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def exact_counts(fractions: Mapping[str, float], species: Sequence[str], n_atoms: int) -> np.ndarray:
    """Integer count per species summing to ``n_atoms`` exactly.

    Largest-remainder rounding of ``x_i * n_atoms``; ties go to the species
    listed first, so the result is deterministic.
    """
    x = np.array([float(fractions.get(s, 0.0)) for s in species])
    if np.any(x < 0) or not np.isclose(x.sum(), 1.0, atol=1e-6):
        raise ValueError(f"composition: fractions {dict(fractions)} must be >= 0 and sum to 1")
    ideal = x * n_atoms
    counts = np.floor(ideal).astype(np.int64)
    remainder = ideal - counts
    order = sorted(range(len(species)), key=lambda i: (-round(remainder[i], 12), i))
    for i in order[: n_atoms - int(counts.sum())]:
        counts[i] += 1
    return counts


def vegard_lattice_parameter(fractions: Mapping[str, float], end_members: Mapping[str, float]) -> float:
    """a(x) = sum_i x_i a_i, rounded to 1e-6 A so event files are byte-stable."""
    missing = [e for e, x in fractions.items() if x > 0 and e not in end_members]
    if missing:
        raise KeyError(f"lattice constants: no end-member value for {missing}")
    a = sum(float(x) * float(end_members[e]) for e, x in fractions.items())
    return round(a, 6)


def composition_key(fractions: Mapping[str, float], species: Sequence[str]) -> str:
    """Canonical text of a composition, e.g. ``Cu:0.500000,Ni:0.500000``."""
    return ",".join(f"{s}:{float(fractions.get(s, 0.0)):.6f}" for s in species)
