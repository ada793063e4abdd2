"""NNK training data: per-path voxel images of NEB events, splits by configuration, symmetry copies.

An ``all_paths`` dataset holds, for each vacancy configuration, one NEB event per
first-neighbour path. The image of event (configuration, path k) is path k's
aligned grid (:class:`dbkmc.nnk.encoder.NNKEncoder`) and its target the forward NEB
barrier ``barrier_forward`` (eV).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import permutations, product

import numpy as np
import pandas as pd
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.nnk.encoder import REFERENCE_DIRECTION, NNKEncoder, digits_from_occupation, voxel_coordinates
from dbkmc.core.sampling import occupation_from_str

TARGET = "barrier_forward"
CONFIG_KEY = ("composition", "config_index")


def _lattices(events: pd.DataFrame) -> dict[tuple, Lattice]:
    keys = events[["lattice", "supercell", "a"]].drop_duplicates().itertuples(index=False)
    return {(k, int(n), float(a)): Lattice(k, int(n), float(a)) for k, n, a in keys}


def dataset_grid(events: pd.DataFrame, cutoff: float) -> int:
    """Smallest grid covering the cutoff ball of every lattice in the events."""
    return max(NNKEncoder(lat, cutoff=cutoff).grid for lat in _lattices(events).values())


def check_events(events: pd.DataFrame, source: str = "events", target: bool = True) -> list[str]:
    """Species list of the events; raise naming the column if the table cannot be used.

    ``target``: also require finite NEB barriers (``barrier_forward``).
    """
    for col in ("lattice", "supercell", "a", "occupation", "vacancy_site", "hop_site", "path", "species",
                "composition", "config_index") + ((TARGET,) if target else ()):
        if col not in events.columns:
            raise ValueError(f"{source}: column {col!r} missing")
    if len(events) == 0:
        raise ValueError(f"{source}: no events")
    species = events["species"].unique()
    if len(species) != 1:
        raise ValueError(f"{source}: column 'species' differs between events ({list(species)})")
    if events["lattice"].nunique() != 1:
        raise ValueError(f"{source}: column 'lattice' mixes {list(events['lattice'].unique())}")
    bad = ~np.isfinite(events[TARGET].to_numpy(dtype=float)) if target else np.zeros(len(events), bool)
    if bad.any():
        raise ValueError(f"{source}: non-finite {TARGET} in events {list(events['event_id'][bad][:5])}")
    return str(species[0]).split(",")


def event_images(events: pd.DataFrame, cutoff: float, grid: int) -> torch.Tensor:
    """uint8 images (n_events, grid**3): path ``path`` of the configuration's vacancy, digits 0..S."""
    check_events(events, target=False)
    encoders = {key: NNKEncoder(lat, cutoff=cutoff, grid=grid) for key, lat in _lattices(events).items()}
    out = torch.empty((len(events), grid**3), dtype=torch.uint8)
    rows = events.reset_index(drop=True)
    # all paths of one configuration share the occupation: encode each configuration once
    for _, group in rows.groupby(["lattice", "supercell", "a", "occupation"], sort=False):
        first = group.iloc[0]
        key = (first["lattice"], int(first["supercell"]), float(first["a"]))
        enc = encoders[key]
        vac = int(first["vacancy_site"])
        if group["vacancy_site"].nunique() != 1:
            raise ValueError(f"event {first['event_id']}: one occupation with several vacancy sites")
        occ = occupation_from_str(first["occupation"])
        if len(occ) != enc.lattice.n_sites or occ[vac] >= 0:
            raise ValueError(f"event {first['event_id']}: occupation does not match lattice / vacancy_site")
        paths = group["path"].to_numpy(dtype=np.int64)
        hops = enc.lattice.neighbors[vac, paths]
        if not np.array_equal(hops, group["hop_site"].to_numpy(dtype=np.int64)):
            raise ValueError(f"event {first['event_id']}: hop_site is not neighbors[vacancy_site, path]")
        img = enc.images(digits_from_occupation(occ)[None], torch.tensor([[vac]]), dtype=torch.uint8)[0, 0]
        rows_idx = torch.from_numpy(group.index.to_numpy(dtype=np.int64, copy=True))
        out[rows_idx] = img[torch.from_numpy(paths.copy())]
    return out


# --------------------------------------------------------------------------- splits

@dataclass(frozen=True)
class NNKSplit:
    """Row indices of each part: train / val / test (held-out configurations) / held_out (compositions)."""

    parts: Mapping[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.parts[name]

    def part_of_rows(self, n: int) -> np.ndarray:
        label = np.full(n, "", dtype=object)
        for name, idx in self.parts.items():
            label[idx] = name
        return label


def split_configurations(events: pd.DataFrame, fractions: Sequence[float], held_out: Sequence[str],
                         seed: int) -> NNKSplit:
    """Split whole configurations (all their paths together), per composition.

    Compositions in ``held_out`` go entirely to ``held_out``. The others' configurations
    are shuffled with a stream seeded by (seed, composition) and cut by
    ``fractions`` (train, val, test); with at least 3 configurations, val and test
    (when their fraction is > 0) get at least one each, train the rest.
    """
    comps = list(dict.fromkeys(events["composition"]))
    unknown = [c for c in held_out if c not in comps]
    if unknown:
        raise ValueError(f"held_out: composition(s) {unknown} not in the dataset ({comps})")
    if not set(comps) - set(held_out):
        raise ValueError("held_out: every composition is held out; nothing left to train on")
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": [], "held_out": []}
    for comp in comps:
        rows = events.index[events["composition"] == comp].to_numpy()
        cfg = events.loc[rows, "config_index"].to_numpy()
        if comp in held_out:
            parts["held_out"].append(rows)
            continue
        configs = np.unique(cfg)
        rng = np.random.default_rng([int(seed), zlib.crc32(comp.encode())])
        configs = rng.permutation(configs)
        n = len(configs)
        n_val = max(1, int(round(fractions[1] * n))) if n >= 2 and fractions[1] > 0 else 0
        n_test = max(1, int(round(fractions[2] * n))) if n >= 3 and fractions[2] > 0 else 0
        n_train = n - n_val - n_test
        if n_train < 1:
            raise ValueError(f"split: composition {comp} has {n} configuration(s), too few to split")
        cut = {"train": configs[:n_train], "val": configs[n_train : n_train + n_val],
               "test": configs[n_train + n_val :]}
        for name, chosen in cut.items():
            parts[name].append(rows[np.isin(cfg, chosen)])
    return NNKSplit({k: np.sort(np.concatenate(v)) if v else np.zeros(0, dtype=np.int64) for k, v in parts.items()})


# --------------------------------------------------------------------------- symmetry copies

def stabilizer_operations(kind: str) -> np.ndarray:
    """Signed permutation matrices P (cubic point group) with P @ reference = reference.

    They turn an aligned image into the aligned image of a symmetry-equivalent
    configuration with the same jump, so the barrier is unchanged:
    6 for bcc (+[111], C3v), 4 for fcc (+[110], C2v).
    """
    ref = REFERENCE_DIRECTION[kind]
    ops = []
    for perm in permutations(range(3)):
        for signs in product((1, -1), repeat=3):
            p = np.zeros((3, 3), dtype=np.int64)
            p[np.arange(3), perm] = signs
            if np.array_equal(p @ ref, ref):
                ops.append(p)
    return np.stack(ops)


def voxel_permutations(kind: str, grid: int) -> torch.Tensor:
    """(n_ops, grid**3): ``image[..., perm[j]]`` is the image turned by stabilizer op j."""
    g = voxel_coordinates(grid)
    index = {tuple(v): i for i, v in enumerate(g.tolist())}
    perms = []
    for p in stabilizer_operations(kind):
        src = g @ p  # voxel g of the turned image shows what sat at P^{-1} g = P^T g
        perms.append([index[tuple(v)] for v in src.tolist()])
    return torch.as_tensor(np.array(perms), dtype=torch.long)
