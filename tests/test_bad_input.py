"""Bad input gets a clear error naming the problem, and nothing wrong gets through (issue 12, section 5)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from dbkmc.config import ConfigError, file_elements, load_config, resolve_potential_file, validate_config

REPO = Path(__file__).resolve().parents[1]
SETFL_HEADER = "comment 1\ncomment 2\ncomment 3\n    2  Ni  Cu\n"


@pytest.fixture
def minimal(tmp_path: Path) -> dict[str, Any]:
    table = tmp_path / "CuNi.eam.alloy"
    table.write_text(SETFL_HEADER)
    return {
        "potentials": {"cuni_eam": {"pair_style": "eam/alloy", "pair_coeff": "* * {table} {elements}",
                                    "files": {"table": str(table)}, "elements": ["Cu", "Ni"]}},
        "datasets": {"cuni": {"potential": "cuni_eam", "lattice": "fcc",
                              "compositions": {"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}}}},
    }


def edited(cfg: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


def raises_at(key: str, reason: str) -> Any:
    return pytest.raises(ConfigError, match=re.escape(f"config error at {key}: ") + ".*" + re.escape(reason))


# --- config ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [".", "..", ".hidden", "-x", "a/b", "a b", ""])
def test_run_name_is_one_plain_folder_name(minimal: dict[str, Any], name: str) -> None:
    with raises_at("run", "does not match"):
        validate_config(edited(minimal, "run", name))


def test_run_name_with_dots_inside_is_fine(minimal: dict[str, Any]) -> None:
    assert validate_config(edited(minimal, "run", "v1.2_a-b"))["run"] == "v1.2_a-b"


@pytest.mark.parametrize("key", ["potentials", "datasets.cuni.compositions"])
def test_dot_dot_is_no_folder_name_for_names_used_in_paths(minimal: dict[str, Any], key: str) -> None:
    cfg = copy.deepcopy(minimal)
    node = cfg
    for part in key.split("."):
        node = node[part]
    node[".."] = next(iter(node.values()))
    with raises_at(f"{key}...", "does not match"):
        validate_config(cfg)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("key", ["neb.ftol", "neb.spring", "qc.max_displacement", "models.dropout",
                                 "nnk.cutoff", "fingerprints.r_cut"])
def test_non_finite_numbers_are_refused(minimal: dict[str, Any], key: str, value: float) -> None:
    with raises_at(key, f"must be a finite number, got {value}"):
        validate_config(edited(minimal, key, value))


def test_non_finite_in_yaml_and_in_lists(tmp_path: Path, minimal: dict[str, Any]) -> None:
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal) + "neb: {ftol: .inf}\nmodels: {split: [0.5, .nan, 0.5]}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "config error at neb.ftol: must be a finite number, got inf" in str(info.value)
    assert "config error at models.split.1: must be a finite number, got nan" in str(info.value)


@pytest.mark.parametrize("key", ["neb.max_iter", "datasets.cuni.supercell", "neb.n_images"])
def test_integer_given_as_float(minimal: dict[str, Any], key: str) -> None:
    with raises_at(key, "expected an integer, got 2.0 (write 2)"):
        validate_config(edited(minimal, key, 2.0))


def test_integer_given_as_fraction(minimal: dict[str, Any]) -> None:
    with raises_at("neb.max_iter", "2.5 is not of type 'integer'"):
        validate_config(edited(minimal, "neb.max_iter", 2.5))


@pytest.mark.parametrize("text, key", [("a: &x [*x]", "a.0"), ("neb: &x {spring: *x}", "neb.spring")])
def test_self_referencing_yaml(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    with raises_at(key, "refers to itself"):
        load_config(path)


def test_shared_yaml_alias_is_fine(tmp_path: Path, minimal: dict[str, Any]) -> None:
    import yaml

    path = tmp_path / "c.yaml"
    text = yaml.safe_dump({k: v for k, v in minimal.items() if k != "datasets"})
    path.write_text(text + "datasets:\n  cuni:\n    potential: cuni_eam\n    lattice: fcc\n"
                    "    compositions: {A: &c {Cu: 0.5, Ni: 0.5}, B: *c}\n")
    assert load_config(path)["datasets"]["cuni"]["compositions"]["B"] == {"Cu": 0.5, "Ni": 0.5}


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read .*absent.yaml: No such file or directory"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("bad", ["with space.eam.alloy", "hash#.eam.alloy", "quote'.eam.alloy"])
def test_potential_path_lammps_cannot_take(minimal: dict[str, Any], tmp_path: Path, bad: str) -> None:
    table = tmp_path / bad
    table.write_text(SETFL_HEADER)
    with raises_at("potentials.cuni_eam.files.table", "which a LAMMPS command cannot take"):
        validate_config(edited(minimal, "potentials.cuni_eam.files", {"table": str(table)}))


@pytest.mark.parametrize("element", ["Xx", "Qa", "X"])
def test_elements_must_be_real(minimal: dict[str, Any], element: str) -> None:
    cfg = edited(minimal, "potentials.cuni_eam.elements", ["Cu", element])
    with pytest.raises(ConfigError, match=re.escape("config error at potentials.cuni_eam.elements.1")):
        validate_config(cfg)


def test_elements_must_be_in_the_setfl_file(minimal: dict[str, Any]) -> None:
    cfg = edited(minimal, "potentials.cuni_eam.elements", ["Cu", "Fe"])
    cfg["datasets"]["cuni"]["compositions"] = {"x": {"Cu": 0.5, "Fe": 0.5}}
    with raises_at("potentials.cuni_eam.elements", "Fe not in CuNi.eam.alloy (the file's elements: Ni, Cu)"):
        validate_config(cfg)


@pytest.mark.parametrize("style, name, expected", [
    ("eam/alloy", "CuNi.eam.alloy", ["Ni", "Cu"]),
    ("eam/cd", "FeCr.cdeam", ["Fe", "Cr"]),
    ("snap", "Ni_Zuo_JPCA2020.snapcoeff", ["Ni"]),
    ("eam", "CuNi.eam.alloy", None),  # funcfl states no element list
])
def test_file_elements_of_shipped_lammps_files(style: str, name: str, expected: list[str] | None) -> None:
    assert file_elements(style, resolve_potential_file(name)) == expected


def test_snap_elements_checked(tmp_path: Path) -> None:
    coeff = tmp_path / "x.snapcoeff"
    coeff.write_text("# comment\n\n2 2\nMo 0.5 1\n0.1\n0.2\nNb 0.5 1 # second\n0.3\n0.4\n")
    assert file_elements("snap", coeff) == ["Mo", "Nb"]
    param = tmp_path / "x.snapparam"
    param.write_text("rcutfac 4.0\n")
    cfg = {"potentials": {"s": {"pair_style": "snap", "pair_coeff": "* * {coeff} {param} {elements}",
                                "files": {"coeff": str(coeff), "param": str(param)}, "elements": ["Mo", "Ta"]}},
           "datasets": {"d": {"potential": "s", "lattice": "bcc", "compositions": {"Mo": {"Mo": 1.0}}}}}
    with raises_at("potentials.s.elements", "Ta not in x.snapcoeff (the file's elements: Mo, Nb)"):
        validate_config(cfg)
