"""``python -m tvm_codesign.tasks digits [--target vta_default] [--batch 1] [--limit N]``: train (or load) the
task, compile it, and print one JSON line: fp32 and int8-through-the-simulator top-1 on the held-out split
(fractions), the drop in points, and the seconds spent training, compiling and simulating."""
from __future__ import annotations

import argparse
import json
import logging
import time


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return n


def main(argv=None) -> dict:
    from ..errors import ConfigError
    from ..hardware.config import AcceleratorConfig
    from . import TASKS, load
    p = argparse.ArgumentParser(prog="python -m tvm_codesign.tasks", description=__doc__)
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("--target", default="vta_default", help="preset name or config JSON (default vta_default)")
    p.add_argument("--batch", type=_positive, default=1, help="compile for this batch (default 1)")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N held-out samples")
    p.add_argument("--retrain", action="store_true", help="ignore cached weights")
    a = p.parse_args(argv)
    try:  # before training or loading the task
        AcceleratorConfig.load(a.target)
    except (ConfigError, OSError, ValueError) as e:
        p.error(f"--target: {e}")
    logging.getLogger("tvm_codesign").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    task = load(a.task, retrain=a.retrain)
    t1 = time.perf_counter()
    cm = task.compile(a.target, batch=a.batch, progress=False)
    t2 = time.perf_counter()
    int8 = task.accuracy(cm, limit=a.limit)
    t3 = time.perf_counter()
    fp32 = task.fp32_accuracy(limit=a.limit)
    n = len(task.heldout[1][:a.limit])
    out = {"task": a.task, "target": cm.config.name, "batch": a.batch, "heldout": n,
           "fp32_accuracy": round(fp32, 4), "int8_accuracy": round(int8, 4),
           "accuracy_drop_points": round(100 * (fp32 - int8), 2), "offloaded_mac_fraction": cm.offloaded_mac_fraction,
           "trained": task.meta["trained"], "train_s": task.meta["train_s"], "load_s": round(t1 - t0, 2),
           "compile_s": round(t2 - t1, 2), "simulate_s": round(t3 - t2, 2)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
