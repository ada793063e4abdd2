r"""Kolmogorov and transition-wise fingerprints of vacancy jumps on the ideal lattice.

The fingerprints are ANI-style AEVs (:mod:`dbkmc.detailed_balance.aev`) centred
on points of the lattice, never on an atom; the sites they see are the windows
of :mod:`dbkmc.detailed_balance.windows`.

Fingerprints of an event
------------------------
An event (one row of the sampling stage, see :mod:`dbkmc.core.sampling`) has the
vacancy at ``vacancy_site`` in state A and at ``hop_site`` in state B; the atom
on ``hop_site`` in A sits on ``vacancy_site`` in B. By default the fingerprints
use the ideal (unrelaxed) lattice, because lattice kMC lives there.

- *Kolmogorov* fingerprint ``F_S^KOL`` (``KOL_A``, ``KOL_B``): the atoms within
  ``r_cut`` of the vacancy of state S, centred on that vacancy. It knows
  nothing about the other state.
- *Transition-wise* fingerprints ``F_{A∪B:A}`` and ``F_{A∪B:B}`` (``TW_A``,
  ``TW_B``): the union of the atoms within ``r_cut`` of either vacancy site,
  described once with the occupation of A and once with that of B, **both
  centred on the jump midpoint** (the midpoint of the two vacancy sites).

Why the midpoint: the paper leaves the centre of the transition-wise
fingerprint open. Centring on the vacancy of A would make ``F_{A∪B:B}`` of a
jump differ from ``F_{A∪B:A}`` of the reverse jump. The midpoint is the one
point both directions share, and the union is symmetric in A and B, so for the
reverse jump (B -> A) ``TW_A`` and ``TW_B`` swap exactly, as do ``KOL_A`` and
``KOL_B``. On the lattice, neighbours are listed in a canonical order of their
offsets from the centre, so the swapped fingerprints are the same numbers
computed in the same order (bit-identical on one device in practice).
Union atoms farther than ``R_c`` from the midpoint contribute exactly zero
(``f_C = 0``); lattice sites within ``R_c`` of the midpoint but outside the
union (a thin shell where ``f_C`` is below ~2e-3) are left out by definition.

Periodic images: the lattice path enumerates lattice vectors around the centre
and maps them onto sites modulo the supercell, so every periodic image within
the cutoff counts, even when ``r_cut`` exceeds half the box. The fingerprints
of explicit (relaxed) positions
(:func:`dbkmc.detailed_balance.relaxed_fingerprints.structure_fingerprints`)
use minimum images and need ``r_cut < box / 2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.aev import AEVParams, aev
from dbkmc.detailed_balance.windows import lattice_windows

# AEVParams lives in dbkmc.detailed_balance.aev; it is named here too because every caller of the
# featurizer passes one.
__all__ = ["FINGERPRINT_KINDS", "AEVParams", "featurize_events", "kolmogorov_fingerprint", "transition_fingerprints"]

FINGERPRINT_KINDS: tuple[str, ...] = ("KOL_A", "KOL_B", "TW_A", "TW_B")
"""Keys of :func:`featurize_events`: Kolmogorov (A, B) and transition-wise (A∪B:A, A∪B:B)."""

_EVENTS_PER_BLOCK = 8192   # events decoded at once in :func:`featurize_events` (bounds memory)


def _columns(events: Any, names: Sequence[str]) -> dict[str, list]:
    if hasattr(events, "columns"):  # pandas DataFrame
        missing = [n for n in names if n not in events.columns]
        if missing:
            raise ValueError(f"fingerprints: events lack columns {missing}")
        return {n: events[n].tolist() for n in names}
    events = list(events)
    try:
        return {n: [e[n] for e in events] for n in names}
    except KeyError as exc:
        raise ValueError(f"fingerprints: event lacks field {exc}") from None


def _species_tables(event_species: list, species: Sequence[str] | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Global species list, per-event species-string id, and (n_ids, 10) local -> global index map."""
    as_str = [s if isinstance(s, str) else ",".join(s) for s in event_species]
    distinct = sorted(set(as_str))
    if species is None:
        if len(distinct) > 1:
            raise ValueError(f"fingerprints: events mix species lists {distinct}; pass species=")
        species = distinct[0].split(",") if distinct else []
    species = list(species)
    remap = np.full((max(len(distinct), 1), 10), -1, dtype=np.int64)
    for i, text in enumerate(distinct):
        for local, name in enumerate(text.split(",")):
            if name not in species:
                raise ValueError(f"fingerprints: element {name!r} not in species {species}")
            remap[i, local] = species.index(name)
    ids = {t: i for i, t in enumerate(distinct)}
    return species, np.array([ids[s] for s in as_str], dtype=np.int64), remap


def _decode_occupations(texts: Sequence[str], n_sites: int, species_id: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """(E, n_sites) global element index per site, -1 = vacancy."""
    if any(len(t) != n_sites for t in texts):
        raise ValueError(f"fingerprints: occupation length differs from the lattice's {n_sites} sites")
    raw = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8).reshape(len(texts), n_sites)
    vac = raw == ord("V")
    digit = raw.astype(np.int64) - ord("0")
    if np.any(~vac & ((digit < 0) | (digit > 9))):
        raise ValueError("fingerprints: occupation characters must be '0'..'9' or 'V'")
    occ = np.where(vac, -1, remap[species_id[:, None], np.clip(digit, 0, 9)])
    if np.any(~vac & (occ < 0)):
        raise ValueError("fingerprints: occupation uses a species index beyond the event's species list")
    return occ.astype(np.int8)


def featurize_events(
    events: Sequence[Mapping] | Any,
    params: AEVParams | None = None,
    device: torch.device | str = "cpu",
    *,
    dtype: torch.dtype = torch.float64,
    species: Sequence[str] | None = None,
    kinds: Sequence[str] = FINGERPRINT_KINDS,
) -> dict[str, Tensor]:
    """Ideal-lattice fingerprints of many events: ``{kind: (n_events, D)}`` for kind in ``kinds``.

    ``events``: event rows (dicts or a DataFrame) with ``occupation``,
    ``vacancy_site``, ``hop_site``, ``lattice``, ``supercell``, ``a`` and
    ``species``. ``species`` (default: the events' common list) fixes the
    element order of the AEV. Neighbour offsets are tabulated once per
    lattice and jump direction; each event only gathers the species on them.
    """
    p = params or AEVParams()
    bad = set(kinds) - set(FINGERPRINT_KINDS)
    if bad:
        raise ValueError(f"fingerprints: unknown kinds {sorted(bad)} (choose from {FINGERPRINT_KINDS})")
    cols = _columns(events, ("occupation", "vacancy_site", "hop_site", "lattice", "supercell", "a", "species"))
    n_events = len(cols["occupation"])
    elements, species_id, remap = _species_tables(cols["species"], species)
    n_species = len(elements)
    dev = torch.device(device)
    out = {k: torch.empty((n_events, p.dim(n_species)), dtype=dtype, device=dev) for k in kinds}
    groups: dict[tuple[str, int, float], list[int]] = {}
    for i, key in enumerate(zip(cols["lattice"], cols["supercell"], cols["a"])):
        groups.setdefault((str(key[0]), int(key[1]), float(key[2])), []).append(i)
    for (kind, n, a), rows in groups.items():
        lattice = Lattice(kind, n, a)
        for start in range(0, len(rows), _EVENTS_PER_BLOCK):
            idx = np.asarray(rows[start:start + _EVENTS_PER_BLOCK])
            occ_a = _decode_occupations([cols["occupation"][i] for i in idx], lattice.n_sites,
                                        species_id[idx], remap)
            vac = np.asarray([cols["vacancy_site"][i] for i in idx], dtype=np.int64)
            hop = np.asarray([cols["hop_site"][i] for i in idx], dtype=np.int64)
            _featurize_group(lattice, occ_a, vac, hop, idx, n_species, p, out, dtype, dev)
    return out


def _featurize_group(
    lattice: Lattice, occ_a: np.ndarray, vac: np.ndarray, hop: np.ndarray, idx: np.ndarray,
    n_species: int, p: AEVParams, out: dict[str, Tensor], dtype: torch.dtype, dev: torch.device,
) -> None:
    rows = np.arange(len(vac))
    if np.any((occ_a == -1).sum(1) != 1) or np.any(occ_a[rows, vac] != -1):
        raise ValueError("fingerprints: every event needs exactly one vacancy, at vacancy_site")
    is_nb = lattice.neighbors[vac] == hop[:, None]
    if not is_nb.any(1).all():
        raise ValueError("fingerprints: hop_site is not a first neighbour of vacancy_site")
    path = is_nb.argmax(1)
    occ_b = occ_a.copy()
    occ_b[rows, vac], occ_b[rows, hop] = occ_a[rows, hop], -1
    tables = lattice_windows(lattice.kind, lattice.a, p.r_cut)
    half = lattice.half_coords

    def run(positions: np.ndarray, spec_a: np.ndarray, spec_b: np.ndarray, kind_a: str, kind_b: str,
            rows_out: np.ndarray) -> None:
        want = [k for k in (kind_a, kind_b) if k in out]
        if not want:
            return
        spec = np.concatenate([spec_a if k == kind_a else spec_b for k in want])
        res = aev(None, torch.as_tensor(positions, dtype=dtype, device=dev),
                  torch.as_tensor(spec, device=dev), n_species, p)
        target = torch.as_tensor(rows_out, device=dev)
        for j, k in enumerate(want):
            out[k][target] = res[j * len(rows_out):(j + 1) * len(rows_out)]

    if "KOL_A" in out or "KOL_B" in out:
        sites_a = lattice.site_at(half[vac][:, None, :] + tables.kol_offsets)
        sites_b = lattice.site_at(half[hop][:, None, :] + tables.kol_offsets)
        run(tables.kol_positions, occ_a[rows[:, None], sites_a], occ_b[rows[:, None], sites_b],
            "KOL_A", "KOL_B", idx)
    if "TW_A" in out or "TW_B" in out:
        group = tables.tw_group[path]
        for g in np.unique(group):
            sel = np.flatnonzero(group == g)
            sites = lattice.site_at(half[vac[sel]][:, None, :] + tables.tw_offsets[path[sel]])
            run(tables.tw_positions[g], occ_a[sel[:, None], sites], occ_b[sel[:, None], sites],
                "TW_A", "TW_B", idx[sel])


def kolmogorov_fingerprint(
    event: Mapping, params: AEVParams | None = None, state: str = "A", *,
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
    species: Sequence[str] | None = None,
) -> Tensor:
    """F_S^KOL, shape (D,): atoms within r_cut of the vacancy of state S, centred on it."""
    if state not in ("A", "B"):
        raise ValueError(f"fingerprints: state must be 'A' or 'B', got {state!r}")
    kind = f"KOL_{state}"
    return featurize_events([event], params, device, dtype=dtype, species=species, kinds=(kind,))[kind][0]


def transition_fingerprints(
    event: Mapping, params: AEVParams | None = None, *,
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
    species: Sequence[str] | None = None,
) -> tuple[Tensor, Tensor]:
    """(F_{A∪B:A}, F_{A∪B:B}), each (D,): the union environment in states A and B, centred on the jump midpoint."""
    res = featurize_events([event], params, device, dtype=dtype, species=species, kinds=("TW_A", "TW_B"))
    return res["TW_A"][0], res["TW_B"][0]
