"""Bad programs raise their documented error, naming the instruction index and the field."""
import numpy as np
import pytest

from tvm_codesign import (AcceleratorConfig, Alu, AluOp, DramAccessError, EncodingError, Finish, Gemm, Load, Mem,
                          Program, ProgramBuilder, ProgramError, Simulator, SramAccessError, Store)

CFG = AcceleratorConfig.load("vta_default")
OK = Load(mem=Mem.INP, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1)


def dma(cls=Load, mem=Mem.INP, **kw):
    base = dict(mem=mem, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1)
    return cls(**{**base, **kw})


@pytest.mark.parametrize("insn, exc, field, words", [
    (dma(sram_base=2047, x_size=2), SramAccessError, "sram_base", r"INP SRAM range \[2047, 2049\) exceeds depth 2048"),
    (dma(mem=Mem.WGT, y_size=33, x_size=32, x_stride=32), SramAccessError, "sram_base", "exceeds depth 1024"),
    (dma(y_pad0=1, x_size=2047), SramAccessError, "sram_base", "exceeds depth"),
    (dma(mem=Mem.OUT), ProgramError, "mem", "LOAD cannot read memory type OUT"),
    (dma(Store, mem=Mem.INP), ProgramError, "mem", "STORE writes ACC or OUT only"),
    (dma(Store, mem=Mem.OUT, x_pad0=1), ProgramError, "y_pad0", "STORE has no padding"),
    (dma(Store, mem=Mem.OUT, y_size=2, x_size=4, x_stride=3), ProgramError, "x_stride", "overlap"),
    (dma(mem=Mem.UOP, y_pad1=1), ProgramError, "y_pad0", "LOAD UOP has no padding"),
    (dma(y_size=0), ProgramError, "y_size", ">= 1"),
    (dma(x_pad0=16), EncodingError, "x_pad0", "does not fit 4 bits"),
    (Gemm(uop_bgn=3, uop_end=3), ProgramError, "uop_end", "must be > uop_bgn"),
    (Gemm(uop_bgn=0, uop_end=8193), SramAccessError, "uop_end", "exceeds micro-op buffer depth 8192"),
    (Gemm(uop_bgn=0, uop_end=1 << 14), EncodingError, "uop_end", "does not fit 14 bits"),
    (Gemm(uop_bgn=0, uop_end=1, iter_out=0), ProgramError, "iter_out", ">= 1"),
    (Gemm(uop_bgn=0, uop_end=1, dst_out=2048), EncodingError, "dst_out", "does not fit 11 bits"),
    (Alu(op=AluOp.CLIP, use_imm=True, imm=-1, uop_bgn=0, uop_end=1), ProgramError, "imm", "CLIP bound"),
    (Alu(op=AluOp.ADD, imm=5, uop_bgn=0, uop_end=1), ProgramError, "imm", "register"),
    (dma(pop_prev=True), ProgramError, "pop_prev", "load module has no previous module"),
    (dma(Store, mem=Mem.OUT, push_next=True), ProgramError, "push_next", "store module has no next module"),
])
def test_static_errors_name_index_and_field(insn, exc, field, words):
    with pytest.raises(exc, match=words) as e:
        Program(CFG, [OK, insn])
    assert e.value.index == 1 and e.value.field == field
    assert "instruction 1" in str(e.value)


def test_non_instruction_rejected():
    with pytest.raises(ProgramError, match="not an instruction"):
        Program(CFG, [OK, "GEMM"])


def test_gemm_index_out_of_range_at_run_time():
    b = ProgramBuilder(CFG)
    u = b.put_uops([(2000, 0, 0)])
    b.emit(dma(mem=Mem.UOP, dram_base=u), Gemm(uop_bgn=0, uop_end=1, iter_out=5, dst_out=12))
    with pytest.raises(SramAccessError, match="acc index 2048 >= depth 2048") as e:
        Simulator(CFG).run(b.program(), b.dram(), check_races=False)
    assert e.value.index == 1 and e.value.field == "dst"
    b = ProgramBuilder(CFG)
    u = b.put_uops([(0, 0, 1023)])
    b.emit(dma(mem=Mem.UOP, dram_base=u), Gemm(uop_bgn=0, uop_end=1, iter_in=2, wgt_in=1))
    with pytest.raises(SramAccessError, match="wgt index 1024") as e:
        Simulator(CFG).run(b.program(), b.dram(), check_races=False)
    assert e.value.field == "wgt"


def test_alu_src_out_of_range_at_run_time():
    b = ProgramBuilder(CFG)
    u = b.put_uops([(0, 2047, 0)])
    b.emit(dma(mem=Mem.UOP, dram_base=u), Alu(op=AluOp.ADD, uop_bgn=0, uop_end=1, iter_in=2, src_in=1))
    with pytest.raises(SramAccessError, match="acc index 2048") as e:
        Simulator(CFG).run(b.program(), b.dram(), check_races=False)
    assert (e.value.index, e.value.field) == (1, "src")


def test_dram_out_of_range():
    b = ProgramBuilder(CFG)
    a = b.put(np.zeros((4, 1, 16), np.int8), Mem.INP)
    b.emit(dma(dram_base=a, y_size=2, x_size=2, x_stride=3))  # last element a + 5 > 3
    with pytest.raises(DramAccessError, match=r"INP elements \[0, 4\] outside DRAM image of 4 elements") as e:
        Simulator(CFG).run(b.program(), b.dram(), check_races=False)
    assert (e.value.index, e.value.field) == (0, "dram_base")
    b.insns[:] = [dma(Store, mem=Mem.ACC, dram_base=1)]
    with pytest.raises(DramAccessError, match="ACC elements"):
        Simulator(CFG).run(b.program(), b.dram(), check_races=False)


def test_program_for_another_config_rejected():
    tiny = AcceleratorConfig.load("edge_tiny")
    with pytest.raises(ProgramError, match="program built for edge_tiny"):
        Simulator(CFG).time(Program(tiny, [Finish()]))


def test_bad_dram_argument():
    p = Program(CFG, [Finish()])
    with pytest.raises(TypeError, match="uint8"):
        Simulator(CFG).run(p, np.zeros(16, np.int32))


def test_builder_rejects_wrong_element_type():
    b = ProgramBuilder(CFG)
    with pytest.raises(ProgramError, match=r"INP data must be int8 of shape \(n, \(1, 16\)\)"):
        b.put(np.zeros((4, 16), np.int8), Mem.INP)


def test_module_column_follows_the_routing_rule():
    from tvm_codesign.hardware.isa import module_for
    insns = [dma(mem=m) for m in (Mem.UOP, Mem.WGT, Mem.INP, Mem.ACC)] + [dma(Store, mem=Mem.OUT),
                                                                          Gemm(uop_bgn=0, uop_end=1), Finish()]
    p = Program(CFG, insns)
    assert p.table["module"].tolist() == [int(module_for(x.opcode, getattr(x, "mem", 0))) for x in insns]
    assert p.table["module"].tolist() == [1, 0, 0, 1, 2, 1, 1]


def test_table_form_equals_insn_form():
    insns = [OK, Gemm(uop_bgn=0, uop_end=2, iter_out=3, dst_out=2, pop_prev=True), Finish()]
    p = Program(CFG, insns)
    q = Program(CFG, table={k: v for k, v in p.table.items() if k != "module"})
    assert q.insns == p.insns and q.encode() == p.encode()
    assert Program.decode(CFG, p.encode()).insns == p.insns
    assert "1: GEMM uop=0:2 iter=3x1 dst=2,0" in p.disassemble()
