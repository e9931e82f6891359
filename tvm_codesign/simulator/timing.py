"""Cycle model: load, compute and store modules running concurrently, synchronised only by tokens.

- Fetch dispatches instructions in program order, one per cycle, into a ``queue_depth``-deep command
  queue per module; it stalls while the target queue is full (an entry leaves when its module starts it).
- A module starts its next instruction when it is free, the instruction is fetched, and each popped
  token has been pushed. Tokens are pushed when an instruction ends. Queues: load->compute (RAW),
  compute->load (WAR), compute->store (RAW), store->compute (WAR), unbounded.
- Every instruction costs ``issue_cycles``, then its execute cycles (``activity.insn_cycles``). A DMA
  waits for the single DRAM port (shared by all modules, granted in request order), holds it for its
  AXI requests' cycles (``dma.port_cycles``: whole beats, a request overhead per burst, bounded requests in
  flight), and completes one DRAM latency later.
- Pending work is processed in order of start time, so port grants are chronological and the
  result is deterministic. No module able to start, with work left, is a deadlock: DeadlockError.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DeadlockError
from ..hardware.isa import Module, Opcode
from .activity import insn_cycles
from .program import Program

# token queues: 0 load->compute, 1 compute->load, 2 compute->store, 3 store->compute
_POP_PREV = (-1, 0, 2)
_POP_NEXT = (1, 3, -1)
_PUSH_PREV = (-1, 1, 3)
_PUSH_NEXT = (0, 2, -1)
_QNAME = ("load->compute", "compute->load", "compute->store", "store->compute")
_QPRODUCER = (Module.LOAD, Module.COMPUTE, Module.COMPUTE, Module.STORE)


@dataclass
class Timeline:
    """Per-instruction start/end cycles and totals of one timing run."""
    start: np.ndarray
    end: np.ndarray
    fetch: np.ndarray
    module: np.ndarray
    cycles: int
    busy: dict
    dram_port_busy: int


def simulate(program: Program) -> Timeline:
    cfg, t = program.config, program.table
    n = len(program)
    exe, port, lat = (a.tolist() for a in insn_cycles(cfg, t))
    mod = t["module"].tolist()
    is_dma = ((t["opcode"] == Opcode.LOAD) | (t["opcode"] == Opcode.STORE)).tolist()
    mods = np.asarray(t["module"])
    queues = [np.flatnonzero(mods == m).tolist() for m in range(3)]
    posin = np.zeros(n, np.int64)
    for q in queues:
        posin[q] = np.arange(len(q))
    posin = posin.tolist()
    pp = np.where(t["pop_prev"] == 1, np.take(_POP_PREV, mods), -1).tolist() if n else []
    pn = np.where(t["pop_next"] == 1, np.take(_POP_NEXT, mods), -1).tolist() if n else []
    up = np.where(t["push_prev"] == 1, np.take(_PUSH_PREV, mods), -1).tolist() if n else []
    un = np.where(t["push_next"] == 1, np.take(_PUSH_NEXT, mods), -1).tolist() if n else []
    issue, depth = cfg.issue_cycles, cfg.queue_depth

    start, end, fetch = [-1] * n, [0] * n, [0] * n
    pushes = [[], [], [], []]
    popped = [0, 0, 0, 0]
    ptr, free, qlen = [0, 0, 0], [0, 0, 0], [len(q) for q in queues]
    nfetched, last_fetch, port_free, port_busy, done = 0, -1, 0, 0, 0
    while done < n:
        while nfetched < n:  # fetch as far as the command queues allow
            k = nfetched
            f = last_fetch + 1
            p = posin[k]
            if p >= depth:
                s = start[queues[mod[k]][p - depth]]
                if s < 0:
                    break
                if s > f:
                    f = s
            fetch[k] = last_fetch = f
            nfetched += 1
        best, best_t = -1, 0
        for m in (0, 1, 2):
            if ptr[m] == qlen[m]:
                continue
            k = queues[m][ptr[m]]
            if k >= nfetched:
                continue
            tt = free[m] if free[m] > fetch[k] else fetch[k]
            q = pp[k]
            if q >= 0:
                if popped[q] == len(pushes[q]):
                    continue
                if pushes[q][popped[q]] > tt:
                    tt = pushes[q][popped[q]]
            q = pn[k]
            if q >= 0:
                if popped[q] == len(pushes[q]):
                    continue
                if pushes[q][popped[q]] > tt:
                    tt = pushes[q][popped[q]]
            if best < 0 or tt < best_t:
                best, best_t = m, tt
        if best < 0:
            _deadlock(program, queues, ptr, nfetched, pp, pn, up, un, pushes, popped)
        k = queues[best][ptr[best]]
        ptr[best] += 1
        if pp[k] >= 0:
            popped[pp[k]] += 1
        if pn[k] >= 0:
            popped[pn[k]] += 1
        t0 = best_t + issue
        if is_dma[k]:
            g = t0 if t0 > port_free else port_free
            port_free = g + port[k]
            port_busy += port[k]
            e = g + port[k] + lat[k] + exe[k]
        else:
            e = t0 + exe[k]
        start[k], end[k] = best_t, e
        free[best] = e
        if up[k] >= 0:
            pushes[up[k]].append(e)
        if un[k] >= 0:
            pushes[un[k]].append(e)
        done += 1
    s, e = np.array(start, np.int64), np.array(end, np.int64)
    busy = {Module(m).name.lower(): int((e - s)[mods == m].sum()) for m in range(3)}
    return Timeline(s, e, np.array(fetch, np.int64), mods, int(e.max()) if n else 0, busy, port_busy)


def _deadlock(program, queues, ptr, nfetched, pp, pn, up, un, pushes, popped):
    """Explain why no module can start and raise DeadlockError naming the instruction and flag."""
    reasons = []
    for m in range(3):
        if ptr[m] == len(queues[m]):
            continue
        k = queues[m][ptr[m]]
        name = Module(m).name.lower()
        if k >= nfetched:
            reasons.append((1, k, "queue_depth", f"{name} module's next instruction {k} is not fetched: instruction "
                            f"{nfetched} waits for a free slot in its module's {program.config.queue_depth}-deep "
                            f"command queue"))
            continue
        for flag, q in (("pop_prev", pp[k]), ("pop_next", pn[k])):
            if q < 0 or popped[q] < len(pushes[q]):
                continue
            prod = _QPRODUCER[q]
            rest = queues[prod][ptr[prod]:]
            pending = sum(1 for j in rest if q in (up[j], un[j]))
            why = (f"instruction {k} ({Opcode(program.table['opcode'][k]).name}, {name} module) pops a "
                   f"{_QNAME[q]} token ({flag})")
            if pending == 0:
                why += f" that is never pushed: no remaining {prod.name.lower()} instruction pushes one"
            else:
                why += f" while the {prod.name.lower()} module, which would push it, is itself blocked"
            reasons.append((0 if pending == 0 else 1, k, flag, why))
            break
    reasons.sort()  # root causes (a pop nobody will push) first, then by instruction index
    _, k, field, _ = reasons[0]
    raise DeadlockError(k, field, "deadlock: " + "; ".join(r for *_, r in reasons))
