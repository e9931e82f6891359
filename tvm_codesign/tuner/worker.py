"""A tuner worker process (started by ``executor._Workers``): reads the job (space, layers, schedule mode),
then points, from stdin; writes ``("ok", result)`` or ``("error", (exception, traceback))`` for each to stdout.

It ignores Ctrl-C (the parent owns the interrupt) and exits as soon as its parent is gone: stdin reaches EOF
when idle, and a watcher thread checks the parent's pid during an evaluation.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback


def _watch_parent(ppid: int, period: float = 0.2) -> None:
    def run():
        while True:
            if os.getppid() != ppid:  # reparented: the parent died
                os._exit(1)
            time.sleep(period)
    threading.Thread(target=run, name="parent-watch", daemon=True).start()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(int(sys.argv[1]))
    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the result stream
    from .executor import evaluate_point, recv, send
    try:
        job = recv(inp)
        while True:
            point = recv(inp)
            try:
                res = ("ok", evaluate_point(*job, point))
            except Exception as e:  # noqa: BLE001 (handed to the parent, which raises it)
                tb = traceback.format_exc()
                try:
                    pickle.dumps(e)
                except Exception:  # noqa: BLE001
                    e = RuntimeError(tb.strip().splitlines()[-1])
                res = ("error", (e, tb))
            send(out, res)
    except (EOFError, BrokenPipeError):
        pass
