"""The ``tvm_codesign`` logger: one INFO line per compile, visible by default.

The logger's level is INFO (unless set before this import). While the application has configured no logging
(the root logger has no handlers) its lines go to stderr as ``tvm_codesign: <message>``; otherwise they
propagate to the application's handlers like any library's records. Silence them with
``logging.getLogger("tvm_codesign").setLevel(logging.WARNING)``.
"""
from __future__ import annotations

import logging
import sys

logger = logging.getLogger("tvm_codesign")


class _Default(logging.Handler):
    """Writes to the current sys.stderr (so a captured stderr captures it) while logging is unconfigured."""

    def emit(self, record):
        if logging.getLogger().handlers:
            return  # the record propagates to the application's handlers
        try:
            sys.stderr.write(f"{record.name}: {record.getMessage()}\n")
        except Exception:
            self.handleError(record)


if logger.level == logging.NOTSET:
    logger.setLevel(logging.INFO)
if not any(isinstance(h, _Default) for h in logger.handlers):
    logger.addHandler(_Default())


def info(msg: str) -> None:
    logger.info(msg)
