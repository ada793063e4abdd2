r"""Detailed-balance model family for vacancy jumps (pure torch, no I/O).

Every model maps the fingerprints of a jump A -> B to one number. The
transition-wise models read ``TW_A`` = F_{A∪B:A} and ``TW_B`` = F_{A∪B:B}; the
Kolmogorov model reads ``KOL_A`` = F_A^KOL and ``KOL_B`` = F_B^KOL (see
:mod:`dbkmc.detailed_balance.fingerprints`). With M_E an :class:`EnergyMLP`:

- **M_NC** (non-conservative): ``dE_[A,B] = M_E([F_A, F_B])``; the reverse jump
  is the same net on ``[F_B, F_A]``. Nothing ties the two together.
- **M_SAS** (soft antisymmetry): the M_NC architecture; its training loss adds
  ``lambda * mean |dE(A,B) + dE(B,A)|`` (see :mod:`dbkmc.detailed_balance.training`).
- **M_HAS** (hard antisymmetry): ``dE_[A,B] = M_E([F_B, F_A]) - M_E([F_A, F_B])``,
  exactly antisymmetric.
- **M_KOL** (Kolmogorov): ``dE_[A,B] = M_E(F_B^KOL) - M_E(F_A^KOL)``, a
  difference of state energies (:meth:`KolmogorovModel.state_energy`), so the
  Kolmogorov criterion holds on every cycle of jumps.
- **M_EXT** (extensive): ``dE_[A,B] = E(B) - E(A)`` with ``E(S) = sum_i eps_{s_i}(G_i)``
  over the atoms of the jump's window (:mod:`dbkmc.detailed_balance.extensive_model`).
- **KRA**: ``E_KRA = M_E([(F_A + F_B)/2, |F_A - F_B|/2])``, exactly symmetric
  in A and B.

The barrier of A -> B is ``E_KRA + dE_[A,B]/2`` (:func:`barrier`).

Every model has the signature ``model(x_a, x_b) -> (N,)`` with ``x_a``,
``x_b`` the (N, D) fingerprints named by ``model.fingerprint`` ("TW" or
"KOL"). :class:`Ensemble` stacks M members of one architecture and evaluates
them in one batched call (``torch.func.functional_call`` under ``vmap``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state

from dbkmc.detailed_balance.extensive_model import ExtensiveModel
from dbkmc.detailed_balance.kinds import DE_KINDS, MODEL_KINDS  # re-exported: the kinds live torch-free
from dbkmc.detailed_balance.model_base import EnergyMLP, TransitionModel  # re-exported

class NonConservativeModel(TransitionModel):
    """M_NC: ``dE_[A,B] = M_E([F_{A∪B:A}, F_{A∪B:B}])``; no symmetry imposed."""

    kind = "M_NC"

    def energy_inputs(self, x_a: Tensor, x_b: Tensor) -> list[Tensor]:
        return [torch.cat([x_a, x_b], dim=-1)]

    def forward(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        return self.energy(torch.cat([x_a, x_b], dim=-1))


class SoftAntisymmetricModel(NonConservativeModel):
    """M_SAS: the M_NC architecture, trained with the soft antisymmetry penalty."""

    kind = "M_SAS"


class HardAntisymmetricModel(TransitionModel):
    """M_HAS: ``dE_[A,B] = M_E([F_B, F_A]) - M_E([F_A, F_B])``, exactly antisymmetric."""

    kind = "M_HAS"

    def energy_inputs(self, x_a: Tensor, x_b: Tensor) -> list[Tensor]:
        return [torch.cat([x_a, x_b], dim=-1), torch.cat([x_b, x_a], dim=-1)]

    def forward(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        n = x_a.shape[-2]
        both = self.energy(torch.cat([torch.cat([x_b, x_a], dim=-1), torch.cat([x_a, x_b], dim=-1)], dim=-2))
        return both[..., :n] - both[..., n:]


class KolmogorovModel(TransitionModel):
    """M_KOL: ``dE_[A,B] = M_E(F_B^KOL) - M_E(F_A^KOL)``, a difference of state energies."""

    kind = "M_KOL"
    fingerprint = "KOL"

    @staticmethod
    def energy_in_dim(feature_dim: int) -> int:
        return feature_dim

    def energy_inputs(self, x_a: Tensor, x_b: Tensor) -> list[Tensor]:
        return [x_a, x_b]

    def state_energy(self, f_kol: Tensor) -> Tensor:
        """Relative energy of the states with Kolmogorov fingerprints ``f_kol`` (N, D) -> (N,)."""
        return self.energy(f_kol)

    def forward(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        n = x_a.shape[-2]
        both = self.energy(torch.cat([x_b, x_a], dim=-2))
        return both[..., :n] - both[..., n:]


class KRAModel(TransitionModel):
    """KRA: ``E_KRA = M_E([(F_A + F_B)/2, |F_A - F_B|/2])``, exactly symmetric in A and B."""

    kind = "KRA"
    target = "E_KRA"

    def energy_inputs(self, x_a: Tensor, x_b: Tensor) -> list[Tensor]:
        return [self.symmetric_input(x_a, x_b)]

    @staticmethod
    def symmetric_input(x_a: Tensor, x_b: Tensor) -> Tensor:
        return torch.cat([0.5 * (x_a + x_b), 0.5 * (x_a - x_b).abs()], dim=-1)

    def forward(self, x_a: Tensor, x_b: Tensor) -> Tensor:
        return self.energy(self.symmetric_input(x_a, x_b))


_MODEL_CLASSES: dict[str, type[TransitionModel]] = {
    cls.kind: cls for cls in (NonConservativeModel, SoftAntisymmetricModel, HardAntisymmetricModel,
                              KolmogorovModel, ExtensiveModel, KRAModel)
}
# The names (dbkmc.detailed_balance.kinds, torch-free for the rule files) and the classes must agree.
if tuple(_MODEL_CLASSES) != MODEL_KINDS or DE_KINDS != tuple(k for k, c in _MODEL_CLASSES.items() if c.target == "dE"):
    raise ImportError(f"models: MODEL_KINDS {MODEL_KINDS} / DE_KINDS {DE_KINDS} (kinds.py) do not match "
                      f"the model classes {[(k, c.target) for k, c in _MODEL_CLASSES.items()]}")


def build_model(kind: str, feature_dim: int, hidden: Sequence[int] = (128, 64), dropout: float = 0.05,
                n_species: int | None = None) -> TransitionModel:
    """A fresh model of ``kind`` (one of :data:`MODEL_KINDS`) for fingerprints of size ``feature_dim``.

    ``n_species`` is needed by M_EXT only (its per-species site-energy networks)."""
    if kind not in _MODEL_CLASSES:
        raise ValueError(f"models: unknown model kind {kind!r} (choose from {MODEL_KINDS})")
    if kind == ExtensiveModel.kind:
        if n_species is None:
            raise ValueError("models: M_EXT needs n_species")
        return ExtensiveModel(feature_dim, hidden, dropout, n_species)
    return _MODEL_CLASSES[kind](feature_dim, hidden, dropout)


def fingerprint_of(kind: str) -> str:
    """The fingerprint pair ("TW", "KOL" or "EXT") a model of ``kind`` reads."""
    if kind not in _MODEL_CLASSES:
        raise ValueError(f"models: unknown model kind {kind!r} (choose from {MODEL_KINDS})")
    return _MODEL_CLASSES[kind].fingerprint


def barrier(e_kra: Tensor, d_e: Tensor) -> Tensor:
    """Barrier of the jump A -> B: ``E_KRA + dE_[A,B] / 2``."""
    return e_kra + 0.5 * d_e


# --------------------------------------------------------------------------- ensembles


@dataclass(frozen=True)
class EnsemblePrediction:
    """Voting-ensemble output: ``members`` (M, N), their ``mean`` and ``std`` (N,) over members."""

    members: Tensor

    @property
    def mean(self) -> Tensor:
        return self.members.mean(0)

    @property
    def std(self) -> Tensor:
        return self.members.std(0, unbiased=False) if self.members.shape[0] > 1 else torch.zeros_like(self.mean)


class Ensemble:
    """M members of one architecture, stacked: every call runs all members at once (``vmap``).

    ``params``/``buffers`` hold the members' tensors with a leading member
    dimension (from ``torch.func.stack_module_state``); ``base`` is a
    stateless copy on the meta device that only supplies the code.
    """

    def __init__(self, members: Sequence[TransitionModel]) -> None:
        if not members:
            raise ValueError("Ensemble: need at least one member")
        if any(m.kind != members[0].kind or m.arch() != members[0].arch() for m in members):
            raise ValueError("Ensemble: members must share kind and architecture")
        params, buffers = stack_module_state(list(members))
        self.params: dict[str, Tensor] = {k: v.detach() for k, v in params.items()}
        self.buffers: dict[str, Tensor] = {k: v.detach() for k, v in buffers.items()}
        self.base: TransitionModel = copy.deepcopy(members[0]).to("meta").eval()

    @classmethod
    def from_stacked(cls, base: TransitionModel, params: dict[str, Tensor], buffers: dict[str, Tensor]) -> Ensemble:
        """An ensemble from stacked tensors (leading member dimension) and a module of the architecture."""
        ens = cls.__new__(cls)
        ens.params = {k: v.detach().clone() for k, v in params.items()}
        ens.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        ens.base = copy.deepcopy(base).to("meta").eval()
        return ens

    def astype(self, dtype: torch.dtype) -> Ensemble:
        """The same ensemble with its tensors in ``dtype`` (float64 for sums that must cancel exactly)."""
        if dtype == self.dtype:
            return self
        return Ensemble.from_stacked(self.base, {k: v.to(dtype) for k, v in self.params.items()},
                                     {k: v.to(dtype) if v.is_floating_point() else v for k, v in self.buffers.items()})

    # ---- basic facts
    @property
    def kind(self) -> str:
        return self.base.kind

    @property
    def fingerprint(self) -> str:
        return self.base.fingerprint

    @property
    def target(self) -> str:
        return self.base.target

    @property
    def n_members(self) -> int:
        return next(iter(self.params.values())).shape[0]

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.params.values())).dtype

    def arch(self) -> dict[str, Any]:
        return self.base.arch()

    # ---- members as plain modules
    def member_state(self, k: int) -> dict[str, Tensor]:
        """State dict of member ``k``."""
        return {**{n: p[k] for n, p in self.params.items()}, **{n: b[k] for n, b in self.buffers.items()}}

    def member(self, k: int) -> TransitionModel:
        """Member ``k`` as a plain module (eval mode), on the ensemble's device."""
        model = build_model(self.kind, **self.arch()).to(device=self.device, dtype=self.dtype)
        model.load_state_dict(self.member_state(k))
        return model.eval()

    def members(self) -> list[TransitionModel]:
        return [self.member(k) for k in range(self.n_members)]

    # ---- batched evaluation
    def functional(self, submodule: str = "", training: bool = False) -> Any:
        """``f(params, buffers, *xs)`` for one member, ready for ``vmap`` over the member dimension.

        ``submodule`` names a child of the model ("energy": M_E alone), ""
        the whole model. ``training`` switches dropout on.
        """
        module = copy.deepcopy(self.base.get_submodule(submodule) if submodule else self.base).train(training)
        prefix = f"{submodule}." if submodule else ""

        def call(params: dict[str, Tensor], buffers: dict[str, Tensor], *xs: Tensor) -> Tensor:
            state = {k[len(prefix):]: v for k, v in {**params, **buffers}.items() if k.startswith(prefix)}
            return functional_call(module, state, xs)

        return call

    @torch.no_grad()
    def __call__(self, x_a: Tensor, x_b: Tensor, batch_size: int = 8192) -> Tensor:
        """Member predictions (M, N) for the jumps with fingerprints ``x_a`` -> ``x_b`` (N, D); eval mode."""
        return self._batched("", (x_a, x_b), batch_size)

    def predict(self, x_a: Tensor, x_b: Tensor, batch_size: int = 8192) -> EnsemblePrediction:
        """Mean, std and member predictions for the jumps ``x_a`` -> ``x_b``."""
        return EnsemblePrediction(self(x_a, x_b, batch_size))

    @torch.no_grad()
    def state_energy(self, f_kol: Tensor, batch_size: int = 8192) -> EnsemblePrediction:
        """M_KOL only: relative state energies M_E(F^KOL), members (M, N), from fingerprints (N, D)."""
        if self.kind != "M_KOL":
            raise ValueError(f"Ensemble: state_energy needs an M_KOL ensemble, not {self.kind}")
        return EnsemblePrediction(self._batched("energy", (f_kol,), batch_size))

    def _batched(self, submodule: str, xs: tuple[Tensor, ...], batch_size: int) -> Tensor:
        xs = tuple(x.to(device=self.device, dtype=self.dtype) for x in xs)
        n = xs[0].shape[0]
        if n == 0:
            return xs[0].new_zeros((self.n_members, 0))
        fn = torch.vmap(self.functional(submodule), in_dims=(0, 0) + (None,) * len(xs), randomness="different")
        parts = [fn(self.params, self.buffers, *(x[s:s + batch_size] for x in xs)) for s in range(0, n, batch_size)]
        return torch.cat(parts, dim=1)
