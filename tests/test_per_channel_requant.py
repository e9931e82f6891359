"""Per-channel requantisation fused on the accelerator's ALU: the multiplier is one int32 per output channel,
loaded into the accumulator SRAM like the bias and applied by a register-operand MUL.

References are independent of the accelerator: TVM's own CPU build (``tvm.compile(..., "llvm")``) of the same
Relax ops, and numpy's int64 arithmetic wrapped to int32. Shapes have odd channel counts (not multiples of
block_out); conv2d (1-channel stem, grouped, depthwise), dense and batch matmul, with and without bias and ReLU,
int8 and the packed w4a4 mode. A chain whose kernel cannot hold the vectors stays on the CPU, still exact.
"""
import numpy as np
import pytest
import torch
import tvm
from tvm import relax

import tvm_codesign as tc
from tvm_codesign import model as MD
from tvm_codesign.costmodel import analytical as A
from tvm_codesign.frontend.relax import offload, offloaded
from tvm_codesign.hardware import modes as HM
from tvm_codesign.hardware.config import AcceleratorConfig
from tvm_codesign.hardware.isa import AluOp, Opcode
from tvm_codesign.schedules import store
from tvm_codesign.schedules.knobs import requirements, default
from tvm_codesign.schedules.workload import Workload, WorkloadError

CFG = AcceleratorConfig.load("vta_default")
W4 = HM.flexible(CFG, 4, False)  # a precision-flexible core: w4a4 runs packed


# ----- one kernel, numpy reference ---------------------------------------------------------------------
def _acc(kind, x, w, groups=1, stride=1, pad=0):
    """int32 accumulator in int64 (exact: small operands), the user's layouts."""
    if kind == "conv2d":
        r = torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                                       stride=stride, padding=pad, groups=groups)
        return r.numpy().astype(np.int64), (1, -1, 1, 1)
    if kind == "dense":
        return x.astype(np.int64) @ w.astype(np.int64).T, (1, -1)
    return np.einsum("bmk,bnk->bmn", x.astype(np.int64), w.astype(np.int64)), (1, 1, -1)


def _requant(acc, bshape, b, m, shift, relu):
    wrap = lambda a: a.astype(np.int32).astype(np.int64)
    t = wrap(acc) if b is None else wrap(wrap(acc) + b.reshape(bshape))
    t = wrap(t * m.astype(np.int64).reshape(bshape)) >> shift
    return np.clip(t, 0 if relu else -128, 127).astype(np.int8)


KERNELS = [  # (workload, conv groups / stride / pad)
    Workload.conv2d(1, 5, 7, 7, 13, 3, 1, 1),                  # odd channels
    Workload.conv2d(1, 1, 9, 9, 7, 3, 2, 1),                   # a 1-channel stem (columns folded into channels)
    Workload.conv2d(1, 6, 6, 6, 9, 3, 1, 1, groups=3),          # grouped
    Workload.conv2d(1, 17, 5, 5, 17, 3, 1, 1, groups=17),       # depthwise (merged kernel groups)
    Workload.dense(3, 40, 11),
    Workload.batch_matmul(3, 5, 24, 7),
]


@pytest.mark.parametrize("bias,relu", [(True, True), (False, False)])
@pytest.mark.parametrize("base", KERNELS, ids=lambda w: w.describe().replace(" ", "_"))
def test_channel_multiplier_kernel_matches_numpy(base, bias, relu):
    """A built kernel with ``multiplier="channel"`` equals the numpy int32 requantisation; its program multiplies
    by a register operand (ALU MUL, use_imm 0) and loads the multiplier into the accumulator SRAM."""
    rng = np.random.default_rng(3)
    wl = base
    if wl.kind == "conv2d":
        x = rng.integers(-128, 128, (wl.n, wl.channels_in, wl.h, wl.w)).astype(np.int8)
        w = rng.integers(-128, 128, (wl.channels_out, wl.ci, wl.kh, wl.kw)).astype(np.int8)
    elif wl.kind == "dense":
        x, w = (rng.integers(-128, 128, s).astype(np.int8) for s in ((wl.n, wl.ci), (wl.co, wl.ci)))
    else:
        x, w = (rng.integers(-128, 128, s).astype(np.int8) for s in ((wl.groups, wl.n, wl.ci), (wl.groups, wl.co, wl.ci)))
    b = rng.integers(-2000, 2000, wl.channels_out).astype(np.int32) if bias else None
    m = rng.integers(1, 400, wl.channels_out).astype(np.int32)
    acc, bshape = _acc(wl.kind, x, w, wl.groups if wl.kind == "conv2d" else 1, wl.stride[0], wl.pad[0])
    shift = int(np.ceil(np.log2(acc.std() * 200 / 60)))  # results spread over the int8 range
    wl = Workload(**{**base.to_dict(), "bias": bias, "multiplier": "channel", "shift": shift, "relu": relu,
                     "out_dtype": "int8"})
    assert ("mul", None) in wl.epilogue and wl.vectors == (("bias",) if bias else ()) + ("multiplier",)
    mod = tc.build(wl, CFG)
    out = mod(x, w, b, multiplier=m) if bias else mod(x, w, multiplier=m)
    ref = _requant(acc, bshape, b, m, shift, relu)
    assert np.array_equal(out, ref)
    assert len(np.unique(ref)) > 10  # not all saturated
    t = mod.kernel.program.table
    alu = t["opcode"] == Opcode.ALU
    assert np.any(alu & (t["op"] == AluOp.MUL) & (t["use_imm"] == 0))


def test_channel_workload_errors_and_serialises():
    with pytest.raises(WorkloadError, match="multiplier"):
        Workload.dense(1, 16, 16, multiplier="tensor")
    wl = Workload.dense(1, 16, 9, bias=True, multiplier="channel", shift=8, out_dtype="int8")
    assert Workload(**wl.to_dict()) == wl and hash(Workload(**wl.to_dict())) == hash(wl)
    with pytest.raises(WorkloadError, match="multiplier"):
        wl.reference(np.zeros((1, 16), np.int8), np.zeros((9, 16), np.int8), np.zeros(9, np.int32))
    mod = tc.build(wl, CFG)
    with pytest.raises(TypeError, match="multiplier"):
        mod(np.zeros((1, 16), np.int8), np.zeros((9, 16), np.int8), np.zeros(9, np.int32))
    with pytest.raises(WorkloadError, match="multiplier of .* must have shape"):
        mod(np.zeros((1, 16), np.int8), np.zeros((9, 16), np.int8), np.zeros(9, np.int32),
            multiplier=np.ones(8, np.int32))


def test_channel_multiplier_sram_and_schedule_key():
    """The multiplier takes a tile_co of accumulator SRAM beside the bias, and a tuned schedule file is keyed
    apart from the immediate multiplier's (another epilogue: other costs), by stages, not by values."""
    base = Workload.conv2d(1, 16, 8, 8, 32, 3, 1, 1, bias=True, shift=10, out_dtype="int8")
    imm, vec = (Workload(**{**base.to_dict(), "multiplier": m}) for m in (77, "channel"))
    k = default(vec, CFG)
    assert requirements(vec, CFG, k)["acc"] - requirements(imm, CFG, k)["acc"] == k.tile_co * k.vthreads
    assert store.workload_key(vec) != store.workload_key(imm) and "mulv" in store.workload_key(vec)
    assert store.workload_key(imm) == store.workload_key(Workload(**{**base.to_dict(), "multiplier": 99}))


def test_cost_model_charges_the_vector_multiplier():
    """Model vs simulator on the per-channel epilogue: the extra LOAD ACC bytes exact, the register-operand MUL at
    alu_ii_vec (slow vector operands make it cost more than the immediate), cycles close."""
    pts = []
    for cfg in (CFG, CFG.replace(alu_ii_vec=4)):
        for base in (Workload.conv2d(1, 16, 14, 14, 48, 3, 1, 1), Workload.dense(16, 64, 40)):
            for m in (77, "channel"):
                wl = Workload(**{**base.to_dict(), "bias": True, "multiplier": m, "shift": 9, "out_dtype": "int8"})
                pts.append((wl, cfg, default(wl, CFG)))
    sims = [tc.build(wl, cfg, knobs=k).time() for wl, cfg, k in pts]
    r = A.evaluate(A.columns(pts))
    sim = np.array([s.cycles for s in sims], float)
    np.testing.assert_array_equal(r["dram_read_by_mem"]["ACC"], [s.dram_read_bytes.get("ACC", 0) for s in sims])
    assert np.median(np.abs(r["cycles"] / sim - 1)) <= 0.05
    for i in range(0, len(pts), 2):  # (immediate, vector) pairs: the vector costs more in both
        assert sim[i + 1] > sim[i] and r["cycles"][i + 1] > r["cycles"][i]


# ----- Relax chains: the accelerator vs TVM's CPU build of the same ops -----------------------------------
def _chain(kind, rng, bias, relu, mshape=None):
    """x -> conv2d / matmul (int8 x int8 -> int32) -> [+ b] -> * M (per channel) -> >> s -> clip -> int8."""
    op = relax.op
    if kind == "conv2d":
        xs, w = (1, 6, 7, 7), rng.integers(-128, 128, (15, 2, 3, 3)).astype(np.int8)  # groups 3, 15 channels
        co, vshape = 15, (1, 15, 1, 1)
    elif kind == "dense":
        xs, w = (2, 5, 33), rng.integers(-128, 128, (33, 13)).astype(np.int8)
        co, vshape = 13, (13,)
    else:
        xs, w = (3, 4, 20), rng.integers(-128, 128, (3, 20, 9)).astype(np.int8)
        co, vshape = 9, (9,)
    x = relax.Var("x", relax.TensorType(xs, "int8"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        acc = bb.emit(op.nn.conv2d(x, relax.const(w), padding=(1, 1), groups=3, out_dtype="int32")
                      if kind == "conv2d" else op.matmul(x, relax.const(w), out_dtype="int32"))
        t = acc
        if bias:
            t = bb.emit(op.add(t, relax.const(rng.integers(-30000, 30000, co).astype(np.int32).reshape(vshape))))
        m = rng.integers(1, 3000, co).astype(np.int32).reshape(mshape or vshape)
        t = bb.emit(op.multiply(t, relax.const(m)))
        t = bb.emit(op.right_shift(t, relax.const(17, "int32")))
        t = bb.emit(op.clip(t, 0 if relu else -128, 127))
        bb.emit_func_output(bb.emit(op.astype(t, "int8")))
    return bb.get(), rng.integers(-128, 128, xs).astype(np.int8)


def _run(mod, x):
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


@pytest.mark.parametrize("kind", ["conv2d", "dense", "batch_matmul"])
@pytest.mark.parametrize("bias,relu", [(True, False), (False, True)])
def test_relax_chain_fused_equals_tvm_cpu(kind, bias, relu):
    mod, x = _chain(kind, np.random.default_rng(11), bias, relu)
    ref = _run(mod, x)
    off = offload(CFG)(mod)
    ks = offloaded(off)
    assert len(ks) == 1 and ks[0]["workload"]["multiplier"] == "channel" and ks[0]["workload"]["out_dtype"] == "int8"
    assert np.array_equal(_run(off, x), ref) and len(np.unique(ref)) > 10


def test_unfusable_chains_stay_on_the_cpu_and_exact():
    """A multiplier that would broadcast the result to more dims, and an accumulator SRAM too small for the
    vectors (4 entries: a one-element tile, its bias and multiplier do not fit twice), stay unfused: the kernel
    stores int32 and the CPU requantises, with the same result."""
    mod, x = _chain("dense", np.random.default_rng(2), True, False, mshape=(1, 1, 1, 13))
    ks = offloaded(offload(CFG)(mod))
    assert [k["workload"]["out_dtype"] for k in ks] == ["int32"]
    assert np.array_equal(_run(offload(CFG)(mod), x), _run(mod, x))
    tiny = CFG.replace(acc_buffer_bytes=4 * CFG.batch * CFG.block_out * 4)
    for kind in ("conv2d", "dense"):
        mod, x = _chain(kind, np.random.default_rng(5), True, True)
        off = offload(tiny)(mod)
        assert [k["workload"]["out_dtype"] for k in offloaded(off)] == ["int32"]
        assert np.array_equal(_run(off, x), _run(mod, x))


# ----- whole models: precision modes with per-channel weight scales ----------------------------------------
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 7, 3, padding=1)                        # 1 input channel, odd outputs
        self.grp = torch.nn.Conv2d(7, 14, 3, stride=2, padding=1, groups=7)
        self.dw = torch.nn.Conv2d(14, 14, 3, padding=1, groups=14, bias=False)  # depthwise, no bias
        self.pw = torch.nn.Conv2d(14, 9, 1)                                    # no ReLU after it
        self.fc = torch.nn.Linear(9 * 16, 11)
        self.out = torch.nn.Linear(11, 5, bias=False)

    def forward(self, x):
        r = torch.relu
        y = self.pw(r(self.dw(r(self.grp(r(self.stem(x)))))))
        return self.out(r(self.fc(y.flatten(1))))


def _net():
    torch.manual_seed(4)
    m = Net().eval()
    cal = [(np.random.default_rng(i).standard_normal((1, 1, 8, 8)).astype(np.float32),) for i in range(4)]
    return m, cal


@pytest.mark.parametrize("cfg,prec", [(CFG, "w8a8"), (W4, {"grp": None})], ids=["w8a8", "w4a4"])
def test_model_per_channel_requant_fused_bit_exact(cfg, prec, tmp_path):
    """Per-channel weight scales at w8a8 and w4a4 (packed mode; the stem stays 8-bit): every layer's requantisation
    runs fused on the accelerator (int8 results, per-channel multipliers) and the output equals TVM's CPU build of
    the same quantised Relax graph; saved and loaded, the model gives the same output."""
    m, cal = _net()
    if isinstance(prec, dict):
        prec = {"conv2d_0": (8, 8), "conv2d_1": (4, 4), "conv2d_2": (4, 4), "conv2d_3": (4, 4), "dense_0": (4, 4),
                "dense_1": (4, 4)}
    cm = tc.compile(m, cfg, calibration=cal, precision=prec, weight_scales="channel", progress=False)
    q = MD._quantized(m, None, None, cal, "alu", {}, prec, None, "channel")
    x = np.random.default_rng(9).standard_normal((1, 1, 8, 8)).astype(np.float32)
    ref = _run(q, x)
    assert np.array_equal(cm(x), ref)
    wls = [k["workload"] for k in cm.kernels]
    assert len(wls) == 6 and all(w["out_dtype"] == "int8" for w in wls)
    assert sum(w["multiplier"] == "channel" for w in wls) >= 5
    if cfg is W4:
        assert {v["hw_mode"] for n, v in cm.layer_modes.items() if n != "conv2d_0"} == {"w4a4"}
    loaded = tc.load(cm.save(tmp_path / "net"))
    assert np.array_equal(loaded(x), ref)


def test_cpu_op_census_counts_the_chains_that_fall_back():
    """The CPU-op census (the compile log line, ``cm.cpu_ops``) counts exactly the requantisation ops the offload
    leaves on the CPU: none with room for the per-channel vectors, every chain's when the accumulator (4 entries)
    cannot hold them; checked against the CPU kernels the offloaded module calls."""
    m, cal = _net()
    info = {}
    q = MD._quantized(m, None, None, cal, "alu", info, "w8a8", None, "channel")
    tiny = CFG.replace(acc_buffer_bytes=4 * CFG.batch * CFG.block_out * 4)
    seen = []
    for cfg in (CFG, tiny):
        census = MD._census(q, cfg, info["modes"])["cpu_ops"]
        off = offload(cfg, modes=info["modes"])(q)
        called = []
        relax.analysis.post_order_visit(off["main"], lambda e: called.append(e.args[0].name_hint) if isinstance(
            e, relax.Call) and getattr(e.op, "name", None) == "relax.call_tir" else None)
        shifts = sum(n.startswith("right_shift") for n in called)
        assert census.get("relax.right_shift", 0) == shifts, cfg.name
        seen.append(shifts)
    assert seen[0] == 0 and seen[1] == 6  # six layers, each one chain on the CPU on the tiny accumulator
