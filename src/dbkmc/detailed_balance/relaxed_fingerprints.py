"""The four fingerprints of one jump from explicit (e.g. relaxed) atom positions.

The same AEVs as :func:`dbkmc.detailed_balance.fingerprints.featurize_events`
(Kolmogorov windows centred on each vacancy, the transition-wise union centred
on the jump midpoint), but for atoms anywhere in an orthorhombic periodic box
rather than on the ideal lattice. Periodic images are minimum images, so
``r_cut`` must be below half the box.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from dbkmc.detailed_balance.aev import AEVParams, aev
from dbkmc.detailed_balance.fingerprints import FINGERPRINT_KINDS

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
