import hashlib

import numpy as np
import pytest

from dbkmc.core.composition import exact_counts, vegard_lattice_parameter
from dbkmc.core.lattice import Lattice
from dbkmc.core.sampling import occupation_from_str, sample_events, write_events

COMPS = {"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}, "Cu25Ni75": {"Cu": 0.25, "Ni": 0.75}, "Cu75Ni25": {"Cu": 0.75, "Ni": 0.25}}
A = {label: 3.6 for label in COMPS}


def _sample(n, mode="pairs", kind="fcc", comps=COMPS, seed=7):
    return sample_events("cuni", lattice_kind=kind, supercell=4, mode=mode, compositions=comps,
                         n_events=n, seed=seed, species=["Cu", "Ni"], lattice_parameters={k: 3.6 for k in comps})


def _digest(events, tmp_path):
    p = tmp_path / "ev.jsonl"
    write_events(events, p)
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_same_seed_gives_byte_identical_events(tmp_path):
    assert _digest(_sample(5), tmp_path) == _digest(_sample(5), tmp_path)
    assert _digest(_sample(5), tmp_path) != _digest(_sample(5, seed=8), tmp_path)


def test_adding_events_never_changes_existing_ones():
    few, more = _sample(3), _sample(7)
    by_id = {e["event_id"]: e for e in more}
    assert all(by_id[e["event_id"]] == e for e in few)
    # events of one composition do not depend on which other compositions are sampled
    alone = _sample(3, comps={"Cu25Ni75": COMPS["Cu25Ni75"]})
    assert all(by_id[e["event_id"]] == e for e in alone)


@pytest.mark.parametrize("label", list(COMPS))
def test_species_counts_are_exact(label):
    counts = exact_counts(COMPS[label], ["Cu", "Ni"], 255)
    assert counts.sum() == 255
    assert np.all(np.abs(counts - np.array([COMPS[label]["Cu"], COMPS[label]["Ni"]]) * 255) <= 0.5 + 1e-9)
    for ev in _sample(4, comps={label: COMPS[label]}):
        occ = occupation_from_str(ev["occupation"])
        assert np.count_nonzero(occ == -1) == 1 and occ[ev["vacancy_site"]] == -1
        assert np.array_equal(np.bincount(occ[occ >= 0], minlength=2), counts)


def test_pairs_event_moves_a_first_neighbour_into_the_vacancy():
    for ev in _sample(10):
        lat = Lattice("fcc", 4, 3.6)
        assert lat.neighbors[ev["vacancy_site"], ev["path"]] == ev["hop_site"]
        occ = occupation_from_str(ev["occupation"])
        assert ev["hop_species"] == ["Cu", "Ni"][occ[ev["hop_site"]]]
        d = lat.minimum_image(lat.positions[ev["hop_site"]] - lat.positions[ev["vacancy_site"]])
        np.testing.assert_allclose(d, [ev["jump_x"], ev["jump_y"], ev["jump_z"]])


@pytest.mark.parametrize("kind,z", [("fcc", 12), ("bcc", 8)])
def test_all_paths_emits_every_jump_of_one_configuration(kind, z):
    events = _sample(2, mode="all_paths", kind=kind, comps={"Cu50Ni50": COMPS["Cu50Ni50"]})
    assert len(events) == 2 * z
    first = events[:z]
    assert [e["path"] for e in first] == list(range(z))
    assert len({e["occupation"] for e in first}) == 1
    assert len({e["event_id"] for e in events}) == 2 * z


def test_vegard_lattice_parameter():
    assert vegard_lattice_parameter({"Cu": 0.25, "Ni": 0.75}, {"Cu": 3.6, "Ni": 3.52}) == pytest.approx(3.54)
    with pytest.raises(ValueError, match="composition"):
        exact_counts({"Cu": 0.5, "Ni": 0.4}, ["Cu", "Ni"], 255)
