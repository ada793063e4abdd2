"""Counter-based random numbers for kMC: SplitMix64 on int64 tensors.

The pair of uniforms of step ``s`` of trajectory ``t`` (``j = 0``: the event, ``j = 1``:
the clock) is a fixed function of ``(seed, trajectory id, s)``: the trajectory's 64-bit
key, advanced by ``(2 s + j + 1)`` golden-ratio increments and passed through the
SplitMix64 finaliser. Nothing is carried from step to step, so a trajectory does not
depend on what else is in the batch, and a run resumed at step ``s`` draws exactly the
numbers the uninterrupted run draws.

:func:`uniform_reference` is the same function in plain Python integers (the reference
the tensor version is tested against).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

MASK64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, the SplitMix64 increment
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB


def signed(v: int) -> int:
    """The unsigned 64-bit integer ``v`` as the int64 with the same bits (for torch tensors)."""
    v &= MASK64
    return v - (1 << 64) if v >= 1 << 63 else v


def _mix_int(z: int) -> int:
    """SplitMix64 finaliser on a Python int (the reference for the tensor version)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * _C1) & MASK64
    z = ((z ^ (z >> 27)) * _C2) & MASK64
    return z ^ (z >> 31)


def trajectory_key(seed: int, trajectory_id: int) -> int:
    """The 64-bit stream key of one trajectory."""
    return _mix_int(_mix_int((int(seed) + GAMMA) & MASK64) + (int(trajectory_id) + 1) * GAMMA)


def trajectory_keys(seed: int, trajectory_ids: Sequence[int], device: str | torch.device = "cpu") -> Tensor:
    """``LongTensor[T]``: the stream keys of the trajectories (as signed int64)."""
    return torch.tensor([signed(trajectory_key(seed, i)) for i in trajectory_ids], dtype=torch.long, device=device)


def uniform_reference(key: int, step: int, j: int) -> float:
    """Uniform ``j`` (0: event, 1: clock) of ``step`` in [0, 1), in plain Python.

    52 bits: u <= 1 - 2**-52, so ``u * W`` stays strictly below ``W`` after rounding
    and the event search never runs past the last path.
    """
    x = _mix_int((key + (2 * step + j + 1) * GAMMA) & MASK64)
    return (x >> 12) * 2.0**-52


def _srl(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 tensors."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def _mix(z: Tensor) -> Tensor:
    z = (z ^ _srl(z, 30)) * signed(_C1)
    z = (z ^ _srl(z, 27)) * signed(_C2)
    return z ^ _srl(z, 31)


def uniforms(keys: Tensor, start: int, count: int) -> Tensor:
    """``[T, count, 2]`` float64 uniforms in [0, 1 - 2**-52] of steps ``start .. start + count - 1``."""
    c = torch.arange(2 * start + 1, 2 * (start + count) + 1, device=keys.device, dtype=torch.long)
    x = keys[:, None] + c[None, :] * signed(GAMMA)
    return (_srl(_mix(x), 12).to(torch.float64) * 2.0**-52).view(keys.shape[0], count, 2)
