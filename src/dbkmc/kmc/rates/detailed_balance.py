r"""Detailed-balance rate model for kMC: M_KOL state energies plus the symmetric KRA model.

The barrier of the jump A -> B is

    E_b(A -> B) = E_KRA(A, B) + (E_B - E_A) / 2,

with ``E_KRA`` the KRA ensemble on the transition-wise fingerprints
(F_{A∪B:A}, F_{A∪B:B}) and ``E_S`` the energy of state S from the M_KOL
ensemble's M_E (:meth:`dbkmc.detailed_balance.models.KolmogorovModel.state_energy`). Both
ensembles enter through their mean over members. With several vacancies the
energy of a configuration is the sum over its vacancies,

    E(S) = sum_v  M_E(F_v^KOL(S)),

so ``E_B - E_A`` of a jump of vacancy v to site h is the change of v's own term
(centre moved from v to h) plus the change of every other vacancy v' whose
Kolmogorov window contains v or h. Because ``E_KRA`` is exactly symmetric
(its input is ``[(F_A + F_B)/2, |F_A - F_B|/2]``) and the energies are a state
function, ``E_b(A->B) - E_b(B->A) = E_B - E_A`` for every jump, and
``k(A->B)/k(B->A) = exp(-(E_B - E_A)/k_B T)``: detailed balance holds by
construction, to float rounding. The state term ``E_A`` is evaluated once per
vacancy and shared by all of its paths.

Fingerprints come from :class:`dbkmc.detailed_balance.lattice_aev.LatticeAEV` (precomputed
lattice tables, the same numbers as :func:`dbkmc.detailed_balance.fingerprints.featurize_events`).
They are computed in float64 and rounded to the ensembles' dtype before the
networks, exactly as the model stage feeds them (fingerprints stored in
float64, models trained in float32). This matters: a trained ensemble can
react to rounding-level differences in tiny features (e.g. components of
``|F_A - F_B|/2`` of order 1e-9, standardised by a std near float32
resolution); fingerprints computed in float32 shifted the barriers of the
demo ensembles by up to 30 meV.
The ensembles are the model stage's checkpoints
(``results/<run>/models/{M_KOL,KRA}/member_<k>.pt``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dbkmc.detailed_balance.fingerprints import AEVParams
from dbkmc.core.lattice import NN_VECTORS, Lattice
from dbkmc.core.stencil import ball_offsets
from dbkmc.detailed_balance.lattice_aev import LatticeAEV, gather_sites, species_in_b
from dbkmc.detailed_balance.models import Ensemble, KRAModel


class StackedEnergy:
    """Mean over the members of an ensemble of M_E (:class:`dbkmc.detailed_balance.models.EnergyMLP`), eval mode, as plain GEMMs.

    The members' input standardisation is folded into their first layer, and
    the first layer of all members is one matrix product; later layers are
    batched over members. Same numbers as ``Ensemble`` (vmap over
    ``functional_call``) up to float rounding, without its per-call overhead.
    """

    def __init__(self, ensemble: Ensemble) -> None:
        mlp = ensemble.base.energy
        prefix = "energy."
        layers = []
        for i, module in enumerate(mlp.net):
            if isinstance(module, nn.Linear):
                layers.append((ensemble.params[f"{prefix}net.{i}.weight"], ensemble.params[f"{prefix}net.{i}.bias"]))
            elif not isinstance(module, (nn.ReLU, nn.Dropout)):  # ReLU after every Linear but the last
                raise TypeError(f"StackedEnergy: unexpected layer {type(module).__name__} in M_E")
        mean, std = ensemble.buffers[f"{prefix}x_mean"], ensemble.buffers[f"{prefix}x_std"]   # (M, D)
        w0, b0 = layers[0]                                                                   # (M, H, D), (M, H)
        w0 = w0 / std.unsqueeze(1)
        self.n_members, hidden = w0.shape[:2]
        self.b0 = (b0 - (w0 * mean.unsqueeze(1)).sum(-1)).reshape(1, -1)                     # (1, M*H)
        self.w0t = w0.reshape(-1, w0.shape[-1]).t().contiguous()                             # (D, M*H)
        self.hidden0 = hidden
        self.layers = [(w.transpose(1, 2).contiguous(), b.unsqueeze(1)) for w, b in layers[1:]]
        # output y_shift + y_scale * net, averaged over members: fold 1/M and y_scale into the last layer
        scale = (ensemble.buffers[f"{prefix}y_scale"] / self.n_members).view(-1, 1, 1)
        w_last, b_last = self.layers[-1]
        self.layers[-1] = (w_last * scale, b_last * scale)
        self.shift = ensemble.buffers[f"{prefix}y_shift"].mean()
        self.dtype, self.device = w0.dtype, w0.device

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        """(N, D) inputs -> (N,) ensemble-mean energies."""
        x = x.to(device=self.device, dtype=self.dtype)
        n = x.shape[0]
        h = torch.relu(torch.addmm(self.b0, x, self.w0t))                                    # (N, M*H)
        h = h.reshape(n, self.n_members, self.hidden0).transpose(0, 1)                       # (M, N, H)
        for i, (w, b) in enumerate(self.layers):
            h = torch.baddbmm(b, h, w)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h.sum(0).squeeze(-1) + self.shift


class DetailedBalanceRateModel:
    """``E_b = E_KRA + (E_B - E_A)/2`` from an M_KOL and a KRA ensemble (a :class:`dbkmc.kmc.rates.base.RateModel`).

    Args:
        kol: M_KOL ensemble (its M_E gives the state energies).
        kra: KRA ensemble.
        params: the AEV parameters both were trained on.
        lattice: the kMC lattice.
        species: element names in digit order (digit d is ``species[d - 1]``).
        device: where the fingerprints and networks run.
        fingerprint_dtype: precision of the AEV contractions (float64, as in the
            model stage); the results are rounded to the ensembles' dtype.
    """

    has_energy = True

    def __init__(self, kol: Ensemble, kra: Ensemble, params: AEVParams, lattice: Lattice,
                 species: Sequence[str], device: torch.device | str = "cpu",
                 fingerprint_dtype: torch.dtype = torch.float64) -> None:
        if kol.kind != "M_KOL":
            raise ValueError(f"kmc.rate_model.kol: need an M_KOL ensemble, got {kol.kind}")
        if kra.kind != "KRA":
            raise ValueError(f"kmc.rate_model.kra: need a KRA ensemble, got {kra.kind}")
        n_species = len(species)
        dim = params.dim(n_species)
        for name, ens in (("kol", kol), ("kra", kra)):
            if ens.arch()["feature_dim"] != dim:
                raise ValueError(f"kmc.rate_model.{name}: ensemble expects {ens.arch()['feature_dim']} features, "
                                 f"the AEV of {n_species} species has {dim}")
        self.device = torch.device(device)
        self.lattice = lattice
        self.species = tuple(species)
        self.params = params
        self.kol, self.kra = kol, kra
        self.dtype = kol.dtype
        # digits are used as they are (0 = vacancy, d = species[d - 1]): no per-call pass over the lattice
        self.aev = LatticeAEV(lattice, params, n_species, device=self.device, dtype=fingerprint_dtype,
                              first_species=1)
        self._state_energy = StackedEnergy(kol)
        self._kra_energy = StackedEnergy(kra)
        d_nn = float(np.linalg.norm(NN_VECTORS[lattice.kind][0])) * lattice.a / 2.0
        # other vacancies whose Kolmogorov window can hold v or one of its hop sites
        # (one per distinct periodic site, nearest first; the centre and its images left out)
        ball = ball_offsets(lattice, params.r_cut + d_nn, nearest_first=True, periodic=True, rtol=1e-9)
        self._ball = torch.as_tensor(ball, device=self.device)
        self.reach = 2.0 * params.r_cut + d_nn

    @property
    def z(self) -> int:
        return self.aev.z

    # ---- the RateModel interface
    @torch.no_grad()
    def barriers(self, digits: Tensor, vacancies: Tensor) -> Tensor:
        """(T, n_sites) digits, (T, m) vacancy sites -> (T, m, z) barriers in eV."""
        e_kra, d_e = self.terms(digits, vacancies)
        return e_kra + 0.5 * d_e

    @torch.no_grad()
    def energy(self, digits: Tensor) -> Tensor:
        """(T, n_sites) digits -> (T,) energy ``sum_v M_E(F_v^KOL)`` over every vacancy of each configuration (eV)."""
        d = digits.to(self.device).long()
        rows, centres = torch.nonzero(d == 0, as_tuple=True)
        sites = self.aev.kol_sites(centres)
        species = d[rows.unsqueeze(1), sites]
        f_kol = self.aev.features(species, self.aev.kol)
        out = torch.zeros(d.shape[0], dtype=self.dtype, device=self.device)
        return out.index_add_(0, rows, self._state_energy(f_kol))

    # ---- the pieces
    @torch.no_grad()
    def terms(self, digits: Tensor, vacancies: Tensor) -> tuple[Tensor, Tensor]:
        """``(E_KRA, dE)``, each (T, m, z): the KRA energy and ``E_B - E_A`` of every jump."""
        d = digits.to(self.device).long()
        vac = vacancies.to(self.device).long()
        t, m = vac.shape
        z, dim = self.z, self.aev.dim
        fp = self.aev.jump_fingerprints(d, vac)
        # M_E on F^KOL: E_A once per vacancy (shared by its z paths), then every final state
        energies = self._state_energy(torch.cat([fp["KOL_A"].reshape(-1, dim), fp["KOL_B"].reshape(-1, dim)]))
        e_a = energies[: t * m].reshape(t, m, 1)
        e_b = energies[t * m:].reshape(t, m, z)
        d_e = e_b - e_a
        d_e = d_e + self._other_vacancies(d, vac)
        tw_a, tw_b = (fp[k].reshape(-1, dim).to(self.dtype) for k in ("TW_A", "TW_B"))  # round, then combine
        e_kra = self._kra_energy(KRAModel.symmetric_input(tw_a, tw_b))
        e_kra = e_kra.reshape(t, m, z)
        return e_kra, d_e

    def _other_vacancies(self, d: Tensor, vac: Tensor) -> Tensor:
        """(T, m, z): energy change of the other vacancies v' whose window holds v or the hop site."""
        t, m = vac.shape
        out = torch.zeros((t, m, self.z), dtype=self.dtype, device=self.device)
        if self._ball.numel() == 0:
            return out
        near = self.aev.site_at(self.aev.half[vac].unsqueeze(-2) + self._ball)            # (T, m, n_ball)
        rows, cols, slot = torch.nonzero(gather_sites(d, near) == 0, as_tuple=True)
        if rows.numel() == 0:
            return out
        other = near[rows, cols, slot]                                                    # v'
        v = vac[rows, cols]
        hops = self.aev.hop_sites(v)                                                      # (n, z)
        moving = d[rows.unsqueeze(1), hops]
        sites = self.aev.kol_sites(other)                                                 # (n, M_K)
        spec_a = d[rows.unsqueeze(1), sites]
        spec_b = species_in_b(spec_a.unsqueeze(1), sites.unsqueeze(1), v[:, None, None], hops[..., None],
                          moving[..., None])                                              # (n, z, M_K)
        affected = ((sites.unsqueeze(1) == v[:, None, None]) | (sites.unsqueeze(1) == hops[..., None])).any(-1)
        n, dim = len(rows), self.aev.dim
        f = self.aev.features(torch.cat([spec_a, spec_b.reshape(n * self.z, -1)]), self.aev.kol)
        energies = self._state_energy(f)
        change = energies[n:].reshape(n, self.z) - energies[:n].unsqueeze(1)
        change = torch.where(affected, change, torch.zeros_like(change))
        return out.index_put_((rows, cols), change, accumulate=True)


def load_detailed_balance(kol_dir: str, kra_dir: str, lattice: Lattice, species: Sequence[str],
                          device: torch.device | str = "cpu") -> DetailedBalanceRateModel:
    """The rate model from the model stage's checkpoint folders (``.../models/M_KOL``, ``.../models/KRA``)."""
    from dbkmc.detailed_balance.training import load_model

    dev = str(device)
    kol, kra = load_model(kol_dir, dev), load_model(kra_dir, dev)
    for name, loaded in (("kol", kol), ("kra", kra)):
        if tuple(loaded.species) != tuple(species):
            raise ValueError(f"kmc.rate_model.{name}: model species {loaded.species} do not match "
                             f"the structure's {list(species)}")
    if kol.params != kra.params:
        raise ValueError("kmc.rate_model: the M_KOL and KRA ensembles were trained on different fingerprints")
    return DetailedBalanceRateModel(kol.ensemble, kra.ensemble, kol.params, lattice, species, device)


def build_detailed_balance(spec: Mapping[str, Any], lattice: Lattice, species: tuple[str, ...],
                           device: torch.device) -> DetailedBalanceRateModel:
    """Builder for ``kmc.rate_model.kind: detailed_balance`` (keys ``kol`` and ``kra``: checkpoint folders)."""
    for key in ("kol", "kra"):
        if not spec.get(key):
            raise ValueError(f"kmc.rate_model.{key}: a detailed_balance model needs the {key.upper()} "
                             f"checkpoint folder (e.g. results/<run>/models/{'M_KOL' if key == 'kol' else 'KRA'})")
    return load_detailed_balance(spec["kol"], spec["kra"], lattice, species, device)
