"""The compiled one-vacancy CPU path of the M_EXT rate model (dbkmc.kmc.rates.extensive_fast) and the compiled
jump of the engine (dbkmc.kmc.step_kernels): the tensor path's numbers, fewer network rows, the same chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dbkmc.kmc import kernel, step_kernels
from dbkmc.kmc.engine import KMC
from test_rates_ext import LATTICES, make_model, random_digits


def walk(lat, digits: torch.Tensor, rng: np.random.Generator, t: int) -> None:
    """One random jump of trajectory t's vacancy (in place)."""
    v = int(torch.nonzero(digits[t] == 0)[0, 0])
    h = int(lat.neighbors[v, int(rng.integers(lat.neighbors.shape[1]))])
    digits[t, v], digits[t, h] = digits[t, h], 0


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_compiled_terms_equal_the_tensor_path(kind: str) -> None:
    """Over a random walk of three trajectories, evaluated in changing subsets (skipped states, as the engine's
    memo skips them), with a foreign edit, E_KRA and dE equal those of the tensor path to float64 rounding."""
    lat = LATTICES[kind]
    fast, slow = make_model(kind), make_model(kind, compiled=False)
    assert fast._compiled is not None and slow._compiled is None
    digits = random_digits(lat, 3, 1, seed=4)
    rng = np.random.default_rng(0)
    for step in range(40):
        vac = torch.stack([torch.nonzero(row == 0)[:, 0] for row in digits])
        rows = np.flatnonzero(rng.random(3) < 0.6) if step % 3 else np.arange(3)
        if len(rows):
            got = fast.barriers_rows(digits, vac, rows)
            want = slow.barriers(digits, vac)[torch.as_tensor(rows)]
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
        if step == 20:                       # an edit that is no jump: found by the mirror check, repaired
            site = int(torch.nonzero(digits[1] != 0)[3, 0])
            digits[1, site] = 3 - digits[1, site]
        for t in range(3):
            walk(lat, digits, rng, t)
    e_kra, d_e = fast.terms(digits, torch.stack([torch.nonzero(row == 0)[:, 0] for row in digits]))
    e_kra0, d_e0 = slow.terms(digits, torch.stack([torch.nonzero(row == 0)[:, 0] for row in digits]))
    torch.testing.assert_close(e_kra, e_kra0, rtol=0, atol=1e-12)
    torch.testing.assert_close(d_e, d_e0, rtol=0, atol=1e-12)


def test_site_energy_table_serves_repeated_environments() -> None:
    """A vacancy hopping back and forth meets the same site environments again: the networks see each once."""
    lat = LATTICES["fcc"]
    model = make_model("fcc")
    digits = random_digits(lat, 1, 1, seed=1)
    v = int(torch.nonzero(digits[0] == 0)[0, 0])
    h = int(lat.neighbors[v, 0])
    step = model._compiled
    for _ in range(4):                       # v -> h -> v -> h ...: two states, evaluated in turn
        for a, b in ((v, h), (h, v)):
            model.barriers(digits, torch.tensor([[a]]))
            digits[0, a], digits[0, b] = digits[0, b], 0
    first_two = 2 * 12 * (model.desc.window_size - 1)       # occupied window slots of the first two states
    assert step.rows_seen == 8 * 12 * (model.desc.window_size - 1)
    assert step.rows_evaluated <= first_two                  # later visits: every row from the table


def test_compiled_jump_equals_the_tensor_jump() -> None:
    """step_kernels.jump chooses the path kernel.jump_one chooses, for random barriers, temperatures, uniforms."""
    lat = LATTICES["fcc"]
    rng = np.random.default_rng(3)
    t, z = 64, 12
    digits = random_digits(lat, t, 1, seed=5)
    vac = torch.stack([torch.nonzero(row == 0)[:, 0] for row in digits])
    e = torch.as_tensor(rng.uniform(0.3, 1.2, (t, z)), dtype=torch.float32)
    beta = torch.as_tensor(1.0 / (8.617e-5 * rng.uniform(300, 1500, (t, 1))))
    u = torch.as_tensor(rng.random((t, 1)))
    nbr = torch.as_tensor(lat.neighbors, dtype=torch.long).reshape(-1)
    d_torch = digits.clone()
    target = kernel.jump_one(d_torch, vac.clone(), e, -beta, u, nbr, z)
    d_np, v_np = digits.numpy().copy(), vac.numpy()[:, 0].copy()
    step_kernels.jump(d_np, v_np, e.numpy(), (-beta[:, 0]).numpy(), u[:, 0].numpy(), nbr.numpy(), z,
                      np.zeros((0, 1), np.int64), v_np)
    np.testing.assert_array_equal(v_np, target[:, 0].numpy())
    np.testing.assert_array_equal(d_np, d_torch.numpy())


def test_batch_memo_with_m_ext_gives_the_same_chain() -> None:
    """A batch of three temperatures with the per-trajectory state memo (M_EXT evaluates only the trajectories
    it does not know) runs the chain of the batch without it, and serves a share of the steps."""
    lat = LATTICES["fcc"]
    digits = random_digits(lat, 1, 1, seed=6)[0]
    runs = {}
    for cache in (0, 64):
        kmc = KMC(make_model("fcc"), digits, [400.0, 700.0, 1000.0], seed=2, cache=cache)
        kmc.run(150)
        runs[cache] = kmc
    plain, memo = runs[0], runs[64]
    assert "state memo" in memo.path and memo.cache_hits > 30
    assert torch.equal(plain.digits, memo.digits) and torch.equal(plain.vacancies, memo.vacancies)
    torch.testing.assert_close(plain.time, memo.time, rtol=1e-12, atol=0)


def test_install_step_compiles_the_kernels(capsys) -> None:
    """`make .venv` runs dbkmc.kmc.compile_kernels: it runs M_EXT kMC in float32 and float64, one trajectory
    and a batch, so the pipeline's first kMC job finds every kernel compiled."""
    from dbkmc.kmc import compile_kernels

    assert compile_kernels.main() == 0
    assert "kernels compiled" in capsys.readouterr().out
