"""Fitting the M members of a voting ensemble: batched (one ``vmap``) or one after another.

The M members train together: their parameters are stacked
(``torch.func.stack_module_state``) and one ``vmap`` over the member
dimension evaluates all members on their own minibatches (each member has
its own initialisation, data order and dropout masks) in one batched pass.
Adam with L2 weight decay; the loss is the MSE of the target, plus for M_SAS
``lambda * mean |dE(A,B) + dE(B,A)|``, both in units of the standard
deviation sigma of the training targets (MSE / sigma^2 + lambda * L1 / sigma),
so ``lambda`` is dimensionless and a grid from 0 to 5 spans "negligible" to
"dominant" (in eV units the penalty weight is ``lambda * sigma``); for M_EXT
with ``energy_weight`` > 0, plus the whole-cell energy term of
:mod:`~dbkmc.detailed_balance.training.energy_term` (batched fits only). Early
stopping is per member: each member keeps the state of its best validation
loss and stops improving it after ``patience`` epochs without progress; the
pass ends when every member has stopped (or at ``max_epochs``).
:func:`fit_members` with ``batched=False`` trains the same members one after
another as plain modules, with the same data order (the reference for the
benchmark).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state

from dbkmc.detailed_balance.models import MODEL_KINDS, Ensemble, TransitionModel, build_model, fingerprint_of
from dbkmc.detailed_balance.training.config import PROGRESS_EVERY, TrainConfig
from dbkmc.detailed_balance.training.data import DirectedData, EventData, Split
from dbkmc.detailed_balance.training.energy_term import EnergyTerm

log = logging.getLogger(__package__)  # one logger for the training package: dbkmc.detailed_balance.training


@dataclass
class FitResult:
    """A trained ensemble and how its training went."""

    ensemble: Ensemble
    best_epoch: list[int]          # per member, 1-based
    best_val_loss: list[float]     # per member
    n_epochs: int                  # epochs run
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: train/val loss per member

    def summary(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "n_epochs": self.n_epochs, "seconds": self.seconds}


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Fork the global torch RNG(s) and seed them (leaves the caller's RNG state alone)."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def init_members(kind: str, feature_dim: int, train: DirectedData, config: TrainConfig,
                 device: str = "cpu", n_species: int | None = None) -> list[TransitionModel]:
    """``config.n_members`` fresh models (seeded), with input/output standardisation from ``train``."""
    dev = torch.device(device)
    dtype = next(iter(train.x.values())).dtype
    with _seeded(config.seed, dev):
        members = [build_model(kind, feature_dim, config.hidden, config.dropout, n_species).to(device=dev, dtype=dtype)
                   for _ in range(config.n_members)]
    x_a, x_b = train.inputs(members[0].fingerprint)
    members[0].fit_standardization(x_a, x_b, train.y[members[0].target])
    stats = dict(members[0].named_buffers())   # the standardisation, shared by all members
    for m in members[1:]:
        m.load_state_dict(stats, strict=False)
    return members


def _permutations(n_members: int, n: int, seed: int, epoch: int) -> list[Tensor]:
    """Per-member data order of one epoch (the same whether members train batched or not)."""
    out = []
    for k in range(n_members):
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, k, epoch]).generate_state(1)[0]))
        out.append(torch.randperm(n, generator=g))
    return out


def _member_loss(model_call: Callable[..., Tensor], sas_lambda: float, scale: float) -> Callable[..., Tensor]:
    """Loss of one member in units of the target scale ``sigma``.

    ``mean((f(A,B) - y)^2) / sigma^2``, plus ``lambda * mean |f(A,B) + f(B,A)| / sigma``
    when ``sas_lambda`` > 0, so that ``lambda`` is dimensionless (in eV
    units the penalty weight is ``lambda * sigma``).
    """

    def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], x_a: Tensor, x_b: Tensor, y: Tensor) -> Tensor:
        pred = model_call(params, buffers, x_a, x_b)
        out = ((pred - y) ** 2).mean() / scale**2
        if sas_lambda > 0:
            out = out + sas_lambda * (pred + model_call(params, buffers, x_b, x_a)).abs().mean() / scale
        return out

    return loss


def target_scale(y: Tensor) -> float:
    """sigma of the loss: the standard deviation of the training targets (1 if degenerate)."""
    sigma = float(y.detach().to(torch.float64).std(unbiased=False)) if len(y) > 1 else 0.0
    return sigma if sigma > 0 else 1.0


def _functional(base: TransitionModel, training: bool) -> Callable[..., Tensor]:
    module = copy.deepcopy(base).to("meta").train(training)

    def call(params: dict[str, Tensor], buffers: dict[str, Tensor], x_a: Tensor, x_b: Tensor) -> Tensor:
        return functional_call(module, (params, buffers), (x_a, x_b))

    return call


def _plain(model: TransitionModel) -> Callable[..., Tensor]:
    """The module itself behind the functional signature of :func:`_functional` (params ignored)."""

    def call(params: dict[str, Tensor], buffers: dict[str, Tensor], x_a: Tensor, x_b: Tensor) -> Tensor:
        return model(x_a, x_b)

    return call


class _EarlyStopping:
    """Per-member best validation loss, best epoch and patience counter."""

    def __init__(self, n_members: int, patience: int) -> None:
        self.best = torch.full((n_members,), math.inf, dtype=torch.float64)
        self.best_epoch = [0] * n_members
        self.stale = torch.zeros(n_members, dtype=torch.long)
        self.patience = patience

    @property
    def active(self) -> Tensor:
        return self.stale < self.patience

    def update(self, val_loss: Tensor, epoch: int) -> Tensor:
        """Record the epoch's validation losses (M,); returns the mask of members that improved."""
        val = val_loss.detach().to("cpu", torch.float64)
        improved = (val < self.best) & self.active
        still = self.active
        self.best = torch.where(improved, val, self.best)
        self.stale = torch.where(improved, torch.zeros_like(self.stale), self.stale + still.long())
        for k in torch.nonzero(improved).flatten().tolist():
            self.best_epoch[k] = epoch
        return improved

    @property
    def done(self) -> bool:
        return not bool(self.active.any())


def fit_members(
    members: Sequence[TransitionModel], train: DirectedData, val: DirectedData, config: TrainConfig,
    *, batched: bool = True, max_epochs: int | None = None, early_stopping: bool = True,
) -> FitResult:
    """Train ``members`` (from :func:`init_members`) and return the ensemble of their best states.

    ``batched=True``: all members in one vmapped pass. ``batched=False``:
    one after another as plain modules, trained in place (same data order;
    the benchmark's reference). ``max_epochs`` overrides ``config.max_epochs``;
    ``early_stopping=False`` runs every epoch (benchmarks).
    """
    cfg = config if max_epochs is None else config.replace(max_epochs=max_epochs)
    if not early_stopping:
        cfg = cfg.replace(patience=cfg.max_epochs + 1)
    dev = next(iter(train.x.values())).device
    start = time.perf_counter()
    with _seeded(cfg.seed + 1, dev):
        if batched:
            result = _fit_batched(list(members), train, val, cfg)
        else:
            result = _fit_sequential(list(members), train, val, cfg)
    result.seconds = time.perf_counter() - start
    return result


def _fit_batched(members: list[TransitionModel], train: DirectedData, val: DirectedData,
                 cfg: TrainConfig) -> FitResult:
    base = members[0]
    lam = cfg.sas_lambda_of(base.kind)
    energy = EnergyTerm.build(members, train, val, cfg, target_scale(train.y[base.target]))  # None: weight 0
    params, buffers = stack_module_state(members)
    buffers = {k: v.detach() for k, v in buffers.items()}
    best = {k: v.detach().clone() for k, v in params.items()}
    opt = torch.optim.Adam(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_a, x_b = train.inputs(base.fingerprint)
    y = train.y[base.target]
    sigma = target_scale(y)
    train_loss = torch.vmap(_member_loss(_functional(base, True), lam, sigma), in_dims=(0, 0, 0, 0, 0),
                            randomness="different")
    val_loss = torch.vmap(_member_loss(_functional(base, False), lam, sigma), in_dims=(0, 0, None, None, None))
    vx_a, vx_b = val.inputs(base.fingerprint)
    vy = val.y[base.target]
    stop = _EarlyStopping(len(members), cfg.patience)
    history: list[dict[str, Any]] = []
    epoch = 0
    for epoch in range(1, cfg.max_epochs + 1):
        order = torch.stack(_permutations(len(members), len(y), cfg.seed, epoch)).to(y.device)
        for group in opt.param_groups:
            group["lr"] = cfg.lr_at(epoch)
        losses = []
        for s in range(0, len(y), cfg.batch_size):
            idx = order[:, s:s + cfg.batch_size]
            loss = train_loss(params, buffers, x_a[idx], x_b[idx], y[idx])
            if energy is not None:
                loss = loss + energy.train_loss(params, buffers, epoch, s // cfg.batch_size)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            losses.append(loss.detach())
        with torch.no_grad():
            v = _chunked_val_loss(val_loss, params, buffers, vx_a, vx_b, vy, cfg.eval_batch_size)
            if energy is not None:
                v = v + energy.val_loss(params, buffers)
            improved = stop.update(v, epoch).to(y.device)
            for k, p in params.items():
                best[k] = torch.where(improved.view(-1, *([1] * (p.dim() - 1))), p.detach(), best[k])
        history.append({"epoch": epoch, "train_loss": torch.stack(losses).mean(0).tolist(), "val_loss": v.tolist()})
        if stop.done or epoch in (1, cfg.max_epochs) or epoch % PROGRESS_EVERY == 0:
            _log_epoch(base.kind, epoch, cfg.max_epochs, history[-1], stop)
        if stop.done:
            break
    return _result(base, best, buffers, stop, epoch, history)


def _log_epoch(kind: str, epoch: int, max_epochs: int, losses: Mapping[str, Any], stop: _EarlyStopping) -> None:
    """One progress line: the epoch's train and validation losses (mean over the members,
    in units of the target's scale), the best so far and how many members still train."""
    log.info("%s epoch %d/%d: train loss %.4g, val loss %.4g (best %.4g), %d/%d members training",
             kind, epoch, max_epochs, float(np.mean(losses["train_loss"])), float(np.mean(losses["val_loss"])),
             float(stop.best.mean()), int(stop.active.sum()), len(stop.best))


def _chunked_val_loss(fn: Callable[..., Tensor], params: dict[str, Tensor], buffers: dict[str, Tensor],
                      x_a: Tensor, x_b: Tensor, y: Tensor, batch: int) -> Tensor:
    """Validation loss (M,) over the whole set, evaluated in chunks (exact for the MSE and L1 means)."""
    total = None
    for s in range(0, len(y), batch):
        part = fn(params, buffers, x_a[s:s + batch], x_b[s:s + batch], y[s:s + batch]) * (min(batch, len(y) - s))
        total = part if total is None else total + part
    assert total is not None, "empty validation set"
    return total / len(y)


def _fit_sequential(members: list[TransitionModel], train: DirectedData, val: DirectedData,
                    cfg: TrainConfig) -> FitResult:
    base = members[0]
    if cfg.energy_weight > 0:
        raise ValueError("training: energy_weight > 0 (the M_EXT energy term) needs the batched fit")
    lam = cfg.sas_lambda_of(base.kind)
    x_a, x_b = train.inputs(base.fingerprint)
    y = train.y[base.target]
    vx_a, vx_b = val.inputs(base.fingerprint)
    vy = val.y[base.target]
    stop = _EarlyStopping(len(members), cfg.patience)
    n_epochs = 0
    for k, model in enumerate(members):
        loss_fn = _member_loss(_plain(model), lam, target_scale(y))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best_state = copy.deepcopy(model.state_dict())
        member_stop = _EarlyStopping(1, cfg.patience)
        for epoch in range(1, cfg.max_epochs + 1):
            order = _permutations(len(members), len(y), cfg.seed, epoch)[k].to(y.device)
            for group in opt.param_groups:
                group["lr"] = cfg.lr_at(epoch)
            model.train()
            for s in range(0, len(y), cfg.batch_size):
                idx = order[s:s + cfg.batch_size]
                loss = loss_fn({}, {}, x_a[idx], x_b[idx], y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                v = loss_fn({}, {}, vx_a, vx_b, vy).reshape(1)
            if bool(member_stop.update(v, epoch)[0]):
                best_state = copy.deepcopy(model.state_dict())
            if member_stop.done:
                break
        n_epochs = max(n_epochs, epoch)
        stop.best[k], stop.best_epoch[k] = member_stop.best[0], member_stop.best_epoch[0]
        log.info("%s member %d/%d: %d epochs, best val loss %.4g at epoch %d", base.kind, k + 1, len(members),
                 epoch, float(member_stop.best[0]), member_stop.best_epoch[0])
        model.load_state_dict(best_state)
    params, buffers = stack_module_state(members)
    return _result(base, {k: v.detach() for k, v in params.items()}, buffers, stop, n_epochs, [])


def _result(base: TransitionModel, params: dict[str, Tensor], buffers: dict[str, Tensor],
            stop: _EarlyStopping, n_epochs: int, history: list[dict[str, Any]]) -> FitResult:
    ensemble = Ensemble.from_stacked(base, params, buffers)
    return FitResult(ensemble, list(stop.best_epoch), stop.best.tolist(), n_epochs, 0.0, history)


def train_model(kind: str, data: EventData, split: Split, config: TrainConfig | None = None,
                device: str | None = None, *, train_idx: np.ndarray | None = None) -> FitResult:
    """Train a ``config.n_members`` ensemble of ``kind`` on ``split.train`` (or ``train_idx``).

    Early stopping watches the validation loss (the training objective, SAS
    penalty included, in eval mode) on ``split.val``. ``device`` (default:
    where ``data`` lives) is where the training runs.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"training: unknown model kind {kind!r} (choose from {MODEL_KINDS})")
    cfg = (config or TrainConfig()).for_kind(kind)
    if device is not None:
        data = data.to(device)
    train = data.directed(split.train if train_idx is None else train_idx)
    val = data.directed(split.val)
    members = init_members(kind, data.feature_dim_of(fingerprint_of(kind)), train, cfg, str(data.device),
                           n_species=len(data.species))
    return fit_members(members, train, val, cfg)
