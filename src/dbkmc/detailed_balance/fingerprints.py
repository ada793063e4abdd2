r"""ANI-style atomic environment vectors (AEVs) of vacancy jumps, in torch.

Physics
-------
An AEV describes the atoms around a reference point ``i`` (Smith, Isayev and
Roitberg, ANI-1, Chem. Sci. 2017). Here ``i`` is a point in space, a vacancy
site or the jump midpoint, never an atom. With ``R_ij`` the distance from ``i``
to neighbour ``j`` and the cosine cutoff

    f_C(R) = 0.5 cos(pi R / R_c) + 0.5   for R <= R_c,   0 otherwise,

the *radial* sub-vector of element X is

    G_m^R(X) = sum_{j in X} exp(-eta_R (R_ij - R_s,m)^2) f_C(R_ij)

and the *angular* sub-vector of the unordered element pair (X, Y) is

    G_m^A(X,Y) = 2^(1-zeta) sum_{j<k} (1 + cos(theta_ijk - theta_s))^zeta
                 exp(-eta_A ((R_ij + R_ik)/2 - R_s)^2) f_C(R_ij) f_C(R_ik),

where ``theta_ijk`` is the angle at ``i`` between ``j`` and ``k`` and the sum
runs over pairs with {species_j, species_k} = {X, Y}. **Each unordered pair of
neighbours {j, k} (j != k) is counted once**, as ANI does. The angular terms
use their own cutoff ``r_cut_angular`` (default: ``r_cut``).

Layout (the same as torchani): ``[radial | angular]``; radial blocks by element
X in species order, ``R_s`` fastest; angular blocks by element pair in
upper-triangle order (0,0), (0,1), ..., (1,1), ..., then ``R_s`` (angular
grid), then ``theta_s`` fastest. Unlike torchani, the radial terms carry no
factor 0.25 and ``theta_ijk`` is not squeezed by 0.95 (``cos(theta - theta_s)``
is computed as ``cos t cos t_s + sin t sin t_s`` with ``sin t`` from a cross
product, so gradients stay finite for collinear neighbours).

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
the cutoff counts, even when ``r_cut`` exceeds half the box. The relaxed path
(:func:`structure_fingerprints`) uses minimum images and needs
``r_cut < box / 2``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dbkmc.core.lattice import BASIS_HALF, NN_VECTORS, Lattice

FINGERPRINT_KINDS: tuple[str, ...] = ("KOL_A", "KOL_B", "TW_A", "TW_B")
"""Keys of :func:`featurize_events`: Kolmogorov (A, B) and transition-wise (A∪B:A, A∪B:B)."""

_TINY = 1e-30           # floor under squared lengths before a sqrt (finite gradients)
_CHUNK_ELEMENTS = 1 << 24  # rough per-chunk budget of tensor elements in :func:`aev`
_EVENTS_PER_BLOCK = 8192   # events decoded at once in :func:`featurize_events` (bounds memory)


def ani_grid(start: float, stop: float, steps: int) -> tuple[float, ...]:
    """ANI's shift grid: ``steps`` evenly spaced values from ``start`` towards ``stop``, excluding ``stop``."""
    return tuple(start + (stop - start) / steps * j for j in range(steps))


@dataclass(frozen=True)
class AEVParams:
    """AEV hyper-parameters (ANI-1x-like defaults with a 6 Å cutoff).

    Grids left as ``None`` are filled in: ``R_s`` = 16 shifts from 0.9 Å
    towards ``r_cut``; ``R_s_angular`` = 4 shifts from 0.9 Å towards
    ``r_cut_angular``; ``theta_s`` = 8 sections ``pi/16 + j pi/8``.
    """

    r_cut: float = 6.0
    r_cut_angular: float | None = None
    eta_R: float = 16.0
    R_s: tuple[float, ...] | None = None
    eta_A: float = 8.0
    zeta: float = 32.0
    theta_s: tuple[float, ...] | None = None
    R_s_angular: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        r_cut = float(self.r_cut)
        r_ang = r_cut if self.r_cut_angular is None else float(self.r_cut_angular)
        put(self, "r_cut", r_cut)
        put(self, "r_cut_angular", r_ang)
        for name in ("eta_R", "eta_A", "zeta"):
            put(self, name, float(getattr(self, name)))
        grids = {
            "R_s": ani_grid(0.9, r_cut, 16),
            "R_s_angular": ani_grid(0.9, r_ang, 4),
            "theta_s": ani_grid(math.pi / 16, math.pi + math.pi / 16, 8),
        }
        for name, default in grids.items():
            value = getattr(self, name)
            put(self, name, default if value is None else tuple(float(v) for v in value))
        if not r_cut > 0 or not 0 < r_ang <= r_cut:
            raise ValueError(f"fingerprints: need 0 < r_cut_angular <= r_cut, got {r_ang} and {r_cut}")
        if not (self.eta_R > 0 and self.eta_A > 0 and self.zeta > 0):
            raise ValueError("fingerprints: eta_R, eta_A and zeta must be > 0")
        if not (self.R_s and self.R_s_angular and self.theta_s):
            raise ValueError("fingerprints: the R_s, R_s_angular and theta_s grids must not be empty")

    @property
    def n_radial(self) -> int:
        """Length of one radial sub-vector (one element)."""
        return len(self.R_s)  # type: ignore[arg-type]

    @property
    def n_angular(self) -> int:
        """Length of one angular sub-vector (one element pair)."""
        return len(self.R_s_angular) * len(self.theta_s)  # type: ignore[arg-type]

    def dim(self, n_species: int) -> int:
        """AEV length for ``n_species`` elements."""
        return n_species * self.n_radial + n_species * (n_species + 1) // 2 * self.n_angular

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for checkpoints); :meth:`from_dict` inverts it."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AEVParams:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"fingerprints: unknown AEV parameters {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def feature_labels(species: Sequence[str], params: AEVParams) -> list[str]:
    """Names of the AEV components, in output order (e.g. ``R:Cu:2.49``, ``A:Cu-Ni:2.17:0.59``)."""
    labels = [f"R:{x}:{r:.3g}" for x in species for r in params.R_s]  # type: ignore[union-attr]
    for a in range(len(species)):
        for b in range(a, len(species)):
            labels += [f"A:{species[a]}-{species[b]}:{r:.3g}:{t:.3g}"
                       for r in params.R_s_angular for t in params.theta_s]  # type: ignore[union-attr]
    return labels


# --------------------------------------------------------------------------- AEV core


def cutoff_cosine(r: Tensor, r_c: float) -> Tensor:
    """f_C(R) = 0.5 cos(pi R / R_c) + 0.5 for R <= R_c, else 0."""
    return torch.where(r <= r_c, 0.5 * torch.cos(r * (math.pi / r_c)) + 0.5, torch.zeros_like(r))


def _radial_terms(d: Tensor, p: AEVParams) -> Tensor:
    """(..., M) distances -> (..., M, n_R): exp(-eta_R (R - R_s)^2) f_C(R)."""
    shifts = d.new_tensor(p.R_s)
    return torch.exp(-p.eta_R * (d.unsqueeze(-1) - shifts) ** 2) * cutoff_cosine(d, p.r_cut).unsqueeze(-1)


def _angular_terms(rj: Tensor, rk: Tensor, dj: Tensor, dk: Tensor, p: AEVParams) -> Tensor:
    """Per pair (j, k): (..., P, n_Rs_A * n_theta), ``R_s`` slow and ``theta_s`` fast."""
    theta_s = dj.new_tensor(p.theta_s)
    djk = dj * dk
    cos_t = (rj * rk).sum(-1) / djk
    cross = torch.linalg.cross(rj, rk, dim=-1)
    sin_t = torch.sqrt(torch.clamp((cross * cross).sum(-1), min=_TINY)) / djk
    cos_dev = cos_t.unsqueeze(-1) * torch.cos(theta_s) + sin_t.unsqueeze(-1) * torch.sin(theta_s)
    # 2^(1-zeta) (1 + cos)^zeta, written as 2 ((1 + cos) / 2)^zeta (no 2^zeta overflow)
    f_angle = 2.0 * torch.clamp(0.5 * (1.0 + cos_dev), min=0.0) ** p.zeta
    shifts = dj.new_tensor(p.R_s_angular)
    mean_d = (0.5 * (dj + dk)).unsqueeze(-1)
    f_rad = torch.exp(-p.eta_A * (mean_d - shifts) ** 2)
    f_rad = f_rad * (cutoff_cosine(dj, p.r_cut_angular) * cutoff_cosine(dk, p.r_cut_angular)).unsqueeze(-1)
    return (f_rad.unsqueeze(-1) * f_angle.unsqueeze(-2)).flatten(-2)


def _distances(rel: Tensor) -> Tensor:
    return torch.sqrt(torch.clamp((rel * rel).sum(-1), min=_TINY))


def _triu_index(n_species: int, device: torch.device) -> Tensor:
    """(S, S) -> index of the unordered element pair, in upper-triangle order."""
    a, b = torch.triu_indices(n_species, n_species, device=device)
    out = torch.zeros(n_species, n_species, dtype=torch.long, device=device)
    out[a, b] = torch.arange(a.numel(), device=device)
    out[b, a] = out[a, b]
    return out


def aev(
    ref_points: Tensor | None,
    neighbor_positions: Tensor,
    species: Tensor,
    n_species: int,
    params: AEVParams | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Batched AEVs of B reference points; (B, D) with D = ``params.dim(n_species)``.

    Args:
        ref_points: (B, 3) reference points ``i``, or ``None`` when
            ``neighbor_positions`` are already relative to them. Periodic images
            are the caller's business (pass the image positions).
        neighbor_positions: (B, M, 3) neighbour positions, padded to a common
            M. A (M, 3) or (1, M, 3) tensor is shared by all B rows, which then
            differ only in species: the geometric terms are computed once.
        species: (B, M) element indices ``0..n_species-1``; a negative value
            means "no atom" (padding, vacancy).
        n_species: number of elements.
        params: AEV parameters (default :class:`AEVParams`).
        mask: optional (B, M) bool, False = no atom (combined with ``species``).

    Dtype and device follow ``neighbor_positions``. Each unordered neighbour
    pair enters the angular sum once.
    """
    p = params or AEVParams()
    species = torch.as_tensor(species, device=neighbor_positions.device).long()
    if species.dim() != 2:
        raise ValueError(f"aev: species must be (B, M), got shape {tuple(species.shape)}")
    n_rows, n_nb = species.shape
    pos = neighbor_positions.unsqueeze(0) if neighbor_positions.dim() == 2 else neighbor_positions
    if pos.dim() != 3 or pos.shape[1:] != (n_nb, 3) or pos.shape[0] not in (1, n_rows):
        raise ValueError(f"aev: neighbor_positions shape {tuple(neighbor_positions.shape)} "
                         f"does not match species {tuple(species.shape)}")
    if ref_points is not None:
        pos = pos - ref_points.to(pos).reshape(-1, 1, 3)
    valid = species >= 0
    if mask is not None:
        valid = valid & mask.to(device=valid.device, dtype=torch.bool)
    if species.numel() and int(species.max()) >= n_species:
        raise ValueError(f"aev: species index >= n_species ({n_species})")
    if pos.shape[0] == 1:
        return _aev_shared(pos[0], species, valid, n_species, p)
    if pos.shape[0] != n_rows:
        pos = pos.expand(n_rows, -1, -1)
    return _aev_rows(pos, species, valid, n_species, p)


def _species_onehot(species: Tensor, valid: Tensor, n_species: int, dtype: torch.dtype) -> Tensor:
    """(B, M) -> (B, S, M) indicator of 'neighbour j is element X'."""
    classes = torch.arange(n_species, device=species.device).view(1, -1, 1)
    return ((species.unsqueeze(1) == classes) & valid.unsqueeze(1)).to(dtype)


def _pair_onehot(species: Tensor, valid: Tensor, pj: Tensor, pk: Tensor, triu: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, M) -> (B, K, P) indicator of 'pair p is the element pair XY'."""
    sj, sk = species[:, pj].clamp(min=0), species[:, pk].clamp(min=0)
    ok = valid[:, pj] & valid[:, pk]
    pair = triu[sj, sk]
    n_pairs = triu.shape[0] * (triu.shape[0] + 1) // 2
    classes = torch.arange(n_pairs, device=species.device).view(1, -1, 1)
    return ((pair.unsqueeze(1) == classes) & ok.unsqueeze(1)).to(dtype)


def _chunks(n_rows: int, per_row: int) -> Iterable[slice]:
    step = max(1, _CHUNK_ELEMENTS // max(per_row, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _aev_shared(rel: Tensor, species: Tensor, valid: Tensor, n_species: int, p: AEVParams) -> Tensor:
    """All rows share the geometry (M, 3); only their species differ.

    With the symmetric pair table W[j, k] (zero diagonal) and the element
    indicators e_X, the angular sum over unordered pairs is
    ``sum_{j != k} e_X[j] e_Y[k] W[j, k]`` for X != Y and half of it for X = Y:
    two dense matrix products, no per-pair bookkeeping.
    """
    dtype, dev = rel.dtype, rel.device
    d = _distances(rel)
    radial = _radial_terms(d, p)                                         # (M, n_R)
    ang = torch.nonzero(d < p.r_cut_angular).flatten()                   # f_C > 0 only
    n_ang, n_feat = len(ang), p.n_angular
    r_a, d_a = rel[ang], d[ang]
    pj, pk = torch.triu_indices(n_ang, n_ang, offset=1, device=dev)
    w_pairs = _angular_terms(r_a[pj], r_a[pk], d_a[pj], d_a[pk], p)     # (P, n_A), pairs j < k
    w = rel.new_zeros((n_ang, n_ang, n_feat))
    w[pj, pk] = w_pairs
    w[pk, pj] = w_pairs
    w = w.reshape(n_ang, n_ang * n_feat)
    x, y = torch.triu_indices(n_species, n_species, device=dev)
    half = torch.where(x == y, 0.5, 1.0).to(dtype).view(1, -1, 1)
    out = []
    for sl in _chunks(len(species), n_species * (n_ang * n_feat * 2 + rel.shape[0])):
        e = _species_onehot(species[sl], valid[sl], n_species, dtype)   # (b, S, M)
        g_r = e @ radial                                                 # (b, S, n_R)
        e_ang = e[:, :, ang]                                             # (b, S, M_A)
        inner = (e_ang.reshape(-1, n_ang) @ w).reshape(len(e), n_species, n_ang, n_feat)
        g = torch.einsum("bxj,byjq->bxyq", e_ang, inner)                # ordered element pairs
        g_a = g[:, x, y] * half                                          # (b, K, n_A)
        out.append(torch.cat([g_r.flatten(1), g_a.flatten(1)], dim=1))
    return torch.cat(out) if out else rel.new_zeros((0, p.dim(n_species)))


def _aev_rows(rel: Tensor, species: Tensor, valid: Tensor, n_species: int, p: AEVParams) -> Tensor:
    """Every row has its own geometry (B, M, 3)."""
    dtype, dev = rel.dtype, rel.device
    n_nb = rel.shape[1]
    far = rel.new_tensor([2.0 * p.r_cut + 1.0, 0.0, 0.0])
    rel = torch.where(valid.unsqueeze(-1), rel, far)    # no-atom slots sit outside the cutoff
    pj, pk = torch.triu_indices(n_nb, n_nb, offset=1, device=dev)
    triu = _triu_index(n_species, dev)
    n_pairs_el = n_species * (n_species + 1) // 2
    out = []
    for sl in _chunks(len(species), (4 * p.n_angular + n_pairs_el) * len(pj) + (p.n_radial + n_species) * n_nb):
        r, s, v = rel[sl], species[sl], valid[sl]
        d = _distances(r)
        g_r = torch.bmm(_species_onehot(s, v, n_species, dtype), _radial_terms(d, p))
        angular = _angular_terms(r[:, pj], r[:, pk], d[:, pj], d[:, pk], p)
        g_a = torch.bmm(_pair_onehot(s, v, pj, pk, triu, dtype), angular)
        out.append(torch.cat([g_r.flatten(1), g_a.flatten(1)], dim=1))
    return torch.cat(out) if out else rel.new_zeros((0, p.dim(n_species)))


# --------------------------------------------------------------------------- lattice tables


def _canonical_order(v: np.ndarray) -> np.ndarray:
    """Rows sorted by (|v|^2, v_x, v_y, v_z): the canonical neighbour order."""
    return v[np.lexsort((v[:, 2], v[:, 1], v[:, 0], (v * v).sum(1)))]


@dataclass(frozen=True)
class _Tables:
    """Neighbour offsets of one lattice (kind, a, r_cut), in integer half-lattice units."""

    kol_offsets: np.ndarray    # (M_K, 3): sites within r_cut of a vacancy, centre excluded
    kol_positions: np.ndarray  # (M_K, 3) Angstrom, relative to the vacancy
    tw_offsets: np.ndarray     # (z, M_T, 3): per path, from vacancy_site; union ∩ ball(midpoint, r_cut)
    tw_positions: np.ndarray   # (z, M_T, 3) Angstrom, relative to the jump midpoint
    tw_group: np.ndarray       # (z,): min(path, reverse path); both share tw_positions


@lru_cache(maxsize=64)
def _lattice_tables(kind: str, a: float, r_cut: float) -> _Tables:
    h = a / 2.0
    c = int(math.ceil(r_cut / h)) + 2
    g = np.arange(-c, c + 1)
    cube = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1).reshape(-1, 3)
    parities = {tuple(b % 2) for b in BASIS_HALF[kind]}
    vecs = cube[[tuple(v) in parities for v in cube % 2]]     # all lattice vectors in the cube
    rc2 = r_cut * r_cut
    r2 = (vecs * vecs).sum(1) * (h * h)
    kol = _canonical_order(vecs[(r2 <= rc2) & (r2 > 0)])
    nn = NN_VECTORS[kind]
    offsets, quarter = [], []
    for jump in nn:
        union = vecs[(r2 <= rc2) | (((vecs - jump) ** 2).sum(1) * (h * h) <= rc2)]
        q = 2 * union - jump                                  # offset from the midpoint, units of a/4
        q = _canonical_order(q[(q * q).sum(1) * (a / 4.0) ** 2 <= rc2])  # beyond r_cut: f_C = 0
        quarter.append(q)
        offsets.append((q + jump) // 2)
    if len({len(q) for q in quarter}) != 1:
        raise RuntimeError("fingerprints: jump paths have different neighbour counts")
    reverse = np.array([int(np.flatnonzero((nn == -j).all(1))[0]) for j in nn])
    group = np.minimum(np.arange(len(nn)), reverse)
    for k, r in enumerate(reverse):
        assert np.array_equal(quarter[k], quarter[r]), "reverse jumps must share the midpoint table"
    return _Tables(kol, kol * h, np.stack(offsets), np.stack(quarter) * (a / 4.0), group)


# --------------------------------------------------------------------------- events


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
    tables = _lattice_tables(lattice.kind, lattice.a, p.r_cut)
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


# --------------------------------------------------------------------------- explicit positions


def structure_fingerprints(
    positions_a: np.ndarray | Tensor,
    positions_b: np.ndarray | Tensor,
    species: np.ndarray | Sequence[int],
    box: np.ndarray | Sequence[float],
    site_a: np.ndarray | Sequence[float],
    site_b: np.ndarray | Sequence[float],
    n_species: int,
    params: AEVParams | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> dict[str, Tensor]:
    """The four fingerprints of one event from explicit (e.g. relaxed) positions, ``{kind: (D,)}``.

    ``positions_a``/``positions_b``: (N, 3) atoms in A and B, same atom order;
    ``species``: (N,) element indices; ``box``: orthorhombic box lengths;
    ``site_a``/``site_b``: the vacancy sites of A and B (the centres). Minimum
    images, so ``r_cut`` must be below half the box. An atom belongs to the
    transition-wise union if it lies within ``r_cut`` of either vacancy site in
    A or in B (a definition symmetric in A and B).
    """
    p = params or AEVParams()
    box_t = torch.as_tensor(np.asarray(box, dtype=np.float64), dtype=dtype, device=device)
    if p.r_cut >= 0.5 * float(box_t.min()):
        raise ValueError(f"fingerprints: r_cut {p.r_cut} must be below half the box {box_t.tolist()}")
    pa = torch.as_tensor(positions_a, dtype=dtype, device=device)
    pb = torch.as_tensor(positions_b, dtype=dtype, device=device)
    spec = torch.as_tensor(np.asarray(species), dtype=torch.long, device=device)
    ca = torch.as_tensor(np.asarray(site_a, dtype=np.float64), dtype=dtype, device=device)
    cb = torch.as_tensor(np.asarray(site_b, dtype=np.float64), dtype=dtype, device=device)

    def mic(d: Tensor) -> Tensor:
        return d - box_t * torch.round(d / box_t)

    mid = ca + 0.5 * mic(cb - ca)
    rel = {"KOL_A": mic(pa - ca), "KOL_B": mic(pb - cb), "TW_A": mic(pa - mid), "TW_B": mic(pb - mid)}
    within = [mic(x - c).norm(dim=-1) <= p.r_cut for x in (pa, pb) for c in (ca, cb)]
    union = within[0] | within[1] | within[2] | within[3]
    keep = {"KOL_A": rel["KOL_A"].norm(dim=-1) <= p.r_cut, "KOL_B": rel["KOL_B"].norm(dim=-1) <= p.r_cut,
            "TW_A": union, "TW_B": union}
    n_max = max(int(k.sum()) for k in keep.values())
    pos = torch.zeros((4, n_max, 3), dtype=dtype, device=device)
    sp = torch.full((4, n_max), -1, dtype=torch.long, device=device)
    for i, kind in enumerate(FINGERPRINT_KINDS):
        sel = torch.nonzero(keep[kind]).flatten()
        pos[i, : len(sel)] = rel[kind][sel]
        sp[i, : len(sel)] = spec[sel]
    res = aev(None, pos, sp, n_species, p)
    return {kind: res[i] for i, kind in enumerate(FINGERPRINT_KINDS)}
