r"""M_EXT's whole-cell energy term: the relaxed energies E_A of whole cells beside dE in the loss.

With ``energy_weight`` w > 0 (``models.per_kind.M_EXT.energy_weight``) the loss of a member is

    [ MSE(dE) + w * MSE(E_A) ] / sigma^2,

with dE in eV, E_A in **eV per cell** (the model's ``E(S) = sum_i eps_{s_i}(G_i) + sum_s mu_s N_s`` of the
whole cell, against the relaxed energy of state A), and sigma the standard deviation of the training dE
(the scale of the dE loss of :mod:`~dbkmc.detailed_balance.training.fit`). So w = 1 weighs one cell's
squared energy error like one jump's squared dE error; every cell of one dataset holds the same number of
atoms, so per cell and per atom differ by a constant factor only. The early stopping watches the same
objective on the validation cells.

Design:

* **Reference energies first.** Before training, each member's ``mu`` is the least-squares fit of
  ``E_A - sum_i eps(G_i)`` (its initial site energies) on the species counts N_s of the training cells
  (:func:`reference_energies`): the networks then learn only the residual (about 1 eV per cell on the
  reference dataset, against about 1000 eV of E_A).
* **Every site, stored small.** E_A needs the descriptors of all sites of a cell, not only of the jump's
  window. They are built once per fit for the training and validation cells, as ``uint8`` counts
  (:meth:`~dbkmc.detailed_balance.training.cells.CellStates.inputs`: 77 MB for the 4050 training cells
  of the reference dataset) and turned into floats one batch at a time.
* **Every training cell once per epoch.** Each optimisation step adds the energy loss of
  ``ceil(n_cells / n_steps)`` training cells (half a dE batch: the dE batches run over both directions),
  each member on its own order, reseeded per epoch. States A only: E_B adds nothing that E_A and dE do
  not hold. The extra cost is about one more dE batch per step.

``energy_weight`` = 0 (the default) builds nothing and leaves the training exactly as without this module.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from dbkmc.detailed_balance.models import Ensemble, TransitionModel
from dbkmc.detailed_balance.training.cells import CellStates
from dbkmc.detailed_balance.training.config import ENERGY_TERM_KINDS, TrainConfig
from dbkmc.detailed_balance.training.data import DirectedData


class CellEnergy(nn.Module):
    """``model.energy`` as a module's forward (so that ``functional_call`` and ``vmap`` can run it)."""

    def __init__(self, model: TransitionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.energy(x)


def _stateless_energy(base: TransitionModel):
    module = CellEnergy(copy.deepcopy(base)).to("meta")

    def call(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        named = {f"model.{k}": v for k, v in {**params, **buffers}.items()}
        return functional_call(module, named, (x,))

    return call


@torch.no_grad()
def reference_energies(model: TransitionModel, x: Tensor, energy: Tensor, batch: int = 256) -> Tensor:
    """(S,) float64: least-squares ``mu`` of ``energy - sum_i eps(G_i)`` on the species counts of cells ``x``
    (N, n_sites, S + D); the minimum-norm solution when the counts do not fix every mu_s."""
    dtype = next(model.parameters()).dtype
    s = model.n_species
    counts = x[..., :s].to(torch.float64).sum(-2)
    eps = torch.cat([model.site_energies(x[i:i + batch].to(dtype)).sum(-1) for i in range(0, len(x), batch)])
    rhs = energy.to(torch.float64) - eps.to(torch.float64)
    mu = np.linalg.lstsq(counts.cpu().numpy(), rhs.cpu().numpy(), rcond=None)[0]
    return torch.as_tensor(mu, dtype=torch.float64)


def cell_energies(ensemble: Ensemble, x: Tensor, batch: int = 256) -> Tensor:
    """(M, N): every member's whole-cell energy E(S) (eV) of cells ``x`` (N, n_sites, S + D)."""
    call = torch.vmap(_stateless_energy(ensemble.base), in_dims=(0, 0, None))
    with torch.no_grad():
        return torch.cat([call(ensemble.params, ensemble.buffers, x[i:i + batch].to(ensemble.dtype))
                          for i in range(0, len(x), batch)], dim=1)


def cell_energy_metrics(ensemble: Ensemble, cells: CellStates) -> dict[str, dict[str, float]]:
    """``{"E_A": {"ensemble", "member_mean", "member_std"}}``: RMSE of the whole-cell energy of state A
    (eV per cell), from the ensemble mean and per member, as the dE metrics."""
    pred = cell_energies(ensemble, cells.inputs()).to("cpu", torch.float64)
    target = cells.energy.to("cpu", torch.float64)
    member = torch.sqrt(((pred - target) ** 2).mean(-1))
    return {"E_A": {"ensemble": float(torch.sqrt(((pred.mean(0) - target) ** 2).mean())),
                    "member_mean": float(member.mean()),
                    "member_std": float(member.std(unbiased=False)) if len(member) > 1 else 0.0}}


class EnergyTerm:
    """The energy part of the loss for a batched fit: ``w * MSE(E_A) / sigma^2`` per member (M,)."""

    def __init__(self, base: TransitionModel, train: CellStates, val: CellStates, weight: float, scale: float,
                 n_steps: int, seed: int) -> None:
        self.weight, self.scale, self.seed = float(weight), float(scale), int(seed)
        self.x, self.e = train.inputs(), train.energy
        self.vx, self.ve = val.inputs(), val.energy
        self.per_step = max(1, math.ceil(len(train) / max(1, n_steps)))
        self._epoch: int | None = None
        self._perm = torch.zeros(0)
        call = _stateless_energy(base)

        def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, e: Tensor) -> Tensor:
            return ((call(params, buffers, x) - e) ** 2).mean()

        self._train = torch.vmap(loss, in_dims=(0, 0, 0, 0))
        self._val = torch.vmap(loss, in_dims=(0, 0, None, None))

    @classmethod
    def build(cls, members: Sequence[TransitionModel], train: DirectedData, val: DirectedData, cfg: TrainConfig,
              scale: float) -> EnergyTerm | None:
        """None when ``cfg.energy_weight`` is 0; else the term, with each member's ``mu`` set by
        :func:`reference_energies` on the training cells."""
        if cfg.energy_weight == 0:
            return None
        if members[0].kind not in ENERGY_TERM_KINDS:
            raise ValueError(f"training: energy_weight > 0, but {members[0].kind} has no whole-cell energy "
                             f"(only {', '.join(ENERGY_TERM_KINDS)})")
        if train.cells is None or val.cells is None:
            raise ValueError("training: energy_weight > 0 needs the whole cells of the events (EventData.cells)")
        term = cls(members[0], train.cells, val.cells, cfg.energy_weight, scale,
                   math.ceil(len(train) / cfg.batch_size), cfg.seed)
        for m in members:
            m.mu.data.copy_(reference_energies(m, term.x, term.e).to(m.mu))
        return term

    def _order(self, n_members: int, epoch: int) -> Tensor:
        out = []
        for k in range(n_members):
            state = np.random.SeedSequence([self.seed, k, epoch, 1]).generate_state(1)[0]
            out.append(torch.randperm(len(self.e), generator=torch.Generator().manual_seed(int(state))))
        return torch.stack(out).to(self.e.device)

    def train_loss(self, params: dict[str, Tensor], buffers: dict[str, Tensor], epoch: int, step: int) -> Tensor:
        """(M,): the term on step ``step`` (0-based) of ``epoch``, each member on its own cells."""
        if self._epoch != epoch:
            self._epoch, self._perm = epoch, self._order(next(iter(params.values())).shape[0], epoch)
        idx = self._perm[:, step * self.per_step:(step + 1) * self.per_step]
        if idx.shape[1] == 0:
            return torch.zeros(idx.shape[0], device=self.e.device)
        dtype = next(iter(params.values())).dtype
        return self.weight * self._train(params, buffers, self.x[idx].to(dtype), self.e[idx].to(dtype)) / self.scale**2

    @torch.no_grad()
    def val_loss(self, params: dict[str, Tensor], buffers: dict[str, Tensor], batch: int = 256) -> Tensor:
        """(M,): the term on every validation cell."""
        dtype = next(iter(params.values())).dtype
        total = None
        for s in range(0, len(self.ve), batch):
            x, e = self.vx[s:s + batch].to(dtype), self.ve[s:s + batch].to(dtype)
            part = self._val(params, buffers, x, e) * len(e)
            total = part if total is None else total + part
        assert total is not None, "no validation cells"
        return self.weight * total / len(self.ve) / self.scale**2
