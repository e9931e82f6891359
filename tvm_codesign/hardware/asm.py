"""Readable assembly: ``disassemble(insns)`` and its inverse ``assemble(text)``.

One instruction per line, optionally prefixed ``N:`` and followed by ``# comment``::

    LOAD INP sram=0 dram=64 y=14 x=14 stride=56 pad=1,1,1,1 pop_next
    GEMM uop=0:9 iter=14x14 dst=14,1 src=16,1 wgt=0,0 reset push_next
    ALU SHR imm=8 uop=0:1 iter=1x196 dst=0,1 src=0,1
    STORE OUT sram=0 dram=0 y=1 x=196 stride=196 pop_prev
    FINISH
"""
from __future__ import annotations

from ..errors import ProgramError
from .isa import FLAG_NAMES, Alu, AluOp, Finish, Gemm, Load, Mem, Store


def format_insn(x) -> str:
    flags = " ".join(f for f in FLAG_NAMES if getattr(x, f))
    if isinstance(x, (Load, Store)):
        s = (f"{'LOAD' if isinstance(x, Load) else 'STORE'} {x.mem.name} sram={x.sram_base} dram={x.dram_base} "
             f"y={x.y_size} x={x.x_size} stride={x.x_stride}")
        if x.y_pad0 or x.y_pad1 or x.x_pad0 or x.x_pad1:
            s += f" pad={x.y_pad0},{x.y_pad1},{x.x_pad0},{x.x_pad1}"
    elif isinstance(x, (Gemm, Alu)):
        head = "GEMM" if isinstance(x, Gemm) else f"ALU {x.op.name}" + (f" imm={x.imm}" if x.use_imm else "")
        s = (f"{head} uop={x.uop_bgn}:{x.uop_end} iter={x.iter_out}x{x.iter_in} dst={x.dst_out},{x.dst_in} "
             f"src={x.src_out},{x.src_in}")
        if isinstance(x, Gemm):
            s += f" wgt={x.wgt_out},{x.wgt_in}" + (" reset" if x.reset else "")
        elif x.chain:  # runs in the previous ALU instruction's pass (simulator/chains.py)
            s += " chain"
    else:
        s = "FINISH"
    return f"{s} {flags}".rstrip()


def disassemble(insns) -> str:
    insns = list(insns)
    w = len(str(max(len(insns) - 1, 0)))
    return "\n".join(f"{i:>{w}}: {format_insn(x)}" for i, x in enumerate(insns))


def _pair(v: str, sep: str) -> tuple[int, int]:
    a, b = v.split(sep)
    return int(a), int(b)


def parse_insn(line: str, index: int | None = None):
    toks = line.split("#", 1)[0].split()
    if toks and toks[0].endswith(":"):
        toks = toks[1:]
    if not toks:
        return None
    head, rest = toks[0].upper(), toks[1:]
    kw = {}
    try:
        if head in ("LOAD", "STORE"):
            kw["mem"] = Mem[rest.pop(0).upper()]
        elif head == "ALU":
            kw["op"] = AluOp[rest.pop(0).upper()]
        elif head not in ("GEMM", "FINISH"):
            raise ProgramError(index, "opcode", f"unknown mnemonic {toks[0]!r}")
        for t in rest:
            k, _, v = t.partition("=")
            if not _:
                kw[k] = True  # dependency flags and reset
            elif k in ("sram", "dram", "y", "x", "stride", "imm"):
                kw[{"sram": "sram_base", "dram": "dram_base", "y": "y_size", "x": "x_size",
                    "stride": "x_stride", "imm": "imm"}[k]] = int(v)
                if k == "imm":
                    kw["use_imm"] = True
            elif k == "pad":
                kw["y_pad0"], kw["y_pad1"], kw["x_pad0"], kw["x_pad1"] = (int(p) for p in v.split(","))
            elif k == "uop":
                kw["uop_bgn"], kw["uop_end"] = _pair(v, ":")
            elif k == "iter":
                kw["iter_out"], kw["iter_in"] = _pair(v, "x")
            elif k in ("dst", "src", "wgt"):
                kw[f"{k}_out"], kw[f"{k}_in"] = _pair(v, ",")
            else:
                raise ProgramError(index, k, f"unknown operand {t!r}")
        cls = {"LOAD": Load, "STORE": Store, "GEMM": Gemm, "ALU": Alu, "FINISH": Finish}[head]
        return cls(**kw)
    except (KeyError, ValueError, TypeError, IndexError) as e:
        if isinstance(e, ProgramError):
            raise
        raise ProgramError(index, "syntax", f"cannot parse {line.strip()!r}: {e}") from None


def assemble(text: str) -> list:
    out = []
    for n, line in enumerate(text.splitlines()):
        x = parse_insn(line, n)
        if x is not None:
            out.append(x)
    return out
