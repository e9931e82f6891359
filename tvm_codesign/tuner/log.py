"""The run log ``autotune_logs/<run>.jsonl``: a header, then one JSON record per evaluation, appended as it
completes (one write, flushed and fsynced), so ``kill -9`` loses at most the record in flight. Reading skips
a truncated or corrupt line with a warning; ``--resume`` reuses every record whose run settings match. The
header goes out with the first record: a run that fails before evaluating anything leaves no log."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from ..errors import CodesignError


class LogError(CodesignError, ValueError):
    """A log that cannot be used for this run (exists without --resume, or was written by other settings)."""


def read(path: Path) -> tuple[dict | None, list[dict]]:
    """(header, records) of a log; unreadable lines are skipped with a warning naming the line."""
    header, records = None, []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or "type" not in rec:
                    raise ValueError("not a log record")
            except ValueError as e:
                warnings.warn(f"{path}:{n}: skipping a corrupt or truncated record ({str(e)[:60]})", stacklevel=2)
                continue
            if rec["type"] == "header":
                header = header or rec
            else:
                records.append(rec)
    return header, records


def exists_error(path: Path) -> LogError:
    return LogError(f"{path} already exists: pass resume=True (--resume) to continue that run, "
                    "or choose another run name (--run)")


class RunLog:
    """Append-only log of one run. ``records`` holds what was already there (on resume). The header is
    written with the first record, so a run that fails before its first evaluation leaves no log behind;
    a log holding only a header (an older run that failed so) is started afresh, never a reason to refuse."""

    def __init__(self, path: Path, header: dict, resume: bool):
        self.path = Path(path)
        self.records: list[dict] = []
        self._header = json.loads(json.dumps(header, default=float))  # compare as it reads back (tuples -> lists)
        self._fresh = True  # the header is still to be written (replacing any header-only file)
        if self.path.exists() and self.path.stat().st_size:
            old, records = read(self.path)
            if old is None:
                raise LogError(f"{self.path} has no readable header: not a tvm_codesign.tune log")
            if not records:
                return  # nothing was evaluated: nothing to keep or to refuse over
            if not resume:
                raise exists_error(self.path)
            diff = [k for k in self._header if k not in ("budget", "time", "version") and old.get(k) != self._header[k]]
            if diff:
                raise LogError(f"{self.path} was written with other settings ({', '.join(diff)}); resume needs "
                               "the same model, space, objectives, constraints, strategy and seed")
            self.records, self._fresh = records, False
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                tail_ok = f.read(1) == b"\n"
            if not tail_ok:  # a record cut mid-write: end its line so new records start clean
                with open(self.path, "ab") as f:
                    f.write(b"\n")

    def append(self, rec: dict) -> None:
        line = (json.dumps(rec, default=float) + "\n").encode()
        if self._fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = (json.dumps({"type": "header", **self._header}, default=float) + "\n").encode() + line
            mode, self._fresh = "wb", False
        else:
            mode = "ab"
        with open(self.path, mode) as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
