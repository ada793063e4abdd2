"""Physical constants shared by the kMC engine, the rate models and the analyses."""

KB_EV = 8.617333262e-5
"""Boltzmann constant in eV/K (CODATA 2018)."""

NU_DEFAULT = 1e13
"""Default attempt frequency nu in s^-1."""
