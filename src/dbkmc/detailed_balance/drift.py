r"""The model family on closed loops and on a complete Markov chain.

Loop drift (Fig 9)
------------------
For a loop of L sites (:mod:`dbkmc.detailed_balance.loops`) the vacancy hops once around it and
the cell returns to its first state, so the true energy change is zero. A model
predicts

    E_net = sum_{k=1..L} dE_[S_k, S_{k+1}],   S_{L+1} = S_1,

from each hop's ideal-lattice fingerprints, featurized exactly as in training
(:func:`dbkmc.detailed_balance.fingerprints.featurize_events` with the parameters stored in
the model's checkpoint). :func:`loop_energy_sums` gives E_net per loop for
every ensemble member and for the ensemble mean; :func:`drift_summary`
reduces them to ``<|E_net|>(L)`` with its spread. M_KOL's E_net is zero up to
float rounding; M_HAS is antisymmetric on every hop but not conservative on
cycles, so its E_net is not zero in general.

Markov chain
------------
:func:`chain_rates` evaluates every jump of a :class:`dbkmc.detailed_balance.markov.StateSpace`
in both directions with one dE model and the KRA model (ensemble means, summed
in float64). E_KRA is evaluated once per jump and used for both directions
(the KRA model is exactly symmetric). M_KOL enters through its state energies,
one evaluation of M_E per state, so ``dE_ij = E_j - E_i``; the other models
through their prediction on ``(F_{A∪B:A}, F_{A∪B:B})`` and on the swapped pair.
:func:`markov_check` solves the chain and tabulates its detailed balance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dbkmc.detailed_balance.extensive import energy_model
from dbkmc.detailed_balance.fingerprints import featurize_events
from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.loops import LoopSet, loop_hop_events, loop_states, occupation_strings
from dbkmc.detailed_balance.markov import (
    StateSpace,
    boltzmann_weights,
    detailed_balance,
    max_relative_deviation,
    rate_matrix,
    rates,
    stationary_distribution,
)
from dbkmc.detailed_balance.training import LoadedModel


class Featurizer:
    """Fingerprints of event rows for several models, computed once per distinct AEV setting.

    It holds the fingerprints of one list of events at a time (the last one it was given).

    ``kol_b_from``: for event rows whose state B is the state A of another row
    (the hops of a closed loop), ``KOL_B`` is taken from that row's ``KOL_A``
    (``KOL_B[i] = KOL_A[kol_b_from[i]]``, the same state) instead of being
    featurized a second time.
    """

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, Tensor]] = {}
        self._events: object = None

    def __call__(self, model: LoadedModel, events: Sequence[Mapping],
                 kol_b_from: np.ndarray | None = None) -> dict[str, Tensor]:
        if events is not self._events:
            self._cache, self._events = {}, events
        ext = model.ensemble.fingerprint == "EXT"
        key = json.dumps(["EXT", model.extra.get("ext_shells"), model.species] if ext else
                         [model.params.to_dict(), model.species], sort_keys=True)
        if key not in self._cache:
            if ext:    # M_EXT: window fingerprints (integer counts, exact in any float dtype)
                fps = model.featurize(events, "cpu")
            elif kol_b_from is None:
                fps = featurize_events(events, model.params, "cpu", species=model.species)
            else:
                fps = featurize_events(events, model.params, "cpu", species=model.species,
                                       kinds=("KOL_A", "TW_A", "TW_B"))
                fps["KOL_B"] = fps["KOL_A"][torch.as_tensor(kol_b_from)]
            self._cache[key] = fps
        dev, dtype = model.ensemble.device, model.ensemble.dtype
        return {k: v.to(device=dev, dtype=dtype) for k, v in self._cache[key].items()}


def common_species(models: Mapping[str, LoadedModel]) -> list[str]:
    """The element list shared by all models (error if they differ)."""
    lists = {name: list(m.species) for name, m in models.items()}
    first = next(iter(lists.values()))
    if any(v != first for v in lists.values()):
        raise ValueError(f"drift: the models were trained on different species lists {lists}")
    return first


def member_predictions(model: LoadedModel, fps: Mapping[str, Tensor], swap: bool = False) -> np.ndarray:
    """(M, N) float64 member predictions on the jumps A -> B (or B -> A with ``swap``)."""
    ens = model.ensemble
    if ens.fingerprint == "EXT":    # float64 site energies: dE of a loop's hops cancel to float64 rounding
        ens = ens.astype(torch.float64)
    x_a, x_b = fps[f"{ens.fingerprint}_A"], fps[f"{ens.fingerprint}_B"]
    if swap:
        x_a, x_b = x_b, x_a
    return ens(x_a, x_b).to("cpu", torch.float64).numpy()


# --------------------------------------------------------------------------- loops


def loop_energy_sums(models: Mapping[str, LoadedModel], lattice: Lattice, loop_set: LoopSet,
                     composition: Mapping[str, float], loop_species: str | None, seed: int) -> pd.DataFrame:
    """E_net of every loop and model: one row per (model, L, loop).

    Columns: ``model``, ``L``, ``loop``, ``loop_species``, ``sites`` (walking
    order), ``E_net`` (ensemble mean prediction, eV) and ``E_net_members``
    (one value per member). The chemistry of the loops of length L is drawn
    from a generator seeded by ``(seed, L)``.
    """
    species = common_species(models)
    featurize = Featurizer()
    frames = []
    for length in sorted(loop_set.loops):
        loops = loop_set.loops[length]
        if not loops:
            continue
        rng = np.random.default_rng([int(seed), int(length)])
        occ, on_loop = loop_states(lattice, loops, species, composition, loop_species, rng)
        events = loop_hop_events(lattice, loops, occ, species)
        hop = np.arange(len(events)).reshape(len(loops), length)
        after = np.roll(hop, -1, axis=1).reshape(-1)      # state B of hop k is state A of hop k + 1
        for name, model in models.items():
            members = member_predictions(model, featurize(model, events, after))
            e_net = members.reshape(members.shape[0], len(loops), length).sum(axis=2)   # (M, n_loops)
            frames.append(pd.DataFrame({
                "model": name, "L": length, "loop": np.arange(len(loops)),
                "loop_species": [species[int(x)] for x in on_loop],
                "sites": [list(map(int, loop)) for loop in loops],
                "E_net": e_net.mean(axis=0),
                "E_net_members": list(e_net.T),
            }))
    columns = ["model", "L", "loop", "loop_species", "sites", "E_net", "E_net_members"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def drift_summary(per_loop: pd.DataFrame, loop_set: LoopSet, models: Sequence[str]) -> pd.DataFrame:
    """``<|E_net|>(L)`` per model: one row per (model, L), including lengths without loops.

    ``mean_abs_E_net_eV``/``std_abs_E_net_eV``/``max_abs_E_net_eV``: over the loops,
    from the ensemble-mean prediction; ``members_mean_abs_E_net_eV`` and
    ``members_std_abs_E_net_eV``: ``<|E_net|>`` of each member alone, mean and
    standard deviation over members. Lengths that were not reached keep their
    status and NaN values.
    """
    rows = []
    for name in models:
        mine = per_loop[per_loop["model"] == name]
        for length in sorted(loop_set.status):
            sel = mine[mine["L"] == length]
            row = {"model": name, "L": length, "status": loop_set.status[length], "n_loops": len(sel)}
            if len(sel):
                abs_net = np.abs(sel["E_net"].to_numpy())
                per_member = np.abs(np.stack(sel["E_net_members"].to_numpy())).mean(axis=0)
                row.update(mean_abs_E_net_eV=abs_net.mean(), std_abs_E_net_eV=abs_net.std(),
                           max_abs_E_net_eV=abs_net.max(), members_mean_abs_E_net_eV=per_member.mean(),
                           members_std_abs_E_net_eV=per_member.std())
            else:
                row.update(mean_abs_E_net_eV=np.nan, std_abs_E_net_eV=np.nan, max_abs_E_net_eV=np.nan,
                           members_mean_abs_E_net_eV=np.nan, members_std_abs_E_net_eV=np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- Markov chain


def jump_events(lattice: Lattice, space: StateSpace, species: Sequence[str]) -> list[dict]:
    """Event rows for every jump i -> j (i < j) of the state space."""
    texts = occupation_strings(space.states)
    src = space.jumps[:, 0]
    common = {"lattice": lattice.kind, "supercell": lattice.n, "a": lattice.a, "species": ",".join(species)}
    return [{"occupation": texts[i], "vacancy_site": int(space.vacancy[i]), "hop_site": int(h), **common}
            for i, h in zip(src, space.hop_site, strict=True)]


def state_events(lattice: Lattice, space: StateSpace, species: Sequence[str]) -> list[dict]:
    """One event row per state (its vacancy and any neighbour hop), to read the state's F^KOL as KOL_A."""
    texts = occupation_strings(space.states)
    common = {"lattice": lattice.kind, "supercell": lattice.n, "a": lattice.a, "species": ",".join(species)}
    return [{"occupation": t, "vacancy_site": int(v), "hop_site": int(lattice.neighbors[v, 0]), **common}
            for t, v in zip(texts, space.vacancy, strict=True)]


def chain_barriers(models: Mapping[str, LoadedModel], kra: LoadedModel, lattice: Lattice,
                   space: StateSpace) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
    """Barriers of every jump i -> j and j -> i per dE model, and M_KOL's state energies (or None).

    ``E_b(i -> j) = E_KRA + dE_ij / 2`` with ensemble means in float64. M_EXT's dE is its own
    prediction from each jump's window (float64), not a difference of the whole-cell energies.
    """
    species = common_species({**models, "KRA": kra})
    featurize = Featurizer()
    jumps = jump_events(lattice, space, species)
    e_kra = member_predictions(kra, featurize(kra, jumps)).mean(axis=0)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    energies = None
    for name, model in models.items():
        if model.kind == "M_KOL":
            kol = Featurizer()(model, state_events(lattice, space, species))["KOL_A"]  # keeps the jumps' cache
            energies = model.ensemble.state_energy(kol).members.to("cpu", torch.float64).numpy().mean(axis=0)
            d_forward = energies[space.jumps[:, 1]] - energies[space.jumps[:, 0]]
            d_backward = -d_forward
        else:
            fps = featurize(model, jumps)
            d_forward = member_predictions(model, fps).mean(axis=0)
            d_backward = member_predictions(model, fps, swap=True).mean(axis=0)
        out[name] = (e_kra + 0.5 * d_forward, e_kra + 0.5 * d_backward)
    return out, energies


def markov_check(models: Mapping[str, LoadedModel], kra: LoadedModel, lattice: Lattice, space: StateSpace,
                 temperature: float, attempt_frequency: float) -> pd.DataFrame:
    """One row per dE model: the chain's detailed-balance measures (see :mod:`dbkmc.detailed_balance.markov`).

    ``boltzmann_max_rel_dev`` compares pi with exp(-E/k_B T)/Z of M_KOL's state
    energies, or of M_EXT's whole-cell energies E(S) (NaN for models without state energies).
    """
    barriers, energies = chain_barriers(models, kra, lattice, space)
    rows = []
    for name in models:
        b_fwd, b_bwd = barriers[name]
        k_fwd = rates(b_fwd, temperature, attempt_frequency)
        k_bwd = rates(b_bwd, temperature, attempt_frequency)
        pi = stationary_distribution(rate_matrix(space.n_states, space.jumps, k_fwd, k_bwd))
        balance = detailed_balance(pi, space.jumps, k_fwd, k_bwd)
        if models[name].kind == "M_KOL":
            boltz = max_relative_deviation(pi, boltzmann_weights(energies, temperature))
        elif models[name].kind == "M_EXT":   # pi against the Boltzmann weights of the whole-cell E(S)
            e_ext = energy_model(models[name]).lattice_energy(torch.as_tensor(space.states + 1), lattice)[0]
            boltz = max_relative_deviation(pi, boltzmann_weights(e_ext.numpy(), temperature))
        else:
            boltz = float("nan")
        rows.append({"model": name, "n_states": space.n_states, "n_jumps": space.n_jumps,
                     "temperature_K": float(temperature),
                     "max_rel_flux_imbalance": balance.max_relative_imbalance,
                     "net_flux_fraction": balance.net_flux_fraction,
                     "boltzmann_max_rel_dev": boltz,
                     "detailed_balance_1e-10": balance.holds(1e-10)})
    return pd.DataFrame(rows)
