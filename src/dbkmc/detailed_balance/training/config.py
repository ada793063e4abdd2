"""Hyper-parameters of one voting ensemble (:class:`TrainConfig`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

PROGRESS_EVERY = 10
"""Training logs a progress line every PROGRESS_EVERY epochs (and at the first and the last)."""

ENERGY_TERM_KINDS: tuple[str, ...] = ("M_EXT",)
"""The model kinds whose loss may carry the whole-cell energy term (``energy_weight`` > 0)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one ensemble (the workflow fills them from the config).

    ``sas_lambda`` only acts on M_SAS. ``per_kind`` maps a model kind to settings that replace
    these for that kind only (:meth:`for_kind`); ``lr_final`` switches on a learning-rate decay. ``eval_batch_size`` bounds memory when
    evaluating, not the optimisation. ``energy_weight`` (M_EXT only, default 0 = off) adds the whole-cell
    energy term of :mod:`dbkmc.detailed_balance.training.energy_term` to the loss. The ``models`` keys of the config that
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
    lr_final: float | None = None
    energy_weight: float = 0.0
    per_kind: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "per_kind", {str(k): dict(v) for k, v in dict(self.per_kind or {}).items()})
        if self.lr_final is not None and not 0 < self.lr_final <= self.lr:
            raise ValueError(f"training: need 0 < lr_final <= lr ({self})")
        if self.n_members < 1 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"training: n_members, batch_size, max_epochs and patience must be >= 1 ({self})")
        if self.lr <= 0 or self.weight_decay < 0 or self.sas_lambda < 0 or not self.energy_weight >= 0:
            raise ValueError(f"training: need lr > 0, weight_decay >= 0, sas_lambda >= 0, energy_weight >= 0 ({self})")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def for_kind(self, kind: str) -> TrainConfig:
        """The settings for a model of ``kind``: these, with ``per_kind[kind]`` laid over them.

        (M_EXT, for example, trains small per-species networks longer, without dropout, with a
        decaying learning rate.)"""
        changes = self.per_kind.get(kind, {})
        out = self.replace(**changes, per_kind={}) if changes else self
        if out.energy_weight > 0 and kind not in ENERGY_TERM_KINDS:
            key = f"models.per_kind.{kind}.energy_weight" if "energy_weight" in changes else "models.energy_weight"
            raise ValueError(f"training: {key} = {out.energy_weight:g} > 0, but the whole-cell energy term needs an "
                             f"extensive state energy; only {', '.join(ENERGY_TERM_KINDS)} has one (set it to 0 for {kind})")
        return out

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (1-based): ``lr``, or with ``lr_final`` an exponential decay that
        reaches ``lr_final`` at ``max_epochs``."""
        if self.lr_final is None or self.max_epochs < 2:
            return self.lr
        return self.lr * (self.lr_final / self.lr) ** ((epoch - 1) / (self.max_epochs - 1))

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
