"""Cross-field checks of a run configuration: what its JSON Schema cannot express.

Run by :func:`dbkmc.core.config.validate_config` after the schema stage, on a config with
defaults filled: compositions sum to 1 and use the potential's elements, names refer to
defined datasets and potentials, potential files exist and state the elements, and the
stages' settings agree with each other. Each problem is a (key path, reason) issue.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dbkmc.core.config_kmc import kmc_issues
from dbkmc.core.constants import FAR_FIELD_DATASET
from dbkmc.core.potential_files import file_elements, potential_dirs, resolve_potential_file

SUM_TOLERANCE = 1e-6

KeyPath = tuple[Any, ...]
Issue = tuple[KeyPath, str]


def semantic_issues(cfg: Mapping[str, Any]) -> Iterator[Issue]:
    """Every cross-field problem of a schema-valid config (defaults filled), block by block."""
    for name, potential in cfg["potentials"].items():
        yield from _potential_issues(name, potential)
    for name, dataset in cfg["datasets"].items():
        yield from _dataset_issues(name, dataset, cfg["potentials"])
    yield from _models_issues(cfg["models"], cfg["datasets"])
    yield from _loops_issues(cfg["loops"], cfg["models"], cfg["datasets"], cfg["potentials"])
    yield from _far_field_issues(cfg["far_field"], cfg["potentials"])
    yield from _nnk_issues(cfg["nnk"], cfg["datasets"])
    if "hessians" in cfg:
        far_field = [FAR_FIELD_DATASET] if cfg["far_field"]["enabled"] else []
        yield from _hessians_issues(cfg["hessians"], cfg["models"], [*cfg["datasets"], *far_field])
    yield from kmc_issues(cfg["kmc"], run=cfg["run"], model_stage=cfg["models"]["dataset"] is not None,
                          nnk_db_sets=list(cfg["nnk"]["sets"]) if "db" in cfg["nnk"]["architectures"] else [])
    if "balance_audit" in cfg:
        yield from _balance_audit_issues(cfg["balance_audit"], cfg["kmc"]["runs"])


def _balance_audit_issues(audit: Mapping[str, Any], runs: Mapping[str, Any]) -> Iterator[Issue]:
    """The audit names kMC runs that exist (checked when it is switched on)."""
    for i, name in enumerate(audit["runs"] if audit["enabled"] else []):
        if name not in runs:
            yield ("balance_audit", "runs", i), f"{name!r} is not a kmc run (defined: {', '.join(runs) or 'none'})"
    for name in audit["markov_supercells"] if audit["enabled"] else []:
        if name not in audit["runs"]:
            yield ("balance_audit", "markov_supercells", name), f"{name!r} is not an audited run ({audit['runs']})"


def _models_issues(models: Mapping[str, Any], datasets: Mapping[str, Any]) -> Iterator[Issue]:
    if models["dataset"] is not None and models["dataset"] not in datasets:
        yield ("models", "dataset"), f"unknown dataset {models['dataset']!r} (defined: {', '.join(datasets)})"
    if not math.isclose(sum(models["split"]), 1.0, abs_tol=1e-6):
        yield ("models", "split"), f"fractions sum to {sum(models['split']):g}, not 1"


def _hessians_issues(hessians: Mapping[str, Any], models: Mapping[str, Any],
                     datasets: Sequence[str]) -> Iterator[Issue]:
    """The hessians rule: a defined dataset (or the far-field pseudo-dataset), and full_check and n_shards
    within n_events."""
    if not hessians["enabled"]:
        return
    name = hessians["dataset"] if hessians["dataset"] is not None else models["dataset"]
    if name is None:
        yield ("hessians", "dataset"), "needs a dataset: set hessians.dataset (or models.dataset)"
    elif name not in datasets:
        yield ("hessians", "dataset"), f"unknown dataset {name!r} (defined: {', '.join(datasets)})"
    if hessians["full_check"] > hessians["n_events"]:
        yield ("hessians", "full_check"), f"{hessians['full_check']} exceeds n_events {hessians['n_events']}"
    if hessians["n_shards"] > hessians["n_events"]:
        yield ("hessians", "n_shards"), f"{hessians['n_shards']} shards for {hessians['n_events']} events leave some empty"


def _loops_issues(loops: Mapping[str, Any], models: Mapping[str, Any], datasets: Mapping[str, Any],
                  potentials: Mapping[str, Any]) -> Iterator[Issue]:
    if not loops["enabled"]:
        return
    if models["dataset"] is None:
        yield ("loops", "enabled"), "needs the model stage: set models.dataset"
        return
    if loops["L_max"] < loops["L_min"]:
        yield ("loops", "L_max"), f"{loops['L_max']} is below L_min {loops['L_min']}"
    dataset = datasets.get(models["dataset"])
    potential = potentials.get(dataset["potential"]) if dataset else None
    if potential is None:
        return
    elements = potential["elements"]
    if loops["composition"] is not None:
        yield from _composition_issues(("loops", "composition"), loops["composition"], dataset["potential"], potential)
        elements = [e for e, x in loops["composition"].items() if x > 0]
    if loops["loop_species"] is not None and loops["loop_species"] not in elements:
        yield ("loops", "loop_species"), f"{loops['loop_species']!r} is not one of {', '.join(elements)}"
    for key in ("host", "solute"):
        element = loops["markov"][key]
        if element is not None and element not in potential["elements"]:
            yield ("loops", "markov", key), (f"{element!r} is not in potential {dataset['potential']!r} "
                                             f"(elements: {', '.join(potential['elements'])})")


def _far_field_issues(far_field: Mapping[str, Any], potentials: Mapping[str, Any]) -> Iterator[Issue]:
    if not far_field["enabled"]:
        return
    name = far_field["potential"]
    if name is None:
        if len(potentials) != 1:
            yield ("far_field", "potential"), f"several potentials ({', '.join(potentials)}); name one"
            return
        name = next(iter(potentials))
    if name not in potentials:
        yield ("far_field", "potential"), f"unknown potential {name!r} (defined: {', '.join(potentials)})"
        return
    if far_field["composition"] is not None:
        yield from _composition_issues(("far_field", "composition"), far_field["composition"], name, potentials[name])


def _nnk_issues(nnk: Mapping[str, Any], datasets: Mapping[str, Any]) -> Iterator[Issue]:
    if not math.isclose(sum(nnk["split"]), 1.0, abs_tol=1e-6):
        yield ("nnk", "split"), f"fractions sum to {sum(nnk['split']):g}, not 1"
    if nnk["grid"] is not None and nnk["grid"] % 2 != 1:
        yield ("nnk", "grid"), f"needs an odd number of voxels per axis, got {nnk['grid']}"
    for name, s in nnk["sets"].items():
        base = ("nnk", "sets", name)
        ds = datasets.get(s["dataset"])
        if ds is None:
            yield (*base, "dataset"), f"unknown dataset {s['dataset']!r} (defined: {', '.join(datasets)})"
            continue
        if ds["mode"] != "all_paths" and ds["source"] is None:
            yield (*base, "dataset"), f"dataset {s['dataset']!r} has mode {ds['mode']!r}; NNK needs all_paths"
        comps = list(ds["compositions"])
        for key in ("held_out", "spectrum_compositions"):
            for label in s[key] or []:
                if label not in comps:
                    yield (*base, key), f"composition {label!r} not in dataset {s['dataset']!r} ({', '.join(comps)})"
        if s["held_out"] and not set(comps) - set(s["held_out"]):
            yield (*base, "held_out"), "every composition is held out; nothing left to train on"
        if s["transfer_dataset"] is not None:
            t = datasets.get(s["transfer_dataset"])
            if t is None:
                yield (*base, "transfer_dataset"), f"unknown dataset {s['transfer_dataset']!r}"
            elif (t["potential"], t["lattice"]) != (ds["potential"], ds["lattice"]):
                yield (*base, "transfer_dataset"), "needs the potential and lattice of the training dataset"
            elif t["supercell"] <= ds["supercell"]:
                yield (*base, "transfer_dataset"), (f"supercell {t['supercell']} is not larger than the "
                                                    f"training dataset's {ds['supercell']}")
    weights = nnk["published"]["weights"]
    if weights is not None and not Path(weights).is_file():
        yield ("nnk", "published", "weights"), f"file {weights!r} not found"


def _potential_issues(name: str, potential: Mapping[str, Any]) -> Iterator[Issue]:
    base = ("potentials", name)
    found = {}
    for key, file_name in potential["files"].items():
        issues = list(_file_issues((*base, "files", key), file_name))
        yield from issues
        if not issues:
            found[key] = resolve_potential_file(file_name)
    defined = {*potential["files"], "elements"}
    for field in ("pair_style", "pair_coeff"):
        yield from _template_issues((*base, field), potential[field], defined)
    yield from _file_element_issues(base, potential, found)


# LAMMPS splits a command at whitespace, takes quotes as quoting, '#' as a comment and '$' as a variable.
LAMMPS_UNSAFE = frozenset(" \t\n\r\v\f\"'#$")


def _file_issues(path: KeyPath, file_name: str) -> Iterator[Issue]:
    resolved = resolve_potential_file(file_name)
    unsafe = sorted({c for c in str(resolved) if c in LAMMPS_UNSAFE})
    if unsafe:
        yield path, (f"path {str(resolved)!r} contains {', '.join(map(repr, unsafe))}, which a LAMMPS command "
                     "cannot take; rename or move the file")
        return
    if resolved.is_file():
        return
    where = [Path(file_name).parent] if "/" in file_name else potential_dirs()
    yield path, f"file {file_name!r} not found (looked in {', '.join(str(d.absolute()) for d in where)})"


def _file_element_issues(base: KeyPath, potential: Mapping[str, Any], found: Mapping[str, Path]) -> Iterator[Issue]:
    """The potential's elements must be among those its parameter file states (first file of pair_coeff)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(potential["pair_coeff"]) if f in found]
    except ValueError:
        return
    if not fields:
        return
    stated = file_elements(potential["pair_style"], found[fields[0]])
    if stated is None:
        return
    missing = [e for e in potential["elements"] if e not in stated]
    if missing:
        yield (*base, "elements"), (f"{', '.join(missing)} not in {found[fields[0]].name} "
                                    f"(the file's elements: {', '.join(stated)})")


def _template_issues(path: KeyPath, template: str, defined: set[str]) -> Iterator[Issue]:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as err:
        yield path, f"malformed template {template!r}: {err}"
        return
    known = ", ".join(sorted(defined))
    for field in dict.fromkeys(fields):
        if not field:
            yield path, "positional placeholder {} is not allowed; name it, e.g. {table}"
        elif field not in defined:
            yield path, f"placeholder {{{field}}} is not defined (known: {known}; add it to files)"


def _dataset_issues(name: str, dataset: Mapping[str, Any], potentials: Mapping[str, Any]) -> Iterator[Issue]:
    base = ("datasets", name)
    pot_name = dataset["potential"]
    potential = potentials.get(pot_name)
    if potential is None:
        yield (*base, "potential"), f"unknown potential {pot_name!r} (defined: {', '.join(potentials)})"
    for label, composition in dataset["compositions"].items():
        yield from _composition_issues((*base, "compositions", label), composition, pot_name, potential)
    if dataset["source"] is not None:
        yield from _source_issues((*base, "source"), Path(dataset["source"]))
    if dataset.get("extends") is not None:
        if dataset["source"] is not None:
            yield (*base, "extends"), "give either source (use a dataset as it is) or extends (add events to it)"
        else:
            yield from _source_issues((*base, "extends"), Path(dataset["extends"]))


def _composition_issues(
    path: KeyPath, composition: Mapping[str, float], pot_name: str, potential: Mapping[str, Any] | None
) -> Iterator[Issue]:
    total = math.fsum(composition.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        yield path, f"fractions sum to {total:.6g}, not 1"
    if potential is None:
        return
    elements = potential["elements"]
    for element in composition:
        if element not in elements:
            yield path, (f"element {element!r} is not in potential {pot_name!r} "
                         f"(elements: {', '.join(elements)})")


def _source_issues(path: KeyPath, source: Path) -> Iterator[Issue]:
    if not source.is_dir():
        yield path, f"source directory '{source}' not found"
    elif not (source / "events.parquet").is_file():
        yield path, f"source directory '{source}' has no events.parquet"
