"""DRAM-port cycles of DMA instructions: rows become AXI bursts of whole beats, each request paying an overhead,
with a bounded number of requests in flight.

A LOAD/STORE moves ``y_size`` rows of ``x_size`` elements; row ``r`` starts at byte
``(dram_base + r * x_stride) * elem_bytes``. On a bus of ``w = dram_bandwidth`` bytes per beat (one beat per
cycle) a row of ``B`` bytes at byte address ``A`` covers beats ``floor(A/w) .. ceil((A+B)/w) - 1``: a partial
beat costs a whole beat. The beats are cut into bursts of at most ``dma_burst_beats`` that never cross a
burst-aligned boundary (a multiple of ``dma_burst_beats`` beats). Each burst is one request: it holds the port
for ``dma_request_cycles`` plus its beats. A request is in flight from its issue until its data is complete,
``dram_latency`` after its port cycles; at most ``dma_outstanding`` are in flight, so request ``i`` issues no
earlier than request ``i - dma_outstanding`` completes. The instruction's port time is the last request's end;
it completes one ``dram_latency`` later (simulator/timing.py).

Sources for the values of the presets:
- Burst length 16 beats, aligned bursts: VTA's Chisel ``GenVMECmd`` (apache/tvm-vta,
  hardware/chisel/src/main/scala/core/TensorLoadNarrowVME.scala) and ``TensorDataCtrl`` (core/TensorUtil.scala)
  cut every row at multiples of ``2^lenBits`` beats ("Align first transfer to maxTrBytes boundary"); the DE10
  shell sets ``lenBits = 4`` ("limit to 16 beats", shell/Configs.scala), the longest AXI3 burst, which is
  what the Pynq's Zynq-7000 HP ports accept (AXI3: ARLEN 4 bits, ARM IHI 0022 AXI spec §A3.4.1; AXI4 allows
  256, hence the field's limit). The 64-bit bus (8 B beats) is the shells' ``dataBits = 64``. Power-of-two
  bursts of at most 4 KiB aligned to their size never cross a 4 KiB boundary, as AXI requires (§A3.4.1);
  the config rejects longer bursts.
- 16 outstanding requests: VTA's VME (shell/VME.scala) tracks reads in a ``RequestQueueDepth = 16`` tag table.
- 1 request cycle: in VTA's cycle-accurate simulation (tsim) the memory model ``VTAMemDPIToAXI``
  (dpi/VTAMemDPI.scala) serves one burst at a time and returns to its idle state for a cycle between bursts;
  its 16-cycle read delay (``dpiDelay``) is ``dram_latency``. VME/``GenVMECmd`` issue at most one command per
  cycle. (Intel's VTA++ estimate charges 4 cycles per 16 beats; tsim's write path idles 3 cycles per burst:
  one ``dma_request_cycles`` serves both directions here.)
"""
from __future__ import annotations

import numpy as np

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import Opcode


def elem_bytes_by_mem(cfg: AcceleratorConfig) -> np.ndarray:
    """Element bytes indexed by Mem: UOP, WGT, INP, ACC, OUT."""
    return np.array([cfg.uop_bytes, cfg.wgt_elem_bytes, cfg.inp_elem_bytes, cfg.acc_elem_bytes,
                     cfg.out_elem_bytes], dtype=np.int64)


def row_beats(cfg: AcceleratorConfig, addr, nbytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``nbytes`` at byte addresses ``addr`` (arrays): (first beat, last beat, bursts) per row."""
    w = cfg.dram_bandwidth
    a, b = np.asarray(addr, np.int64), np.asarray(nbytes, np.int64)
    first = np.floor(a / w).astype(np.int64)
    last = np.ceil((a + b) / w).astype(np.int64) - 1
    bb = cfg.dma_burst_beats
    return first, last, last // bb - first // bb + 1


def port_cycles(cfg: AcceleratorConfig, t: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per instruction: (DRAM-port cycles, AXI requests); 0 for non-DMA instructions."""
    op = t["opcode"]
    n = len(op)
    port, requests = np.zeros(n, np.int64), np.zeros(n, np.int64)
    dma = np.flatnonzero((op == Opcode.LOAD) | (op == Opcode.STORE))
    if not dma.size:
        return port, requests
    e = elem_bytes_by_mem(cfg)[np.clip(t["mem"][dma], 0, 4)]
    y = t["y_size"][dma]
    row_of = np.repeat(np.arange(dma.size), y)                    # DMA (position in dma) of every row
    r = np.arange(row_of.size) - np.repeat(np.cumsum(y) - y, y)   # row index within its DMA
    addr = (t["dram_base"][dma][row_of] + r * t["x_stride"][dma][row_of]) * e[row_of]
    first, last, bursts = row_beats(cfg, addr, (t["x_size"][dma] * e)[row_of])
    q = cfg.dma_request_cycles
    row_port = last - first + 1 + q * bursts
    port[dma] = np.bincount(row_of, row_port, dma.size).astype(np.int64)
    requests[dma] = np.bincount(row_of, bursts, dma.size).astype(np.int64)
    # in-flight limit: N requests of at least t cycles each cover N*t >= t + latency unless (N-1)*t < latency
    N, lat = cfg.dma_outstanding, cfg.dram_latency
    bb = cfg.dma_burst_beats
    one = bursts == 1
    head, tail = bb - first % bb, last % bb + 1                 # beats of a row's first and last burst
    short = np.where(one, last - first + 1, np.minimum(head, tail))
    long = np.where(one, last - first + 1, np.where(bursts > 2, bb, np.maximum(head, tail)))
    t_min, t_max = np.full(dma.size, np.iinfo(np.int64).max), np.zeros(dma.size, np.int64)
    np.minimum.at(t_min, row_of, short + q)
    np.maximum.at(t_max, row_of, long + q)
    R = requests[dma]
    stall = (R > N) & ((N - 1) * t_min < lat)
    # equal requests: p_{R-1} = (R-1) t + floor((R-1)/N) (lat - (N-1) t); otherwise the recurrence, request by request
    even = stall & (t_min == t_max)
    port[dma[even]] += (R[even] - 1) // N * (lat - (N - 1) * t_min[even])
    starts = np.concatenate([[0], np.cumsum(y)])
    for j in np.flatnonzero(stall & ~even).tolist():
        ts = _request_cycles(first[starts[j]:starts[j + 1]], last[starts[j]:starts[j + 1]], bb, q)
        port[dma[j]] = _in_flight_limited(ts, N, lat)
    return port, requests


def _request_cycles(first: np.ndarray, last: np.ndarray, bb: int, q: int) -> list[int]:
    """Port cycles of every request of one DMA, in order: its rows cut at burst-aligned beat boundaries."""
    out = []
    for f, l in zip(first.tolist(), last.tolist()):
        while f <= l:
            end = min(l, (f // bb + 1) * bb - 1)
            out.append(q + end - f + 1)
            f = end + 1
    return out


def _in_flight_limited(ts: list[int], n: int, lat: int) -> int:
    """End of the last request's port cycles when request i issues after request i-1's port cycles and after
    request i-n completes (its port cycles + ``lat``): p_i = max(p_{i-1} + t_{i-1}, p_{i-n} + t_{i-n} + lat)."""
    p = [0] * len(ts)
    for i in range(1, len(ts)):
        s = p[i - 1] + ts[i - 1]
        if i >= n:
            s = max(s, p[i - n] + ts[i - n] + lat)
        p[i] = s
    return p[-1] + ts[-1]
