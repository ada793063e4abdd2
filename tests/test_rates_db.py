"""Detailed-balance rate model (dbkmc.kmc.rates.detailed_balance): exact detailed balance, agreement with the model family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbkmc.detailed_balance.fingerprints import AEVParams, featurize_events
from dbkmc.core.lattice import NN_VECTORS, Lattice
from dbkmc.detailed_balance.models import Ensemble, barrier, build_model
from dbkmc.kmc.rates.base import build_rate_model
from dbkmc.kmc.rates.detailed_balance import DetailedBalanceRateModel
from dbkmc.core.sampling import occupation_to_str
from dbkmc.detailed_balance.training import save_ensemble

P = AEVParams(r_cut=5.0, eta_R=4.0, eta_A=2.0, zeta=8.0, R_s=(1.0, 2.0, 3.0, 4.0),
              R_s_angular=(1.5, 3.0), theta_s=(0.3, 1.2, 2.2, 3.0))
LATTICES = {"fcc": Lattice("fcc", 3, 3.6), "bcc": Lattice("bcc", 4, 2.87)}
SPECIES = ("Cu", "Ni")


def _digits(lat: Lattice, n: int, n_vac: int, seed: int) -> torch.Tensor:
    """(n, n_sites) random binary configurations (digits 1, 2) with ``n_vac`` vacancies (digit 0) each."""
    rng = np.random.default_rng(seed)
    d = rng.integers(1, 3, size=(n, lat.n_sites))
    for row in d:
        row[rng.choice(lat.n_sites, n_vac, replace=False)] = 0
    return torch.as_tensor(d)


def _random_ensemble(kind: str, dim: int, seed: int, dtype: torch.dtype, n_members: int = 3) -> Ensemble:
    """Untrained members with non-trivial input standardisation (so every feature matters)."""
    gen = torch.Generator().manual_seed(seed)
    members = []
    for k in range(n_members):
        torch.manual_seed(seed * 100 + k)
        model = build_model(kind, dim, hidden=(16, 8), dropout=0.2).to(dtype)
        x = torch.rand(64, dim, generator=gen, dtype=dtype) * 3.0
        model.fit_standardization(x, x.flip(0), torch.rand(64, generator=gen, dtype=dtype))
        members.append(model.eval())
    return Ensemble(members)


def _model(kind: str = "fcc", dtype: torch.dtype = torch.float64) -> DetailedBalanceRateModel:
    dim = P.dim(len(SPECIES))
    return DetailedBalanceRateModel(_random_ensemble("M_KOL", dim, 1, dtype), _random_ensemble("KRA", dim, 2, dtype),
                                    P, LATTICES[kind], SPECIES)


def _jump(digits: torch.Tensor, vac: int, hop: int) -> torch.Tensor:
    out = digits.clone()
    out[vac], out[hop] = digits[hop], 0
    return out


def _reverse_path(kind: str, k: int) -> int:
    nn = NN_VECTORS[kind]
    return int(np.flatnonzero((nn == -nn[k]).all(1))[0])


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_detailed_balance_exact(kind: str) -> None:
    """E_b(A->B) - E_b(B->A) == E_B - E_A for every jump of random states (untrained random models)."""
    lat = LATTICES[kind]
    model = _model(kind)
    digits = _digits(lat, 3, 1, seed=4)
    vac = torch.nonzero(digits == 0)[:, 1].reshape(-1, 1)
    forward = model.barriers(digits, vac)                                     # (3, 1, z)
    e_a = model.energy(digits)
    assert forward.shape == (3, 1, model.z) and torch.isfinite(forward).all()
    for t in range(3):
        hops = lat.neighbors[int(vac[t, 0])]
        states_b = torch.stack([_jump(digits[t], int(vac[t, 0]), int(h)) for h in hops])
        backward = model.barriers(states_b, torch.as_tensor(hops).reshape(-1, 1))  # from each B, all paths
        e_b = model.energy(states_b)
        rev = torch.as_tensor([_reverse_path(kind, k) for k in range(model.z)])
        eb_back = backward[torch.arange(model.z), 0, rev]                     # the jump B -> A
        torch.testing.assert_close(forward[t, 0] - eb_back, e_b - e_a[t], rtol=0, atol=1e-12)
        assert float((e_b - e_a[t]).abs().max()) > 1e-3                      # the energies do differ


def test_detailed_balance_float32_and_several_vacancies() -> None:
    """Two nearby vacancies (float32): the other vacancy's energy change enters dE; balance holds to rounding."""
    lat = LATTICES["fcc"]
    model = _model("fcc", torch.float32)
    digits = _digits(lat, 1, 0, seed=8)[0]
    v1 = 0
    v2 = int(lat.neighbors[lat.neighbors[v1, 0], 5])                          # second neighbour shell or so
    digits[v1] = digits[v2] = 0
    vacs = torch.as_tensor([[v1, v2]])
    e_kra, d_e = model.terms(digits[None], vacs)
    forward = model.barriers(digits[None], vacs)
    e_a = model.energy(digits[None])[0]
    n_checked = 0
    for i, v in enumerate((v1, v2)):
        for k, h in enumerate(lat.neighbors[v]):
            if digits[h] == 0:
                continue
            state_b = _jump(digits, v, int(h))
            e_b = model.energy(state_b[None])[0]
            others = torch.as_tensor([[int(h), v2 if v == v1 else v1]])
            back = model.barriers(state_b[None], others)[0, 0, _reverse_path("fcc", k)]
            torch.testing.assert_close(d_e[0, i, k], e_b - e_a, rtol=0, atol=2e-5)
            torch.testing.assert_close(forward[0, i, k] - back, e_b - e_a, rtol=0, atol=2e-5)
            n_checked += 1
    assert n_checked >= 2 * lat.neighbors.shape[1] - 2
    # the other vacancy's term is real: without it dE would be off
    alone = model.terms(digits[None], vacs[:, :1])[1][0, 0]
    own = model._state_energy(model.aev.jump_fingerprints(digits[None], vacs[:, :1])["KOL_B"][0, 0]) \
        - model._state_energy(model.aev.kolmogorov(digits[None], vacs[:, :1])[0])
    assert float((alone - own).abs().max()) > 1e-4


def test_barriers_match_model_family_on_events() -> None:
    """Barriers equal E_KRA + dE_[A,B]/2 of the ensembles on featurize_events' fingerprints (M_KOL dE)."""
    lat = LATTICES["bcc"]
    model = _model("bcc")
    digits = _digits(lat, 2, 1, seed=3)
    vac = torch.nonzero(digits == 0)[:, 1]
    got = model.barriers(digits, vac.reshape(-1, 1))
    events = [{"occupation": occupation_to_str(digits[t].numpy() - 1), "vacancy_site": int(vac[t]),
               "hop_site": int(lat.neighbors[int(vac[t]), k]), "lattice": "bcc", "supercell": lat.n, "a": lat.a,
               "species": ",".join(SPECIES)} for t in range(2) for k in range(model.z)]
    fps = featurize_events(events, P)
    d_e = model.kol.predict(fps["KOL_A"], fps["KOL_B"]).mean
    e_kra = model.kra.predict(fps["TW_A"], fps["TW_B"]).mean
    torch.testing.assert_close(got.reshape(-1), barrier(e_kra, d_e), rtol=0, atol=1e-12)


def test_build_from_checkpoints(tmp_path) -> None:
    """kmc.rate_model {kind: detailed_balance, kol, kra} loads the model stage's checkpoints through the registry."""
    lat = LATTICES["fcc"]
    ref = _model("fcc", torch.float32)
    save_ensemble(tmp_path / "M_KOL", ref.kol, P, list(SPECIES))
    save_ensemble(tmp_path / "KRA", ref.kra, P, list(SPECIES))
    spec = {"kind": "detailed_balance", "kol": str(tmp_path / "M_KOL"), "kra": str(tmp_path / "KRA")}
    model = build_rate_model(spec, lat, SPECIES)
    digits = _digits(lat, 2, 1, seed=1)
    vac = torch.nonzero(digits == 0)[:, 1].reshape(-1, 1)
    assert torch.equal(model.barriers(digits, vac), ref.barriers(digits, vac))
    assert model.reach == pytest.approx(2 * P.r_cut + 3.6 / 2 ** 0.5)
    with pytest.raises(ValueError, match="kmc.rate_model.kol"):
        build_rate_model(spec, lat, ("Ni", "Cu"))
    with pytest.raises(ValueError, match="kmc.rate_model.kra"):
        build_rate_model({**spec, "kra": None}, lat, SPECIES)


def _on(ens: Ensemble, device: str) -> Ensemble:
    return Ensemble.from_stacked(ens.base, {k: v.to(device) for k, v in ens.params.items()},
                                 {k: v.to(device) for k, v in ens.buffers.items()})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    """The same code on CUDA gives the CPU's barriers and energies (two vacancies per trajectory)."""
    lat = LATTICES["fcc"]
    cpu = _model("fcc")
    gpu = DetailedBalanceRateModel(_on(cpu.kol, "cuda"), _on(cpu.kra, "cuda"), P, lat, SPECIES, "cuda")
    digits = _digits(lat, 4, 2, seed=6)
    vac = torch.nonzero(digits == 0)[:, 1].reshape(4, 2)
    torch.testing.assert_close(gpu.barriers(digits.cuda(), vac.cuda()).cpu(), cpu.barriers(digits, vac),
                               rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gpu.energy(digits.cuda()).cpu(), cpu.energy(digits), rtol=1e-10, atol=1e-10)


def test_float32_models_see_the_model_stage_inputs() -> None:
    """Fingerprints in float64, rounded for float32 networks: the very inputs of the model stage.

    The model stage stores float64 fingerprints and trains float32 networks. Trained ensembles
    standardise some tiny components (e.g. of ``|F_A - F_B|/2``) by a std near float32
    resolution, so the rate model must round the same float64 numbers, not compute in float32.
    """
    lat = LATTICES["fcc"]
    dim = P.dim(len(SPECIES))
    kol, kra = _random_ensemble("M_KOL", dim, 1, torch.float32), _random_ensemble("KRA", dim, 2, torch.float32)
    digits = _digits(lat, 4, 1, seed=12)
    vac = torch.nonzero(digits == 0)[:, 1].reshape(-1, 1)
    z = lat.neighbors.shape[1]
    events = [{"occupation": occupation_to_str(digits[t].numpy() - 1), "vacancy_site": int(vac[t]),
               "hop_site": int(lat.neighbors[int(vac[t]), k]), "lattice": "fcc", "supercell": lat.n, "a": lat.a,
               "species": ",".join(SPECIES)} for t in range(4) for k in range(z)]
    ref = {k: v.float() for k, v in featurize_events(events, P).items()}    # the model stage's inputs
    model = DetailedBalanceRateModel(kol, kra, P, lat, SPECIES)
    tables32 = DetailedBalanceRateModel(kol, kra, P, lat, SPECIES, fingerprint_dtype=torch.float32)
    got, got32 = model.aev.jump_fingerprints(digits, vac), tables32.aev.jump_fingerprints(digits, vac)
    mismatch32 = 0
    for kind in ("KOL_B", "TW_A", "TW_B"):
        assert torch.equal(got[kind].reshape(-1, dim).float(), ref[kind])
        mismatch32 += int((got32[kind].reshape(-1, dim) != ref[kind]).sum())
    assert torch.equal(got["KOL_A"].float().repeat_interleave(z, 1).reshape(-1, dim), ref["KOL_A"])
    assert mismatch32 > 0                                                      # float32 tables round differently
    expected = barrier(kra.predict(ref["TW_A"], ref["TW_B"]).mean, kol.predict(ref["KOL_A"], ref["KOL_B"]).mean)
    torch.testing.assert_close(model.barriers(digits, vac).reshape(-1), expected, rtol=0, atol=1e-6)
