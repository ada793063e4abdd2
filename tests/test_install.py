"""A non-editable install works away from the checkout.

The package is built from a copy of the project's sources and installed (``pip install
--no-deps --target``) into a temporary folder; that copy, first on ``PYTHONPATH``, then
validates ``config/config.yaml`` from a folder that is not the checkout. Nothing of the
checkout's layout (``src/``, ``workflow/schemas/``) may be needed: the schema is package data.
A config's relative paths (``data/...``) are relative to the working directory, as
Snakemake's are, so the run folder holds the project's ``config/`` and ``data/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "src")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder a non-editable install of dbkmc went into."""
    tmp = tmp_path_factory.mktemp("install")
    project = tmp / "project"
    project.mkdir()
    for name in SOURCES:  # a copy: building in the checkout would leave build/ and egg-info there
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, project / name)
    site = tmp / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(site), str(project)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return site


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}  # before the venv's editable finder for src/
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_every_module_and_the_schema_are_installed(installed):
    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts}

    assert files(installed / "dbkmc") == files(REPO / "src" / "dbkmc")
    assert not (installed / "dbkmc" / "core" / "config.schema.yaml").is_symlink()


def test_check_config_from_another_folder(installed, tmp_path):
    work = tmp_path / "work"  # a project folder: the run's config and data, no code
    work.mkdir()
    for name in ("config", "data"):
        (work / name).symlink_to(REPO / name)
    proc = run_installed(installed, work, "-c", "import dbkmc; print(dbkmc.__file__)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Path(proc.stdout.strip()).resolve().is_relative_to(installed.resolve()), proc.stdout
    proc = run_installed(installed, work, "-m", "dbkmc.cli", "check-config", "config/config.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "config/config.yaml: valid"


def test_relative_paths_follow_the_working_directory(installed, tmp_path):
    """The same config given by its absolute path from a folder without data/: the data paths
    are looked up there, as a Snakemake run from that folder would, and reported missing."""
    proc = run_installed(installed, tmp_path, "-m", "dbkmc.cli", "check-config", str(REPO / "config" / "config.yaml"))
    assert proc.returncode == 2
    assert "datasets.reference.source: source directory 'data/reference_cuni' not found" in proc.stderr
    proc = run_installed(installed, tmp_path, "-m", "dbkmc.cli", "check-config",
                         str(REPO / "config" / "reference_cuni.yaml"))  # no relative paths in it
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("reference_cuni.yaml: valid")
