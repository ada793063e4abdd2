"""Each QC rule rejects a deliberately broken event, keeps it, and counts it."""

import math
from dataclasses import replace

import pytest

from dbkmc.neb.events import EventSettings, run_event
from dbkmc.neb.cell import EnginePool
from dbkmc.neb.cineb import NEBSettings
from dbkmc.neb.potentials import Potential
from dbkmc.neb.qc import REASONS, qc_reasons, summarize
from dbkmc.core.sampling import sample_events

GOOD = EventSettings(NEBSettings())


@pytest.fixture(scope="module")
def event(cuni_end_members):
    a = 0.5 * (cuni_end_members["Cu"] + cuni_end_members["Ni"])
    return sample_events("qc", lattice_kind="fcc", supercell=3, mode="pairs",
                         compositions={"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}}, n_events=1, seed=2,
                         species=["Cu", "Ni"], lattice_parameters={"Cu50Ni50": a})[0]


@pytest.fixture(scope="module")
def pool(cuni_potential):
    p = EnginePool(cuni_potential, ["Cu", "Ni"], n_images=5)
    yield p
    p.close()


@pytest.fixture(scope="module")
def good_row(event, pool):
    row, _ = run_event(event, pool, GOOD)
    assert row["status"] == "accepted", row["reject_reason"]
    return row


@pytest.mark.parametrize("settings,reason", [
    (replace(GOOD, neb=replace(GOOD.neb, max_iter=3)), "neb_not_converged"),
    (replace(GOOD, relax_max_iter=1, relax_ftol=1e-6), "relax_A_not_converged"),
    (replace(GOOD, max_displacement=1e-4), "end_state_A_moved"),
])
def test_real_lammps_event_is_rejected_with_its_reason(event, pool, settings, reason):
    row, _ = run_event(event, pool, settings)
    assert row["status"] == "rejected"
    assert reason in row["reject_reason"].split(";")
    assert math.isfinite(row["E_A"])  # the numbers are kept for inspection


def test_engine_error_is_a_reject_not_a_crash(event, tmp_path):
    broken = tmp_path / "broken.eam.alloy"
    broken.write_text("not an eam file\n")
    pot = Potential("broken", "eam/alloy", "* * {table} {elements}", {"table": broken}, ("Cu", "Ni"))
    row, _ = run_event(event, EnginePool(pot, ["Cu", "Ni"], 5), GOOD)
    assert row["status"] == "rejected" and row["reject_reason"] == "engine_error"
    assert row["engine_error"].strip()


def _with(row, **changes):
    r = dict(row)
    r.update(changes)
    return r


def test_saddle_at_an_end_image(good_row):
    energies = list(good_row["image_energies"])
    assert qc_reasons(good_row, 1.0) == []
    assert "saddle_at_end_image" in qc_reasons(_with(good_row, climb_index=len(energies) - 1), 1.0)
    assert "saddle_at_end_image" in qc_reasons(_with(good_row, climb_index=0), 1.0)


def test_negative_barrier(good_row):
    assert "negative_barrier" in qc_reasons(_with(good_row, barrier_forward=-0.01), 1.0)
    assert "negative_barrier" in qc_reasons(_with(good_row, barrier_backward=float("nan")), 1.0)


def test_nan_energy_is_never_accepted(good_row):
    energies = list(good_row["image_energies"])
    energies[2] = float("nan")
    assert "non_finite_energy" in qc_reasons(_with(good_row, image_energies=energies), 1.0)
    assert "non_finite_energy" in qc_reasons(_with(good_row, E_B=float("inf")), 1.0)


def test_summary_counts_every_reason(good_row):
    rows = [
        _with(good_row, status="accepted", reject_reason=""),
        _with(good_row, status="rejected", reject_reason="neb_not_converged"),
        _with(good_row, status="rejected", reject_reason="neb_not_converged;saddle_at_end_image"),
    ]
    s = summarize(rows)
    assert (s["n_events"], s["n_accepted"], s["n_rejected"]) == (3, 1, 2)
    assert s["reasons"]["neb_not_converged"] == 2 and s["reasons"]["saddle_at_end_image"] == 1
    assert set(s["reasons"]) == set(REASONS)
