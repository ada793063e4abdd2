"""ANI-style AEV fingerprints: reference values, torchani, and the symmetries of a jump."""

from __future__ import annotations

import json
import math
import os
from itertools import product

import numpy as np
import pytest
import torch

from dbkmc.neb.events import event_geometry
from dbkmc.detailed_balance.aev import AEVParams, aev, feature_labels
from dbkmc.detailed_balance.fingerprints import (
    FINGERPRINT_KINDS,
    featurize_events,
    kolmogorov_fingerprint,
    transition_fingerprints,
)
from dbkmc.detailed_balance.relaxed_fingerprints import structure_fingerprints
from dbkmc.core.lattice import Lattice
from dbkmc.core.sampling import occupation_from_str, occupation_to_str, sample_events

SMALL_ANGULAR = AEVParams(r_cut=5.0, r_cut_angular=3.8, eta_R=4.0, eta_A=2.0, zeta=8.0)


# --------------------------------------------------------------------------- helpers


def _events(kind: str = "fcc", n: int = 40, mode: str = "pairs", supercell: int = 4) -> list[dict]:
    a, species = (3.6, ["Cu", "Ni"]) if kind == "fcc" else (2.87, ["Fe", "Cr"])
    comps = {"A50B50": dict(zip(species, (0.5, 0.5))), "A25B75": dict(zip(species, (0.25, 0.75)))}
    return sample_events("t", lattice_kind=kind, supercell=supercell, mode=mode, compositions=comps,
                         n_events=n, seed=3, species=species, lattice_parameters={k: a for k in comps})


def _reverse(event: dict) -> dict:
    """The jump B -> A: state B's occupation, vacancy and hop sites exchanged."""
    occ = occupation_from_str(event["occupation"])
    vac, hop = event["vacancy_site"], event["hop_site"]
    occ[vac], occ[hop] = occ[hop], -1
    return {**event, "occupation": occupation_to_str(occ), "vacancy_site": hop, "hop_site": vac}


def _reference_aev(rel: np.ndarray, species: np.ndarray, n_species: int, p: AEVParams) -> np.ndarray:
    """Plain double loop over neighbours and unordered neighbour pairs (each pair once)."""

    def fc(r: float, rc: float) -> float:
        return 0.5 * math.cos(math.pi * r / rc) + 0.5 if r <= rc else 0.0

    pairs = [(x, y) for x in range(n_species) for y in range(x, n_species)]
    pair_index = {}
    for i, (x, y) in enumerate(pairs):
        pair_index[(x, y)] = pair_index[(y, x)] = i
    radial = np.zeros((n_species, len(p.R_s)))
    angular = np.zeros((len(pairs), len(p.R_s_angular), len(p.theta_s)))
    atoms = [j for j in range(len(species)) if species[j] >= 0]
    for j in atoms:
        r = float(np.linalg.norm(rel[j]))
        for m, rs in enumerate(p.R_s):
            radial[species[j], m] += math.exp(-p.eta_R * (r - rs) ** 2) * fc(r, p.r_cut)
    for a_, j in enumerate(atoms):
        for k in atoms[a_ + 1:]:
            rj, rk = float(np.linalg.norm(rel[j])), float(np.linalg.norm(rel[k]))
            theta = math.acos(max(-1.0, min(1.0, float(rel[j] @ rel[k]) / (rj * rk))))
            cut = fc(rj, p.r_cut_angular) * fc(rk, p.r_cut_angular)
            for m, rs in enumerate(p.R_s_angular):
                radial_part = math.exp(-p.eta_A * ((rj + rk) / 2 - rs) ** 2) * cut
                for t, ts in enumerate(p.theta_s):
                    angular[pair_index[(species[j], species[k])], m, t] += (
                        2 ** (1 - p.zeta) * (1 + math.cos(theta - ts)) ** p.zeta * radial_part)
    return np.concatenate([radial.ravel(), angular.ravel()])


def _brute_force_environment(event: dict, kind: str, r_cut: float) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of one fingerprint from explicit atoms and all 27 periodic images of the box."""
    geo = event_geometry(event)
    lat = geo.lattice
    v_a = lat.positions[event["vacancy_site"]]
    v_b = v_a + lat.minimum_image(lat.positions[event["hop_site"]] - v_a)
    pos = geo.positions_A if kind.endswith("A") else geo.positions_B
    shifts = np.array(list(product((-1, 0, 1), repeat=3))) * lat.box
    images = (pos[None] + shifts[:, None]).reshape(-1, 3)
    spec = np.tile(geo.types - 1, len(shifts))
    if kind.startswith("KOL"):
        centre = v_a if kind == "KOL_A" else v_b
        keep = np.linalg.norm(images - centre, axis=1) <= r_cut
    else:
        centre = 0.5 * (v_a + v_b)
        keep = (np.linalg.norm(images - v_a, axis=1) <= r_cut) | (np.linalg.norm(images - v_b, axis=1) <= r_cut)
    return images[keep] - centre, spec[keep]


# --------------------------------------------------------------------------- parameters


def test_default_parameters_are_ani_like_and_round_trip():
    p = AEVParams()
    assert p.r_cut == p.r_cut_angular == 6.0
    assert len(p.R_s) == 16 and p.R_s[0] == 0.9 and p.R_s[-1] < p.r_cut
    assert len(p.R_s_angular) == 4 and len(p.theta_s) == 8
    assert p.theta_s[0] == pytest.approx(math.pi / 16) and p.theta_s[-1] < math.pi
    assert (p.eta_R, p.eta_A, p.zeta) == (16.0, 8.0, 32.0)
    assert p.dim(2) == 2 * 16 + 3 * 32 == len(feature_labels(["Cu", "Ni"], p))
    for q in (p, SMALL_ANGULAR):
        assert AEVParams.from_dict(json.loads(json.dumps(q.to_dict()))) == q
    with pytest.raises(ValueError):
        AEVParams(r_cut=4.0, r_cut_angular=5.0)
    with pytest.raises(ValueError):
        AEVParams.from_dict({"r_cut": 5.0, "bogus": 1})


# --------------------------------------------------------------------------- (a) numpy reference


@pytest.mark.parametrize("params", [AEVParams(), SMALL_ANGULAR], ids=["default", "separate-angular-cutoff"])
def test_aev_matches_numpy_double_loop(params):
    rng = np.random.default_rng(0)
    n_rows, n_nb, n_species = 4, 24, 3
    ref = rng.uniform(-2, 2, (n_rows, 3))
    pos = ref[:, None, :] + rng.uniform(-1, 1, (n_rows, n_nb, 3)) * params.r_cut * 0.8
    species = rng.integers(0, n_species, (n_rows, n_nb))
    species[:, -5:] = -1                       # padding
    mask = np.ones((n_rows, n_nb), dtype=bool)
    mask[0, :3] = False                        # masked-out atoms
    got = aev(torch.tensor(ref), torch.tensor(pos), torch.tensor(species), n_species, params,
              mask=torch.tensor(mask)).numpy()
    assert got.shape == (n_rows, params.dim(n_species))
    for b in range(n_rows):
        spec = np.where(mask[b], species[b], -1)
        want = _reference_aev(pos[b] - ref[b], spec, n_species, params)
        np.testing.assert_allclose(got[b], want, rtol=0, atol=1e-10)
    # shared geometry (one neighbour list, many species assignments) takes the other code path
    shared = aev(None, torch.tensor(pos[0] - ref[0]), torch.tensor(species), n_species, params).numpy()
    for b in range(n_rows):
        np.testing.assert_allclose(shared[b], _reference_aev(pos[0] - ref[0], species[b], n_species, params),
                                   rtol=0, atol=1e-10)


def test_aev_is_finite_and_differentiable_for_collinear_neighbours():
    # a lattice-like environment: opposite (theta = pi) and aligned (theta = 0) neighbours
    rel = torch.tensor([[2.0, 0, 0], [-2.0, 0, 0], [4.0, 0, 0], [0, 2.5, 0], [0, 0, -1.5]],
                       dtype=torch.float64, requires_grad=True)
    species = torch.tensor([[0, 1, 0, 1, 0]])
    g = aev(None, rel.unsqueeze(0), species, 2, AEVParams())
    np.testing.assert_allclose(g[0].detach().numpy(),
                               _reference_aev(rel.detach().numpy(), species[0].numpy(), 2, AEVParams()),
                               rtol=0, atol=1e-10)
    (g ** 2).sum().backward()
    assert torch.isfinite(rel.grad).all()


# --------------------------------------------------------------------------- (b) torchani


def test_aev_matches_torchani_with_a_ghost_atom():
    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
    pytest.importorskip("torchani", reason="torchani is not installed alongside this torch")
    from torchani.aev import AEVComputer
    from torchani.aev._terms import ANIAngular, ANIRadial

    class ExactAngular(ANIAngular):
        """torchani's angular terms without its legacy acos(0.95 cos theta) squeeze."""

        def compute_cos_angles(self, cos_angles):
            angles = torch.acos(torch.clamp(cos_angles, -1.0, 1.0))
            return 2 * ((1 + torch.cos(angles - self.sections.view(1, -1))) / 2) ** self.zeta

    p = AEVParams(r_cut=6.0, r_cut_angular=5.0)  # torchani wants the angular cutoff below the radial one
    s = 2                                        # element index s is the ghost at the reference point
    computer = AEVComputer(ANIRadial(p.eta_R, p.R_s, p.r_cut),
                           ExactAngular(p.eta_A, p.zeta, p.R_s_angular, p.theta_s, p.r_cut_angular),
                           num_species=s + 1).double()
    # torchani builds its constants in float32; put back the exact float64 values
    for term, values in ((computer.radial, {"eta": [p.eta_R], "shifts": p.R_s}),
                         (computer.angular, {"eta": [p.eta_A], "zeta": [p.zeta], "shifts": p.R_s_angular,
                                             "sections": p.theta_s})):
        for name, value in values.items():
            setattr(term, name, torch.tensor(value, dtype=torch.float64))
    triu = [(x, y) for x in range(s + 1) for y in range(x, s + 1)]

    def ghost_aev(rel: np.ndarray, spec: np.ndarray) -> np.ndarray:
        coords = torch.tensor(np.vstack([np.zeros(3), rel]))[None]
        elems = torch.tensor(np.concatenate([[s], spec]))[None]
        ghost = computer(elems, coords)[0, 0]
        radial = ghost[: (s + 1) * p.n_radial].reshape(s + 1, -1)[:s] / 0.25   # torchani's radial carries 0.25
        angular = ghost[(s + 1) * p.n_radial:].reshape(len(triu), -1)
        angular = angular[[i for i, (x, y) in enumerate(triu) if y < s]]     # drop pairs with the ghost
        return torch.cat([radial.flatten(), angular.flatten()]).numpy()

    # a random cluster: no collinear neighbours, so both agree to float64 rounding
    rng = np.random.default_rng(1)
    rel = rng.uniform(-1, 1, (40, 3)) * p.r_cut
    spec = rng.integers(0, s, 40)
    ours = aev(None, torch.tensor(rel)[None], torch.tensor(spec)[None], s, p)[0].numpy()
    np.testing.assert_allclose(ours, ghost_aev(rel, spec), rtol=1e-10, atol=1e-10)
    # a real configuration: lattice neighbours are collinear with the centre (theta = 0 or pi), where
    # torchani's acos(cos theta) loses ~sqrt(eps) = 1e-8; we take sin theta from a cross product
    event = _events("fcc", 3)[1]
    ours_lattice = featurize_events([event], p)
    for kind in ("KOL_A", "TW_B"):
        rel, spec = _brute_force_environment(event, kind, p.r_cut)
        np.testing.assert_allclose(ours_lattice[kind][0].numpy(), ghost_aev(rel, spec), rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------- lattice path


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_lattice_fingerprints_match_brute_force_with_periodic_images(kind):
    # bcc 4x4x4 (a = 2.87): the box is 11.5 A, so a 6 A sphere sees periodic images of some atoms
    events = _events(kind, 4)
    p = AEVParams()
    got = featurize_events(events, p)
    for i, event in enumerate(events):
        for fp in FINGERPRINT_KINDS:
            rel, spec = _brute_force_environment(event, fp, p.r_cut)
            want = aev(None, torch.tensor(rel)[None], torch.tensor(spec)[None], 2, p)[0]
            np.testing.assert_allclose(got[fp][i].numpy(), want.numpy(), rtol=0, atol=1e-11)


def test_structure_fingerprints_on_ideal_positions_match_the_lattice_path():
    p = AEVParams()
    events = _events("fcc", 3)
    got = featurize_events(events, p)
    for i, event in enumerate(events):
        geo = event_geometry(event)
        lat = geo.lattice
        res = structure_fingerprints(geo.positions_A, geo.positions_B, geo.types - 1, lat.box,
                                     lat.positions[event["vacancy_site"]], lat.positions[event["hop_site"]], 2, p)
        for fp in FINGERPRINT_KINDS:
            np.testing.assert_allclose(res[fp].numpy(), got[fp][i].numpy(), rtol=0, atol=1e-11)


# --------------------------------------------------------------------------- (c) reversal


@pytest.mark.parametrize("kind,mode", [("fcc", "pairs"), ("fcc", "all_paths"), ("bcc", "pairs"), ("bcc", "all_paths")])
def test_reverse_jump_swaps_fingerprints_exactly(kind, mode):
    events = _events(kind, 30 if mode == "pairs" else 2, mode)
    reverse = [_reverse(e) for e in events]
    fwd, rev = featurize_events(events), featurize_events(reverse)
    both = featurize_events(events + reverse)
    n = len(events)
    for a, b in (("KOL_A", "KOL_B"), ("TW_A", "TW_B")):
        assert torch.equal(fwd[a], rev[b]) and torch.equal(fwd[b], rev[a])
        assert torch.equal(both[a][:n], both[b][n:]) and torch.equal(both[b][:n], both[a][n:])
        assert not torch.equal(fwd[a], fwd[b])  # the two states do differ
    # the single-event helpers agree with the batch
    tw_a, tw_b = transition_fingerprints(reverse[0])
    assert torch.equal(tw_a, fwd["TW_B"][0]) and torch.equal(tw_b, fwd["TW_A"][0])
    assert torch.equal(kolmogorov_fingerprint(reverse[0], state="A"), fwd["KOL_B"][0])
    assert torch.equal(kolmogorov_fingerprint(events[0], state="A"), fwd["KOL_A"][0])


# --------------------------------------------------------------------------- (d) translation


@pytest.mark.parametrize("kind,shift", [("fcc", (3, 1, 4)), ("fcc", (2, 0, 0)), ("bcc", (1, 3, 5)), ("bcc", (2, 4, 6))])
def test_fingerprints_are_invariant_under_lattice_translation(kind, shift):
    events = _events(kind, 10)
    lat = Lattice(kind, 4, events[0]["a"])
    new_site = lat.site_at(lat.half_coords + np.array(shift))  # site s -> site s + shift
    moved = []
    for e in events:
        occ = occupation_from_str(e["occupation"])
        occ_new = np.empty_like(occ)
        occ_new[new_site] = occ
        moved.append({**e, "occupation": occupation_to_str(occ_new),
                      "vacancy_site": int(new_site[e["vacancy_site"]]), "hop_site": int(new_site[e["hop_site"]])})
    assert moved[0]["occupation"] != events[0]["occupation"]
    before, after = featurize_events(events), featurize_events(moved)
    for fp in FINGERPRINT_KINDS:
        assert torch.equal(before[fp], after[fp])


# --------------------------------------------------------------------------- (e), (f) dtype, device, inputs


def test_float32_agrees_with_float64():
    events = _events("fcc", 20)
    f64 = featurize_events(events)
    f32 = featurize_events(events, dtype=torch.float32)
    for fp in FINGERPRINT_KINDS:
        assert f32[fp].dtype == torch.float32
        np.testing.assert_allclose(f32[fp].double().numpy(), f64[fp].numpy(), rtol=1e-4, atol=1e-5)


def test_device_argument_and_dataframe_input():
    pd = pytest.importorskip("pandas")
    events = _events("fcc", 8)
    ref = featurize_events(events, AEVParams(), "cpu")
    for device in ("cpu", torch.device("cpu")):
        res = featurize_events(pd.DataFrame(events), AEVParams(), device)
        for fp in FINGERPRINT_KINDS:
            assert res[fp].device.type == "cpu" and torch.equal(res[fp], ref[fp])
    assert kolmogorov_fingerprint(events[0], device="cpu").device.type == "cpu"
    if torch.cuda.is_available():
        gpu = featurize_events(events, AEVParams(), "cuda")
        for fp in FINGERPRINT_KINDS:
            assert gpu[fp].device.type == "cuda"
            np.testing.assert_allclose(gpu[fp].cpu().numpy(), ref[fp].numpy(), rtol=0, atol=1e-10)


def test_species_order_and_bad_events():
    events = _events("fcc", 3)
    ref = featurize_events(events)
    swapped = featurize_events(events, species=["Ni", "Cu"])
    p = AEVParams()
    nr = p.n_radial
    assert torch.equal(swapped["KOL_A"][:, :nr], ref["KOL_A"][:, nr:2 * nr])  # Ni's radial block comes first
    bad = {**events[0], "hop_site": events[0]["vacancy_site"]}
    with pytest.raises(ValueError, match="first neighbour|vacancy"):
        featurize_events([bad])
    with pytest.raises(ValueError, match="species"):
        featurize_events(events, species=["Cu"])
