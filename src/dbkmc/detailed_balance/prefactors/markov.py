r"""The exact Markov chain of :mod:`dbkmc.detailed_balance.markov` with vibrational prefactors.

Rates ``k_ij = nu_ij exp(-E_b(i -> j) / k_B T)`` with the barriers of an energy model (M_EXT + KRA:
``E_b = E_KRA + dE/2``) and the prefactor of each direction:

- ``nu = const``: the reference (pi = exp(-E/k_B T) / Z);
- the detailed-balance model (PRE_S + PRE_KRA): ``ln nu_ij = -(S_KRA + dS_ij/2)``. Then
  ``k_ij / k_ji = exp(-(E_j - E_i)/k_B T - (S_j - S_i))``, so the chain obeys detailed balance exactly and
  ``pi_i ∝ exp(-E_i/k_B T - S_vib,i)`` with E and S_vib the whole-cell values of the two M_EXT ensembles
  (:func:`dbkmc.detailed_balance.extensive.energy_model`);
- PRE_DIRECT: ``ln nu_ij = f(i, j)``, ``ln nu_ji = f(j, i)``: net currents around cycles.

:func:`prefactor_markov_check` tabulates, per prefactor model, the flux imbalance, the net flux fraction,
pi against exp(-E/k_B T - S_vib) (``vib_boltzmann_max_rel_dev``) and against exp(-E/k_B T) alone, and
``max_abs_ln_nu_defect`` = max |ln nu_ij - ln nu_ji - (S_vib,i - S_vib,j)| over the jumps (PRE_S's whole-cell
S_vib; zero to rounding for the detailed-balance model). E_KRA, S_KRA and dS are evaluated as in
:func:`dbkmc.detailed_balance.drift.chain_barriers` (ensemble means, M_EXT in float64).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.drift import Featurizer, common_species, jump_events, member_predictions
from dbkmc.detailed_balance.extensive import energy_model
from dbkmc.detailed_balance.markov import (
    K_B,
    StateSpace,
    boltzmann_weights,
    detailed_balance,
    max_relative_deviation,
    rate_matrix,
    stationary_distribution,
)
from dbkmc.detailed_balance.prefactors.model import PrefactorModel
from dbkmc.detailed_balance.training import LoadedModel


def prefactor_rates(ln_nu: np.ndarray, barrier: np.ndarray, temperature: float) -> np.ndarray:
    """k = exp(ln nu - E_b / k_B T) (1/s, float64)."""
    if not temperature > 0:
        raise ValueError(f"markov: need temperature > 0, got {temperature}")
    out = np.exp(np.asarray(ln_nu, np.float64) - np.asarray(barrier, np.float64) / (K_B * temperature))
    if not np.isfinite(out).all() or (out <= 0).any():
        raise ValueError("markov: non-finite or zero rates (ln nu or barriers out of range)")
    return out


def vib_boltzmann_weights(energies: np.ndarray, s_vib: np.ndarray, temperature: float) -> np.ndarray:
    """exp(-E_i/k_B T - S_vib,i) / Z, float64 (shifted by its maximum before exponentiating)."""
    log_w = -np.asarray(energies, np.float64) / (K_B * temperature) - np.asarray(s_vib, np.float64)
    w = np.exp(log_w - log_w.max())
    return w / w.sum()


def whole_cell(model: LoadedModel, lattice: Lattice, space: StateSpace) -> np.ndarray:
    """The whole-cell value of an M_EXT ensemble (E, or S_vib for PRE_S) in every state (float64)."""
    return energy_model(model).lattice_energy(torch.as_tensor(space.states + 1), lattice)[0].numpy()


def chain_terms(models: Mapping[str, LoadedModel], lattice: Lattice,
                space: StateSpace) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Ensemble-mean predictions (float64) of every model on every jump i -> j and j -> i of the chain,
    featurized once per fingerprint setting (one :class:`~dbkmc.detailed_balance.drift.Featurizer`). M_EXT
    and KRA are evaluated once per jump: their reverse is exactly the negative (a difference of window sums)
    and the same value (a symmetric input), bit for bit; the other kinds are evaluated both ways."""
    species = common_species(models)
    jumps = jump_events(lattice, space, species)
    featurize = Featurizer()
    out = {}
    for name, model in models.items():
        fps = featurize(model, jumps)
        forward = member_predictions(model, fps).mean(0)
        if model.kind == "M_EXT":       # sum(eps(B)) - sum(eps(A)): the swap is the exact negative (IEEE)
            out[name] = (forward, -forward)
        elif model.kind == "KRA":       # a symmetric input: the swap is the same number
            out[name] = (forward, forward)
        else:
            out[name] = (forward, member_predictions(model, fps, swap=True).mean(0))
    return out


def prefactor_markov_check(ext: LoadedModel, kra: LoadedModel, pre: PrefactorModel | None,
                           direct: LoadedModel | None, lattice: Lattice, space: StateSpace,
                           temperature: float, attempt_frequency: float = 1e13) -> pd.DataFrame:
    """One row per prefactor model (and the constant ``nu`` reference): the chain's detailed balance."""
    models = {"M_EXT": ext, "KRA": kra}
    if pre is not None:
        models.update(PRE_S=pre.state, PRE_KRA=pre.saddle)
    if direct is not None:
        models["PRE_DIRECT"] = direct
    terms = chain_terms(models, lattice, space)
    e_kra = terms["KRA"][0]                                     # symmetric: the same both ways
    b_f, b_b = e_kra + 0.5 * terms["M_EXT"][0], e_kra + 0.5 * terms["M_EXT"][1]
    energies = whole_cell(ext, lattice, space)
    s_vib = whole_cell(pre.state, lattice, space) if pre is not None else None
    ln_const = np.full(space.n_jumps, np.log(attempt_frequency))
    ln_nu = {f"nu={attempt_frequency:.3g}": (ln_const, ln_const)}
    if pre is not None:
        s_kra, (ds_f, ds_b) = terms["PRE_KRA"][0], terms["PRE_S"]
        ln_nu["PRE_S+PRE_KRA"] = (-(s_kra + 0.5 * ds_f), -(s_kra + 0.5 * ds_b))
    if direct is not None:
        ln_nu["PRE_DIRECT"] = terms["PRE_DIRECT"]
    rows = []
    for name, (ln_f, ln_b) in ln_nu.items():
        k_f, k_b = prefactor_rates(ln_f, b_f, temperature), prefactor_rates(ln_b, b_b, temperature)
        pi = stationary_distribution(rate_matrix(space.n_states, space.jumps, k_f, k_b))
        balance = detailed_balance(pi, space.jumps, k_f, k_b)
        vib = (max_relative_deviation(pi, vib_boltzmann_weights(energies, s_vib, temperature))
               if s_vib is not None else float("nan"))
        rows.append({"prefactor_model": name, "energy_model": "M_EXT+KRA", "n_states": space.n_states,
                     "n_jumps": space.n_jumps, "temperature_K": float(temperature),
                     "ln_nu_mean": float(np.mean(np.concatenate([ln_f, ln_b]))),
                     "ln_nu_std": float(np.std(np.concatenate([ln_f, ln_b]))),
                     "max_abs_ln_nu_defect": float(np.max(np.abs((ln_f - ln_b) + (s_vib[space.jumps[:, 1]]
                                                  - s_vib[space.jumps[:, 0]])))) if s_vib is not None else float("nan"),
                     "max_rel_flux_imbalance": balance.max_relative_imbalance,
                     "net_flux_fraction": balance.net_flux_fraction,
                     "vib_boltzmann_max_rel_dev": vib,
                     "boltzmann_max_rel_dev": max_relative_deviation(pi, boltzmann_weights(energies, temperature)),
                     "detailed_balance_1e-10": balance.holds(1e-10)})
    return pd.DataFrame(rows)
