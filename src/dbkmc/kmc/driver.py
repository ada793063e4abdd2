"""Driving a kMC run: the schedule of records, snapshots and checkpoints, and resuming.

:func:`simulate` advances a :class:`~dbkmc.kmc.engine.KMC` engine from stop to stop of a
:class:`Schedule` (record points, snapshots, checkpoints), calls the :class:`RunHooks`
there, and writes a checkpoint every ``checkpoint_every`` jumps. A checkpoint holds the
engine state and the rows recorded so far, with a fingerprint of the run's parameters
(:func:`run_fingerprint`): a rerun of the same run resumes from it, and because the
random numbers are counter-based it ends bit for bit where the uninterrupted run ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dbkmc.kmc.engine import KMC

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "dbkmc-kmc-checkpoint/1"


def log_spaced_steps(first: int, last: int, per_decade: int) -> list[int]:
    """Integer jump counts from ``first`` to ``last``, ``per_decade`` per decade (log-spaced)."""
    if first < 1 or last < first:
        return []
    n = max(2, int(math.ceil(per_decade * math.log10(last / first))) + 1)
    return sorted({int(round(v)) for v in np.geomspace(first, last, n)})


@dataclass
class Schedule:
    """Jump counts at which to record observables, write snapshots and checkpoints."""

    n_jumps: int
    record: list[int]
    snapshots: list[int]
    checkpoint_every: int = 0

    def stops(self) -> list[int]:
        pts = set(self.record) | set(self.snapshots) | {self.n_jumps}
        if self.checkpoint_every > 0:
            pts |= set(range(self.checkpoint_every, self.n_jumps, self.checkpoint_every))
        return sorted(p for p in pts if 0 <= p <= self.n_jumps)


@dataclass
class RunHooks:
    """What to do at a recording point or snapshot (each gets the engine)."""

    record: Callable[[KMC], list[dict]]
    snapshot: Callable[[KMC], None] | None = None


def run_fingerprint(params: Mapping[str, Any]) -> str:
    """A short hash of the run's parameters: a checkpoint is only resumed by the same run."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def previous_checkpoint(path: str | Path) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint before the latest one."""
    path = Path(path)
    return path.with_name(path.name + ".prev")


def remove_checkpoints(path: str | Path) -> None:
    for p in (Path(path), previous_checkpoint(path)):
        p.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, engine: KMC, rows: list[dict], fingerprint: str) -> None:
    """Atomically write the engine state and the recorded rows; the one before is kept as ``<path>.prev``."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "engine": engine.state_dict(),
                "rows": rows}, tmp)
    if path.is_file():
        os.replace(path, previous_checkpoint(path))
    os.replace(tmp, path)


def load_checkpoint(path: str | Path, fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it is readable and belongs to this run, else None (logged).

    A truncated or otherwise unreadable file is reported by name and skipped.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ck, dict) or not isinstance(ck.get("engine"), dict) or not isinstance(ck.get("rows"), list):
            raise ValueError("not a kMC checkpoint (no engine state and rows)")
    except Exception as err:  # noqa: BLE001 - any damage to the file (truncation: RuntimeError, EOFError, ...)
        log.warning("checkpoint %s is unreadable (%s: %s); not resuming from it", path, type(err).__name__, err)
        return None
    if ck.get("format") != CHECKPOINT_FORMAT or ck.get("fingerprint") != fingerprint:
        log.warning("checkpoint %s belongs to another run or format; starting afresh", path)
        return None
    return ck


def resume(engine: KMC, checkpoint: str | Path, fingerprint: str) -> list[dict] | None:
    """Load the latest good checkpoint of this run into ``engine``; its recorded rows, or None.

    Tries ``checkpoint``, then the one before it (``<checkpoint>.prev``). A file that
    cannot be read or loaded is named in a warning and skipped; with none left the
    engine keeps its initial state and the run starts from the beginning.
    """
    initial = {k: v.clone() if isinstance(v, Tensor) else v for k, v in engine.state_dict().items()}
    for path in (Path(checkpoint), previous_checkpoint(checkpoint)):
        ck = load_checkpoint(path, fingerprint)
        if ck is None:
            continue
        try:
            engine.load_state_dict(ck["engine"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            log.warning("checkpoint %s does not fit this run (%s: %s); not resuming from it",
                        path, type(err).__name__, err)
            engine.load_state_dict(initial)
            continue
        log.info("resumed from %s at %d jumps", path, engine.step)
        return list(ck["rows"])
    if Path(checkpoint).exists() or previous_checkpoint(checkpoint).exists():
        log.warning("no usable checkpoint in %s; starting from the beginning", Path(checkpoint).parent)
    return None


def simulate(engine: KMC, schedule: Schedule, hooks: RunHooks, checkpoint: str | Path | None = None,
             fingerprint: str = "", progress: bool = True, stop_after: int | None = None,
             progress_file: Any = None) -> list[dict]:
    """Run to ``schedule.n_jumps``, resuming from ``checkpoint`` when it belongs to this run.

    Returns the recorded rows (from the hooks). ``stop_after`` (for tests and time
    limits) stops after the first checkpoint at or beyond that many jumps, as a
    killed job would. The progress bar goes to ``progress_file`` (a job's log; updated
    every 30 s there) or to stderr.
    """
    from tqdm import tqdm

    rows: list[dict] = []
    if checkpoint is not None and (resumed := resume(engine, checkpoint, fingerprint)) is not None:
        rows = resumed
    record, snaps = set(schedule.record), set(schedule.snapshots)
    if engine.step == 0:
        if 0 in record:
            rows.extend(hooks.record(engine))
        if 0 in snaps and hooks.snapshot is not None:
            hooks.snapshot(engine)
    bar = tqdm(total=schedule.n_jumps, initial=engine.step, unit=" jumps/trajectory", disable=not progress,
               desc=f"kMC, {engine.T} trajectories", file=progress_file,
               mininterval=2.0 if progress_file is None else 30.0)
    try:
        for stop in schedule.stops():
            if stop <= engine.step:
                continue
            before = engine.step
            engine.run(stop - before)
            bar.update(engine.step - before)
            if stop in record:
                rows.extend(hooks.record(engine))
            if stop in snaps and hooks.snapshot is not None:
                hooks.snapshot(engine)
            is_ck = schedule.checkpoint_every > 0 and stop % schedule.checkpoint_every == 0
            if checkpoint is not None and is_ck and stop < schedule.n_jumps:
                save_checkpoint(checkpoint, engine, rows, fingerprint)
                if stop_after is not None and stop >= stop_after:
                    raise KeyboardInterrupt(f"stopped after the checkpoint at {stop} jumps")
    finally:
        bar.close()
    return rows
