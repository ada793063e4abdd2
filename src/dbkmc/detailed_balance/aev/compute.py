"""AEV assembly: the radial and angular terms summed per element and element pair, for batches of points."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from dbkmc.detailed_balance.aev.params import AEVParams
from dbkmc.detailed_balance.aev.terms import AngularTerms, RadialTerms, angular_pair_table, distances

_CHUNK_ELEMENTS = 1 << 24  # rough per-chunk budget of tensor elements in :func:`aev`


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
    radial, angular = RadialTerms.from_params(p), AngularTerms.from_params(p)
    if pos.shape[0] == 1:
        return _aev_shared(pos[0], species, valid, n_species, radial, angular)
    if pos.shape[0] != n_rows:
        pos = pos.expand(n_rows, -1, -1)
    return _aev_rows(pos, species, valid, n_species, radial, angular)


def _species_onehot(species: Tensor, valid: Tensor, n_species: int, dtype: torch.dtype) -> Tensor:
    """(B, M) element indices -> (B, S, M) indicator e_X[j] of 'neighbour j is element X' (0 where not valid)."""
    classes = torch.arange(n_species, device=species.device).view(1, -1, 1)
    return ((species.unsqueeze(1) == classes) & valid.unsqueeze(1)).to(dtype)


def _triu_index(n_species: int, device: torch.device) -> Tensor:
    """(S, S) -> index of the unordered element pair, in upper-triangle order."""
    a, b = torch.triu_indices(n_species, n_species, device=device)
    out = torch.zeros(n_species, n_species, dtype=torch.long, device=device)
    out[a, b] = torch.arange(a.numel(), device=device)
    out[b, a] = out[a, b]
    return out


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


def _aev_shared(rel: Tensor, species: Tensor, valid: Tensor, n_species: int,
                radial_terms: RadialTerms, angular_terms: AngularTerms) -> Tensor:
    """All rows share the geometry (M, 3); only their species differ.

    With the symmetric pair table W[j, k] (zero diagonal, :func:`angular_pair_table`)
    and the element indicators e_X, the angular sum over unordered pairs is
    ``sum_{j != k} e_X[j] e_Y[k] W[j, k]`` for X != Y and half of it for X = Y:
    two dense matrix products, no per-pair bookkeeping.
    """
    dtype, dev = rel.dtype, rel.device
    d = distances(rel)
    radial = radial_terms(d)                                             # (M, n_R)
    ang, w = angular_pair_table(rel, d, angular_terms)                  # (M_A,), (M_A, M_A * n_A)
    n_ang, n_feat = len(ang), angular_terms.sublength
    x, y = torch.triu_indices(n_species, n_species, device=dev)
    half = torch.where(x == y, 0.5, 1.0).to(dtype).view(1, -1, 1)
    n_out = n_species * radial_terms.sublength + len(x) * n_feat
    out = []
    for sl in _chunks(len(species), n_species * (n_ang * n_feat * 2 + rel.shape[0])):
        e = _species_onehot(species[sl], valid[sl], n_species, dtype)    # (b, S, M)
        g_r = e @ radial                                                 # (b, S, n_R)
        e_ang = e[:, :, ang]                                             # (b, S, M_A)
        inner = (e_ang.reshape(-1, n_ang) @ w).reshape(len(e), n_species, n_ang, n_feat)
        g = torch.einsum("bxj,byjq->bxyq", e_ang, inner)                # ordered element pairs
        g_a = g[:, x, y] * half                                          # (b, K, n_A)
        out.append(torch.cat([g_r.flatten(1), g_a.flatten(1)], dim=1))
    return torch.cat(out) if out else rel.new_zeros((0, n_out))


def _aev_rows(rel: Tensor, species: Tensor, valid: Tensor, n_species: int,
              radial_terms: RadialTerms, angular_terms: AngularTerms) -> Tensor:
    """Every row has its own geometry (B, M, 3)."""
    dtype, dev = rel.dtype, rel.device
    n_nb = rel.shape[1]
    far = rel.new_tensor([2.0 * radial_terms.cutoff + 1.0, 0.0, 0.0])
    rel = torch.where(valid.unsqueeze(-1), rel, far)    # no-atom slots sit outside the cutoff
    pj, pk = torch.triu_indices(n_nb, n_nb, offset=1, device=dev)
    triu = _triu_index(n_species, dev)
    n_pairs_el = n_species * (n_species + 1) // 2
    n_r, n_a = radial_terms.sublength, angular_terms.sublength
    out = []
    for sl in _chunks(len(species), (4 * n_a + n_pairs_el) * len(pj) + (n_r + n_species) * n_nb):
        r, s, v = rel[sl], species[sl], valid[sl]
        d = distances(r)
        g_r = torch.bmm(_species_onehot(s, v, n_species, dtype), radial_terms(d))
        angular = angular_terms(r[:, pj], r[:, pk], d[:, pj], d[:, pk])
        g_a = torch.bmm(_pair_onehot(s, v, pj, pk, triu, dtype), angular)
        out.append(torch.cat([g_r.flatten(1), g_a.flatten(1)], dim=1))
    return torch.cat(out) if out else rel.new_zeros((0, n_species * n_r + n_pairs_el * n_a))
