"""CI-NEB with real LAMMPS on the 255-atom fcc cell."""

import numpy as np
import pytest

from dbkmc.core.composition import vegard_lattice_parameter
from dbkmc.neb.events import EventSettings, event_geometry, run_event
from dbkmc.neb.cell import EnginePool
from dbkmc.neb.cineb import NEBSettings
from dbkmc.core.sampling import sample_events

SETTINGS = EventSettings(NEBSettings())


def _events(end_members, comps, n, supercell=4, seed=3):
    a = {label: vegard_lattice_parameter(fr, end_members) for label, fr in comps.items()}
    return sample_events("t", lattice_kind="fcc", supercell=supercell, mode="pairs", compositions=comps,
                         n_events=n, seed=seed, species=["Cu", "Ni"], lattice_parameters=a)


@pytest.fixture(scope="module")
def pool(cuni_potential):
    p = EnginePool(cuni_potential, ["Cu", "Ni"], n_images=5)
    yield p
    p.close()


@pytest.mark.parametrize("element", ["Cu", "Ni"])
def test_pure_metal_barrier_is_symmetric_with_saddle_in_the_middle(element, pool, cuni_end_members):
    comps = {element: {"Cu": float(element == "Cu"), "Ni": float(element == "Ni")}}
    row, _ = run_event(_events(cuni_end_members, comps, 1)[0], pool, SETTINGS)
    assert row["status"] == "accepted", row["reject_reason"]
    assert abs(row["barrier_forward"] - row["barrier_backward"]) < 1e-3
    assert abs(row["dE"]) < 1e-3
    assert row["climb_index"] == 3  # 5 intermediate images: index 3 of 0..6 is the middle
    # EAM vacancy migration barriers are a few tenths of an eV
    assert 0.3 < row["barrier_forward"] < 1.5
    assert row["E_KRA"] == pytest.approx(row["barrier_forward"], abs=1e-3)


def test_energetics_are_consistent(pool, cuni_end_members):
    row, structures = run_event(_events(cuni_end_members, {"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}}, 1, seed=11)[0],
                                pool, SETTINGS)
    assert row["status"] == "accepted", row["reject_reason"]
    assert row["dE"] == pytest.approx(row["E_B"] - row["E_A"], abs=1e-12)
    assert row["E_KRA"] == pytest.approx(row["E_saddle"] - 0.5 * (row["E_A"] + row["E_B"]), abs=1e-12)
    assert row["barrier_forward"] - row["barrier_backward"] == pytest.approx(row["dE"], abs=1e-12)
    assert row["E_saddle"] == pytest.approx(max(row["image_energies"]), abs=1e-12)
    assert len(row["image_energies"]) == 7
    assert set(structures) == {"A_ideal", "B_ideal", "A_relaxed", "B_relaxed", "saddle"}


def _ase_neb_barrier(cuni_potential, event, relaxed_a, relaxed_b):
    """Independent CI-NEB: ASE's NEB and FIRE driving LAMMPS through lammpslib."""
    from ase import Atoms
    from ase.calculators.lammpslib import LAMMPSlib
    from ase.mep import NEB
    from ase.optimize import FIRE

    geo = event_geometry(event)
    symbols = [("Cu", "Ni")[t - 1] for t in geo.types]
    cmds = cuni_potential.commands(["Cu", "Ni"])[:2]
    images = []
    for i in range(7):
        atoms = Atoms(symbols, positions=relaxed_a, cell=np.diag(geo.lattice.box), pbc=True)
        atoms.calc = LAMMPSlib(lmpcmds=cmds, atom_types={"Cu": 1, "Ni": 2}, keep_alive=True, log_file=None)
        images.append(atoms)
    images[-1].positions = relaxed_b
    neb = NEB(images, k=5.0, climb=True, method="improvedtangent")
    neb.interpolate()
    FIRE(neb, logfile=None).run(fmax=0.01, steps=2000)
    energies = [im.get_potential_energy() for im in images]
    return max(energies) - energies[0], max(energies) - energies[-1]


def test_barrier_agrees_with_an_independent_ase_neb(pool, cuni_potential, cuni_end_members):
    event = _events(cuni_end_members, {"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}}, 1, seed=5)[0]
    row, structures = run_event(event, pool, SETTINGS)
    assert row["status"] == "accepted", row["reject_reason"]
    fwd, bwd = _ase_neb_barrier(cuni_potential, event, structures["A_relaxed"], structures["B_relaxed"])
    print(f"pipeline {row['barrier_forward']:.5f} ASE {fwd:.5f}")
    assert abs(row["barrier_forward"] - fwd) < 5e-3
    assert abs(row["barrier_backward"] - bwd) < 5e-3
