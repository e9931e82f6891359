"""The ``tvm_codesign`` logger: one line per compile, visible by default.

While the application has not configured logging (the root logger has no handlers), ``info`` lines go to
stderr as ``tvm_codesign: <message>``. Once it has, they propagate like any library's records and the
application's levels and handlers decide; ``logging.getLogger("tvm_codesign").setLevel(logging.WARNING)``
silences them either way.
"""
from __future__ import annotations

import logging
import sys

logger = logging.getLogger("tvm_codesign")


class _Default(logging.Handler):
    """Writes to the current sys.stderr while logging is unconfigured (so a captured stderr captures it)."""

    def emit(self, record):
        if logging.getLogger().handlers:
            return  # configured: the record propagates to the application's handlers
        try:
            sys.stderr.write(f"{record.name}: {record.getMessage()}\n")
        except Exception:
            self.handleError(record)


if not any(isinstance(h, _Default) for h in logger.handlers):
    logger.addHandler(_Default())


def _unconfigured() -> bool:
    return not logging.getLogger().handlers and logger.level == logging.NOTSET


def info(msg: str) -> None:
    """Log ``msg`` at INFO: shown by default, and by a configured application that enables INFO."""
    if logger.isEnabledFor(logging.INFO) or _unconfigured():
        logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, msg, None, None))
