#!/usr/bin/env python3
"""Training a voting ensemble batched (one ``vmap`` over the members) against one member after another.

Both ways train the same M freshly initialised members for the same number of
epochs (no early stopping) on the same data, with the same per-member data
order, Adam settings and minibatch size (:func:`dbkmc.detailed_balance.training.fit_members`
with ``batched=True`` and ``batched=False``). The batched way evaluates all
members in one ``torch.func.functional_call`` under ``torch.vmap`` per
minibatch; the other way trains each member as a plain ``nn.Module``.
Both ways get one untimed warm-up epoch on a few events first (the first
``vmap`` call of a process carries a one-off cost of about a second).

Data: the reference Cu-Ni dataset (``data/reference_cuni/events.parquet``,
featurized with the default AEV parameters) if present, otherwise synthetic
fingerprints of the same size (5400 events, D = 128 for two elements).

Run with dbkmc importable (``make .venv``, or ``PYTHONPATH=src``)::

    python benchmarks/ensemble_training.py                       # M_KOL, 10 members, 10 epochs
    python benchmarks/ensemble_training.py --kind M_HAS --epochs 5 --device cuda
    python benchmarks/ensemble_training.py --results-md benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from results_md import torch_machine_description, update_results_md

from dbkmc.detailed_balance.fingerprints import AEVParams
from dbkmc.detailed_balance.models import MODEL_KINDS
from dbkmc.detailed_balance.training import EventData, TrainConfig, fit_members, init_members, split_events

REFERENCE = Path("data/reference_cuni/events.parquet")
N_SYNTHETIC, D_SYNTHETIC = 5400, 128


@dataclass(frozen=True)
class Timing:
    batched_s: float
    sequential_s: float

    @property
    def speedup(self) -> float:
        return self.sequential_s / self.batched_s


def load_data(path: Path | None, device: str) -> tuple[EventData, str]:
    """The reference events (featurized) or synthetic fingerprints of the same size, and a description."""
    if path is not None and path.is_file():
        import pandas as pd

        events = pd.read_parquet(path)
        if "status" in events:
            events = events[events["status"] == "accepted"]
        data = EventData.from_events(events.sort_values("event_id").reset_index(drop=True), AEVParams(), device)
        return data, f"{path} ({len(data)} events, D = {data.feature_dim})"
    g = torch.Generator().manual_seed(0)
    fp = {k: torch.rand(N_SYNTHETIC, D_SYNTHETIC, generator=g).to(device) for k in ("KOL_A", "KOL_B", "TW_A", "TW_B")}
    w = torch.randn(D_SYNTHETIC, generator=g).to(device) / D_SYNTHETIC ** 0.5
    d_e = torch.tanh(fp["KOL_B"] @ w) - torch.tanh(fp["KOL_A"] @ w)
    e_kra = 0.8 + 0.05 * torch.sin((fp["TW_A"] + fp["TW_B"]) @ w)
    comps = [("A", "B", "C")[i % 3] for i in range(N_SYNTHETIC)]
    data = EventData(fp, {"dE": d_e, "E_KRA": e_kra, "barrier_forward": e_kra + d_e / 2,
                          "barrier_backward": e_kra - d_e / 2},
                     [f"syn:{c}:{i:06d}" for i, c in enumerate(comps)], comps, AEVParams(), ["Cu", "Ni"])
    return data, f"synthetic fingerprints ({N_SYNTHETIC} events, D = {D_SYNTHETIC})"


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_training(data: EventData, kind: str, config: TrainConfig, epochs: int, device: str) -> Timing:
    """Wall time of ``epochs`` epochs of the same members, batched and one after another."""
    split = split_events(data.event_id, data.composition)
    train, val = data.directed(split.train), data.directed(split.val)
    small = data.directed(split.train[:64])
    out = {}
    for batched in (True, False):  # untimed warm-up: one-off costs of the first vmap / autograd calls
        fit_members(init_members(kind, data.feature_dim, small, config, device), small, small, config,
                    batched=batched, max_epochs=1, early_stopping=False)
    for batched in (True, False):
        members = init_members(kind, data.feature_dim, train, config, device)
        _sync(device)
        start = time.perf_counter()
        fit_members(members, train, val, config, batched=batched, max_epochs=epochs, early_stopping=False)
        _sync(device)
        out[batched] = time.perf_counter() - start
    return Timing(out[True], out[False])


def markdown_section(date: str, command: str, device: str, data_text: str, kind: str, config: TrainConfig,
                     epochs: int, timing: Timing, load: str) -> str:
    n_train = "75% of the events, both directions"
    return "\n".join([
        f"## Ensemble training, batched vs one after another, {date}", "",
        f"- Machine: {torch_machine_description(device)}; device `{device}`",
        f"- Command: `{command}`",
        f"- Data: {data_text}; training set {n_train}",
        f"- Model: {kind}, {config.n_members} members, hidden {list(config.hidden)}, dropout {config.dropout}, "
        f"batch {config.batch_size}, {epochs} epochs each way (no early stopping)",
        f"- Timings are wall-clock ({load})", "",
        "| way | wall [s] | s/epoch |", "|---|---:|---:|",
        f"| batched (vmap, one pass) | {timing.batched_s:.2f} | {timing.batched_s / epochs:.3f} |",
        f"| one member after another | {timing.sequential_s:.2f} | {timing.sequential_s / epochs:.3f} |", "",
        f"Speed-up of the batched pass: **{timing.speedup:.2f}x**", "",
    ])


def _load_average() -> str:
    try:
        return f"1-min load average {os.getloadavg()[0]:.2f}"
    except OSError:
        return "load average unknown"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--kind", choices=MODEL_KINDS, default="M_KOL")
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--hidden", type=int, nargs="+", default=list(TrainConfig.hidden))
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", type=Path, default=REFERENCE, help="events.parquet (synthetic data if missing)")
    p.add_argument("--synthetic", action="store_true", help="use synthetic fingerprints even if --data exists")
    p.add_argument("--results-md", type=Path, default=None, help="append/update a dated section here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = TrainConfig(hidden=tuple(args.hidden), n_members=args.members, batch_size=args.batch_size)
    data, data_text = load_data(None if args.synthetic else args.data, args.device)
    load_before = _load_average()
    timing = time_training(data, args.kind, config, args.epochs, args.device)
    load = f"{load_before} before, {_load_average().split()[-1]} after"
    print(f"data: {data_text}")
    print(f"{args.kind}, {args.members} members, {args.epochs} epochs on {args.device}")
    print(f"batched (vmap):           {timing.batched_s:8.2f} s")
    print(f"one after another:        {timing.sequential_s:8.2f} s")
    print(f"speed-up:                 {timing.speedup:8.2f}x")
    if args.results_md is not None:
        date = dt.date.today().isoformat()
        command = "python " + " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
        update_results_md(args.results_md, "ensemble_training", date,
                          markdown_section(date, command, args.device, data_text, args.kind, config,
                                           args.epochs, timing, load))
        print(f"wrote a section to {args.results_md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
