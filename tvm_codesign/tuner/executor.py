"""Where evaluations run: in this process, a local process pool, or a Ray cluster (``pip install ray``).

All three return results in the order of the points given, so the search sees the same history whatever runs it.
"""
from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

from ..hardware.space import DesignSpace
from .network import evaluate

EXECUTORS = ("local", "process", "ray")
_JOB: dict = {}


def evaluate_point(space: DesignSpace, layers: list, schedules: str, point: int) -> dict:
    return evaluate(space.config(point), layers, schedules)


def _init(space, layers, schedules):
    _JOB.update(space=space, layers=layers, schedules=schedules)


def _run(point: int) -> dict:
    return evaluate_point(_JOB["space"], _JOB["layers"], _JOB["schedules"], point)


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
            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init,
                                            initargs=self.args)
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
            return list(self.pool.map(_run, points))
        return self._ray.get([self._remote.remote(*self._refs, p) for p in points])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None
