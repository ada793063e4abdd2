"""Training our own NNK barrier networks (MLP, CNN) on per-path voxel images.

Adam on the mean squared error of standardised barriers, reduce-on-plateau on
the validation loss (factor ``lr_factor`` after ``lr_patience`` stalled epochs,
floor ``min_lr``), the best validation checkpoint kept, early stop after
``stop_patience`` epochs without improvement. With ``augment`` each training
image is turned, per sample and epoch, by a random symmetry operation that
keeps the jump direction (see :func:`dbkmc.nnk.data.stabilizer_operations`).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dbkmc.nnk.networks import NNKCNN, NNKMLP
from dbkmc.nnk.data import voxel_permutations

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "dbkmc-nnk/1"
ARCHITECTURES = ("mlp", "cnn")


@dataclass(frozen=True)
class NNKTrainConfig:
    arch: str = "mlp"
    mlp_hidden: tuple[int, ...] = (128, 128, 128, 128)
    cnn_channels: tuple[int, ...] = (32, 64, 128, 128)
    cnn_dense: int = 128
    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 300
    lr_factor: float = 0.1
    lr_patience: int = 10
    min_lr: float = 1e-5
    stop_patience: int = 40
    augment: bool = True
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"nnk.architectures: unknown architecture {self.arch!r} ({', '.join(ARCHITECTURES)})")
        object.__setattr__(self, "mlp_hidden", tuple(int(h) for h in self.mlp_hidden))
        object.__setattr__(self, "cnn_channels", tuple(int(c) for c in self.cnn_channels))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **override: Any) -> NNKTrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**dict(data), **override}.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mlp_hidden"], d["cnn_channels"] = list(self.mlp_hidden), list(self.cnn_channels)
        return d


class NNKBarrierModel(nn.Module):
    """A barrier network with its target scaling: ``forward(images[..., grid**3]) -> eV``."""

    def __init__(self, net: nn.Module, target_mean: float, target_std: float):
        super().__init__()
        self.net = net
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images) * self.target_std + self.target_mean


def build_network(arch: str, grid: int, config: NNKTrainConfig) -> nn.Module:
    if arch == "mlp":
        return NNKMLP(grid**3, config.mlp_hidden)
    if arch == "cnn":
        return NNKCNN(grid, config.cnn_channels, config.cnn_dense)
    raise ValueError(f"nnk.architectures: unknown architecture {arch!r}")


@dataclass
class NNKFit:
    model: NNKBarrierModel
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_mae: float = math.inf


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch: int = 4096) -> np.ndarray:
    """Barriers (eV, float64 numpy) of uint8/float images (n, grid**3), in inference mode."""
    p = next(model.parameters())
    model.eval()
    out = [model(images[i : i + batch].to(device=p.device, dtype=p.dtype)).double().cpu()
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0)


def train_nnk(x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor, y_val: np.ndarray,
              kind: str, grid: int, config: NNKTrainConfig) -> NNKFit:
    """Fit one network; returns the best-on-validation model and the epoch history."""
    if len(x_train) < 2 or len(x_val) < 1:
        raise ValueError(f"train_nnk: need >= 2 training and >= 1 validation images "
                         f"(got {len(x_train)}, {len(x_val)})")
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    y_mean, y_std = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
    model = NNKBarrierModel(build_network(config.arch, grid, config), y_mean, y_std).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr)
    xt = x_train.to(device)
    yt = ((torch.as_tensor(y_train, dtype=torch.float32) - y_mean) / y_std).to(device)
    xv = x_val.to(device=device, dtype=torch.float32)
    yv = torch.as_tensor(y_val, dtype=torch.float32, device=device)
    perms = voxel_permutations(kind, grid).to(device) if config.augment else None
    fit = NNKFit(model)
    best_state = copy.deepcopy(model.state_dict())
    n = len(xt)
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        total, seen = 0.0, 0
        for i in range(0, n, config.batch_size):
            idx = order[i : i + config.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            xb = xt[idx]
            if perms is not None:
                ops = torch.randint(len(perms), (len(idx),), generator=gen).to(device)
                xb = torch.gather(xb, 1, perms[ops])
            pred = model.net(xb.float())
            loss = torch.mean((pred - yt[idx]) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        model.eval()
        with torch.no_grad():
            pv = model(xv)
            val_mse = float(torch.mean((pv - yv) ** 2))
            val_mae = float(torch.mean(torch.abs(pv - yv)))
        if not math.isfinite(val_mse):
            raise FloatingPointError(f"train_nnk: validation loss is {val_mse} at epoch {epoch}")
        sched.step(val_mse)
        lr = opt.param_groups[0]["lr"]
        fit.history.append({"epoch": epoch, "train_mse_scaled": total / max(seen, 1), "val_mse": val_mse,
                            "val_mae": val_mae, "lr": lr})
        if val_mae < fit.best_val_mae:
            fit.best_val_mae, fit.best_epoch = val_mae, epoch
            best_state = copy.deepcopy(model.state_dict())
        if epoch % 10 == 0 or epoch == 1:
            log.info("epoch %d: train %.4g (scaled), val MAE %.4f eV, lr %.1e", epoch, total / max(seen, 1),
                     val_mae, lr)
        if epoch - fit.best_epoch >= config.stop_patience:
            log.info("early stop at epoch %d (best %d)", epoch, fit.best_epoch)
            break
    model.load_state_dict(best_state)
    model.eval()
    return fit


def save_nnk(model: NNKBarrierModel, path: str | Path, *, arch: str, grid: int, cutoff: float, kind: str,
             species: Sequence[str], config: NNKTrainConfig, extra: Mapping[str, Any] | None = None) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "arch": arch, "grid": int(grid), "cutoff": float(cutoff),
                "lattice": kind, "species": list(species), "config": config.to_dict(),
                "state_dict": state, "extra": dict(extra or {})}, path)


def load_nnk(path: str | Path, device: str = "cpu") -> tuple[NNKBarrierModel, dict[str, Any]]:
    """A saved NNK network (inference mode) and its metadata (arch, grid, cutoff, lattice, species)."""
    stored = torch.load(path, map_location="cpu", weights_only=True)
    if stored.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
    config = NNKTrainConfig.from_dict(stored["config"], device=device)
    model = NNKBarrierModel(build_network(stored["arch"], stored["grid"], config), 0.0, 1.0)
    model.load_state_dict(stored["state_dict"])
    model.to(device).eval()
    meta = {k: stored[k] for k in ("arch", "grid", "cutoff", "lattice", "species", "config", "extra")}
    return model, meta


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE (eV, % of the mean NEB barrier and as a fraction of the barriers' standard deviation), RMSE, largest
    error, mean and standard deviation of the barriers, count. Percent of the mean flatters wide spectra and hides
    narrow ones; ``MAE_over_std`` compares spectra of any width (1 = no better than predicting the mean)."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if len(y_true) == 0:
        return {"n": 0}
    err = y_pred - y_true
    mean = float(np.mean(y_true))
    std = float(np.std(y_true))
    mae = float(np.mean(np.abs(err)))
    return {"n": int(len(y_true)), "mean_barrier": mean, "std_barrier": std, "MAE": mae,
            "MAE_pct": 100.0 * mae / mean, "MAE_over_std": mae / std if std > 0 else float("nan"),
            "RMSE": float(np.sqrt(np.mean(err**2))), "max_abs_error": float(np.max(np.abs(err))),
            "bias": float(np.mean(err))}
