r"""Vibrational prefactors (harmonic TST) that keep exact detailed balance, and their surrogates.

Vineyard: ``k_AB = nu_AB exp(-(E_saddle - E_A) / k_B T)`` with ``ln nu_AB = S_A - S_sad``, the state
term ``S_A = sum_i ln nu_i(A)`` and the saddle term ``S_sad = sum'_i ln nu_i(saddle)`` (unstable mode
left out). The detailed-balance prefactor model mirrors ``E_b = E_KRA + dE/2`` exactly:

    dS    = S_B - S_A                   (antisymmetric, a state-function difference: M_EXT, "PRE_S")
    S_KRA = S_sad - (S_A + S_B) / 2     (symmetric in A and B: KRA, "PRE_KRA")
    ln nu_AB = -(S_KRA + dS/2),   ln nu_BA = -(S_KRA - dS/2),

so ``ln nu_AB - ln nu_BA = S_A - S_B`` for every jump and the Markov chain's stationary distribution is
``pi ∝ exp(-E/k_B T - S_vib)``. Both are trained by the model family's own training code on a renamed
events table (:mod:`~dbkmc.detailed_balance.prefactors.targets`).

- :mod:`~dbkmc.detailed_balance.prefactors.targets`: the prefactor table as a model events table;
- :mod:`~dbkmc.detailed_balance.prefactors.direct`: PRE_DIRECT, an M_NC network on ln nu_AB (no detailed balance);
- :mod:`~dbkmc.detailed_balance.prefactors.model`: the trained models as ln nu_AB, ln nu_BA of events;
- :mod:`~dbkmc.detailed_balance.prefactors.surrogate`: the seed's linear surrogate (ridge on D_min ⊕ D_saddle);
- :mod:`~dbkmc.detailed_balance.prefactors.metrics`: RMSE / std, R², the Meyer-Neldel fit;
- :mod:`~dbkmc.detailed_balance.prefactors.markov`: the exact Markov chain with prefactors;
- :mod:`~dbkmc.detailed_balance.prefactors.synthetic`: a known extensive + symmetric generator (tests, demos).
"""

PREFACTOR_MODELS: tuple[str, ...] = ("PRE_S", "PRE_KRA", "PRE_DIRECT")
"""Folders of ``results/<run>/models/prefactors``: dS (M_EXT), S_KRA (KRA), ln nu_AB (M_NC)."""

PREFACTOR_KINDS: dict[str, str] = {"PRE_S": "M_EXT", "PRE_KRA": "KRA", "PRE_DIRECT": "M_NC"}
"""The model kind behind each prefactor model."""
