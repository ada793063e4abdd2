"""Base classes of the detailed-balance model family: M_E (:class:`EnergyMLP`) and :class:`TransitionModel`.

The model kinds themselves live in :mod:`dbkmc.detailed_balance.models` (and M_EXT in
:mod:`dbkmc.detailed_balance.extensive_model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

_CONSTANT_FEATURE_RTOL = 1e-6  # std below this fraction of |mean| (plus a floor): a constant feature
_FEATURE_RESOLUTION = 1e-5
"""std below this fraction of the largest feature magnitude of the input: below float32 resolution, a constant.

A feature computed in float32 beside features of magnitude X carries rounding noise of about 1e-7 X (the
difference features |TW_A - TW_B| of the KRA input above all: tiny angular terms minus themselves leave
residues of an ulp of the larger terms). Standardised by its own tiny std, such noise becomes a
standardised input of order one, and the network learns it. Then the kMC, which forms TW_B of a jump from
the other state with another rounding, gets E_KRA(A->B) != E_KRA(B->A) by meV."""


class EnergyMLP(nn.Module):
    """M_E: ReLU MLP with dropout and a scalar output.

    The input is standardised with buffers ``x_mean``/``x_std`` and the output
    is ``y_shift + y_scale * net(x)``. The buffers are set from training data
    by :meth:`set_standardization` and live in the state dict, so a checkpoint
    is self-contained.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int] = (128, 64), dropout: float = 0.05) -> None:
        super().__init__()
        if in_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"EnergyMLP: bad sizes in_dim={in_dim}, hidden={tuple(hidden)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"EnergyMLP: dropout must be in [0, 1), got {dropout}")
        self.in_dim = int(in_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.dropout = float(dropout)
        layers: list[nn.Module] = []
        width = self.in_dim
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(self.dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("x_mean", torch.zeros(self.in_dim))
        self.register_buffer("x_std", torch.ones(self.in_dim))
        self.register_buffer("y_shift", torch.zeros(()))
        self.register_buffer("y_scale", torch.ones(()))

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_dim) -> (N,)."""
        z = (x - self.x_mean) / self.x_std
        return self.y_shift + self.y_scale * self.net(z).squeeze(-1)

    @torch.no_grad()
    def set_standardization(self, x: Tensor, y_shift: float = 0.0, y_scale: float = 1.0) -> None:
        """Input mean/std from the (N, in_dim) training inputs ``x``; output shift and scale.

        Constant features (std at float-rounding level of their mean, or below float32 resolution of the
        input's largest feature, see ``_FEATURE_RESOLUTION``) get std 1, so they pass through as a harmless
        constant.
        """
        x64 = x.detach().to(torch.float64)
        mean, std = x64.mean(0), x64.std(0, unbiased=False)
        scale = float((mean.abs() + std).max()) if mean.numel() else 0.0
        constant = std <= _CONSTANT_FEATURE_RTOL * mean.abs() + _FEATURE_RESOLUTION * scale + 1e-12
        std = torch.where(constant, torch.ones_like(std), std)
        self.x_mean.copy_(mean)
        self.x_std.copy_(std)
        self.y_shift.fill_(float(y_shift))
        self.y_scale.fill_(float(y_scale))

    def arch(self) -> dict[str, Any]:
        """Constructor kwargs (plain types)."""
        return {"in_dim": self.in_dim, "hidden": list(self.hidden), "dropout": self.dropout}


class TransitionModel(nn.Module):
    """Base of the model family: ``forward(x_a, x_b) -> (N,)`` from one M_E.

    Class attributes: ``kind`` (one of :data:`MODEL_KINDS`), ``fingerprint``
    ("TW" or "KOL", which pair of fingerprints the model reads) and
    ``target`` ("dE" or "E_KRA").
    """

    kind: ClassVar[str] = ""
    fingerprint: ClassVar[str] = "TW"
    target: ClassVar[str] = "dE"

    def __init__(self, feature_dim: int, hidden: Sequence[int] = (128, 64), dropout: float = 0.05) -> None:
        super().__init__()
        self.feature_dim = int(feature_dim)
        self.energy = EnergyMLP(self.energy_in_dim(self.feature_dim), hidden, dropout)

    @staticmethod
    def energy_in_dim(feature_dim: int) -> int:
        """Input size of M_E for fingerprints of size ``feature_dim``."""
        return 2 * feature_dim

    def energy_inputs(self, x_a: Tensor, x_b: Tensor) -> list[Tensor]:
        """The (N, in_dim) inputs on which ``forward`` evaluates M_E (for standardisation)."""
        raise NotImplementedError

    def arch(self) -> dict[str, Any]:
        """Constructor kwargs (plain types): ``build_model(kind, **arch)`` rebuilds the model."""
        return {"feature_dim": self.feature_dim, "hidden": list(self.energy.hidden), "dropout": self.energy.dropout}

    @torch.no_grad()
    def fit_standardization(self, x_a: Tensor, x_b: Tensor, y: Tensor) -> None:
        """Set M_E's input/output standardisation from training data (both directions included)."""
        inputs = torch.cat(self.energy_inputs(x_a, x_b))
        y64 = y.detach().to(torch.float64)
        shift = float(y64.mean()) if self.target == "E_KRA" else 0.0
        scale = float(y64.std(unbiased=False)) if len(y64) > 1 else 1.0
        self.energy.set_standardization(inputs, shift, scale if scale > 0 else 1.0)
