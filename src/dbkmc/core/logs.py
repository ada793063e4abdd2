"""Logging set-up for workflow scripts: everything goes to the rule's log file.

Every script calls :func:`log_to_file` first; from then on an uncaught exception is
written, with its traceback, to the rule's log as well as to the console, so a failed
job's log says why it failed.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import TracebackType

log = logging.getLogger("dbkmc")


def log_to_file(path: str | Path | None, level: int = logging.INFO) -> None:
    handlers: list[logging.Handler] = [logging.FileHandler(path, mode="w")] if path else [logging.StreamHandler()]
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if path:
        _log_uncaught_errors()


def _log_uncaught_errors() -> None:
    """Chain ``sys.excepthook``: log the error with its traceback, then let the previous hook print it."""
    previous = getattr(sys.excepthook, "dbkmc_previous", sys.excepthook)

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            log.critical("the job failed: %s: %s", kind.__name__, value, exc_info=(kind, value, tb))
        else:
            log.error("the job was interrupted: %s", value)
        logging.shutdown()  # flush the log file before the process ends
        previous(kind, value, tb)

    hook.dbkmc_previous = previous  # type: ignore[attr-defined]
    sys.excepthook = hook
