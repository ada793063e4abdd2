"""Vacancy-jump event sampling on ideal lattices.

Every event is drawn from its own random stream, seeded by
``(seed, crc32(composition), index)``. Event *i* therefore depends only on the
seed, the composition and *i*: asking for more events appends new ones and
never changes the old ones.

Conventions (shared by every stage):

- ``occupation``: one character per lattice site, ``'0'..'9'`` = index into the
  dataset's species list, ``'V'`` = vacancy. It describes state A.
- ``vacancy_site`` (beta): the vacant site in state A.
- ``hop_site`` (alpha): the first neighbour of beta whose atom jumps into beta;
  it is the vacant site in state B.
- ``path``: index k into :data:`dbkmc.core.lattice.NN_VECTORS` with
  ``hop_site = neighbors[vacancy_site, k]``; ``jump_x/y/z`` is that vector in
  Angstrom, pointing from the vacancy to the jumping atom.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from dbkmc.core.composition import composition_key, exact_counts
from dbkmc.core.lattice import COORDINATION, Lattice

VACANCY = -1
VACANCY_CHAR = "V"


def occupation_to_str(occ: np.ndarray) -> str:
    return "".join(VACANCY_CHAR if s == VACANCY else str(int(s)) for s in occ)


def occupation_from_str(text: str) -> np.ndarray:
    return np.array([VACANCY if c == VACANCY_CHAR else int(c) for c in text], dtype=np.int64)


def event_rng(seed: int, comp_key: str, index: int) -> np.random.Generator:
    """The random stream of one event (or one all_paths configuration)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(comp_key.encode()), int(index)]))


def random_configuration(
    rng: np.random.Generator, lattice: Lattice, counts: np.ndarray
) -> tuple[np.ndarray, int]:
    """Occupation with one vacancy at a random site and exact species counts."""
    n = lattice.n_sites
    if int(counts.sum()) != n - 1:
        raise ValueError(f"species counts sum to {counts.sum()}, need {n - 1} atoms")
    vacancy = int(rng.integers(n))
    atoms = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    occ = np.empty(n, dtype=np.int64)
    occ[vacancy] = VACANCY
    occ[np.arange(n) != vacancy] = atoms
    return occ, vacancy


def dataset_species(compositions: Mapping[str, Mapping[str, float]], potential_elements: Sequence[str]) -> list[str]:
    """Species of a dataset in the potential's element order (LAMMPS types 1..S)."""
    used = {e for fr in compositions.values() for e, x in fr.items() if x > 0}
    return [e for e in potential_elements if e in used]


def event_row(
    dataset: str, label: str, comp_key: str, index: int, path: int, mode: str,
    lattice: Lattice, seed: int, occ: np.ndarray, vacancy: int, species: Sequence[str],
) -> dict:
    """One sampled event (the vacancy at ``vacancy`` jumps along neighbour ``path``) as an
    ``events_sampled.jsonl`` row: id, composition, cell, seed and the occupation string."""
    hop = int(lattice.neighbors[vacancy, path])
    jump = lattice.jump_vector(path)
    suffix = f":p{path:02d}" if mode == "all_paths" else ""
    return {
        "event_id": f"{dataset}:{label}:{index:06d}{suffix}",
        "dataset": dataset,
        "composition": label,
        "composition_key": comp_key,
        "config_index": index,
        "path": path,
        "mode": mode,
        "lattice": lattice.kind,
        "supercell": lattice.n,
        "a": lattice.a,
        "seed": seed,
        "species": ",".join(species),
        "vacancy_site": vacancy,
        "hop_site": hop,
        "hop_species": species[int(occ[hop])],
        "jump_x": float(jump[0]),
        "jump_y": float(jump[1]),
        "jump_z": float(jump[2]),
        "occupation": occupation_to_str(occ),
    }


def sample_events(
    dataset: str,
    *,
    lattice_kind: str,
    supercell: int,
    mode: str,
    compositions: Mapping[str, Mapping[str, float]],
    n_events: int,
    seed: int,
    species: Sequence[str],
    lattice_parameters: Mapping[str, float],
) -> list[dict]:
    """All events of one dataset, in a fixed order (composition, index, path).

    ``lattice_parameters`` maps composition label -> a (Vegard's law).
    ``pairs``: ``n_events`` random (configuration, path) pairs per composition.
    ``all_paths``: ``n_events`` configurations per composition, each with every
    first-neighbour path (12 in fcc, 8 in bcc).
    """
    if mode not in ("pairs", "all_paths"):
        raise ValueError(f"mode: unknown value {mode!r} (pairs or all_paths)")
    events = []
    for label, fractions in compositions.items():
        lattice = Lattice(lattice_kind, supercell, lattice_parameters[label])
        key = composition_key(fractions, species)
        counts = exact_counts(fractions, species, lattice.n_sites - 1)
        z = COORDINATION[lattice_kind]
        for i in range(n_events):
            rng = event_rng(seed, key, i)
            occ, vacancy = random_configuration(rng, lattice, counts)
            paths: Iterable[int] = [int(rng.integers(z))] if mode == "pairs" else range(z)
            for k in paths:
                events.append(event_row(dataset, label, key, i, k, mode, lattice, seed, occ, vacancy, species))
    return events


def write_events(events: Sequence[Mapping], path: str | Path) -> None:
    """JSON lines, sorted keys: byte-identical for identical events."""
    with open(path, "w", encoding="utf-8") as fh:
        for ev in events:
            fh.write(json.dumps(ev, sort_keys=True) + "\n")


def read_events(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def shard_of(events: Sequence[Mapping], shard: int, n_shards: int) -> list[Mapping]:
    """Round-robin shard: event i goes to shard i % n_shards."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} outside 0..{n_shards - 1}")
    return list(events[shard::n_shards])
