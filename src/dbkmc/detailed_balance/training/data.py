"""Training data of the model family: fingerprints and targets of events, both directions, and the split.

:class:`EventData` holds the fingerprints and targets of the accepted events
of a dataset. Every event enters **both directions** in training and testing
(:meth:`EventData.directed`): A -> B with ``dE`` and B -> A with ``-dE``
(``TW_A``/``TW_B`` and ``KOL_A``/``KOL_B`` swapped; ``E_KRA`` unchanged; the
barrier of B -> A is ``barrier_backward``). :func:`split_events` splits the
events train/val/test 75/15/10, stratified by composition, reproducibly;
:func:`subsample` takes nested stratified fractions (learning curves).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dbkmc.detailed_balance.aev import AEVParams
from dbkmc.detailed_balance.fingerprints import featurize_events
from dbkmc.detailed_balance.training.cells import CellStates

SPLIT_FRACTIONS: tuple[float, float, float] = (0.75, 0.15, 0.10)
TARGETS: tuple[str, ...] = ("dE", "E_KRA", "barrier_forward", "barrier_backward")
"""The event columns a model is trained or evaluated on (eV)."""


@dataclass(frozen=True)
class DirectedData:
    """Jumps in both directions: rows ``[:n_events]`` are A -> B, rows ``[n_events:]`` B -> A. ``cells``
    (M_EXT's energy term only): the whole cell of state A of each of the ``n_events`` events."""

    x: dict[str, Tensor]        # TW_A, TW_B, KOL_A, KOL_B: (2n, D); EXT_A, EXT_B: (2n, M, S + D)
    y: dict[str, Tensor]        # dE, E_KRA, barrier: (2n,)
    n_events: int
    cells: CellStates | None = None

    def __len__(self) -> int:
        return 2 * self.n_events

    def inputs(self, fingerprint: str) -> tuple[Tensor, Tensor]:
        """(x_a, x_b) for a model reading ``fingerprint`` ("TW", "KOL" or "EXT")."""
        return self.x[f"{fingerprint}_A"], self.x[f"{fingerprint}_B"]


@dataclass
class EventData:
    """Fingerprints (``KOL_A``, ``KOL_B``, ``TW_A``, ``TW_B``: (N, D)) and targets (N,) of N events; ``cells``
    (optional, for M_EXT's energy term): the whole cells of state A and their relaxed energies E_A."""

    fingerprints: dict[str, Tensor]
    targets: dict[str, Tensor]
    event_id: list[str]
    composition: list[str]
    params: AEVParams
    species: list[str]
    cells: CellStates | None = None

    def __len__(self) -> int:
        return len(self.event_id)

    @property
    def feature_dim(self) -> int:
        return self.fingerprints["TW_A"].shape[1]

    def feature_dim_of(self, fingerprint: str) -> int:
        """Feature size of the fingerprint pair ``fingerprint`` ("TW", "KOL" or "EXT")."""
        return self.fingerprints[f"{fingerprint}_A"].shape[-1]

    @property
    def device(self) -> torch.device:
        return next(iter(self.fingerprints.values())).device

    @classmethod
    def from_events(
        cls, events: pd.DataFrame, params: AEVParams | None = None, device: str = "cpu", *,
        species: Sequence[str] | None = None, dtype: torch.dtype = torch.float32,
    ) -> EventData:
        """Featurize the events (ideal lattice, float64) and keep them in ``dtype`` on ``device``."""
        p = params or AEVParams()
        if species is None:
            names = sorted({s if isinstance(s, str) else ",".join(s) for s in events["species"]})
            if len(names) != 1:
                raise ValueError(f"training: events mix species lists {names}; pass species=")
            species = names[0].split(",")
        fps = featurize_events(events, p, device, species=species)
        return cls(
            fingerprints={k: v.to(dtype) for k, v in fps.items()},
            targets={t: torch.tensor(events[t].to_numpy(np.float64), dtype=dtype, device=device) for t in TARGETS},
            event_id=[str(e) for e in events["event_id"]],
            composition=[str(c) for c in events["composition"]],
            params=p,
            species=list(species),
        )

    def to(self, device: str | torch.device) -> EventData:
        """The same events with the tensors on ``device`` (``self`` if already there)."""
        dev = torch.device(device)
        if dev.type == self.device.type and (dev.index is None or dev.index == self.device.index):
            return self
        return EventData({k: v.to(dev) for k, v in self.fingerprints.items()},
                         {k: v.to(dev) for k, v in self.targets.items()},
                         self.event_id, self.composition, self.params, self.species,
                         None if self.cells is None else self.cells.to(dev))

    def directed(self, idx: Sequence[int] | np.ndarray | None = None) -> DirectedData:
        """Events ``idx`` (default: all) in both directions, A -> B then B -> A."""
        sel = torch.as_tensor(np.arange(len(self)) if idx is None else np.asarray(idx, dtype=np.int64),
                              device=self.device)
        f = {k: v[sel] for k, v in self.fingerprints.items()}
        t = {k: v[sel] for k, v in self.targets.items()}
        x = {}
        for name in f:
            if name.endswith("_A") and f"{name[:-2]}_B" in f:   # each pair swaps for the reverse jump
                a, b = f[name], f[f"{name[:-2]}_B"]
                x[name], x[f"{name[:-2]}_B"] = torch.cat([a, b]), torch.cat([b, a])
        y = {"dE": torch.cat([t["dE"], -t["dE"]]), "E_KRA": torch.cat([t["E_KRA"], t["E_KRA"]]),
             "barrier": torch.cat([t["barrier_forward"], t["barrier_backward"]])}
        return DirectedData(x, y, len(sel), None if self.cells is None else self.cells.select(sel.cpu()))


@dataclass(frozen=True)
class Split:
    """Sorted event indices of the train, validation and test sets."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise KeyError(name)
        return getattr(self, name)

    def to_dict(self, event_ids: Sequence[str]) -> dict[str, list[str]]:
        """``{set: [event_id, ...]}`` (for a JSON record of the split)."""
        return {name: [event_ids[i] for i in self[name]] for name in ("train", "val", "test")}


def _stratum_rng(seed: int, stratum: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(stratum.encode())])


def _by_stratum(event_ids: Sequence[str], compositions: Sequence[str]) -> dict[str, np.ndarray]:
    """Composition -> event indices ordered by event_id."""
    if len(event_ids) != len(compositions):
        raise ValueError("training: event_ids and compositions differ in length")
    if len(set(event_ids)) != len(event_ids):
        raise ValueError("training: event_ids are not unique")
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(compositions):
        groups.setdefault(str(c), []).append(i)
    return {c: np.array(sorted(g, key=lambda i: event_ids[i]), dtype=np.int64) for c, g in sorted(groups.items())}


def split_events(
    event_ids: Sequence[str], compositions: Sequence[str],
    fractions: tuple[float, float, float] = SPLIT_FRACTIONS, seed: int = 0,
) -> Split:
    """Train/val/test split, stratified by composition, deterministic given the event ids and seed.

    In each composition the events, ordered by ``event_id``, are shuffled
    with a generator seeded by ``(seed, crc32(composition))``; the first
    ``round(f_train n)`` go to train, the next ``round(f_val n)`` to
    validation and the rest to test.
    """
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"training: split fractions must be three non-negative numbers summing to 1, got {fractions}")
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for comp, idx in _by_stratum(event_ids, compositions).items():
        perm = idx[_stratum_rng(seed, comp).permutation(len(idx))]
        n_train = int(round(fractions[0] * len(idx)))
        n_val = min(int(round(fractions[1] * len(idx))), len(idx) - n_train)
        parts["train"].append(perm[:n_train])
        parts["val"].append(perm[n_train:n_train + n_val])
        parts["test"].append(perm[n_train + n_val:])
    return Split(**{k: np.sort(np.concatenate(v)) if v else np.zeros(0, np.int64) for k, v in parts.items()})


def subsample(idx: np.ndarray, event_ids: Sequence[str], compositions: Sequence[str],
              fraction: float, seed: int = 0) -> np.ndarray:
    """A stratified ``fraction`` of the events ``idx``; nested: a larger fraction contains a smaller one."""
    if not 0 < fraction <= 1:
        raise ValueError(f"training: fraction must be in (0, 1], got {fraction}")
    sub_ids = [event_ids[i] for i in idx]
    sub_comp = [compositions[i] for i in idx]
    keep = []
    for comp, local in _by_stratum(sub_ids, sub_comp).items():
        perm = local[_stratum_rng(seed + 1, comp).permutation(len(local))]
        keep.append(perm[:max(1, int(round(fraction * len(local))))])
    return np.sort(np.asarray(idx)[np.concatenate(keep)])
