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


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs on pytest-xdist workers: each module's tests go to one worker, so module fixtures
    (trained models, Snakemake runs) are built once, and the two modules of ``small_runs`` go together, so
    the small pipeline runs once."""
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "small_runs" if Path(module).stem in SMALL_RUN_MODULES else module

    return ModuleScheduling(config, log)
