"""The schema stage of config validation: JSON Schema with defaults filled, errors as issues.

:func:`schema_validator` builds a validator that sets each missing property's ``default``
while it validates, takes ``integer`` as a Python int and knows the ``chemical-symbol``
format; :func:`schema_issues` turns one of its errors into (key path, reason) issues.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from ase.data import chemical_symbols
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

KeyPath = tuple[Any, ...]
Issue = tuple[KeyPath, str]


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
def schema_validator(schema_path: Path) -> Validator:
    """The validator of the schema at ``schema_path`` (checked once), which fills defaults as it goes."""
    schema = yaml.safe_load(schema_path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return _with_defaults(cls)(schema, format_checker=FORMATS)


def schema_issues(err: ValidationError) -> list[Issue]:
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
