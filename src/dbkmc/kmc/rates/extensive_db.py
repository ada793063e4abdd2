r"""Detailed-balance rate model with extensive M_EXT state energies: ``E_b = E_KRA + dE/2``.

The state energy is ``E(S) = sum_i eps_{s_i}(G_i(S))`` (:mod:`dbkmc.detailed_balance.extensive_model`,
descriptors :mod:`dbkmc.detailed_balance.site_descriptors`). For the jump of vacancy ``v`` along path
``k`` to ``h``,

    dE = E(B) - E(A) = sum_{i in window(v, h)} [eps(G_i(B)) - eps(G_i(A))],

exact, because no descriptor outside the window changes; other vacancies are ordinary (zero-energy) sites.
``E_KRA`` is the KRA ensemble on the transition-wise fingerprints, exactly as in
:mod:`dbkmc.kmc.rates.detailed_balance`. ``E_b(A->B) - E_b(B->A) = E(B) - E(A)`` for every jump
(detailed balance by construction).

Incremental evaluation (per trajectory): the model keeps a mirror of the digits it last saw, the
descriptors G_i and the site energies eps_i of that state. A call

1. writes back the window of the jump that was made since the last call, if it is one of the paths that
   call evaluated (its G(B) and eps(B) are already known);
2. compares the digits with the mirror on the sites the requested barriers depend on, and recomputes
   G and eps around any other difference (from scratch, so any caller, any change, stays exact);
3. forms ``G(B) = G(A) + delta`` on the window of every path (:class:`~dbkmc.kmc.rates.hop_descriptors.HopDescriptors`)
   and evaluates all ``paths x window`` sites in one batched call of the per-species networks.

Nothing scans the lattice after the first call, so the cost per jump does not grow with the cell. Everything
is tensor code on the model's device (CPU or CUDA).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dbkmc.core.lattice import NN_VECTORS, Lattice
from dbkmc.detailed_balance.fingerprints import AEVParams
from dbkmc.detailed_balance.lattice_aev import LatticeAEV
from dbkmc.detailed_balance.models import Ensemble, KRAModel
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors, shell_offsets
from dbkmc.kmc.rates.detailed_balance import StackedEnergy, build_detailed_balance
from dbkmc.kmc.rates.extensive_fast import CompiledStep
from dbkmc.kmc.rates.hop_descriptors import HopDescriptors

_CHUNK = 4096
"""Sites per chunk when a whole cell is described (bounds the triplet intermediates)."""


class StackedSiteEnergy:
    """Ensemble mean of M_EXT's per-species site energies eps_s(G), as plain GEMMs.

    The input standardisation is folded into the first layer, whose weights of all members form one
    matrix; later layers are batched over members (CELU(0.1) between layers, as the model)."""

    def __init__(self, ensemble: Ensemble) -> None:
        base = ensemble.base
        self.n_species = int(base.n_species)
        mean, std = ensemble.buffers["x_mean"], ensemble.buffers["x_std"]                   # (M, D)
        scale = ensemble.buffers["e_scale"]                                                 # (M,)
        self.n_members = mean.shape[0]
        self.dtype, self.device = mean.dtype, mean.device
        self.mu = ensemble.params["mu"].mean(0)                                             # (S,)
        self.nets = []
        for s, net in enumerate(base.nets):
            layers = [(ensemble.params[f"nets.{s}.{i}.weight"], ensemble.params[f"nets.{s}.{i}.bias"])
                      for i, module in enumerate(net) if isinstance(module, nn.Linear)]
            w0, b0 = layers[0]                                                              # (M, H, D), (M, H)
            w0 = w0 / std.unsqueeze(1)
            b0 = b0 - (w0 * mean.unsqueeze(1)).sum(-1)
            rest = [(w.transpose(1, 2).contiguous(), b.unsqueeze(1)) for w, b in layers[1:]]
            w_last, b_last = rest[-1]
            factor = (scale / self.n_members).view(-1, 1, 1)
            rest[-1] = (w_last * factor, b_last * factor)
            self.nets.append((w0.reshape(-1, w0.shape[-1]).t().contiguous(), b0.reshape(1, -1), w0.shape[1], rest))

    def _one(self, s: int, g: Tensor) -> Tensor:
        w0t, b0, hidden, rest = self.nets[s]
        n = g.shape[0]
        h = torch.celu(torch.addmm(b0, g, w0t), 0.1).reshape(n, self.n_members, hidden).transpose(0, 1)
        for i, (w, b) in enumerate(rest):
            h = torch.baddbmm(b, h, w)
            if i < len(rest) - 1:
                h = torch.celu(h, 0.1)
        return h.sum(0).squeeze(-1)

    @torch.no_grad()
    def __call__(self, digits: Tensor, g: Tensor) -> Tensor:
        """Site energies (N,) eV of sites with digits (N,) (0 = vacancy: 0 eV) and descriptors G (N, D)."""
        g = g.to(self.dtype)
        out = torch.zeros(digits.shape[0], dtype=self.dtype, device=g.device)
        for s in range(self.n_species):
            rows = torch.nonzero(digits == s + 1).squeeze(1)
            if rows.numel():
                out.index_copy_(0, rows, self._one(s, g.index_select(0, rows)))
        return out


class ExtensiveRateModel:
    """``E_b = E_KRA + dE/2`` with M_EXT energies (a :class:`dbkmc.kmc.rates.base.RateModel`; see the module docstring).

    Args:
        energy: the M_EXT ensemble. descriptors: its :class:`SiteDescriptors` on the kMC lattice.
        kra: the KRA ensemble and ``params`` its AEV parameters.
        species: element names in digit order. device: where everything runs.
    """

    has_energy = True

    def __init__(self, energy: Ensemble, descriptors: SiteDescriptors, kra: Ensemble, params: AEVParams,
                 lattice: Lattice, species: Sequence[str], device: torch.device | str = "cpu",
                 compiled: bool = True) -> None:
        if energy.kind != "M_EXT":
            raise ValueError(f"kmc.rate_model.energy: need an M_EXT ensemble, got {energy.kind}")
        if kra.kind != "KRA":
            raise ValueError(f"kmc.rate_model.kra: need a KRA ensemble, got {kra.kind}")
        n_species = len(species)
        if energy.arch()["feature_dim"] != n_species + descriptors.n_features:
            raise ValueError(f"kmc.rate_model.energy: the ensemble expects {energy.arch()['feature_dim']} inputs, "
                             f"{n_species} species + descriptors of {descriptors.n_features} give "
                             f"{n_species + descriptors.n_features}")
        if kra.arch()["feature_dim"] != params.dim(n_species):
            raise ValueError(f"kmc.rate_model.kra: ensemble expects {kra.arch()['feature_dim']} features, "
                             f"the AEV of {n_species} species has {params.dim(n_species)}")
        self.device = torch.device(device)
        self.lattice, self.species = lattice, tuple(species)
        self.energy_ensemble, self.kra, self.params = energy, kra, params
        self.dtype = energy.dtype
        self.desc = descriptors
        self.hops = HopDescriptors(descriptors)
        self.site_energy = StackedSiteEnergy(energy)
        self._kra_energy = StackedEnergy(kra)
        # TW fingerprints contracted in float64 and rounded to the KRA members' dtype before the symmetric input,
        # as the model stage feeds them (dbkmc.kmc.rates.detailed_balance). A float32 contraction forms a jump's
        # TW_B from the other state with other rounding; trained KRA ensembles react to rounding-level
        # differences of tiny features (|TW_A - TW_B| components near 0), so E_KRA(A->B) and E_KRA(B->A)
        # differed by up to 20 meV and detailed balance failed (flux imbalance 1e-5, loop drift of meV).
        self.aev = LatticeAEV(lattice, params, n_species, device=self.device, dtype=torch.float64,
                              first_species=1)
        self._hc = torch.as_tensor(lattice.half_coords, dtype=torch.long, device=self.device)
        offs, _ = shell_offsets(lattice.kind, descriptors.reach_shell)
        ball = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.as_tensor(offs)]).to(self.device)
        self._ball = ball                                                     # a site and its descriptor's reach
        # the sites the barriers of a vacancy read: its path windows and every site their G depends on
        win = torch.remainder(self._hc[descriptors.path_windows(torch.tensor(0, device=self.device))]
                              - self._hc[0] + lattice.n, 2 * lattice.n) - lattice.n
        region = (win.reshape(-1, 1, 3) + ball).reshape(-1, 3)
        self._region = torch.unique(region, dim=0)
        d_nn = float(np.linalg.norm(NN_VECTORS[lattice.kind][0])) * lattice.a / 2.0
        # dE reads the region; E_KRA the transition-wise window (within r_cut of v or h)
        self.reach = max(self._reach_energy(), params.r_cut + d_nn)
        self._mirror: Tensor | None = None
        self._g: Tensor | None = None
        self._eps: Tensor | None = None
        self._stash: tuple[Tensor, ...] | None = None
        # one trajectory, one vacancy, CPU: the compiled step (dbkmc.kmc.rates.extensive_fast)
        self._compiled = CompiledStep(self) if compiled and self.device.type == "cpu" else None

    def _reach_energy(self) -> float:
        """Angstrom: the farthest site (from v) whose digit enters a barrier through dE."""
        return float(self._region.double().norm(dim=-1).max()) * self.lattice.a / 2.0

    @property
    def z(self) -> int:
        return self.hops.z

    # ---- the RateModel interface
    @torch.no_grad()
    def barriers(self, digits: Tensor, vacancies: Tensor) -> Tensor:
        """(T, n_sites) digits, (T, m) vacancy sites -> (T, m, z) barriers in eV."""
        if self._compiled is not None and vacancies.shape[1] == 1:
            return self._compiled.barriers(self._as_long(digits), self._as_long(vacancies))
        e_kra, d_e = self.terms(digits, vacancies)
        return e_kra + 0.5 * d_e

    @torch.no_grad()
    def barriers_rows(self, digits: Tensor, vacancies: Tensor, rows: np.ndarray) -> Tensor:
        """(R, 1, z) barriers of the trajectories ``rows`` only, for an engine that knows the others' (its state
        memo): the compiled CPU path evaluates just those; the tensor path evaluates all and selects."""
        if self._compiled is not None and vacancies.shape[1] == 1:
            return self._compiled.barriers(self._as_long(digits), self._as_long(vacancies), rows)
        return self.barriers(digits, vacancies)[torch.as_tensor(rows, device=self.device)]

    @torch.no_grad()
    def energy(self, digits: Tensor) -> Tensor:
        """(T, n_sites) digits -> (T,) whole-cell energy ``sum_i eps(G_i) + sum_s mu_s N_s`` (eV), from scratch."""
        d = digits.to(self.device).long()
        g = self._describe_all(d, self.dtype)
        eps = self.site_energy(d.reshape(-1), g.reshape(-1, g.shape[-1])).view(d.shape)
        counts = torch.stack([(d == s + 1).sum(1) for s in range(len(self.species))], 1).to(self.dtype)
        return eps.sum(1) + counts @ self.site_energy.mu

    # ---- the pieces
    @torch.no_grad()
    def terms(self, digits: Tensor, vacancies: Tensor) -> tuple[Tensor, Tensor]:
        """``(E_KRA, dE)``, each (T, m, z)."""
        d, vac = self._as_long(digits), self._as_long(vacancies)
        if self._compiled is not None and vac.shape[1] == 1:
            e_kra, d_e = self._compiled.terms(d, vac)
            return e_kra.unsqueeze(1), d_e.unsqueeze(1)
        return self.kra_energies(d, vac), self.energy_changes(d, vac)

    def _as_long(self, t: Tensor) -> Tensor:
        return t if t.dtype == torch.long and t.device == self.device else t.to(self.device).long()

    @torch.no_grad()
    def kra_energies(self, d: Tensor, vac: Tensor) -> Tensor:
        """E_KRA (T, m, z) of every path (the KRA ensemble on TW fingerprints contracted in float64, rounded to its dtype)."""
        t, m = vac.shape
        tw_a, tw_b = self.aev.transition_fingerprints(d, vac)
        dim, dtype = self.aev.dim, self._kra_energy.dtype
        x = KRAModel.symmetric_input(tw_a.reshape(-1, dim).to(dtype), tw_b.reshape(-1, dim).to(dtype))  # round, then combine
        return self._kra_energy(x).reshape(t, m, self.z)

    @torch.no_grad()
    def energy_changes(self, d: Tensor, vac: Tensor) -> Tensor:
        """dE = E(B) - E(A) (T, m, z) of every path, from the cached site terms and the window updates."""
        if self._compiled is not None:
            self._compiled.forget()
        self._sync(d, vac)
        t, m = vac.shape
        win = self.desc.path_windows(vac)                                                 # (T, m, z, M)
        flat = (win + (torch.arange(t, device=self.device) * self.lattice.n_sites).view(t, 1, 1, 1)).reshape(-1)
        dim = self.desc.n_features
        g_b = self._g.view(-1, dim).index_select(0, flat).view(*win.shape, dim).to(self.dtype)
        g_b += self.hops.delta(d, vac, self.dtype)                                         # (T, m, z, M, D)
        spec_a = torch.gather(d, 1, win.reshape(t, -1)).view(win.shape)
        spec_b = torch.cat([spec_a[..., 1:2], torch.zeros_like(spec_a[..., :1]), spec_a[..., 2:]], -1)
        eps_b = self.site_energy(spec_b.reshape(-1), g_b.view(-1, dim)).view(win.shape)
        self._stash = (vac, win, g_b, eps_b)
        return eps_b.sum(-1) - self._eps.view(-1).index_select(0, flat).view(win.shape).sum(-1)

    # ---- the cache of the current state
    def _describe_all(self, d: Tensor, dtype: torch.dtype) -> Tensor:
        sites = torch.arange(self.lattice.n_sites, device=self.device)
        return torch.cat([self.desc.describe(d, sites[i:i + _CHUNK], dtype=dtype)
                          for i in range(0, len(sites), _CHUNK)], -2)

    def reset(self, digits: Tensor) -> None:
        """Forget the cache; describe every site of ``digits`` (T, n_sites) afresh."""
        d = digits.to(self.device).long()
        self._mirror = d.clone()
        self._g = self._describe_all(d, torch.float32)     # counts: exact in float32, half the memory
        self._eps = self.site_energy(d.reshape(-1), self._g.reshape(-1, self._g.shape[-1])).view(d.shape)
        self._stash = None
        if getattr(self, "_compiled", None) is not None:
            self._compiled.forget()

    def _sync(self, d: Tensor, vac: Tensor) -> None:
        """Make the cache exact on every site the barriers of ``vac`` read (see the module docstring)."""
        if self._mirror is None or self._mirror.shape != d.shape:
            self.reset(d)
            return
        self._write_back(d)
        t = d.shape[0]
        sites = self.desc_sites(self._hc[vac].unsqueeze(-2) + self._region).reshape(t, -1)
        diff = torch.gather(d, 1, sites) != torch.gather(self._mirror, 1, sites)
        if bool(diff.any()):
            self._refresh(d, sites, diff)

    def desc_sites(self, half: Tensor) -> Tensor:
        """Site indices at half-coordinates (..., 3), periodic."""
        return self.aev.site_at(half)

    def _write_back(self, d: Tensor) -> None:
        """If the state is the last call's A with one of its evaluated jumps made, take that path's G(B), eps(B)."""
        if self._stash is None:
            return
        vac, win, g_b, eps_b = self._stash
        self._stash = None
        if vac.shape[0] != d.shape[0]:
            return
        t, m = vac.shape
        hop = win[..., 1]                                                                  # (T, m, z)
        mir, rows = self._mirror, torch.arange(t, device=self.device).view(t, 1, 1)
        was = mir[rows, hop]
        made = (mir[rows, vac.unsqueeze(-1)] == 0) & (was != 0) & (d[rows, hop] == 0) \
            & (d[rows, vac.unsqueeze(-1)] == was)
        flat = made.reshape(t, -1)
        hit = torch.nonzero(flat.any(1)).squeeze(1)
        if hit.numel() == 0:
            return
        pick = flat[hit].to(torch.uint8).argmax(1)
        i, k = pick // self.z, pick % self.z
        sites = win[hit, i, k]                                                             # (n, M)
        self._mirror[hit.unsqueeze(1), sites[:, :2]] = d[hit.unsqueeze(1), sites[:, :2]]
        self._g[hit.unsqueeze(1), sites] = g_b[hit, i, k].to(self._g.dtype)
        self._eps[hit.unsqueeze(1), sites] = eps_b[hit, i, k]

    def _refresh(self, d: Tensor, sites: Tensor, diff: Tensor) -> None:
        """Copy the differing digits into the mirror; recompute G and eps of every site that sees one."""
        rows, cols = torch.nonzero(diff, as_tuple=True)
        changed = sites[rows, cols]
        self._mirror[rows, changed] = d[rows, changed]
        around = self.desc_sites(self._hc[changed].unsqueeze(-2) + self._ball)             # (n, B)
        for t in torch.unique(rows).tolist():
            near = torch.unique(around[rows == t])
            g = self.desc.describe(self._mirror[t], near, dtype=self.dtype)
            self._g[t, near] = g.to(self._g.dtype)
            self._eps[t, near] = self.site_energy(self._mirror[t, near], g)


def load_extensive(energy_dir: str, kra_dir: str, lattice: Lattice, species: Sequence[str],
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   compiled: bool = True) -> ExtensiveRateModel:
    """The rate model from the model stage's folders ``.../models/M_EXT`` and ``.../models/KRA``.

    The site energies run in ``dtype``: float32, the members' training precision, by default (about twice as
    fast as float64; dE then agrees with a float64 evaluation to ~1e-6 eV and detailed balance holds to
    float32 rounding); float64 for exact agreement with :mod:`dbkmc.detailed_balance.extensive`."""
    from dbkmc.detailed_balance.extensive import load_energy_model
    from dbkmc.detailed_balance.training import load_model

    dev = str(device)
    ext, kra = load_energy_model(energy_dir, dev), load_model(kra_dir, dev)
    for name, names in (("energy", ext.species), ("kra", kra.species)):
        if tuple(names) != tuple(species):
            raise ValueError(f"kmc.rate_model.{name}: model species {list(names)} do not match "
                             f"the structure's {list(species)}")
    energy = Ensemble([m.to(dtype) for m in ext.members])
    return ExtensiveRateModel(energy, ext.descriptors(lattice), kra.ensemble, kra.params, lattice, species, device,
                              compiled)


def build_detailed_balance_rates(spec: Mapping[str, Any], lattice: Lattice, species: tuple[str, ...],
                                 device: torch.device) -> Any:
    """Builder for ``kmc.rate_model.kind: detailed_balance``: state energies from ``energy`` (an M_EXT folder)
    or ``kol`` (an M_KOL folder, :func:`dbkmc.kmc.rates.detailed_balance.build_detailed_balance`), and ``kra``."""
    if spec.get("energy") and spec.get("kol"):
        raise ValueError("kmc.rate_model.energy: give either energy (M_EXT) or kol (M_KOL), not both")
    if not spec.get("energy"):
        return build_detailed_balance(spec, lattice, species, device)
    if not spec.get("kra"):
        raise ValueError("kmc.rate_model.kra: a detailed_balance model needs the KRA checkpoint folder "
                         "(e.g. results/<run>/models/KRA)")
    return load_extensive(spec["energy"], spec["kra"], lattice, species, device)
