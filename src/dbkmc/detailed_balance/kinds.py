"""Names of the detailed-balance model family, free of torch.

The rule files import these at parse time (``workflow/rules/models.smk``, ``loops.smk``,
``far_field.smk``); :mod:`dbkmc.detailed_balance.models` builds the networks they name.
"""

from __future__ import annotations

MODEL_KINDS: tuple[str, ...] = ("M_NC", "M_SAS", "M_HAS", "M_KOL", "M_EXT", "KRA")
"""All model kinds; all but KRA predict dE, KRA predicts E_KRA."""

DE_KINDS: tuple[str, ...] = ("M_NC", "M_SAS", "M_HAS", "M_KOL", "M_EXT")
"""The kinds that predict dE_[A,B]."""
