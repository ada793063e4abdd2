"""M_EXT: per-atom lattice descriptors and the exact locality of dE (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors


def random_state(lattice: Lattice, n_species: int, n_vacancies: int, rng: np.random.Generator) -> torch.Tensor:
    digits = rng.integers(1, n_species + 1, lattice.n_sites)
    digits[rng.choice(lattice.n_sites, n_vacancies, replace=False)] = 0
    return torch.as_tensor(digits)


def random_site_energy(n_features: int, n_species: int, seed: int):
    """An untrained per-species MLP eps_s(G) in float64; vacant sites give 0."""
    torch.manual_seed(seed)
    nets = [torch.nn.Sequential(torch.nn.Linear(n_features, 16), torch.nn.CELU(0.1), torch.nn.Linear(16, 1)).double()
            for _ in range(n_species)]

    def eps(digits: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(digits.shape, dtype=torch.float64)
        for s, net in enumerate(nets):
            out = torch.where(digits == s + 1, net(g / 10.0)[..., 0], out)
        return out
    return eps


@pytest.mark.parametrize("kind,n,n_species,n_vac", [("fcc", 4, 2, 1), ("fcc", 4, 3, 5), ("bcc", 4, 2, 1),
                                                   ("bcc", 5, 3, 6), ("fcc", 2, 2, 2), ("bcc", 3, 2, 1)])
def test_local_dE_equals_whole_cell_difference(kind, n, n_species, n_vac):
    lattice = Lattice(kind, n, 3.0)
    desc = SiteDescriptors(lattice, n_species)
    rng = np.random.default_rng(n_vac)
    eps = random_site_energy(desc.n_features, n_species, seed=n_vac)
    digits = random_state(lattice, n_species, n_vac, rng)
    vacancies = torch.nonzero(digits == 0)[:, 0]
    with torch.no_grad():
        e_a = eps(digits, desc.describe(digits)).sum()
        for v in vacancies.tolist():
            for h in lattice.neighbors[v].tolist():
                after = digits.clone()
                after[v], after[h] = digits[h], digits[v]
                e_b = eps(after, desc.describe(after)).sum()
                w = desc.window(v, h)
                assert w.shape == (desc.window_size,) and len(set(w.tolist())) == desc.window_size
                assert int(w[0]) == v and int(w[1]) == h
                local = (eps(after[w], desc.describe(after, w)).sum() - eps(digits[w], desc.describe(digits, w)).sum())
                assert abs(float(local - (e_b - e_a))) < 1e-12 * max(1.0, abs(float(e_a)))


def test_descriptor_sizes_and_counts():
    desc = SiteDescriptors(Lattice("fcc", 4, 3.6), 2)
    assert desc.n_features == 72 and desc.reach_shell == 3
    assert desc.window_size == 60
    g = desc.describe(torch.ones(256, dtype=torch.long), torch.arange(3))
    assert g[:, :9].tolist()[0] == [0, 12, 0, 0, 6, 0, 0, 24, 0]
    bcc = SiteDescriptors(Lattice("bcc", 4, 3.0), 2)
    g = bcc.describe(torch.ones(128, dtype=torch.long), torch.arange(2))
    assert g[0, :9].tolist() == [0, 8, 0, 0, 6, 0, 0, 12, 0]


def test_far_hop_is_an_error():
    desc = SiteDescriptors(Lattice("fcc", 4, 3.6), 2)
    with pytest.raises(ValueError, match="first neighbour"):
        desc.window(0, 5)
    assert SiteDescriptors(Lattice("fcc", 2, 3.6), 2).window_size == 32   # small cell: every site, once


def random_ensemble(lattice_kind: str, n_species: int, n_members: int = 2):
    from dbkmc.detailed_balance.extensive import ExtensiveEnsemble
    from dbkmc.detailed_balance.models import build_model
    d = SiteDescriptors(Lattice(lattice_kind, 4, 3.0), n_species).n_features
    members = []
    for k in range(n_members):
        torch.manual_seed(k)
        m = build_model("M_EXT", n_species + d, hidden=(8, 8), dropout=0.0, n_species=n_species)
        with torch.no_grad():
            m.x_std.fill_(10.0)
            m.mu.copy_(torch.randn(n_species))
        members.append(m)
    return ExtensiveEnsemble(members, [f"E{i}" for i in range(n_species)], lattice_kind)


@pytest.mark.parametrize("kind,n_species,n_vac", [("fcc", 2, 1), ("fcc", 3, 4), ("bcc", 2, 3)])
def test_hop_dE_is_the_difference_of_lattice_energies(kind, n_species, n_vac):
    lattice = Lattice(kind, 4, 3.0)
    ens = random_ensemble(kind, n_species)
    rng = np.random.default_rng(7)
    digits = torch.stack([random_state(lattice, n_species, n_vac, rng) for _ in range(2)])
    vac = torch.stack([torch.nonzero(d == 0)[:, 0] for d in digits])
    d_e = ens.hop_dE_members(digits, lattice, vac)                      # [K, T, m, z]
    e_a = ens.member_energies(digits, lattice)                         # [K, T]
    for t in range(2):
        for j, v in enumerate(vac[t].tolist()):
            for k, h in enumerate(lattice.neighbors[v].tolist()):
                after = digits[t].clone()
                after[v], after[h] = digits[t, h], digits[t, v]
                e_b = ens.member_energies(after[None], lattice)[:, 0]
                torch.testing.assert_close(d_e[:, t, j, k], e_b - e_a[:, t], rtol=0, atol=1e-12)
    mean, std = ens.lattice_energy(digits, lattice)
    assert mean.dtype == torch.float64 and mean.shape == (2,) and (std >= 0).all()


def test_energy_model_rejects_wrong_lattice_and_digits():
    ens = random_ensemble("fcc", 2)
    with pytest.raises(ValueError, match="fcc lattice, not bcc"):
        ens.lattice_energy(torch.ones(1, 128, dtype=torch.long), Lattice("bcc", 4, 3.0))
    with pytest.raises(ValueError, match="digits must be"):
        ens.lattice_energy(torch.full((1, 256), 3), Lattice("fcc", 4, 3.0))


def test_m_ext_trains_on_window_fingerprints(tmp_path):
    """Train M_EXT on events of a random M_EXT 'truth'; checkpoints load back as an energy model."""
    import pandas as pd
    from dbkmc.core.sampling import occupation_to_str
    from dbkmc.detailed_balance.aev import AEVParams
    from dbkmc.detailed_balance.ext_fingerprints import featurize_ext_events
    from dbkmc.detailed_balance.extensive import load_energy_model
    from dbkmc.detailed_balance.training import EventData, TrainConfig, save_ensemble, split_events, train_model
    lattice = Lattice("fcc", 4, 3.6)
    truth = random_ensemble("fcc", 2, n_members=1)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(150):
        d = random_state(lattice, 2, 1, rng)
        v = int(torch.nonzero(d == 0)[0, 0])
        k = int(rng.integers(12))
        rows.append({"event_id": f"e{i}", "composition": ["A", "B", "C"][i % 3], "lattice": "fcc", "supercell": 4,
                     "a": 3.6, "species": "E0,E1", "occupation": occupation_to_str(d.numpy() - 1),
                     "vacancy_site": v, "hop_site": int(lattice.neighbors[v, k]),
                     "dE": float(truth.hop_dE(d[None], lattice, torch.tensor([[v]]), [k])[0, 0, 0])})
    ev = pd.DataFrame(rows)
    for t in ("E_KRA", "barrier_forward", "barrier_backward"):
        ev[t] = 0.5
    fps = featurize_ext_events(ev, ["E0", "E1"])
    data = EventData(fps, {t: torch.tensor(ev[t].to_numpy(), dtype=torch.float32) for t in
                           ("dE", "E_KRA", "barrier_forward", "barrier_backward")},
                     list(ev.event_id), list(ev.composition), AEVParams(), ["E0", "E1"])
    split = split_events(data.event_id, data.composition)
    cfg = TrainConfig(n_members=2, per_kind={"M_EXT": {"hidden": [8, 8], "dropout": 0.0, "lr": 3e-3,
                                                       "lr_final": 1e-3, "max_epochs": 15, "batch_size": 32}})
    fit = train_model("M_EXT", data, split, cfg)
    assert fit.history[-1]["train_loss"][0] < fit.history[0]["train_loss"][0]
    save_ensemble(tmp_path / "M_EXT", fit.ensemble, AEVParams(), ["E0", "E1"], extra={"lattice": "fcc"})
    ens = load_energy_model(tmp_path / "M_EXT")
    x = fps["EXT_A"][:3].double(), fps["EXT_B"][:3].double()
    d = torch.as_tensor(np.stack([np.array([0 if c == "V" else int(c) + 1 for c in s]) for s in ev.occupation[:3]]))
    via_windows = torch.stack([m(*x) for m in ens.members]).mean(0)
    via_lattice = ens.hop_dE(d, lattice, torch.tensor(ev.vacancy_site[:3].to_numpy())[:, None])
    k = [int(np.flatnonzero(lattice.neighbors[v] == h)[0]) for v, h in zip(ev.vacancy_site[:3], ev.hop_site[:3])]
    torch.testing.assert_close(via_lattice[torch.arange(3), 0, k], via_windows, rtol=0, atol=1e-10)
    save_ensemble(tmp_path / "KOLish", fit.ensemble, AEVParams(), ["E0", "E1"])
    other = tmp_path / "other"
    from dbkmc.detailed_balance.models import build_model
    from dbkmc.detailed_balance.training import save_member
    save_member(other / "member_0.pt", build_model("M_KOL", 4, (4,)), AEVParams(), ["E0", "E1"])
    with pytest.raises(ValueError, match="M_KOL model, not M_EXT"):
        load_energy_model(other)
