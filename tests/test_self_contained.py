"""The repository is self-contained: no tracked file names a file outside it by an absolute path."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# An absolute path starts a token: at the line start, after a space, quote, '=', ':', '(', ',' or '['.
_ABSOLUTE = re.compile(r"""(?:^|[\s"'=:(,\[])(/(?:work|home|root|tmp|Users|mnt|scratch|data|opt|srv)/[^\s"')\],]+)""")
# Paths that are not files of this machine: system locations every Linux has, or documented examples.
_ALLOWED = ("/tmp/", "/opt/conda", "/usr/", "/etc/", "/dev/", "/proc/", "/bin/", "/sbin/", "/var/")


def absolute_paths(text: str) -> list[str]:
    """Absolute paths in ``text`` that would name a file of one particular machine."""
    found = []
    for match in _ABSOLUTE.finditer(text):
        path = match.group(1)
        if not path.startswith(_ALLOWED):
            found.append(path)
    return found


def test_the_detector_finds_a_machine_path():
    # built from pieces, so this file does not hold the paths it looks for
    shared, home = "/" + "work/shared/nnk_nbmota/weights.npy", "/" + "home/me/data"
    assert absolute_paths(f"weights: {shared}") == [shared]
    assert absolute_paths(f'SHARED = Path("{home}")') == [home]
    assert absolute_paths("weights: data/nnk_nbmota/weights.npy") == []


def test_no_tracked_file_names_an_absolute_path_outside_the_repository():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    offenders = []
    for name in filter(None, files.decode().split("\0")):
        path = REPO / name
        if not path.is_file() or path.suffix in {".npy", ".parquet", ".png", ".pt", ".npz"}:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{name}: {p}" for p in absolute_paths(text)]
    assert not offenders, "absolute paths of one machine in tracked files:\n" + "\n".join(offenders)
