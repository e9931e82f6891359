"""Flattened, tensorized TIR -> accelerator instructions.

The interpreter walks the function: loops that contain DMA copies or several instructions are
enumerated (tile loops); a perfect loop nest around one ``tvm_codesign.*`` call becomes one GEMM/ALU
instruction (its two outer loops are iter_out/iter_in, the rest a micro-op kernel); a perfect nest
around a copy between a parameter and an SRAM buffer becomes 2-D DMAs (padding from the
``if_then_else`` predicate, loops beyond two unrolled). Affine analysis is done once per TIR node and
evaluated per tile. SRAM placement, dependency tokens and DRAM layout are in sram.py, deps.py, kernel.py.
"""
from __future__ import annotations

import math

import numpy as np
from tvm import tirx
from tvm.ir import Call, StringImm, TensorLoad

from ..hardware.config import AcceleratorConfig
from ..hardware.isa import AluOp, Mem, Opcode
from .affine import LoweringError, coefficients, compile_expr
from .sram import SramPlan

CALLS = ("tvm_codesign.gemm", "tvm_codesign.reset", "tvm_codesign.alu", "tvm_codesign.alu_imm")
ALU_OPS = {"add": AluOp.ADD, "mul": AluOp.MUL, "min": AluOp.MIN, "max": AluOp.MAX, "shr": AluOp.SHR,
           "clip": AluOp.CLIP}
_PACKED = "tirx.tvm_call_packed"


def _packed_name(e) -> str | None:
    if isinstance(e, Call) and e.op.name == _PACKED and isinstance(e.args[0], StringImm):
        return e.args[0].value
    return None


def bufvar(e):
    """The buffer Var behind ``buf.data`` (a buffer_data call in TVM 0.27) or the Var itself."""
    if isinstance(e, Call) and e.op.name == "tirx.buffer_data":
        return e.args[0]
    return e


def _nest(stmt) -> tuple[list, object]:
    """The perfect loop nest starting at ``stmt``: ([For...], leaf)."""
    loops = []
    while True:
        if isinstance(stmt, tirx.For):
            loops.append(stmt)
            stmt = stmt.body
        elif isinstance(stmt, tirx.AttrStmt):
            stmt = stmt.body
        else:
            return loops, stmt


def _insn(opcode: Opcode, **kw) -> dict:
    d = dict(opcode=int(opcode), pop_prev=0, pop_next=0, push_prev=0, push_next=0)
    d.update(kw)
    return d


class Emitter:
    def __init__(self, cfg: AcceleratorConfig, func, params: dict, vthreads: int):
        self.cfg, self.params, self.v = cfg, params, vthreads
        self.sram = SramPlan(cfg, func.body, vthreads)
        self.env: dict = {}
        self.insns: list[dict] = []
        self.kernels: dict = {}        # micro-op kernel bytes -> uop SRAM base
        self.uops: list[np.ndarray] = []
        self.n_uops = 0
        self.zero_elems = {}           # memory type -> elements of zeros needed in DRAM
        self._cache: dict = {}
        self.elem = {Mem.INP: cfg.batch * cfg.block_in, Mem.WGT: cfg.block_out * cfg.block_in,
                     Mem.ACC: cfg.batch * cfg.block_out, Mem.OUT: cfg.batch * cfg.block_out}

    # ----- walking ------------------------------------------------------------------------------
    def run(self, stmt) -> None:
        if isinstance(stmt, tirx.SeqStmt):
            for s in stmt.seq:
                self.run(s)
        elif isinstance(stmt, tirx.AllocBuffer):
            self.sram.allocate(stmt.buffer)
        elif isinstance(stmt, tirx.DeclBuffer):  # a view of a parameter: same DRAM region
            src = bufvar(stmt.data)
            if src in self.params:
                self.params[stmt.buffer] = self.params[src]
        elif isinstance(stmt, tirx.AttrStmt):
            self.run(stmt.body)
        elif isinstance(stmt, tirx.IfThenElse):
            if compile_expr(stmt.condition)(self.env):
                self.run(stmt.then_case)
            elif stmt.else_case is not None:
                self.run(stmt.else_case)
        elif isinstance(stmt, tirx.Bind):
            self.env[stmt.var] = compile_expr(stmt.value)(self.env)
        elif isinstance(stmt, (tirx.For, tirx.Evaluate, tirx.BufferStore)):
            loops, leaf = _nest(stmt)
            if isinstance(leaf, tirx.Evaluate) and _packed_name(leaf.value) == "tvm_codesign.dma":
                self.dma(loops, leaf.value)
            elif isinstance(leaf, tirx.Evaluate) and _packed_name(leaf.value) in CALLS:
                self.compute(loops, leaf.value)
            elif isinstance(leaf, tirx.BufferStore) and self._is_copy(leaf):
                self.dma(loops, leaf)
            elif isinstance(stmt, tirx.For):
                var, lo = stmt.loop_var, int(stmt.min)
                for i in range(lo, lo + int(stmt.extent)):
                    self.env[var] = i
                    self.run(stmt.body)
                del self.env[var]
            else:
                raise LoweringError(f"cannot run on the accelerator: {stmt}")
        else:
            raise LoweringError(f"unsupported statement {type(stmt).__name__} in accelerator function")

    # ----- compute: GEMM, reset, ALU ------------------------------------------------------------
    def _ptr(self, e):
        """tvm_access_ptr(type, data, offset, extent, rw) -> (data var, offset expr)."""
        if not (isinstance(e, Call) and e.op.name == "tirx.tvm_access_ptr"):
            raise LoweringError(f"expected an SRAM access pointer, got {e}")
        return bufvar(e.args[1]), e.args[2]

    def _analyse_compute(self, loops, call):
        key = ("c", call)
        if key in self._cache:
            return self._cache[key]
        name = _packed_name(call)
        args = list(call.args[1:])
        op = imm = None
        if name in ("tvm_codesign.alu", "tvm_codesign.alu_imm"):
            op = ALU_OPS[args.pop(0).value]
            if name == "tvm_codesign.alu_imm":
                imm = int(args.pop(0).value)
        ptrs = [self._ptr(a) for a in args]
        loops = [lp for lp in loops if int(lp.extent) > 1]
        vars_ = [lp.loop_var for lp in loops]
        ext = [int(lp.extent) for lp in loops]
        operands = []
        for data, off in ptrs:
            c = coefficients(off, vars_)
            if c is None:
                raise LoweringError(f"{name}: access {off} is not affine in the loops {vars_}")
            operands.append((data, c, compile_expr(off)))
        res = (name, op, imm, vars_, ext, operands)
        self._cache[key] = res
        return res

    def compute(self, loops, call) -> None:
        name, op, imm, vars_, ext, operands = self._analyse_compute(loops, call)
        env = dict(self.env)
        env.update({v: 0 for v in vars_})
        fold, inner = ext[:2], ext[2:]
        addrs, facs = [], []
        for data, coef, const in operands:
            buf = self.sram.lookup(data)
            e = buf.elem
            off = const(env)
            if off % e or any(c % e for c in coef):
                raise LoweringError(f"{name}: offset {off} / coefficients {coef} not multiples of the {e}-scalar "
                                    f"element of {buf.name}")
            base = self.sram.address(data) + off // e
            grid = np.full(inner, base, np.int64) if inner else np.array(base, np.int64)
            for i, c in enumerate(coef[2:]):
                shape = [1] * len(inner)
                shape[i] = inner[i]
                grid = grid + (c // e) * np.arange(inner[i]).reshape(shape)
            addrs.append(grid.reshape(-1))
            f = [c // e for c in coef[:2]] + [0] * (2 - len(fold))
            if min(f) < 0:
                raise LoweringError(f"{name}: negative loop factor {f} cannot be folded")
            facs.append(f)
        iters = fold + [1] * (2 - len(fold))
        loop = dict(iter_out=iters[0], iter_in=iters[1], dst_out=facs[0][0], dst_in=facs[0][1])
        if name == "tvm_codesign.gemm":
            bgn, end = self._kernel(addrs[0], addrs[1], addrs[2])
            self.insns.append(_insn(Opcode.GEMM, uop_bgn=bgn, uop_end=end, src_out=facs[1][0], src_in=facs[1][1],
                                    wgt_out=facs[2][0], wgt_in=facs[2][1], **loop))
        elif name == "tvm_codesign.reset":
            bgn, end = self._kernel(addrs[0], 0 * addrs[0], 0 * addrs[0])
            self.insns.append(_insn(Opcode.GEMM, reset=1, uop_bgn=bgn, uop_end=end, **loop))
        else:  # ALU: dst is placed on src's SRAM, so the operation is in place
            if not (np.array_equal(addrs[0], addrs[1]) and facs[0] == facs[1]):
                raise LoweringError(f"ALU {op.name}: destination does not overlay its source")
            if imm is None:
                src, sf = addrs[2], facs[2]
                bgn, end = self._kernel(addrs[0], src, 0 * src)
                self.insns.append(_insn(Opcode.ALU, op=int(op), uop_bgn=bgn, uop_end=end, src_out=sf[0],
                                        src_in=sf[1], **loop))
            else:
                bgn, end = self._kernel(addrs[0], addrs[0], 0 * addrs[0])
                for chunk in self._immediates(op, imm):
                    self.insns.append(_insn(Opcode.ALU, op=int(op), use_imm=1, imm=chunk, uop_bgn=bgn, uop_end=end,
                                            src_out=facs[0][0], src_in=facs[0][1], **loop))

    def _immediates(self, op: AluOp, imm: int) -> list[int]:
        hi = (1 << (self.cfg.imm_bits - 1)) - 1
        if -hi - 1 <= imm <= hi:
            return [imm]
        if op == AluOp.ADD:  # a large constant as several ADDs (exact: addition wraps identically)
            n = -(-abs(imm) // hi)
            parts = [imm // n] * n
            parts[-1] += imm - sum(parts)
            return parts
        if op == AluOp.SHR:  # any shift past the accumulator width gives the same result
            return [max(-hi - 1, min(hi, imm))]
        raise LoweringError(f"ALU {op.name} immediate {imm} does not fit imm_bits {self.cfg.imm_bits}")

    def _kernel(self, dst, src, wgt) -> tuple[int, int]:
        u = np.stack([np.broadcast_to(np.asarray(x), dst.shape) for x in (dst, src, wgt)], axis=1).astype(np.int64)
        key = u.tobytes()
        if key not in self.kernels:
            if self.n_uops + len(u) > self.cfg.uop_depth:
                raise LoweringError(f"micro-op kernels need more than the {self.cfg.uop_depth}-entry uop buffer")
            self.kernels[key] = self.n_uops
            self.uops.append(u)
            self.n_uops += len(u)
        b = self.kernels[key]
        return b, b + len(u)

    # ----- DMA ----------------------------------------------------------------------------------
    def _is_copy(self, store) -> bool:
        v = store.value
        if isinstance(v, tirx.Cast):
            v = v.value
        if isinstance(v, Call) and v.op.name == "prim.if_then_else":
            v = v.args[1]
        return isinstance(v, TensorLoad) and (
            (self.sram.known(store.buffer) and v.source in self.params)
            or (store.buffer in self.params and self.sram.known(v.source)))

    def _analyse_dma(self, loops, leaf):
        key = ("d", leaf)
        if key in self._cache:
            return self._cache[key]
        if isinstance(leaf, Call):  # a tensorized DMA intrinsic: one element per call
            kind = leaf.args[1].value
            (dst, dst_off), (src, src_off) = self._ptr(leaf.args[2]), self._ptr(leaf.args[3])
            load = kind.startswith("load")
            sram_buf, param = (dst, src) if load else (src, dst)
            sram_idx, glob_idx = (dst_off, src_off) if load else (src_off, dst_off)
            mem = {"load_inp": Mem.INP, "load_wgt": Mem.WGT, "load_acc": Mem.ACC, "store_acc": Mem.ACC,
                   "store_out": Mem.OUT}[kind]
            res = self._plan(loops, load, mem, sram_buf, param, sram_idx, glob_idx, None, whole_elements=True)
        else:  # a copy loop nest (e.g. a zero-padded input tile)
            v, pred = leaf.value, None
            if isinstance(v, tirx.Cast):
                v = v.value
            if isinstance(v, Call) and v.op.name == "prim.if_then_else":
                pred, v = v.args[0], v.args[1]
            load = self.sram.known(leaf.buffer)
            sram_buf, param = (leaf.buffer, v.source) if load else (v.source, leaf.buffer)
            sram_idx, glob_idx = (leaf.indices[0], v.indices[0]) if load else (v.indices[0], leaf.indices[0])
            if load:
                mem = self.sram.lookup(sram_buf).mem
            else:
                mem = Mem.ACC if leaf.buffer.dtype == f"int{self.cfg.acc_bits}" else Mem.OUT
            res = self._plan(loops, load, mem, sram_buf, param, sram_idx, glob_idx, pred, whole_elements=False)
        self._cache[key] = res
        return res

    def _plan(self, loops, load, mem, sram_buf, param, sram_idx, glob_idx, pred, whole_elements):
        """Affine analysis of a copy: element loops, contiguity, merged groups, padding terms."""
        store_name = getattr(sram_buf, "name", "?")
        E = self.elem[mem]
        loops = [lp for lp in loops if int(lp.extent) > 1]
        vars_, ext = [lp.loop_var for lp in loops], [int(lp.extent) for lp in loops]
        lc, gc = coefficients(sram_idx, vars_), coefficients(glob_idx, vars_)
        if lc is None or gc is None:
            raise LoweringError(f"copy of {store_name}: indices not affine in the loops")
        # loops inside one element must cover it contiguously, identically on both sides
        inner = [] if whole_elements else sorted((i for i in range(len(vars_)) if 0 < lc[i] < E),
                                                 key=lambda i: -lc[i])
        if not whole_elements and (math.prod(ext[i] for i in inner) != E or any(lc[i] != gc[i] for i in inner)):
            raise LoweringError(f"copy of {store_name}: an element of {E} scalars is not copied contiguously")
        outer = sorted((i for i in range(len(vars_)) if i not in inner), key=lambda i: -lc[i])
        for i in outer:
            if lc[i] % E or gc[i] % E or lc[i] <= 0:
                raise LoweringError(f"copy {store_name}: loop {vars_[i]} does not step whole elements")
        span = 1
        for i in reversed(outer):  # SRAM side must be compact row-major
            if lc[i] // E != span:
                raise LoweringError(f"copy {store_name}: the SRAM tile is not contiguous")
            span *= ext[i]
        terms = self._predicate(pred, vars_) if pred is not None else []
        padded = {i for t in terms for i, c in enumerate(t[0]) if c}
        if padded - set(outer):
            raise LoweringError(f"copy {store_name}: padding inside an element is not supported")
        # merge adjacent unpadded loops contiguous in DRAM, innermost first
        groups = [[i] for i in outer]
        merged = [groups[-1]] if groups else []
        for grp in reversed(groups[:-1]):
            last = merged[-1]
            a, b = grp[0], last[0]
            if a not in padded and b not in padded and gc[a] == gc[b] * ext[b]:  # b: the group's outermost
                merged[-1] = grp + last
            else:
                merged.append(grp)
        merged.reverse()  # outermost first
        return dict(load=load, mem=mem, E=E, sram=sram_buf, param=param, vars=vars_, ext=ext,
                    lc=lc, gc=gc, groups=merged, terms=terms, padded=padded,
                    sram_const=compile_expr(sram_idx), glob_const=compile_expr(glob_idx))

    def _predicate(self, pred, vars_) -> list:
        """A conjunction of comparisons -> [(coefs, const_fn, bound)] meaning coefs.x + const >= bound."""
        if isinstance(pred, tirx.And):
            return self._predicate(pred.a, vars_) + self._predicate(pred.b, vars_)
        for cls, sign, k in ((tirx.LT, 1, 1), (tirx.LE, 1, 0), (tirx.GT, -1, 1), (tirx.GE, -1, 0)):
            if isinstance(pred, cls):
                diff = pred.b - pred.a if sign == 1 else pred.a - pred.b
                c = coefficients(diff, vars_)
                if c is None or sum(1 for x in c if x) > 1:
                    raise LoweringError(f"padding condition {pred} is not a bound on one loop")
                return [(c, compile_expr(diff), k)]
        raise LoweringError(f"unsupported padding condition {pred}")

    def dma(self, loops, leaf) -> None:
        """A copy nest or a nest around a DMA intrinsic -> 2-D DMA instructions for the current tile."""
        a = self._analyse_dma(loops, leaf)
        groups, ext, lc, gc, E = a["groups"], a["ext"], a["lc"], a["gc"], a["E"]
        gext = [math.prod(ext[i] for i in g) for g in groups]
        glc = [lc[g[-1]] // E for g in groups]
        ggc = [gc[g[-1]] // E for g in groups]
        # x: innermost group if contiguous in DRAM; y: the one outside it; the rest unrolled
        # (a padded loop over a size-1 DRAM dimension has DRAM stride 0 and at most one valid index)
        if groups and (ggc[-1] == 1 or (ggc[-1] == 0 and any(j in a["padded"] for j in groups[-1]))):
            xi, yi = len(groups) - 1, (len(groups) - 2 if len(groups) > 1 else None)
        else:
            xi, yi = None, (len(groups) - 1 if groups else None)
        unrolled = [i for i in range(len(groups)) if i not in (xi, yi)]
        for i in unrolled:
            if any(j in a["padded"] for j in groups[i]):
                raise LoweringError("padding on a loop outside the 2-D DMA window")
        env = dict(self.env)
        env.update({v: 0 for v in a["vars"]})
        sram_c, glob_c = a["sram_const"](env), a["glob_const"](env)
        if sram_c % E or glob_c % E:
            raise LoweringError(f"copy starts off an element boundary ({sram_c}, {glob_c}, element {E})")
        sram0 = self.sram.address(a["sram"]) + sram_c // E
        dram0 = self.params[a["param"]].elem_base(a["mem"], E) + glob_c // E
        for idx in np.ndindex(*[gext[i] for i in unrolled]):
            s, dpos, vals = sram0, dram0, {}
            for i, val in zip(unrolled, idx):
                s += glc[i] * val
                dpos += ggc[i] * val
                vals[i] = val
            y = (gext[yi] if yi is not None else 1, ggc[yi] if yi is not None else 0)
            x = gext[xi] if xi is not None else 1
            ylo, yhi, xlo, xhi = 0, y[0], 0, x
            if a["terms"]:
                ylo, yhi = self._valid(a, groups, yi, vals, y[0])
                xlo, xhi = self._valid(a, groups, xi, vals, x)
            if ylo >= yhi or xlo >= xhi:  # all padding: copy zeros from the zero page
                self._emit_dma(a, s, None, y[0], x, 0, (0, 0, 0, 0))
                continue
            if xi is not None and ggc[xi] == 0 and xhi - xlo > 1:
                raise LoweringError("a DMA row would read one DRAM element repeatedly (stride 0)")
            pads = (ylo, y[0] - yhi, xlo, x - xhi)
            xstride = ggc[xi] if xi is not None else 0  # 1, or 0 over a size-1 DRAM dimension
            self._emit_dma(a, s, dpos + ylo * y[1] + xlo * xstride, yhi - ylo, xhi - xlo,
                           y[1] if yhi - ylo > 1 else 0, pads)

    def _valid(self, a, groups, gi, vals, extent) -> tuple[int, int]:
        """Valid [lo, hi) of a (single-loop) group's index under the padding predicate."""
        if gi is None:
            return 0, extent
        (li,) = groups[gi] if len(groups[gi]) == 1 else (None,)
        if li is None:
            return 0, extent
        env = dict(self.env)
        for g in groups:
            for j in g:
                env[a["vars"][j]] = 0
        for gi2, val in vals.items():
            env[a["vars"][groups[gi2][0]]] = val
        lo, hi = 0, extent
        for coefs, fn, bound in a["terms"]:
            c = coefs[li]
            if not c:
                continue
            rest = fn(env)  # value with this loop at 0
            if c > 0:
                lo = max(lo, -(-(bound - rest) // c))
            else:
                hi = min(hi, (rest - bound) // (-c) + 1)
        return lo, hi

    def _emit_dma(self, a, sram, dram, y, x, stride, pads) -> None:
        mem = a["mem"]
        if dram is None:
            self.zero_elems[mem] = max(self.zero_elems.get(mem, 0), x)
            dram = ("zero", mem)
        fields = dict(mem=int(mem), sram_base=int(sram), dram_base=dram, y_size=int(y), x_size=int(x),
                      x_stride=int(stride), y_pad0=int(pads[0]), y_pad1=int(pads[1]), x_pad0=int(pads[2]),
                      x_pad1=int(pads[3]))
        self.insns.append(_insn(Opcode.LOAD if a["load"] else Opcode.STORE, **fields))

