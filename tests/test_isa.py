import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvm_codesign import AcceleratorConfig, EncodingError, Program, ProgramError, preset_names
from tvm_codesign.hardware.asm import assemble, disassemble, format_insn, parse_insn
from tvm_codesign.hardware.isa import (INSN_CLASSES, Alu, AluOp, Gemm, Load, Mem, Opcode, decode_uops,
                                       encode_uops)

PRESETS = {n: AcceleratorConfig.load(n) for n in preset_names()}


@st.composite
def instruction(draw, cfg):
    """Any instruction whose fields fit the config's layout (not necessarily semantically valid)."""
    op = draw(st.sampled_from(list(Opcode)))
    kw = {}
    for name, w, signed in cfg.isa_layout.fields[op][1:]:
        lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
        if name == "mem":
            kw[name] = draw(st.sampled_from(list(Mem)))
        elif name == "op":
            kw[name] = draw(st.sampled_from(list(AluOp)))
        elif w == 1 and not signed:
            kw[name] = draw(st.booleans())
        else:
            kw[name] = draw(st.integers(lo, hi))
    if op == Opcode.ALU and not kw["use_imm"]:
        kw["imm"] = 0  # canonical form: register-mode ALU instructions carry no immediate
    return INSN_CLASSES[op](**kw)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_encode_decode_roundtrip(name):
    cfg = PRESETS[name]
    layout = cfg.isa_layout

    @settings(max_examples=300, deadline=None)
    @given(st.lists(instruction(cfg), min_size=1, max_size=8))
    def check(insns):
        for x in insns:
            word = layout.encode(x)
            assert 0 <= word < 1 << cfg.insn_bits
            assert layout.decode(word) == x
            assert parse_insn(format_insn(x)) == x  # assembly text round-trips too
        blob = layout.encode_program(insns)
        assert len(blob) == len(insns) * cfg.insn_bits // 8
        assert layout.decode_program(blob) == insns

    check()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_uop_roundtrip(name):
    cfg = PRESETS[name]
    rng = np.random.default_rng(0)
    hi = [1 << w for w in cfg.uop_fields]
    u = np.stack([rng.integers(0, h, 1000) for h in hi], axis=1)
    words = encode_uops(u, cfg)
    assert words.dtype.itemsize == cfg.uop_bytes
    assert np.array_equal(decode_uops(words, cfg), u)
    with pytest.raises(EncodingError, match="uop.wgt"):
        encode_uops([(0, 0, hi[2])], cfg)


def test_field_overflow_names_field_and_width():
    layout = AcceleratorConfig().isa_layout
    with pytest.raises(EncodingError, match="iter_out.*does not fit 14 bits") as e:
        layout.encode(Gemm(uop_bgn=0, uop_end=1, iter_out=1 << 14), index=3)
    assert e.value.index == 3 and e.value.field == "iter_out"
    with pytest.raises(EncodingError, match="imm"):
        layout.encode(Alu(op=AluOp.ADD, uop_bgn=0, uop_end=1, use_imm=True, imm=1 << 15))
    layout.encode(Alu(op=AluOp.ADD, uop_bgn=0, uop_end=1, use_imm=True, imm=-(1 << 15)))  # fits: signed
    with pytest.raises(EncodingError, match="dram_base"):
        layout.encode(Load(mem=Mem.INP, sram_base=0, dram_base=1 << 32, y_size=1, x_size=1, x_stride=1))


def test_decode_rejects_garbage():
    layout = AcceleratorConfig().isa_layout
    with pytest.raises(EncodingError, match="unknown opcode"):
        layout.decode(7)
    with pytest.raises(EncodingError, match="must be zero"):
        layout.decode(Opcode.FINISH | (1 << 100))
    with pytest.raises(EncodingError, match="whole number"):
        layout.decode_program(b"\0" * 17)


def test_program_level_checks_use_the_same_widths():
    cfg = AcceleratorConfig()
    with pytest.raises(EncodingError, match="instruction 1, field 'sram_base'"):
        Program(cfg, [Load(mem=Mem.INP, sram_base=0, dram_base=0, y_size=1, x_size=1, x_stride=1),
                      Load(mem=Mem.INP, sram_base=1 << 13, dram_base=0, y_size=1, x_size=1, x_stride=1)])


def test_disassembly_is_readable_and_reversible():
    text = """
    0: LOAD UOP sram=0 dram=4 y=1 x=3 stride=3
       LOAD INP sram=0 dram=64 y=14 x=14 stride=56 pad=1,1,1,1 pop_next  # padded tile
       GEMM uop=0:3 iter=14x14 dst=14,1 src=16,1 wgt=0,0 pop_prev push_next
       ALU SHR imm=-2 uop=0:1 iter=1x4 dst=0,1 src=0,1
       ALU MAX uop=0:1 iter=1x4 dst=0,1 src=0,1
       STORE OUT sram=0 dram=0 y=1 x=196 stride=196 pop_prev
       FINISH
    """
    insns = assemble(text)
    assert len(insns) == 7 and insns[1].x_pad0 == 1 and insns[3].imm == -2 and not insns[4].use_imm
    out = disassemble(insns)
    assert "LOAD INP sram=0 dram=64 y=14 x=14 stride=56 pad=1,1,1,1 pop_next" in out
    assert assemble(out) == insns
    with pytest.raises(ProgramError, match="unknown mnemonic 'JUMP'"):
        assemble("JUMP 3")
    with pytest.raises(ProgramError, match="unknown operand 'foo=1'"):
        assemble("GEMM uop=0:1 foo=1")
    with pytest.raises(ProgramError, match="cannot parse"):
        assemble("LOAD BANANA sram=0")
