"""Physical constants shared by the kMC engine, the rate models and the analyses."""

KB_EV = 8.617333262e-5
"""Boltzmann constant in eV/K (CODATA 2018)."""

NU_DEFAULT = 1e13
"""Default attempt frequency nu in s^-1."""

PUBLISHED_NNK_CUTOFF = 7.5
"""Encoding cutoff (A) the published Nb-Mo-Ta NNK network was trained with (Xing et al. 2024)."""

FAR_FIELD_DATASET = "far-field"
"""Name of the far-field pseudo-dataset (Fig 11); dataset names in a config cannot contain '-', so it never clashes."""
