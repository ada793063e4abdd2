"""Run configuration: load, fill defaults, validate.

Validation has two stages: the JSON Schema ``config.schema.yaml`` beside this module
(linked from ``workflow/schemas/``; types, ranges, unknown keys, defaults:
:mod:`dbkmc.core.config_schema`), then the cross-field checks a schema cannot express
(:mod:`dbkmc.core.config_checks`, :mod:`dbkmc.core.config_kmc`). Every problem is reported
as ``config error at <dotted.key>: <reason>``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from dbkmc.core.config_checks import Issue, KeyPath, semantic_issues
from dbkmc.core.config_kmc import expand_run_placeholders
from dbkmc.core.config_schema import schema_issues, schema_validator
# Part of this module's API: where potential files are found, and the elements one states.
from dbkmc.core.potential_files import file_elements, potential_dirs, resolve_potential_file

__all__ = ["SCHEMA_PATH", "ConfigError", "file_elements", "load_config", "potential_dirs",
           "resolve_potential_file", "validate_config"]

# Package data, so a non-editable install validates too; workflow/schemas/ links to it.
SCHEMA_PATH = Path(__file__).resolve().with_name("config.schema.yaml")


class ConfigError(ValueError):
    """An invalid run configuration; the message names the key and the reason."""


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
    validator = schema_validator(Path(schema_path) if schema_path else SCHEMA_PATH)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path])
    non_finite = list(_non_finite_issues(cfg, ()))
    bad_paths = {p for p, _ in non_finite}  # their range errors would only repeat the point
    _raise([*non_finite, *(i for err in errors for i in schema_issues(err) if i[0] not in bad_paths)])
    _raise(list(expand_run_placeholders(cfg)))  # {run} in the kMC runs' file paths
    _raise(list(semantic_issues(cfg)))
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
