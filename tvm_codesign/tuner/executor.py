"""Where evaluations run: in this process, local worker processes, or a Ray cluster (``pip install ray``).

All three return results in the order of the points given, so the search sees the same history whatever runs it.

``process`` starts ``python -m tvm_codesign.tuner.worker`` processes (``worker.py``) and talks to them over
pipes. Unlike a multiprocessing spawn pool they never re-run the caller's ``__main__`` (so a script without an
``if __name__ == "__main__":`` guard works), they sit in their own session (a terminal's Ctrl-C reaches only
the parent, which stops them), and they exit as soon as the parent dies, even by ``kill -9``.
"""
from __future__ import annotations

import os
import pickle
import selectors
import struct
import subprocess
import sys
from pathlib import Path

from ..hardware.space import DesignSpace
from .network import evaluate

EXECUTORS = ("local", "process", "ray")
_HEAD = struct.Struct("<Q")
_PKG_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding tvm_codesign/


def evaluate_point(space: DesignSpace, layers: list, schedules: str, point: int) -> dict:
    return evaluate(space.config(point), layers, schedules)


def send(f, obj) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_HEAD.pack(len(blob)) + blob)
    f.flush()


def recv(f):
    """The next object on ``f``; EOFError when the other side is gone."""
    head = f.read(_HEAD.size)
    if len(head) < _HEAD.size:
        raise EOFError
    n = _HEAD.unpack(head)[0]
    blob = f.read(n)
    if len(blob) < n:
        raise EOFError
    return pickle.loads(blob)


class WorkerError(RuntimeError):
    """A tuner worker process died."""


class _Workers:
    def __init__(self, n: int, job: tuple):
        code = f"import sys; sys.path.insert(0, {_PKG_ROOT!r}); from tvm_codesign.tuner.worker import main; main()"
        self.procs = []
        try:
            for _ in range(n):
                p = subprocess.Popen([sys.executable, "-c", code, str(os.getpid())], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, start_new_session=True)
                self.procs.append(p)
                send(p.stdin, job)
        except BaseException:
            self.close(kill=True)
            raise

    def map(self, points: list[int]) -> list[dict]:
        out: list = [None] * len(points)
        todo = list(enumerate(points))[::-1]
        busy: dict = {}
        sel = selectors.DefaultSelector()
        try:
            for p in self.procs:
                if todo:
                    busy[p] = todo.pop()
                    send(p.stdin, busy[p][1])
                    sel.register(p.stdout, selectors.EVENT_READ, p)
            while busy:
                for key, _ in sel.select():
                    p = key.data
                    try:
                        status, value = recv(p.stdout)
                    except EOFError:
                        raise WorkerError(f"tuner worker {p.pid} exited (code {p.wait()}) while evaluating point "
                                          f"{busy[p][1]}") from None
                    if status == "error":
                        exc, tb = value
                        exc.add_note(f"raised in tuner worker {p.pid} evaluating point {busy[p][1]}:\n{tb}")
                        raise exc
                    out[busy.pop(p)[0]] = value
                    if todo:
                        busy[p] = todo.pop()
                        send(p.stdin, busy[p][1])
                    else:
                        sel.unregister(p.stdout)
        finally:
            sel.close()
        return out

    def close(self, kill: bool = False) -> None:
        """Stop the workers: end their input (they exit when idle), or kill them (``kill``: interrupted)."""
        for p in self.procs:
            try:
                if kill:
                    p.kill()
                else:
                    p.stdin.close()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=None if kill else 10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for f in (p.stdin, p.stdout):
                try:
                    f.close()
                except OSError:
                    pass
        self.procs = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


class Executor:
    def __init__(self, kind: str, space: DesignSpace, layers: list, schedules: str, workers: int = 2,
                 ray_address: str | None = None):
        if kind not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {kind!r}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.kind, self.args = kind, (space, layers, schedules)
        self.pool = None
        if kind == "process" and workers > 1:
            self.pool = _Workers(workers, self.args)
        elif kind == "process":
            self.kind = "local"
        elif kind == "ray":
            try:
                import ray
            except ImportError:
                raise ValueError("executor 'ray' needs Ray: pip install 'tvm-codesign[ray]'") from None
            if not ray.is_initialized():
                ray.init(address=ray_address, num_cpus=None if ray_address else workers, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            self._ray = ray
            self._remote = ray.remote(evaluate_point)
            self._refs = [ray.put(a) for a in self.args]

    def map(self, points: list[int]) -> list[dict]:
        if not points:
            return []
        if self.kind == "local":
            return [evaluate_point(*self.args, p) for p in points]
        if self.kind == "process":
            return self.pool.map(points)
        return self._ray.get([self._remote.remote(*self._refs, p) for p in points])

    def close(self, kill: bool = False) -> None:
        if self.pool is not None:
            self.pool.close(kill)
            self.pool = None
