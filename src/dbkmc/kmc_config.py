"""Cross-field checks of the ``kmc`` config block (called by :func:`dbkmc.config.validate_config`).

Kept free of torch so that validating a config stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

Issue = tuple[tuple[Any, ...], str]


def kmc_issues(kmc: Mapping[str, Any]) -> Iterator[Issue]:
    for name, run in kmc["runs"].items():
        yield from _run_issues(("kmc", "runs", name), run)


def _run_issues(key: tuple[Any, ...], run: Mapping[str, Any]) -> Iterator[Issue]:
    st = run["structure"]
    species = list(st["species"])
    sk = (*key, "structure")
    if st["dump"]:
        if not Path(st["dump"]).is_file():
            yield (*sk, "dump"), f"no file {st['dump']}"
        if st["repeat"] > 1 and st["redraw"]:
            yield (*sk, "redraw"), "give either repeat or redraw, not both"
        for extra in ("n", "a", "composition"):
            if st[extra] is not None:
                yield (*sk, extra), "only used without a dump (the dump sets the cell)"
    else:
        for need in ("lattice", "n", "a", "composition"):
            if st[need] is None:
                yield (*sk, need), "needed when no dump is given"
        if st["composition"] is not None:
            unknown = sorted(set(st["composition"]) - set(species))
            if unknown:
                yield (*sk, "composition"), f"{unknown} not in structure.species {species}"
            total = sum(st["composition"].values())
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                yield (*sk, "composition"), f"fractions sum to {total:g}, not 1"
    rm = run["rate_model"]
    rk = (*key, "rate_model")
    if rm["kind"] == "nnk_published":
        if not rm["weights"]:
            yield (*rk, "weights"), "nnk_published needs the weights file"
        elif not Path(rm["weights"]).is_file():
            yield (*rk, "weights"), f"no file {rm['weights']}"
        if rm["species"] is not None and list(rm["species"]) != species:
            yield (*rk, "species"), f"the network's species {list(rm['species'])} are not the structure's {species}"
    if rm["kind"] == "nnk_trained" and not rm["checkpoint"]:
        yield (*rk, "checkpoint"), "nnk_trained needs the network's checkpoint file"
    if rm["kind"] == "detailed_balance":
        for need in ("kol", "kra"):
            if not rm[need]:
                yield (*rk, need), "detailed_balance needs the M_KOL and KRA ensemble folders"
    an = run["analysis"]
    if an["order_pair"] is not None:
        for s in an["order_pair"]:
            if s not in species:
                yield (*key, "analysis", "order_pair"), f"{s!r} is not in structure.species {species}"
    if an["b2"] is not None:
        a, b = an["b2"]["a"], an["b2"]["b"]
        if a == b:
            yield (*key, "analysis", "b2"), "a and b must differ"
        for s in (a, b):
            if s not in species:
                yield (*key, "analysis", "b2"), f"{s!r} is not in structure.species {species}"
        if st["lattice"] == "fcc":
            yield (*key, "analysis", "b2"), "B2 order is defined on bcc"
        if run["snapshots"]["count"] < 1:
            yield (*key, "snapshots", "count"), "the B2 analysis reads snapshots: need count >= 1"
