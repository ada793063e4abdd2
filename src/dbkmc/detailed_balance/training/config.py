"""Hyper-parameters of one voting ensemble (:class:`TrainConfig`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

PROGRESS_EVERY = 10
"""Training logs a progress line every PROGRESS_EVERY epochs (and at the first and the last)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one ensemble (the workflow fills them from the config).

    ``sas_lambda`` only acts on M_SAS. ``eval_batch_size`` bounds memory when
    evaluating, not the optimisation. The ``models`` keys of the config that
    set these fields are :data:`dbkmc.stages.keys.TRAIN_CONFIG_KEYS`.
    """

    hidden: tuple[int, ...] = (128, 64)
    dropout: float = 0.05
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 300
    patience: int = 30
    n_members: int = 10
    sas_lambda: float = 0.1
    seed: int = 0
    eval_batch_size: int = 8192

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.n_members < 1 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"training: n_members, batch_size, max_epochs and patience must be >= 1 ({self})")
        if self.lr <= 0 or self.weight_decay < 0 or self.sas_lambda < 0:
            raise ValueError(f"training: need lr > 0, weight_decay >= 0, sas_lambda >= 0 ({self})")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data or {}) - known
        if unknown:
            raise ValueError(f"training: unknown settings {sorted(unknown)}")
        return cls(**dict(data or {}))

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig(**{**asdict(self), **changes})

    def sas_lambda_of(self, kind: str) -> float:
        """The weight of the antisymmetry penalty for a model of ``kind``: ``sas_lambda`` for M_SAS, else 0."""
        return self.sas_lambda if kind == "M_SAS" else 0.0
