"""VTA's binary format for configs other than the golden one (checked against C's bitfield layout through ctypes),
which configs qualify, the lowering of operations VTA lacks, and compiled programs round-tripping through it."""
import ctypes

import numpy as np
import pytest

import tvm_codesign as tc
from tvm_codesign import (
    AcceleratorConfig,
    Alu,
    AluOp,
    ConfigError,
    EncodingError,
    Finish,
    Gemm,
    Load,
    Mem,
    ProgramBuilder,
    Simulator,
    Store,
)
from tvm_codesign.hardware.isa import encode_uops
from tvm_codesign.hardware.vta_format import VtaLayout, lower_for_vta
from tvm_codesign.simulator import Program
from tvm_codesign.simulator.vta_binary import from_vta, lowered, to_vta

CFG = AcceleratorConfig.load("vta_default")
SMALL = CFG.replace(name="small", uop_buffer_bytes=8192, inp_buffer_bytes=16384, wgt_buffer_bytes=65536,
                    acc_buffer_bytes=65536)


def _log2(n):
    return n.bit_length() - 1


def _c_structs(cfg):
    """hw_spec.h's structs as ctypes declares them (widths from hw_spec_const.h and the log2 depths): C's layout."""
    lu, li, lw, la = (_log2(d) for d in (cfg.uop_depth, cfg.inp_depth, cfg.wgt_depth, cfg.acc_depth))
    u64, head = ctypes.c_uint64, [("opcode", 3), ("pop_prev_dep", 1), ("pop_next_dep", 1), ("push_prev_dep", 1),
                                  ("push_next_dep", 1)]
    mem = head + [("memory_type", 3), ("sram_base", 16), ("dram_base", 32), ("y_size", 16), ("x_size", 16),
                  ("x_stride", 16), ("y_pad_0", 4), ("y_pad_1", 4), ("x_pad_0", 4), ("x_pad_1", 4)]
    loop = head + [("reset_reg", 1), ("uop_bgn", lu), ("uop_end", lu + 1), ("iter_out", 14), ("iter_in", 14),
                   ("dst_factor_out", la), ("dst_factor_in", la)]
    gemm = loop + [("src_factor_out", li), ("src_factor_in", li), ("wgt_factor_out", lw), ("wgt_factor_in", lw)]
    alu = loop + [("src_factor_out", la), ("src_factor_in", la), ("alu_opcode", 3), ("use_imm", 1), ("imm", 16)]
    out = {}
    for op, fs in ((0, mem), (2, gemm), (4, alu)):
        out[op] = type(f"S{op}", (ctypes.Structure,), {"_fields_": [(n, u64, w) for n, w in fs]})
    out["uop"] = type("U", (ctypes.Structure,), {"_fields_": [(n, ctypes.c_uint32, w) for n, w in (
        ("dst_idx", la), ("src_idx", la), ("wgt_idx", lw))]})
    return out


@pytest.mark.parametrize("name", ["vta_default", "vta_1x32x32", "vta_batch4", "small"])
def test_layout_is_c_bitfield_layout(name):
    cfg = SMALL if name == "small" else AcceleratorConfig.load(name)
    layout, structs = VtaLayout.for_config(cfg), _c_structs(cfg)
    for op, S in ((0, structs[0]), (2, structs[2]), (4, structs[4])):
        assert ctypes.sizeof(S) == 16
        for fname, lo, w, _ in layout.fields[op][1:]:
            s = S()
            setattr(s, fname, -1 if fname == "imm" else (1 << w) - 1)
            assert int.from_bytes(bytes(s), "little") == ((1 << w) - 1) << lo, (op, fname)
    assert ctypes.sizeof(structs["uop"]) == 4
    for fname, lo, w, _ in layout.uop:
        s = structs["uop"]()
        setattr(s, fname, (1 << w) - 1)
        assert int.from_bytes(bytes(s), "little") == ((1 << w) - 1) << lo
    # the micro-op words are this package's own for a qualifying config: DRAM images need no conversion
    rng = np.random.default_rng(0)
    u = np.stack([rng.integers(0, 1 << w, 500) for _, _, w, _ in layout.uop], axis=1)
    assert np.array_equal(layout.encode_uops(u), encode_uops(u, cfg))


@pytest.mark.parametrize("change,field,match", [
    (dict(acc_buffer_bytes=256 * 1024, inp_buffer_bytes=64 * 1024, insn_bits=192), "acc_buffer_bytes",
     "VTAUop.wgt_idx"),
    (dict(uop_buffer_bytes=64 * 1024), "uop_buffer_bytes", "VTAGemInsn.wgt_factor_out"),
    (dict(inp_buffer_bytes=64 * 1024), "inp_buffer_bytes", "same depth"),
    (dict(acc_buffer_bytes=64 * 1024), "inp_buffer_bytes", "same depth"),  # the deeper of the two
    (dict(wgt_buffer_bytes=1024 * 1024), "wgt_buffer_bytes", "VTAUop.wgt_idx"),
    (dict(loop_iter_bits=15, insn_bits=192), "loop_iter_bits", "14-bit"),
    (dict(dram_addr_bits=40, insn_bits=192), "dram_addr_bits", "32-bit"),
    (dict(pad_bits=5, insn_bits=192), "pad_bits", "4-bit"),
])
def test_configs_that_do_not_fit_name_the_field(change, field, match):
    cfg = CFG.replace(**{"insn_bits": 192, **change})  # this package's own layout may need wider words
    with pytest.raises(ConfigError, match=match) as e:
        VtaLayout.for_config(cfg)
    assert e.value.field == field


def test_presets_that_qualify():
    """edge_tiny and vta_ultra96 have inp and acc buffers of different depths (their micro-op source index differs
    between hw_spec.h and vta.cc); the other presets encode."""
    ok = {}
    for name in tc.preset_names():
        try:
            VtaLayout.for_config(AcceleratorConfig.load(name))
            ok[name] = True
        except ConfigError as e:
            ok[name] = e.field
    assert ok == {"edge_tiny": "inp_buffer_bytes", "vta_1x32x32": True, "vta_batch4": True, "vta_default": True,
                  "vta_ultra96": "inp_buffer_bytes"}


# ----- lowering ----------------------------------------------------------------------------------
ALU_CASES = [(AluOp.CLIP, 127), (AluOp.CLIP, 0), (AluOp.MOV, -77), (AluOp.SHR, 20), (AluOp.SHR, 31),
             (AluOp.SHR, 40), (AluOp.SHR, -20), (AluOp.SHR, -40), (AluOp.SHR, 7), (AluOp.ADD, 300)]


def _reference(op, v, a):
    """The package's ALU semantics (isa.AluOp), in numpy int64 with 32-bit wrap."""
    a = a.astype(np.int64)
    r = {AluOp.CLIP: lambda: np.clip(a, -v - 1, v), AluOp.MOV: lambda: np.full_like(a, v),
         AluOp.ADD: lambda: a + v,
         AluOp.SHR: lambda: a >> min(v, 63) if v >= 0 else a << min(-v, 63)}[op]()
    return (r & 0xFFFFFFFF).astype(np.uint32).view(np.int32)


def _alu_builder(ops, acc):
    b = ProgramBuilder(CFG)
    ia, iu, io = b.put(acc, Mem.ACC), b.put_uops([(0, 0, 0)]), b.alloc(len(acc), Mem.OUT)
    n = len(acc)
    b.emit(Load(mem=Mem.UOP, sram_base=0, dram_base=iu, y_size=1, x_size=1, x_stride=1),
           Load(mem=Mem.ACC, sram_base=0, dram_base=ia, y_size=1, x_size=n, x_stride=n))
    for k, (op, v) in enumerate(ops):
        b.emit(Alu(op=op, use_imm=True, imm=v, uop_bgn=0, uop_end=1, iter_out=n, dst_out=1, src_out=1,
                   push_next=k == len(ops) - 1))
    b.emit(Store(mem=Mem.OUT, sram_base=0, dram_base=io, y_size=1, x_size=n, x_stride=n, pop_prev=True,
                 push_prev=True), Finish(pop_next=True))
    return b, io


@pytest.mark.parametrize("op,v", ALU_CASES, ids=lambda x: str(getattr(x, "name", x)))
def test_lowered_alu_gives_the_same_results(op, v):
    rng = np.random.default_rng(abs(v))
    acc = rng.integers(-2 ** 31, 2 ** 31, (6, 1, 16)).astype(np.int32)
    acc[0, 0, :4] = [-2 ** 31, 2 ** 31 - 1, -1, 0]
    b, io = _alu_builder([(op, v)], acc)
    prog, dram = b.program(), b.dram()
    low = lowered(prog)
    extra = {AluOp.CLIP: 1, AluOp.MOV: 1, AluOp.ADD: 0}.get(op, {20: 1, 31: 2, 40: 2, -20: 1, -40: 1, 7: 0}.get(v))
    assert len(low) == len(prog) + extra  # ALU passes VTA needs beyond this ISA's one
    want = _reference(op, v, acc)
    for p in (prog, low, from_vta(CFG, to_vta(prog, dram), dram)):
        d = dram.copy()
        sim = Simulator(CFG)
        sim.run(p, d)
        assert np.array_equal(sim.srams.acc[:len(acc)], want)
        assert np.array_equal(b.read(d, io, len(acc), Mem.OUT), want.astype(np.int8))


def test_lowering_moves_tokens_to_the_ends():
    acc = np.zeros((2, 1, 16), np.int32)
    b, _ = _alu_builder([(AluOp.CLIP, 5)], acc)
    t = lower_for_vta(CFG, b.program().table)
    alu = np.flatnonzero(t["opcode"] == 3)  # isa.Opcode.ALU
    assert t["op"][alu].tolist() == [AluOp.MAX, AluOp.MIN] and t["imm"][alu].tolist() == [-6, 5]
    assert t["push_next"][alu].tolist() == [0, 1]


def test_uop_load_of_several_rows():
    b = ProgramBuilder(CFG)
    iu = b.put_uops([(i, i, 0) for i in range(6)])
    rows = [Load(mem=Mem.UOP, sram_base=4, dram_base=iu, y_size=2, x_size=3, x_stride=3),
            Load(mem=Mem.UOP, sram_base=20, dram_base=iu, y_size=2, x_size=2, x_stride=4), Finish()]
    t = lower_for_vta(CFG, Program(CFG, rows).table)
    assert t["x_size"].tolist()[:3] == [6, 2, 2] and t["y_size"].tolist()[:3] == [1, 1, 1]
    assert t["dram_base"].tolist()[1:3] == [iu, iu + 4] and t["sram_base"].tolist()[1:3] == [20, 22]


@pytest.mark.parametrize("insn,match", [
    (Alu(op=AluOp.MUL, use_imm=True, imm=3, uop_bgn=0, uop_end=1), "MUL is not in VTA's hardware"),
    (Alu(op=AluOp.CLIP, uop_bgn=0, uop_end=1), "register operand has no VTA equivalent"),
    (Alu(op=AluOp.MOV, uop_bgn=0, uop_end=1), "register operand has no VTA equivalent"),
    (Store(mem=Mem.ACC, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1), "STORE ACC"),
    (Load(mem=Mem.WGT, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1, x_pad0=1), "pad fields"),
])
def test_what_vta_lacks_is_an_error_naming_the_instruction(insn, match):
    prog = Program(CFG, [Load(mem=Mem.UOP, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1), insn])
    with pytest.raises(EncodingError, match=match) as e:
        to_vta(prog)
    assert e.value.index == 1


def test_store_acc_is_the_out_buffer_when_it_is_as_wide():
    cfg = CFG.replace(out_bits=32)
    prog = Program(cfg, [Store(mem=Mem.ACC, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1)])
    assert from_vta(cfg, to_vta(prog), np.zeros(64, np.uint8)).table["mem"][0] == Mem.OUT
    assert prog.table["mem"][0] == Mem.ACC  # the program encoded is left as it was


def test_store_after_reset_is_refused_when_encoding():
    """This package stores the zeros a reset wrote; VTA's out buffer holds acc + inp.wgt there."""
    b = ProgramBuilder(CFG)
    iu, io = b.put_uops([(0, 0, 0)]), b.alloc(1, Mem.OUT)
    b.emit(Load(mem=Mem.UOP, sram_base=0, dram_base=iu, y_size=1, x_size=1, x_stride=1),
           Gemm(uop_bgn=0, uop_end=1, reset=True, push_next=True),
           Store(mem=Mem.OUT, sram_base=0, dram_base=io, y_size=1, x_size=1, x_stride=1, pop_prev=True), Finish())
    with pytest.raises(tc.ProgramError, match="last written by a GEMM with reset"):
        to_vta(b.program(), b.dram())
    to_vta(b.program())  # without the micro-ops (DRAM) the check cannot run
    with pytest.raises(tc.ProgramError, match="outside the DRAM image.*cannot be checked"):
        to_vta(b.program(), np.zeros(0, np.uint8))


# ----- compiled programs ---------------------------------------------------------------------------
def _round_trip(kernel, seed=0):
    """Encode a compiled kernel for VTA, decode it, and run both on the same random inputs: same DRAM, same acc."""
    prog, cfg = kernel.program, kernel.config
    rng = np.random.default_rng(seed)
    dram = kernel._image.copy()
    for p in kernel.params:
        if p.role == "in":
            dram[p.offset:p.offset + p.nbytes] = rng.integers(0, 256, p.nbytes, dtype=np.uint8)
    blob = to_vta(prog, dram)
    back = from_vta(cfg, blob, dram)
    low = lowered(prog)
    assert all(np.array_equal(back.table[c], low.table[c]) for c in low.table)  # decode(encode(p)) == lowered p
    results = []
    for p in (prog, back):
        d, sim = dram.copy(), Simulator(cfg)
        sim.run(p, d)
        results.append((d, sim.srams.acc.copy()))
    assert np.array_equal(results[0][0], results[1][0]) and np.array_equal(results[0][1], results[1][1])
    return prog, back


EPI = dict(bias=True, shift=9, out_dtype="int8")


@pytest.mark.parametrize("wl", [
    tc.Workload.conv2d(1, 32, 14, 14, 48, 3, 1, 1, **EPI),                     # int8 epilogue: CLIP
    tc.Workload.conv2d(1, 32, 14, 14, 48, 3, 2, 1, relu=True, **EPI),         # MAX 0, MIN 127
    tc.Workload.conv2d(1, 16, 9, 9, 32, 1, 2, 0, bias=True, shift=20, out_dtype="int8"),  # SHR 20: two passes
    tc.Workload.dense(5, 100, 40, **EPI),
    tc.Workload.batch_matmul(3, 8, 40, 24, **EPI),
    tc.Workload.dense(4, 64, 32),                                              # int32 out: STORE ACC refused
], ids=["conv_clip", "conv_relu_s2", "conv1x1_shr20", "dense", "batch_matmul", "dense_int32"])
def test_built_workloads_round_trip(wl):
    m = tc.build(wl, CFG)
    if wl.out_dtype == "int32":
        with pytest.raises(EncodingError, match="STORE ACC"):
            to_vta(m.kernel.program)
        return
    prog, back = _round_trip(m.kernel)
    clip = {"CLIP": int(np.sum(prog.table["op"][prog.table["opcode"] == 3] == AluOp.CLIP))}["CLIP"]
    assert len(back) >= len(prog) + clip


def test_multiplier_requantisation_is_refused():
    m = tc.build(tc.Workload.dense(4, 32, 16, bias=True, multiplier=77, shift=12, out_dtype="int8"), CFG)
    with pytest.raises(EncodingError, match="MUL is not in VTA's hardware.*requantise with a shift only"):
        to_vta(m.kernel.program)


@pytest.fixture(scope="module")
def resnet_layers():
    """ResNet-18 (tvm_codesign.models) at 32x32, width 16, as compile offloads it with requant="shift": one Workload
    per distinct layer."""
    from tvm_codesign import models
    from tvm_codesign.model import layers
    rng = np.random.default_rng(0)
    calib = [(rng.standard_normal((1, 3, 32, 32)).astype(np.float32),) for _ in range(2)]
    return [wl for wl, _ in layers(models.resnet18(10, width=16), calibration=calib, requant="shift")]


def test_resnet18_layers_round_trip(resnet_layers):
    """Every layer's kernel encodes to VTA's format and runs bit-identically after the round trip."""
    assert len(resnet_layers) >= 15 and all(wl.multiplier in (None, 1) for wl in resnet_layers)
    for k, wl in enumerate(resnet_layers):
        _round_trip(tc.build(wl, CFG).kernel, seed=k)


def test_requant_shift_model_encodes_and_stays_accurate():
    """compile(requant="shift"): power-of-two scales, no ALU multiply; close to the float model, and every kernel
    encodes to VTA's format. The default requant="alu" multiplies, which VTA's hardware cannot."""
    import torch

    from tvm_codesign import models
    from tvm_codesign.runtime import entry
    model = models.mlp_model(din=64, hidden=64)
    rng = np.random.default_rng(0)
    calib, test = ([rng.standard_normal((4, 64)).astype(np.float32) for _ in range(n)] for n in (4, 6))
    for requant in ("shift", "alu"):
        cm = tc.compile(model, CFG, calibration=[(x,) for x in calib], requant=requant, progress=False)
        outs, refs = [cm(x) for x in test], [model(torch.as_tensor(x)).detach().numpy() for x in test]
        assert min(float((o * r).sum() / np.linalg.norm(o) / np.linalg.norm(r)) for o, r in zip(outs, refs)) > 0.99
        kernels = [entry.BY_NAME[k["name"]] for k in cm.kernels]
        assert len(kernels) == 3
        for kernel in kernels:
            if requant == "shift":
                _round_trip(kernel)
            else:
                with pytest.raises(EncodingError, match="MUL"):
                    to_vta(kernel.program)


@pytest.mark.parametrize("name", ["vta_1x32x32", "vta_batch4"])
def test_other_qualifying_presets_round_trip(name):
    cfg = AcceleratorConfig.load(name)
    m = tc.build(tc.Workload.conv2d(cfg.batch, 64, 10, 10, 64, 3, 1, 1, **EPI), cfg)
    _round_trip(m.kernel)
