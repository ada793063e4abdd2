"""EXT fingerprints of M_EXT: per-site species one-hot + lattice descriptor G, on the window of a jump.

``ext_inputs(desc, digits, sites)`` is the input of :class:`~dbkmc.detailed_balance.extensive_model.ExtensiveModel`
for any sites of any lattice states (kMC digits: 0 = vacancy, 1..S = species + 1): the one-hot species of
each site (zeros when vacant) followed by its G. :func:`featurize_ext_events` gives ``EXT_A``/``EXT_B``
(N, M, S + D) of dataset events: the window of each jump (every site whose G can change), in state A and B.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors

EXT_KINDS: tuple[str, ...] = ("EXT_A", "EXT_B")
DEFAULT_SHELLS: dict[str, int] = {"radial_shells": 3, "triplet_shells": 2}
"""The descriptor of the study behind M_EXT: radial counts in shells 1-3, triplets in shells 1-2."""


def ext_inputs(desc: SiteDescriptors, digits: Tensor, sites: Tensor | None = None,
               dtype: torch.dtype = torch.float64) -> Tensor:
    """[..., M, S + D]: one-hot species of ``sites`` (zeros for a vacancy), then their G, in states ``digits``."""
    digits = torch.as_tensor(digits, device=desc.device).long()
    g = desc.describe(digits, sites, dtype=dtype)
    if sites is None:
        own = digits
    else:
        s = torch.as_tensor(sites, dtype=torch.long, device=desc.device)
        batch = torch.broadcast_shapes(digits.shape[:-1], s.shape[:-1])
        own = torch.gather(digits.expand(*batch, digits.shape[-1]), -1, s.expand(*batch, s.shape[-1]))
    onehot = (own.unsqueeze(-1) == torch.arange(1, desc.n_species + 1, device=desc.device)).to(dtype)
    return torch.cat([onehot, g], -1)


def event_digits(occupations: Sequence[str], event_species: Sequence[Any], species: Sequence[str]) -> np.ndarray:
    """(N, n_sites) kMC digits of dataset occupation strings ('V', '0'..'9' indexing each event's species)."""
    raw = np.frombuffer("".join(occupations).encode("ascii"), dtype=np.uint8).reshape(len(occupations), -1)
    digit = raw.astype(np.int64) - ord("0")
    out = np.zeros(raw.shape, dtype=np.int64)
    for names in sorted({s if isinstance(s, str) else ",".join(s) for s in event_species}):
        local = names.split(",")
        missing = [n for n in local if n not in species]
        if missing:
            raise ValueError(f"EXT fingerprints: elements {missing} not in species {list(species)}")
        rows = np.array([(s if isinstance(s, str) else ",".join(s)) == names for s in event_species])
        table = np.array([list(species).index(n) + 1 for n in local])
        occ = raw[rows] != ord("V")
        out[rows] = np.where(occ, table[np.clip(digit[rows], 0, len(local) - 1)], 0)
    return out


def featurize_ext_events(events: Any, species: Sequence[str], *, radial_shells: int = 3, triplet_shells: int = 2,
                         dtype: torch.dtype = torch.float32, block: int = 512) -> dict[str, Tensor]:
    """``{"EXT_A", "EXT_B"}``: (N, M, S + D) window fingerprints of the events (a DataFrame with
    ``occupation``, ``vacancy_site``, ``hop_site``, ``lattice``, ``supercell``, ``a``, ``species``).
    All events must share one lattice and cell size (M is fixed per lattice). A list of event dicts works too."""
    if not hasattr(events, "columns"):
        events = pd.DataFrame(list(events))
    keys = {(str(k), int(n)) for k, n in zip(events["lattice"], events["supercell"])}
    if len(keys) != 1:
        raise ValueError(f"EXT fingerprints: events mix lattices/cells {sorted(keys)}")
    kind, n = keys.pop()
    desc = SiteDescriptors(Lattice(kind, n, float(events["a"].iloc[0])), len(species), radial_shells, triplet_shells)
    digits = torch.as_tensor(event_digits(list(events["occupation"]), list(events["species"]), species))
    vac = torch.as_tensor(np.array(events["vacancy_site"], dtype=np.int64))
    hop = torch.as_tensor(np.array(events["hop_site"], dtype=np.int64))
    rows = torch.arange(len(vac))
    if bool((digits[rows, vac] != 0).any()):
        raise ValueError("EXT fingerprints: an event's vacancy_site is not vacant")
    after = digits.clone()
    after[rows, vac], after[rows, hop] = digits[rows, hop], 0
    out = {k: torch.empty((len(vac), desc.window_size, len(species) + desc.n_features), dtype=dtype)
           for k in EXT_KINDS}
    for s in range(0, len(vac), block):
        sl = slice(s, s + block)
        w = desc.window(vac[sl], hop[sl])
        out["EXT_A"][sl] = ext_inputs(desc, digits[sl], w, dtype)
        out["EXT_B"][sl] = ext_inputs(desc, after[sl], w, dtype)
    return out
