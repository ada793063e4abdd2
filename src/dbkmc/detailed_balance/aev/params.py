"""AEV hyper-parameters: cutoffs, widths and the shift grids, with ANI-1x-like defaults."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any


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
