r"""Training, evaluation and checkpoints of the model family in :mod:`dbkmc.detailed_balance.models`.

Data
----
:class:`EventData` holds the fingerprints and targets of the accepted events
of a dataset. :func:`split_events` splits them train/val/test 75/15/10,
stratified by composition, reproducibly. Every event enters **both
directions** in training and testing (:meth:`EventData.directed`): A -> B
with ``dE`` and B -> A with ``-dE`` (``TW_A``/``TW_B`` and ``KOL_A``/``KOL_B``
swapped; ``E_KRA`` unchanged; the barrier of B -> A is ``barrier_backward``).

Training
--------
The M members of a voting ensemble train together: their parameters are
stacked (``torch.func.stack_module_state``) and one ``vmap`` over the member
dimension evaluates all members on their own minibatches (each member has
its own initialisation, data order and dropout masks) in one batched pass.
Adam with L2 weight decay; the loss is the MSE of the target, plus for M_SAS
``lambda * mean |dE(A,B) + dE(B,A)|``, both in units of the standard
deviation sigma of the training targets (MSE / sigma^2 + lambda * L1 / sigma),
so ``lambda`` is dimensionless and a grid from 0 to 5 spans "negligible" to
"dominant" (in eV units the penalty weight is ``lambda * sigma``). Early stopping is per member: each
member keeps the state of its best validation loss and stops improving it
after ``patience`` epochs without progress; the pass ends when every member
has stopped (or at ``max_epochs``). :func:`fit_members` with
``batched=False`` trains the same members one after another as plain
modules, with the same data order (the reference for the benchmark).

Metrics
-------
RMSE of ``dE``, ``E_KRA`` and both barriers (``E_KRA ± dE/2`` against NEB),
and ``ddE = sqrt(mean (dE(A,B) + dE(B,A))^2)``, each from the ensemble mean
(``ensemble``) and per member (``member_mean``, ``member_std``).
"""

from __future__ import annotations

import copy
import logging
import math
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state

from dbkmc.detailed_balance.fingerprints import AEVParams, featurize_events
from dbkmc.detailed_balance.models import DE_KINDS, MODEL_KINDS, Ensemble, EnsemblePrediction, TransitionModel, barrier, build_model

log = logging.getLogger(__name__)
# Training logs a progress line every PROGRESS_EVERY epochs (and at the first and the last).
PROGRESS_EVERY = 10

SPLIT_FRACTIONS: tuple[float, float, float] = (0.75, 0.15, 0.10)
SAS_LAMBDAS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
LEARNING_CURVE_FRACTIONS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
CHECKPOINT_FORMAT = "dbkmc-model/1"
TARGETS: tuple[str, ...] = ("dE", "E_KRA", "barrier_forward", "barrier_backward")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one ensemble (the workflow fills them from the config).

    ``sas_lambda`` only acts on M_SAS. ``eval_batch_size`` bounds memory when
    evaluating, not the optimisation.
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


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DirectedData:
    """Jumps in both directions: rows ``[:n_events]`` are A -> B, rows ``[n_events:]`` B -> A."""

    x: dict[str, Tensor]        # TW_A, TW_B, KOL_A, KOL_B: (2n, D)
    y: dict[str, Tensor]        # dE, E_KRA, barrier: (2n,)
    n_events: int

    def __len__(self) -> int:
        return 2 * self.n_events

    def inputs(self, fingerprint: str) -> tuple[Tensor, Tensor]:
        """(x_a, x_b) for a model reading ``fingerprint`` ("TW" or "KOL")."""
        return self.x[f"{fingerprint}_A"], self.x[f"{fingerprint}_B"]


@dataclass
class EventData:
    """Fingerprints (``KOL_A``, ``KOL_B``, ``TW_A``, ``TW_B``: (N, D)) and targets (N,) of N events."""

    fingerprints: dict[str, Tensor]
    targets: dict[str, Tensor]
    event_id: list[str]
    composition: list[str]
    params: AEVParams
    species: list[str]

    def __len__(self) -> int:
        return len(self.event_id)

    @property
    def feature_dim(self) -> int:
        return self.fingerprints["TW_A"].shape[1]

    @property
    def device(self) -> torch.device:
        return self.fingerprints["TW_A"].device

    @classmethod
    def from_events(
        cls, events: pd.DataFrame, params: AEVParams | None = None, device: str = "cpu", *,
        species: Sequence[str] | None = None, dtype: torch.dtype = torch.float32,
    ) -> EventData:
        """Featurize the events (ideal lattice, float64) and keep them in ``dtype`` on ``device``."""
        p = params or AEVParams()
        if species is None:
            names = sorted({s if isinstance(s, str) else ",".join(s) for s in events["species"]})
            if len(names) != 1:
                raise ValueError(f"training: events mix species lists {names}; pass species=")
            species = names[0].split(",")
        fps = featurize_events(events, p, device, species=species)
        return cls(
            fingerprints={k: v.to(dtype) for k, v in fps.items()},
            targets={t: torch.tensor(events[t].to_numpy(np.float64), dtype=dtype, device=device) for t in TARGETS},
            event_id=[str(e) for e in events["event_id"]],
            composition=[str(c) for c in events["composition"]],
            params=p,
            species=list(species),
        )

    def to(self, device: str | torch.device) -> EventData:
        """The same events with the tensors on ``device`` (``self`` if already there)."""
        dev = torch.device(device)
        if dev.type == self.device.type and (dev.index is None or dev.index == self.device.index):
            return self
        return EventData({k: v.to(dev) for k, v in self.fingerprints.items()},
                         {k: v.to(dev) for k, v in self.targets.items()},
                         self.event_id, self.composition, self.params, self.species)

    def directed(self, idx: Sequence[int] | np.ndarray | None = None) -> DirectedData:
        """Events ``idx`` (default: all) in both directions, A -> B then B -> A."""
        sel = torch.as_tensor(np.arange(len(self)) if idx is None else np.asarray(idx, dtype=np.int64),
                              device=self.device)
        f = {k: v[sel] for k, v in self.fingerprints.items()}
        t = {k: v[sel] for k, v in self.targets.items()}
        x = {"TW_A": torch.cat([f["TW_A"], f["TW_B"]]), "TW_B": torch.cat([f["TW_B"], f["TW_A"]]),
             "KOL_A": torch.cat([f["KOL_A"], f["KOL_B"]]), "KOL_B": torch.cat([f["KOL_B"], f["KOL_A"]])}
        y = {"dE": torch.cat([t["dE"], -t["dE"]]), "E_KRA": torch.cat([t["E_KRA"], t["E_KRA"]]),
             "barrier": torch.cat([t["barrier_forward"], t["barrier_backward"]])}
        return DirectedData(x, y, len(sel))


# --------------------------------------------------------------------------- split


@dataclass(frozen=True)
class Split:
    """Sorted event indices of the train, validation and test sets."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise KeyError(name)
        return getattr(self, name)

    def to_dict(self, event_ids: Sequence[str]) -> dict[str, list[str]]:
        """``{set: [event_id, ...]}`` (for a JSON record of the split)."""
        return {name: [event_ids[i] for i in self[name]] for name in ("train", "val", "test")}


def _stratum_rng(seed: int, stratum: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(stratum.encode())])


def _by_stratum(event_ids: Sequence[str], compositions: Sequence[str]) -> dict[str, np.ndarray]:
    """Composition -> event indices ordered by event_id."""
    if len(event_ids) != len(compositions):
        raise ValueError("training: event_ids and compositions differ in length")
    if len(set(event_ids)) != len(event_ids):
        raise ValueError("training: event_ids are not unique")
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(compositions):
        groups.setdefault(str(c), []).append(i)
    return {c: np.array(sorted(g, key=lambda i: event_ids[i]), dtype=np.int64) for c, g in sorted(groups.items())}


def split_events(
    event_ids: Sequence[str], compositions: Sequence[str],
    fractions: tuple[float, float, float] = SPLIT_FRACTIONS, seed: int = 0,
) -> Split:
    """Train/val/test split, stratified by composition, deterministic given the event ids and seed.

    In each composition the events, ordered by ``event_id``, are shuffled
    with a generator seeded by ``(seed, crc32(composition))``; the first
    ``round(f_train n)`` go to train, the next ``round(f_val n)`` to
    validation and the rest to test.
    """
    if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"training: split fractions must be three non-negative numbers summing to 1, got {fractions}")
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for comp, idx in _by_stratum(event_ids, compositions).items():
        perm = idx[_stratum_rng(seed, comp).permutation(len(idx))]
        n_train = int(round(fractions[0] * len(idx)))
        n_val = min(int(round(fractions[1] * len(idx))), len(idx) - n_train)
        parts["train"].append(perm[:n_train])
        parts["val"].append(perm[n_train:n_train + n_val])
        parts["test"].append(perm[n_train + n_val:])
    return Split(**{k: np.sort(np.concatenate(v)) if v else np.zeros(0, np.int64) for k, v in parts.items()})


def subsample(idx: np.ndarray, event_ids: Sequence[str], compositions: Sequence[str],
              fraction: float, seed: int = 0) -> np.ndarray:
    """A stratified ``fraction`` of the events ``idx``; nested: a larger fraction contains a smaller one."""
    if not 0 < fraction <= 1:
        raise ValueError(f"training: fraction must be in (0, 1], got {fraction}")
    sub_ids = [event_ids[i] for i in idx]
    sub_comp = [compositions[i] for i in idx]
    keep = []
    for comp, local in _by_stratum(sub_ids, sub_comp).items():
        perm = local[_stratum_rng(seed + 1, comp).permutation(len(local))]
        keep.append(perm[:max(1, int(round(fraction * len(local))))])
    return np.sort(np.asarray(idx)[np.concatenate(keep)])


# --------------------------------------------------------------------------- fitting


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
                 device: str = "cpu") -> list[TransitionModel]:
    """``config.n_members`` fresh models (seeded), with input/output standardisation from ``train``."""
    dev = torch.device(device)
    dtype = train.x["TW_A"].dtype
    with _seeded(config.seed, dev):
        members = [build_model(kind, feature_dim, config.hidden, config.dropout).to(device=dev, dtype=dtype)
                   for _ in range(config.n_members)]
    x_a, x_b = train.inputs(members[0].fingerprint)
    members[0].fit_standardization(x_a, x_b, train.y[members[0].target])
    stats = {k: v for k, v in members[0].state_dict().items() if k.startswith("energy.") and "net." not in k}
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


def _sas_lambda(kind: str, config: TrainConfig) -> float:
    return config.sas_lambda if kind == "M_SAS" else 0.0


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
    dev = train.x["TW_A"].device
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
    lam = _sas_lambda(base.kind, cfg)
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
        losses = []
        for s in range(0, len(y), cfg.batch_size):
            idx = order[:, s:s + cfg.batch_size]
            loss = train_loss(params, buffers, x_a[idx], x_b[idx], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            losses.append(loss.detach())
        with torch.no_grad():
            v = _chunked_val_loss(val_loss, params, buffers, vx_a, vx_b, vy, cfg.eval_batch_size)
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
    lam = _sas_lambda(base.kind, cfg)
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
    cfg = config or TrainConfig()
    if device is not None:
        data = data.to(device)
    train = data.directed(split.train if train_idx is None else train_idx)
    val = data.directed(split.val)
    members = init_members(kind, data.feature_dim, train, cfg, str(data.device))
    return fit_members(members, train, val, cfg)


# --------------------------------------------------------------------------- metrics


def _rmse(pred: Tensor, target: Tensor) -> Tensor:
    """Root mean square of ``pred - target`` over the last dimension (member-wise for (M, N))."""
    return torch.sqrt(((pred - target) ** 2).mean(-1))


def _stats(member_values: Tensor, ensemble_value: Tensor) -> dict[str, float]:
    v = member_values.detach().to("cpu", torch.float64)
    return {"ensemble": float(ensemble_value), "member_mean": float(v.mean()),
            "member_std": float(v.std(unbiased=False)) if len(v) > 1 else 0.0}


def directed_predictions(ensemble: Ensemble, data: DirectedData, batch_size: int = 8192) -> Tensor:
    """Member predictions (M, 2n) on directed data."""
    x_a, x_b = data.inputs(ensemble.fingerprint)
    return ensemble(x_a, x_b, batch_size)


def prediction_metrics(d_e: Tensor | None, e_kra: Tensor | None, data: DirectedData) -> dict[str, dict[str, float]]:
    """Metrics from member predictions (M, 2n) of dE and/or E_KRA on ``data``.

    Keys: ``dE`` (RMSE over both directions), ``ddE``, ``E_KRA``, and, when
    both are given, ``barrier_forward``/``barrier_backward`` (``E_KRA +
    dE/2`` of A -> B and of B -> A against NEB; member k of dE is paired with
    member k of E_KRA). Each value: ``{"ensemble", "member_mean", "member_std"}``.
    """
    n = data.n_events
    out: dict[str, dict[str, float]] = {}
    y = {k: v.to(torch.float64) for k, v in data.y.items()}
    if d_e is not None:
        de = d_e.to(torch.float64)
        mean = de.mean(0)
        out["dE"] = _stats(_rmse(de, y["dE"]), _rmse(mean, y["dE"]))
        out["ddE"] = _stats(_rmse(de[:, :n] + de[:, n:], 0.0), _rmse(mean[:n] + mean[n:], 0.0))
    if e_kra is not None:
        kra = e_kra.to(torch.float64)
        out["E_KRA"] = _stats(_rmse(kra, y["E_KRA"]), _rmse(kra.mean(0), y["E_KRA"]))
    if d_e is not None and e_kra is not None:
        if d_e.shape[0] != e_kra.shape[0]:
            members = min(d_e.shape[0], e_kra.shape[0])
            d_e, e_kra = d_e[:members], e_kra[:members]
        bar = barrier(e_kra.to(torch.float64), d_e.to(torch.float64))
        mean = bar.mean(0)
        for name, sl in (("barrier_forward", slice(0, n)), ("barrier_backward", slice(n, 2 * n))):
            out[name] = _stats(_rmse(bar[:, sl], y["barrier"][sl]), _rmse(mean[sl], y["barrier"][sl]))
    return out


def model_metrics(ensemble: Ensemble, data: EventData, split: Split,
                  kra: Ensemble | None = None, batch_size: int = 8192) -> dict[str, dict[str, dict[str, float]]]:
    """``{train|val|test: prediction_metrics(...)}`` for a dE ensemble (with barriers if ``kra``) or a KRA ensemble."""
    out = {}
    for name in ("train", "val", "test"):
        d = data.directed(split[name])
        pred = directed_predictions(ensemble, d, batch_size)
        if ensemble.target == "E_KRA":
            out[name] = prediction_metrics(None, pred, d)
        else:
            kra_pred = directed_predictions(kra, d, batch_size) if kra is not None else None
            out[name] = prediction_metrics(pred, kra_pred, d)
        log.info("%s %s set: %d events, %s RMSE %.4g eV", ensemble.kind, name, len(split[name]),
                 ensemble.target, out[name][ensemble.target]["ensemble"])
    return out


# --------------------------------------------------------------------------- sweeps


@dataclass
class SweepResult:
    """SAS lambda sweep: the table, the chosen lambda and its trained ensemble."""

    table: pd.DataFrame
    best_lambda: float
    best: FitResult


def sas_lambda_sweep(data: EventData, split: Split, lambdas: Iterable[float] = SAS_LAMBDAS,
                     config: TrainConfig | None = None, device: str | None = None, *,
                     rule: str = "min") -> SweepResult:
    """Train M_SAS for each lambda and choose lambda on the validation set.

    ``rule="min"``: the lambda with the lowest validation dE RMSE of the
    ensemble mean. ``rule="one_se"``: the largest lambda whose member-mean
    validation RMSE is within one member standard deviation of the lowest
    one (the one-standard-error rule: the most antisymmetric model among
    those the validation set cannot tell apart).

    Table columns: ``lambda``, ``val_rmse``, ``val_rmse_member_mean``,
    ``val_rmse_member_std``, ``val_ddE``, ``test_rmse``,
    ``test_rmse_member_mean``, ``test_rmse_member_std``, ``test_ddE``, ``chosen``.
    """
    if rule not in ("min", "one_se"):
        raise ValueError(f"training: unknown lambda rule {rule!r} (min or one_se)")
    cfg = config or TrainConfig()
    rows, fits = [], []
    lambdas = list(lambdas)
    for i, lam in enumerate(lambdas):
        log.info("SAS sweep: lambda %g (%d/%d)", lam, i + 1, len(lambdas))
        fit = train_model("M_SAS", data, split, cfg.replace(sas_lambda=float(lam)), device)
        m = model_metrics(fit.ensemble, data, split)
        rows.append({"lambda": float(lam), **_flat(m["val"], "val"), **_flat(m["test"], "test")})
        fits.append(fit)
    if not rows:
        raise ValueError("training: empty lambda grid")
    table = pd.DataFrame(rows)
    best = _choose_lambda(table, rule)
    table["chosen"] = np.arange(len(table)) == best
    return SweepResult(table, float(table["lambda"].iloc[best]), fits[best])


def _choose_lambda(table: pd.DataFrame, rule: str) -> int:
    if rule == "min":
        return int(table["val_rmse"].to_numpy().argmin())
    member = table["val_rmse_member_mean"].to_numpy()
    k = int(member.argmin())
    ok = np.flatnonzero(member <= member[k] + table["val_rmse_member_std"].to_numpy()[k])
    return int(ok[table["lambda"].to_numpy()[ok].argmax()])


def _flat(metrics: Mapping[str, Mapping[str, float]], prefix: str) -> dict[str, float]:
    de, dde = metrics["dE"], metrics["ddE"]
    return {f"{prefix}_rmse": de["ensemble"], f"{prefix}_rmse_member_mean": de["member_mean"],
            f"{prefix}_rmse_member_std": de["member_std"], f"{prefix}_ddE": dde["ensemble"]}


def learning_curve(data: EventData, split: Split, kinds: Sequence[str] = DE_KINDS,
                   fractions: Sequence[float] = LEARNING_CURVE_FRACTIONS, config: TrainConfig | None = None,
                   device: str | None = None) -> pd.DataFrame:
    """Test dE RMSE and ddE against training-set size (nested stratified subsets of ``split.train``).

    One row per (kind, fraction): ``kind``, ``fraction``, ``n_train_events``,
    ``test_rmse`` (+ ``_member_mean``/``_member_std``), ``test_ddE``.
    """
    cfg = config or TrainConfig()
    rows = []
    for i, fraction in enumerate(fractions):
        idx = subsample(split.train, data.event_id, data.composition, float(fraction), cfg.seed)
        for j, kind in enumerate(kinds):
            log.info("learning curve: %s on %d training events (fraction %g), fit %d/%d", kind, len(idx), fraction,
                     i * len(kinds) + j + 1, len(fractions) * len(kinds))
            fit = train_model(kind, data, split, cfg, device, train_idx=idx)
            test = data.directed(split.test)
            m = prediction_metrics(directed_predictions(fit.ensemble, test), None, test)
            rows.append({"kind": kind, "fraction": float(fraction), "n_train_events": len(idx), **_flat(m, "test")})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- checkpoints


def save_member(path: str | Path, model: TransitionModel, params: AEVParams, species: Sequence[str], *,
                member: int = 0, extra: Mapping[str, Any] | None = None) -> Path:
    """One ensemble member as a self-contained checkpoint (plain dicts, lists and tensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": model.kind,
        "arch": model.arch(),
        "fingerprint_params": params.to_dict(),
        "species": list(species),
        "member": int(member),
        "state_dict": {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    torch.save(payload, path)
    return path


def save_ensemble(directory: str | Path, ensemble: Ensemble, params: AEVParams, species: Sequence[str], *,
                  extra: Mapping[str, Any] | None = None) -> list[Path]:
    """``<directory>/member_<k>.pt`` for every member."""
    return [save_member(Path(directory) / f"member_{k}.pt", ensemble.member(k), params, species,
                        member=k, extra=extra) for k in range(ensemble.n_members)]


@dataclass
class LoadedModel:
    """An ensemble rebuilt from its checkpoints, with the fingerprint settings it was trained on."""

    ensemble: Ensemble
    params: AEVParams
    species: list[str]
    extra: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.ensemble.kind

    def featurize(self, events: Any, device: str | None = None) -> dict[str, Tensor]:
        """The model's fingerprints of ``events`` (ideal lattice), in its dtype on its device."""
        dev = self.ensemble.device if device is None else torch.device(device)
        fps = featurize_events(events, self.params, dev, species=self.species)
        return {k: v.to(self.ensemble.dtype) for k, v in fps.items()}

    def predict_events(self, events: Any) -> EnsemblePrediction:
        """Ensemble prediction (dE_[A,B] or E_KRA) for the jumps A -> B of ``events``."""
        fps = self.featurize(events)
        fp = self.ensemble.fingerprint
        return self.ensemble.predict(fps[f"{fp}_A"], fps[f"{fp}_B"])


def load_member(path: str | Path, device: str = "cpu") -> tuple[TransitionModel, dict[str, Any]]:
    """A member module (eval mode) and its checkpoint metadata."""
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"training: {path} is not a {CHECKPOINT_FORMAT} checkpoint")
    model = build_model(payload["kind"], **payload["arch"])
    state = payload["state_dict"]
    model.to(device=device, dtype=next(iter(state.values())).dtype)
    model.load_state_dict(state)
    return model.eval(), payload


def load_model(directory: str | Path, device: str = "cpu") -> LoadedModel:
    """Rebuild an ensemble from ``<directory>/member_<k>.pt`` alone (k = 0, 1, ...)."""
    paths = sorted(Path(directory).glob("member_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if not paths:
        raise FileNotFoundError(f"training: no member_<k>.pt in {directory}")
    loaded = [load_member(p, device) for p in paths]
    first = loaded[0][1]
    for _, meta in loaded[1:]:
        if (meta["kind"], meta["arch"], meta["fingerprint_params"], meta["species"]) != \
                (first["kind"], first["arch"], first["fingerprint_params"], first["species"]):
            raise ValueError(f"training: members in {directory} disagree on kind, architecture or fingerprints")
    return LoadedModel(Ensemble([m for m, _ in loaded]), AEVParams.from_dict(first["fingerprint_params"]),
                       list(first["species"]), dict(first.get("extra", {})))
