"""Helpers shared by the benchmark scripts: the dated sections of ``RESULTS.md`` and the machine line.

The scripts are run as ``python benchmarks/X.py``, so this module is imported as ``results_md``.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path


def update_results_md(path: Path, name: str, date: str, section: str) -> None:
    """Put ``section`` between the markers ``<!-- name date -->`` and ``<!-- /name date -->``.

    An existing block with the same markers is replaced; otherwise the block is appended after a blank
    line (the file is created with a ``# Benchmark results`` header if absent).
    """
    begin, end = f"<!-- {name} {date} -->", f"<!-- /{name} {date} -->"
    block = f"{begin}\n{section}{end}\n"
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_dated_section(path: Path, name: str, title: str, text: str) -> None:
    """Today's section ``## title, date`` with the command line of ``benchmarks/<name>.py`` above ``text``."""
    date = datetime.date.today().isoformat()
    section = (f"## {title}, {date}\n\n"
               f"- Command: `python benchmarks/{name}.py --results-md {path}`\n\n{text}\n")
    update_results_md(path, name, date, section)


def cpu_model() -> str:
    """The CPU model name of /proc/cpuinfo, else ``platform.processor()`` or ``platform.machine()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_machine_description(device: str) -> str:
    """CPU model and count, torch version and threads, and the GPU name for a cuda ``device``."""
    import torch  # only the torch benchmarks call this

    text = f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if torch.device(device).type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(torch.device(device))}"
    return text
