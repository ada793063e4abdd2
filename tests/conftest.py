"""Shared fixtures: the default Cu-Ni EAM potential and small real-LAMMPS events."""

from __future__ import annotations

from pathlib import Path

import pytest

import dbkmc  # noqa: F401  (preloads MPICH before anything imports lammps)
from small_pipeline import small_runs  # noqa: F401  (session fixture: one small run, locally and on SLURM)

# The published Nb-Mo-Ta NNK network and its dumps, committed with their licences.
NNK_NBMOTA = Path(__file__).resolve().parents[1] / "data" / "nnk_nbmota"

CUNI_EAM = {
    "pair_style": "eam/alloy",
    "pair_coeff": "* * {table} {elements}",
    "files": {"table": "CuNi.eam.alloy"},
    "elements": ["Cu", "Ni"],
}


@pytest.fixture(scope="session")
def cuni_potential():
    from dbkmc.neb.potentials import Potential

    return Potential.from_config("cuni_eam", CUNI_EAM)


@pytest.fixture(scope="session")
def cuni_end_members(cuni_potential) -> dict[str, float]:
    from dbkmc.neb.lattice_constants import measure_end_members

    return measure_end_members(cuni_potential, ["Cu", "Ni"], "fcc")


SMALL_RUN_MODULES = {"test_reproducibility", "test_slurm"}
"""Modules that share the session fixture ``small_runs`` (one small pipeline, locally and on SLURM)."""


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``make test`` runs ``-n 2 --dist loadgroup``), keep each module's tests on one worker, so
    module fixtures (trained models, Snakemake runs) are built once, and the two modules of ``small_runs`` together."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        item.add_marker(pytest.mark.xdist_group("small_runs" if module in SMALL_RUN_MODULES else module))
