"""Small I/O helpers shared by every stage: JSON files and the torch device of a config key."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(obj, path: str | Path) -> None:
    """Write ``obj`` as sorted, indented JSON with a final newline (stable diffs, stable hashes)."""
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def resolve_device(name: str, key: str = "device") -> str:
    """The torch device a config's ``device`` value asks for.

    ``auto`` picks CUDA when torch sees a GPU, else the CPU. Asking for ``cuda...`` where
    there is none is an error that names the config key ``key`` (e.g. ``kmc.device``).
    """
    import torch  # here, not at module level: validating a config must not pay for torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"{key}: {name!r} asked for, but torch sees no CUDA device")
    return name
