"""Quality control of NEB events: every rejected event keeps its reasons."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

REASONS = {
    "non_finite_energy": "an energy is NaN or infinite",
    "relax_A_not_converged": "relaxation of end state A did not reach relax_ftol",
    "relax_B_not_converged": "relaxation of end state B did not reach relax_ftol",
    "end_state_A_moved": "an atom of relaxed A lies further than qc.max_displacement from its site",
    "end_state_B_moved": "an atom of relaxed B lies further than qc.max_displacement from its site",
    "neb_not_converged": "CI-NEB did not reach neb.ftol within neb.max_iter",
    "saddle_at_end_image": "the highest image is an end point, so no saddle was bracketed",
    "negative_barrier": "a forward or backward barrier is negative",
    "engine_error": "LAMMPS raised an error",
}


def qc_reasons(row: Mapping, max_displacement: float) -> list[str]:
    """Reasons (keys of :data:`REASONS`) to reject one NEB result; empty = accepted."""
    if row.get("engine_error"):
        return ["engine_error"]
    reasons = []
    energies = [row["E_A"], row["E_B"], row["E_saddle"], *row["image_energies"]]
    if not all(math.isfinite(e) for e in energies):
        reasons.append("non_finite_energy")
    for state in ("A", "B"):
        if not row[f"relax_{state}_converged"]:
            reasons.append(f"relax_{state}_not_converged")
        if not row[f"max_displacement_{state}"] <= max_displacement:
            reasons.append(f"end_state_{state}_moved")
    if not row["neb_converged"]:
        reasons.append("neb_not_converged")
    if row["climb_index"] in (0, len(row["image_energies"]) - 1):
        reasons.append("saddle_at_end_image")
    if not (row["barrier_forward"] >= 0 and row["barrier_backward"] >= 0):
        reasons.append("negative_barrier")
    return reasons


def summarize(rows: Iterable[Mapping]) -> dict:
    """Counts of accepted and rejected events and of each rejection reason."""
    reasons: Counter[str] = Counter()
    n_total = n_rejected = 0
    for row in rows:
        n_total += 1
        if row["status"] == "rejected":
            n_rejected += 1
            reasons.update(r for r in row["reject_reason"].split(";") if r)
    return {"n_events": n_total, "n_accepted": n_total - n_rejected, "n_rejected": n_rejected,
            "reasons": {r: reasons.get(r, 0) for r in REASONS}}
