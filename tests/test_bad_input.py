"""Bad input gets a clear error naming the problem, and nothing wrong gets through (issue 12, section 5)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from dbkmc.core.config import ConfigError, file_elements, load_config, resolve_potential_file, validate_config

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


# --- the dbkmc command line: one line on stderr, exit code 2 -----------------------

from conftest import NNK_NBMOTA  # noqa: E402

from dbkmc.cli import main as cli_main  # noqa: E402

WEIGHTS = NNK_NBMOTA / "weights.npy"
DUMP = NNK_NBMOTA / "nbmota_1024.dump"


def cli_fails(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """Run the CLI: exit code 2, stderr a single line holding every needle, no traceback."""
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def edited_dump(tmp_path: Path, row: int, column: int, value: str) -> Path:
    """The 1024-atom dump with one field of atom row ``row`` (0-based) replaced."""
    lines = DUMP.read_text().splitlines()
    fields = lines[9 + row].split()
    fields[column] = value
    lines[9 + row] = " ".join(fields)
    path = tmp_path / "edited.dump"
    path.write_text("\n".join(lines) + "\n")
    return path


def barriers_argv(tmp_path: Path, **over: str) -> list[str]:
    opts = {"--weights": str(WEIGHTS), "--structure": str(DUMP), "--vacancy-ids": "1,2",
            "--out": str(tmp_path / "b.csv"), **over}
    return ["nnk", "barriers", *[x for kv in opts.items() for x in kv]]


def test_cli_missing_config(capsys, tmp_path: Path) -> None:
    cli_fails(capsys, ["check-config", str(tmp_path / "absent.yaml")], "dbkmc check-config:",
              "No such file or directory", "absent.yaml")
    cli_fails(capsys, ["lattice-constants", str(tmp_path / "absent.yaml"), "--dataset", "x"],
              "dbkmc lattice-constants:", "absent.yaml")


def test_cli_unreadable_config(capsys, tmp_path: Path) -> None:
    path = tmp_path / "folder.yaml"
    path.mkdir()
    cli_fails(capsys, ["check-config", str(path)], "folder.yaml")


def test_cli_bad_config_value(capsys, tmp_path: Path, minimal: dict[str, Any]) -> None:
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(edited(minimal, "neb.ftol", float("inf"))))
    cli_fails(capsys, ["check-config", str(path)], "neb.ftol: must be a finite number, got inf")


def test_cli_unknown_dataset(capsys, tmp_path: Path, minimal: dict[str, Any]) -> None:
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(minimal))
    cli_fails(capsys, ["lattice-constants", str(path), "--dataset", "nope"], "--dataset: unknown dataset 'nope'")


@pytest.mark.parametrize("option", ["--weights", "--structure"])
def test_cli_nnk_missing_file(capsys, tmp_path: Path, option: str) -> None:
    cli_fails(capsys, barriers_argv(tmp_path, **{option: str(tmp_path / "absent")}),
              "dbkmc nnk barriers:", "No such file or directory", "absent")


def test_cli_nnk_weights_not_npy(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "w.npy"
    bad.write_text("not numpy\n")
    cli_fails(capsys, barriers_argv(tmp_path, **{"--weights": str(bad)}), "--weights:")


def test_cli_nnk_unwritable_out(capsys, tmp_path: Path) -> None:
    cli_fails(capsys, barriers_argv(tmp_path, **{"--out": str(tmp_path / "no" / "such" / "b.csv")}),
              "dbkmc nnk barriers:", "no/such")


@pytest.mark.parametrize("ids, needle", [("1,x", "--vacancy-ids: expected comma-separated integers"),
                                         (",", "--vacancy-ids: no id given"),
                                         ("1,99999", "--vacancy-ids: atom id(s) [99999] not in the structure")])
def test_cli_nnk_bad_vacancy_ids(capsys, tmp_path: Path, ids: str, needle: str) -> None:
    cli_fails(capsys, barriers_argv(tmp_path, **{"--vacancy-ids": ids}), needle)


@pytest.mark.parametrize("cutoff", ["6.0", "8.5", "7.4"])
def test_cli_nnk_cutoff_other_than_the_networks(capsys, tmp_path: Path, cutoff: str) -> None:
    cli_fails(capsys, barriers_argv(tmp_path, **{"--cutoff": cutoff}),
              f"--cutoff: the network was trained with a 7.5 A cutoff, got {float(cutoff)} A")
    assert not (tmp_path / "b.csv").exists()


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan"])
def test_cli_nnk_cutoff_and_tol_must_be_positive_and_finite(capsys, tmp_path: Path, value: str) -> None:
    cli_fails(capsys, barriers_argv(tmp_path, **{"--cutoff": value}), "--cutoff: need a finite number > 0")
    cli_fails(capsys, barriers_argv(tmp_path, **{"--tol": value}), "--tol: need a finite number > 0")


def test_cli_nnk_own_cutoff_is_accepted(capsys, tmp_path: Path) -> None:
    assert cli_main(barriers_argv(tmp_path, **{"--cutoff": "7.5"})) == 0
    assert len((tmp_path / "b.csv").read_text().splitlines()) == 1 + 2 * 8


@pytest.mark.parametrize("bad_type", ["4", "7"])
def test_cli_nnk_type_beyond_the_networks_species(capsys, tmp_path: Path, bad_type: str) -> None:
    dump = edited_dump(tmp_path, 10, 1, bad_type)  # atom id 11
    cli_fails(capsys, barriers_argv(tmp_path, **{"--structure": str(dump)}),
              "--structure: types: the network knows 3 species (types 1..3)", f"atom id 11 type {bad_type}")
    assert not (tmp_path / "b.csv").exists()


def test_cli_nnk_fractional_type(capsys, tmp_path: Path) -> None:
    dump = edited_dump(tmp_path, 10, 1, "2.5")
    cli_fails(capsys, barriers_argv(tmp_path, **{"--structure": str(dump)}), "--structure:", "2.5", "integer")


def test_barrier_table_refuses_types_and_cutoff_directly() -> None:
    from dbkmc.neb.dump import read_dump, to_lattice
    from dbkmc.nnk.networks import PublishedNNK, barrier_table

    model = PublishedNNK.from_file(WEIGHTS)
    structure = to_lattice(read_dump(DUMP))
    assert len(barrier_table(model, structure, [1])) == 8  # the network's own cutoff by default
    with pytest.raises(ValueError, match="cutoff: the network was trained with a 7.5 A cutoff"):
        barrier_table(model, structure, [1], cutoff=6.0)
    structure.types[5] = 4
    with pytest.raises(ValueError, match=f"atom id {structure.ids[5]} type 4"):
        barrier_table(model, structure, [1])


# --- dataset import: consistency checked, offending events named ---------------------

REFERENCE = REPO / "data" / "reference_cuni"


def _import(tmp_path: Path, events: Any) -> dict:
    from dbkmc.stages.dataset import import_step

    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    events.to_parquet(src / "events.parquet", index=False)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return import_step(src, *(out / n for n in ("events.parquet", "rejects.parquet", "qc.json", "s.extxyz",
                                                 "dataset.json")))


@pytest.fixture(scope="module")
def reference_events() -> Any:
    import pandas as pd

    return pd.read_parquet(REFERENCE / "events.parquet").iloc[:12].reset_index(drop=True)


def _corrupt(events: Any, rows: list[int], column: str, value: Any) -> Any:
    out = events.copy()
    for r in rows:
        out.loc[r, column] = value(out.loc[r]) if callable(value) else value
    return out


@pytest.mark.parametrize("column, value, reason", [
    ("dE", lambda r: r["dE"] + 1e-4, "dE differs from E_B - E_A by more than 1e-06 eV"),
    ("E_KRA", lambda r: r["E_KRA"] - 2e-6, "E_KRA differs from E_saddle - (E_A + E_B)/2 by more than 1e-06 eV"),
    ("E_saddle", float("nan"), "non-finite or non-numeric energies"),
    ("status", "rejected", "status is not 'accepted'"),
    ("vacancy_site", 10_000, "vacancy_site or hop_site outside the 256 sites"),
    ("hop_site", -1, "vacancy_site or hop_site outside the 256 sites"),
    ("hop_site", lambda r: r["vacancy_site"], "hop_site is not a first neighbour of vacancy_site"),
    ("occupation", lambda r: r["occupation"][:-1], "occupation is not one digit 0..S-1 per site"),
    ("occupation", lambda r: r["occupation"].replace("0", "7", 1), "occupation is not one digit 0..S-1 per site"),
    ("vacancy_site", lambda r: r["hop_site"], "the vacancy is not at vacancy_site"),
])
def test_import_names_inconsistent_events(tmp_path: Path, reference_events: Any, column: str, value: Any,
                                          reason: str) -> None:
    bad = _corrupt(reference_events, [3, 7], column, value)
    ids = [str(bad.loc[r, "event_id"]) for r in (3, 7)]
    with pytest.raises(ValueError, match=re.escape(reason) + ".*" + re.escape(f" in 2 event(s): {ids[0]}, {ids[1]}")):
        _import(tmp_path, bad)
    assert not (tmp_path / "out" / "events.parquet").exists()


def test_import_tolerance_is_one_micro_ev(tmp_path: Path, reference_events: Any) -> None:
    ok = _corrupt(reference_events, [3], "dE", lambda r: r["E_B"] - r["E_A"] + 0.9e-6)
    assert _import(tmp_path, ok)["n_events"] == 12


def test_import_duplicate_ids_and_many_are_counted(tmp_path: Path, reference_events: Any) -> None:
    import pandas as pd

    doubled = pd.concat([reference_events, reference_events], ignore_index=True)
    with pytest.raises(ValueError, match=r"duplicate event_id in 12 event\(s\): .*, \.\.\. \(12 in all\)"):
        _import(tmp_path, doubled)


@pytest.mark.parametrize("column", ["E_saddle", "E_KRA", "dE"])
def test_import_missing_barrier_column(tmp_path: Path, reference_events: Any, column: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"missing columns ['{column}']")):
        _import(tmp_path, reference_events.drop(columns=[column]))


@pytest.mark.parametrize("source", [REFERENCE, *sorted((REPO / "data" / "nnk_results").iterdir())],
                         ids=lambda p: p.name)
def test_committed_datasets_pass_the_import_checks(source: Path) -> None:
    import pandas as pd

    from dbkmc.stages.dataset import import_problems

    assert import_problems(pd.read_parquet(source / "events.parquet")) == []


# --- a failed job's log holds its error ------------------------------------------------


def test_uncaught_error_goes_to_the_log_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "job.py"
    script.write_text("import logging\nfrom dbkmc.core.logs import log_to_file\nlog_to_file(__import__('sys').argv[1])\n"
                      "logging.getLogger('job').info('started')\nraise ValueError('the named problem')\n")
    log = tmp_path / "job.log"
    done = subprocess.run([sys.executable, str(script), str(log)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    text = log.read_text()
    assert "started" in text and "Traceback (most recent call last)" in text
    assert "ValueError: the named problem" in text
    assert "ValueError: the named problem" in done.stderr  # the console still shows it


def test_every_workflow_script_logs_to_its_file() -> None:
    scripts = sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert scripts
    for script in scripts:
        assert "log_to_file(snakemake.log[0])" in script.read_text(), script.name


def test_failed_snakemake_job_leaves_its_error_in_the_log(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    snakemake = Path(sys.executable).with_name("snakemake")
    if not snakemake.exists():
        snakemake = Path(shutil.which("snakemake") or "snakemake")
    (tmp_path / "job.py").write_text("from dbkmc.core.logs import log_to_file\nlog_to_file(snakemake.log[0])\n"
                                     "raise ValueError(f'bad input {snakemake.wildcards.x}')\n")
    (tmp_path / "Snakefile").write_text('rule a:\n    output: "out/{x}.txt"\n    log: "logs/{x}.log"\n'
                                        '    script: "job.py"\n')
    done = subprocess.run([str(snakemake), "--cores", "1", "out/q.txt"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    text = (tmp_path / "logs" / "q.log").read_text()
    assert "Traceback" in text and "ValueError: bad input q" in text, done.stderr[-3000:]


# --- a damaged kMC checkpoint: named, skipped, the run goes on ---------------------------


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _kmc_case():
    import numpy as np

    from dbkmc.kmc.driver import RunHooks, Schedule
    from dbkmc.kmc.engine import KMC
    from dbkmc.core.lattice import Lattice
    from kmc_models import pair_model

    lat = Lattice("bcc", 4, 3.2)
    model = pair_model(lat, n_species=3, seed=5)
    rng = np.random.default_rng(1)
    d = rng.integers(1, 4, lat.n_sites)
    d[rng.choice(lat.n_sites, 1, replace=False)] = 0
    sched = Schedule(n_jumps=600, record=[0, 150, 500, 600], snapshots=[], checkpoint_every=200)

    def engine():
        return KMC(model, d, [500.0, 2000.0], seed=9, block=128)

    def hooks():
        return RunHooks(record=lambda e: [{"jumps": e.step, "time": e.time.tolist(), "digits": e.digits.sum().item()}])

    return engine, hooks, sched


@pytest.mark.parametrize("damage", ["truncate_latest", "empty_latest", "garbage_both"])
def test_damaged_checkpoint_is_named_and_the_run_still_ends_exactly(tmp_path: Path, caplog, damage: str,
                                                                       one_thread: None) -> None:
    import logging

    import torch

    from dbkmc.kmc.driver import previous_checkpoint, simulate

    engine, hooks, sched = _kmc_case()
    ref = engine()
    rows_ref = simulate(ref, sched, hooks(), progress=False)
    ck = tmp_path / "checkpoint.pt"
    first = engine()
    with pytest.raises(KeyboardInterrupt):
        simulate(first, sched, hooks(), checkpoint=ck, fingerprint="x", progress=False, stop_after=400)
    prev = previous_checkpoint(ck)
    assert ck.is_file() and prev.is_file()  # at 400 and at 200 jumps
    damaged = [ck] if damage.endswith("latest") else [ck, prev]
    for path in damaged:
        data = path.read_bytes()
        path.write_bytes({"truncate": data[: len(data) // 2], "empty": b"",
                          "garbage": b"not a checkpoint"}[damage.split("_")[0]])
    second = engine()
    with caplog.at_level(logging.INFO, logger="dbkmc.kmc.driver"):
        rows = simulate(second, sched, hooks(), checkpoint=ck, fingerprint="x", progress=False)
    for path in damaged:
        assert f"checkpoint {path} is unreadable" in caplog.text
    if damage.endswith("latest"):
        assert f"resumed from {prev} at 200 jumps" in caplog.text
    else:
        assert "starting from the beginning" in caplog.text and "resumed" not in caplog.text
    assert torch.equal(second.digits, ref.digits) and torch.equal(second.time, ref.time)
    assert rows == rows_ref


def test_checkpoint_is_written_atomically_and_the_previous_kept(tmp_path: Path, one_thread: None) -> None:
    from dbkmc.kmc.driver import load_checkpoint, previous_checkpoint, simulate

    engine, hooks, sched = _kmc_case()
    ck = tmp_path / "checkpoint.pt"
    with pytest.raises(KeyboardInterrupt):
        simulate(engine(), sched, hooks(), checkpoint=ck, fingerprint="x", progress=False, stop_after=400)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "checkpoint.pt.prev"]  # no .tmp left
    assert load_checkpoint(ck, "x")["engine"]["step"] == 400
    assert load_checkpoint(previous_checkpoint(ck), "x")["engine"]["step"] == 200


def test_kmc_stage_rerun_after_a_truncated_checkpoint(tmp_path: Path, one_thread: None) -> None:
    """Rule kmc: kill, truncate the checkpoint, rerun: the outputs of an uninterrupted run, work folder gone."""
    import numpy as np
    import pandas as pd

    from dbkmc.stages.kmc import kmc_step

    run = validate_config({
        "potentials": {"p": {"pair_style": "eam/alloy", "pair_coeff": "* * {t} {elements}",
                             "files": {"t": "CuNi.eam.alloy"}, "elements": ["Cu", "Ni"]}},
        "datasets": {"d": {"potential": "p", "lattice": "fcc", "compositions": {"c": {"Cu": 1.0}}}},
        "kmc": {"device": "cpu", "runs": {"small": {
            "structure": {"dump": str(DUMP), "species": ["Nb", "Mo", "Ta"]},
            "rate_model": {"kind": "nnk_published", "weights": str(WEIGHTS), "species": ["Nb", "Mo", "Ta"]},
            "temperatures": [1000], "n_jumps": 300, "seed": 1, "record": {"first": 100, "per_decade": 2},
            "snapshots": {"count": 2}, "checkpoint_every": 100}}},
    })["kmc"]["runs"]["small"]

    def outputs(folder: Path) -> dict:
        folder.mkdir(exist_ok=True)
        return {"timeseries": folder / "ts.parquet", "final": folder / "final.npz",
                "snapshots": folder / "snapshots", "summary": folder / "summary.json"}

    kmc_step("small", run, "cpu", False, outputs(tmp_path / "ref"), tmp_path / "ref_work")
    with pytest.raises(KeyboardInterrupt):
        kmc_step("small", run, "cpu", False, outputs(tmp_path / "b"), tmp_path / "work", stop_after=200)
    ck = tmp_path / "work" / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:100])
    kmc_step("small", run, "cpu", False, outputs(tmp_path / "b"), tmp_path / "work")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b" / "ts.parquet"),
                                  pd.read_parquet(tmp_path / "ref" / "ts.parquet"))
    a, b = np.load(tmp_path / "b" / "final.npz"), np.load(tmp_path / "ref" / "final.npz")
    assert np.array_equal(a["digits"], b["digits"]) and np.array_equal(a["time_s"], b["time_s"])
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("key, value", [("ftol", float("inf")), ("ftol", float("nan")), ("spring", 0.0),
                                        ("max_iter", 2.0), ("n_images", 0)])
def test_neb_settings_refuse_what_cannot_converge(key: str, value: Any) -> None:
    from dbkmc.neb.cineb import NEBSettings

    with pytest.raises(ValueError, match=f"neb.{key}: need"):
        NEBSettings(**{key: value})
    assert NEBSettings().ftol == 0.01


def test_cli_self_referencing_config(capsys, tmp_path: Path) -> None:
    path = tmp_path / "selfref.yaml"
    path.write_text("run: x\npotentials: &p {a: *p}\n")
    cli_fails(capsys, ["check-config", str(path)], "config error at potentials.a: refers to itself")
