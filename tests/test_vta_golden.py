"""VTA's golden vectors (tests/data/vta_golden, README there): programs in VTA's binary format with the outputs VTA's
own HLS source (vta.cc) produced. Every case decodes, runs on this simulator (functional, timing, race check) and
matches out.bin and the accumulator SRAM bit for bit; the decode vectors pin every field of the 128-bit layout."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tvm_codesign import AcceleratorConfig, EncodingError, ProgramError, Simulator
from tvm_codesign.hardware.isa import Mem, Opcode
from tvm_codesign.hardware.vta_format import VtaLayout, decode_insn, encode_insn
from tvm_codesign.simulator import Program
from tvm_codesign.simulator.vta_binary import from_vta, to_vta

GOLDEN = Path(__file__).parent / "data" / "vta_golden"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
CASES = {c["name"]: c for c in MANIFEST["cases"]}
CFG = AcceleratorConfig.load("vta_default")
LAYOUT = VtaLayout.for_config(CFG)


def image(case: dict) -> np.ndarray:
    """The flat DRAM image of README section 3.3: zeros, each input buffer at its byte offset (out stays zero)."""
    img = np.zeros(case["flat_dram_bytes"], np.uint8)
    for region, b in case["buffers"].items():
        if region != "out":
            data = np.fromfile(GOLDEN / case["name"] / b["file"], np.uint8)
            assert len(data) == b["elems"] * b["elem_bytes"]
            img[b["byte_offset"]:b["byte_offset"] + len(data)] = data
    return img


def outputs(case: dict, img: np.ndarray, sim: Simulator) -> tuple[np.ndarray, np.ndarray]:
    o = case["buffers"]["out"]
    out = img[o["byte_offset"]:o["byte_offset"] + o["elems"] * o["elem_bytes"]]
    acc = sim.srams.acc[:case["acc_sram"]["rows"]].reshape(-1).view(np.uint8)
    return out, acc


def test_files_match_the_manifest_sha256():
    files = [(GOLDEN / n, f) for n, f in MANIFEST["common_files"].items()]
    files += [(GOLDEN / c["name"] / n, f) for c in MANIFEST["cases"] for n, f in c["files"].items()]
    assert len(CASES) == 36 and len(files) == 2 + sum(len(c["files"]) for c in MANIFEST["cases"])
    for path, f in files:
        blob = path.read_bytes()
        assert len(blob) == f["bytes"] and hashlib.sha256(blob).hexdigest() == f["sha256"], path


def test_config_is_vta_default():
    c, d = MANIFEST["config"], MANIFEST["config"]["derived"]
    assert (CFG.batch, CFG.block_in, CFG.block_out) == (d["BATCH"], d["BLOCK_IN"], d["BLOCK_OUT"])
    assert (CFG.inp_bits, CFG.wgt_bits, CFG.acc_bits, CFG.out_bits) == tuple(
        1 << c[k] for k in ("LOG_INP_WIDTH", "LOG_WGT_WIDTH", "LOG_ACC_WIDTH", "LOG_OUT_WIDTH"))
    assert (CFG.uop_depth, CFG.inp_depth, CFG.wgt_depth, CFG.acc_depth) == tuple(
        d[k] for k in ("uop_depth", "inp_depth", "wgt_depth", "acc_depth"))


# ----- the 128-bit layout ------------------------------------------------------------------------
VECTORS = json.loads((GOLDEN / "insn_decode_vectors.json").read_text())


@pytest.mark.parametrize("k", range(len(VECTORS["insns"])))
def test_decode_vector_fields(k):
    """Every field as hw_spec.h's structs read it (gcc layout), and the used bits re-encode exactly."""
    v = VECTORS["insns"][k]
    word = int.from_bytes(bytes.fromhex(v["hex_le"]), "little")
    op, fields = LAYOUT.unpack(word)
    assert op == v["opcode"] and fields == v["fields"]
    assert LAYOUT.pack(op, fields) == word & LAYOUT.used_mask(op)
    unused = {0: 0x3F << 58, 1: 0x3F << 58, 2: 1 << 63, 3: 1 << 63, 4: 1 << 63}[op]  # README section 4
    assert LAYOUT.used_mask(op) == (1 << 128) - 1 - unused


def _representable(op: int, f: dict) -> bool:
    """Fields VTA reads that this package's instruction holds as they are (README sections 4 and 6)."""
    if op in (0, 1):
        if f["memory_type"] > 3 and op == 0 or f["y_size"] == 0 or f["x_size"] == 0:
            return False
        pads = f["y_pad_0"] or f["y_pad_1"] or f["x_pad_0"] or f["x_pad_1"]
        if op == 1:  # STORE reads the out buffer, whatever memory_type says; its pads are ignored
            return f["memory_type"] == 4 and not pads
        return not (f["memory_type"] in (0, 1) and pads) and not (f["memory_type"] == 0 and f["y_size"] != 1)
    if op == 3:
        return not any(f.values()) or set(f) == {"pop_prev_dep", "pop_next_dep", "push_prev_dep", "push_next_dep"}
    if op == 4:
        if f["reset_reg"] or f["alu_opcode"] > 3 or (not f["use_imm"] and f["imm"]):
            return False
        return not (f["alu_opcode"] == 3 and f["use_imm"] and not -16 <= f["imm"] <= 15)
    return True


def test_decode_vectors_round_trip_through_package_instructions():
    """decode -> this package's instruction -> encode gives the same bits wherever the package holds every field
    VTA reads; every decoded field keeps its value."""
    checked = 0
    for v in VECTORS["insns"]:
        word = int.from_bytes(bytes.fromhex(v["hex_le"]), "little")
        op, f = v["opcode"], v["fields"]
        fin_flags = {k: x for k, x in f.items() if k.endswith("_dep")}
        if op == 3 and any(x for k, x in f.items() if not k.endswith("_dep")):
            f = fin_flags  # FINISH ignores the rest
        if not _representable(op, f):
            continue
        insn = decode_insn(CFG, word)
        assert insn.opcode == {0: Opcode.LOAD, 1: Opcode.STORE, 2: Opcode.GEMM, 3: Opcode.FINISH, 4: Opcode.ALU}[op]
        assert (insn.pop_prev, insn.pop_next, insn.push_prev, insn.push_next) == tuple(
            bool(f[k]) for k in ("pop_prev_dep", "pop_next_dep", "push_prev_dep", "push_next_dep"))
        if op in (0, 1):
            assert (insn.mem, insn.sram_base, insn.dram_base, insn.y_size, insn.x_size, insn.x_stride) == (
                f["memory_type"], f["sram_base"], f["dram_base"], f["y_size"], f["x_size"], f["x_stride"])
            assert (insn.y_pad0, insn.y_pad1, insn.x_pad0, insn.x_pad1) == tuple(
                f[k] for k in ("y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1"))
        if op in (2, 4):
            assert (insn.uop_bgn, insn.uop_end, insn.iter_out, insn.iter_in, insn.dst_out, insn.dst_in, insn.src_out,
                    insn.src_in) == tuple(f[k] for k in ("uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out",
                                                         "dst_factor_in", "src_factor_out", "src_factor_in"))
        if op == 2:
            assert (insn.reset, insn.wgt_out, insn.wgt_in) == (bool(f["reset_reg"]), f["wgt_factor_out"],
                                                               f["wgt_factor_in"])
        if op == 4:
            assert (insn.op, insn.use_imm, insn.imm) == (f["alu_opcode"], bool(f["use_imm"]), f["imm"])
        used = LAYOUT.used_mask(op) if op != 3 else 0x7F
        assert encode_insn(CFG, insn) == word & used
        checked += 1
    assert checked >= 95  # 97 of the 200 random patterns (random memory types, ALU opcodes and pads drop the rest)


def test_decode_vector_uops():
    words = np.array([int.from_bytes(bytes.fromhex(u["hex_le"]), "little") for u in VECTORS["uops"]], np.uint32)
    want = np.array([[u["dst_idx"], u["src_idx"], u["wgt_idx"]] for u in VECTORS["uops"]])
    assert np.array_equal(LAYOUT.decode_uops(words), want)
    assert np.array_equal(LAYOUT.encode_uops(want), words)


@pytest.mark.parametrize("name", sorted(CASES))
def test_program_binary_round_trips(name):
    """Each golden insn.bin decodes to this package's instructions and encodes back to the same bytes, but for the
    immediate of an ALU with a register operand (ignored by VTA; vta_test.cc leaves random values there, this
    package's ALU holds none)."""
    blob = (GOLDEN / name / "insn.bin").read_bytes()
    table = LAYOUT.decode_table(blob)
    assert len(table["opcode"]) == CASES[name]["insn_count"]
    words = [int.from_bytes(blob[i:i + 16], "little") for i in range(0, len(blob), 16)]
    ignored = [w & 7 == 4 and not (w >> 111) & 1 for w in words]  # ALU, use_imm [111] = 0: imm [127:112] unused
    want = b"".join((w & ~(0xFFFF << 112) if ig else w).to_bytes(16, "little") for w, ig in zip(words, ignored))
    assert LAYOUT.encode_table(CFG, table) == want
    assert (want != blob) == (name.startswith("alu_") and "_vec_" in name and "pos" not in name)


# ----- the programs, run ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_case(name):
    case = CASES[name]
    img = image(case)
    program = from_vta(CFG, (GOLDEN / name / "insn.bin").read_bytes(), img)
    sim = Simulator(CFG)
    stats = sim.run(program, img)  # timing first (deadlock), then functional with the race check
    out, acc = outputs(case, img, sim)
    assert np.array_equal(out, np.fromfile(GOLDEN / name / "out.bin", np.uint8)), "out.bin differs"
    assert np.array_equal(acc, np.fromfile(GOLDEN / name / "acc_sram.bin", np.uint8)), "acc_sram.bin differs"
    assert stats.cycles > 0 and stats.instructions["FINISH"] == 1
    elsewhere = np.ones(len(img), bool)  # no byte outside the out region changes (README section 1)
    o = case["buffers"]["out"]
    elsewhere[o["byte_offset"]:o["byte_offset"] + o["elems"] * o["elem_bytes"]] = False
    assert np.array_equal(img[elsewhere], image(case)[elsewhere])


def test_reset_out_value_needs_the_out_buffer_mapping():
    """HLS writes acc + inp.wgt to the out buffer of a GEMM with reset while the accumulator becomes 0; run as decoded
    (one accumulator SRAM) the stored rows would be 0. from_vta re-issues the reset after the STORE."""
    case = CASES["gemm_reset_then_store"]
    want = np.fromfile(GOLDEN / case["name"] / "out.bin", np.uint8)
    img = image(case)
    plain = Program(CFG, table=LAYOUT.decode_table((GOLDEN / case["name"] / "insn.bin").read_bytes()))
    sim = Simulator(CFG)
    sim.run(plain, img)
    out, _ = outputs(case, img, sim)
    assert not np.array_equal(out[:64], want[:64]) and not out[:64].any()
    mapped = from_vta(CFG, (GOLDEN / case["name"] / "insn.bin").read_bytes(), image(case))
    assert len(mapped) == len(plain) + 1 and mapped.counts()["GEMM"] == plain.counts()["GEMM"] + 1


def _alu_program(alu_fields: dict, acc: np.ndarray):
    """VTA binary: LOAD UOP, LOAD ACC of ``acc`` (rows), one ALU over rows 0..n-1 (operand row n for a vector),
    STORE, FINISH; its DRAM image (uop at byte 4096, acc at 8192, out at 24576) and n."""
    n = len(acc) - (0 if alu_fields.get("use_imm") else 1)
    img = np.zeros(32768, np.uint8)
    img[4096:4100] = LAYOUT.encode_uops([[0, n, 0]]).view(np.uint8)
    img[8192:8192 + acc.nbytes] = acc.view(np.uint8).reshape(-1)
    words = [LAYOUT.pack(0, dict(memory_type=0, dram_base=4096 // 4, y_size=1, x_size=1, x_stride=1)),
             LAYOUT.pack(0, dict(memory_type=3, dram_base=8192 // 64, y_size=1, x_size=len(acc), x_stride=len(acc))),
             LAYOUT.pack(4, dict(uop_bgn=0, uop_end=1, iter_out=n, iter_in=1, dst_factor_out=1, push_next_dep=1,
                                 **alu_fields)),
             LAYOUT.pack(1, dict(memory_type=4, dram_base=24576 // 16, y_size=1, x_size=n, x_stride=n,
                                 pop_prev_dep=1, push_prev_dep=1)),
             LAYOUT.pack(3, dict(pop_next_dep=1))]
    return b"".join(w.to_bytes(16, "little") for w in words), img, n


def _hls_shr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """README section 6: k = low 5 bits of b as signed; k >= 0: a >> k (arithmetic), else (a << -k) mod 2^32."""
    k = (b.astype(np.int64) & 31)
    k = np.where(k >= 16, k - 32, k)
    a = a.astype(np.int64)
    return np.where(k >= 0, a >> np.maximum(k, 0), (a << np.maximum(-k, 0)) & 0xFFFFFFFF).astype(np.uint32).view(
        np.int32)


@pytest.mark.parametrize("imm", [16, 17, 31, -17, -32, 15, -16, 32767, -32768])
def test_shr_immediate_reads_the_low_five_bits(imm):
    """The golden cases keep SHR immediates in -15..15; beyond, HLS shifts by the low 5 bits read as signed."""
    rng = np.random.default_rng(imm & 0xFFFF)
    acc = rng.integers(-2 ** 31, 2 ** 31, (4, 16)).astype(np.int32)
    blob, img, n = _alu_program(dict(alu_opcode=3, use_imm=1, imm=imm), acc)
    sim = Simulator(CFG)
    sim.run(from_vta(CFG, blob, img), img)
    want = _hls_shr(acc, np.full_like(acc, imm))
    assert np.array_equal(sim.srams.acc[:n, 0], want)
    assert np.array_equal(img[24576:24576 + n * 16].view(np.int8).reshape(n, 16), want.astype(np.int8))


def test_vector_shr_in_range_matches_hls():
    """A register shift amount in [-16, 15] (both implementations agree there) gives HLS's result."""
    rng = np.random.default_rng(5)
    acc = rng.integers(-2 ** 31, 2 ** 31, (9, 16)).astype(np.int32)
    acc[8] = rng.integers(-16, 16, 16)
    blob, img, n = _alu_program(dict(alu_opcode=3, use_imm=0, src_factor_out=0), acc)
    sim = Simulator(CFG)
    sim.run(from_vta(CFG, blob, img), img)
    assert np.array_equal(sim.srams.acc[:n, 0], _hls_shr(acc[:n], np.broadcast_to(acc[8], (n, 16))))


def test_decode_rejects_what_vta_does_not_execute():
    alu = LAYOUT.pack(4, dict(alu_opcode=4, uop_end=1, iter_out=1, iter_in=1))
    with pytest.raises(EncodingError, match="MUL is not implemented by VTA's hardware") as e:
        LAYOUT.decode_table(alu.to_bytes(16, "little") * 2)
    assert e.value.index == 0 and e.value.field == "op"
    with pytest.raises(EncodingError, match="memory type VTA's LOAD does not execute"):
        decode_insn(CFG, LAYOUT.pack(0, dict(memory_type=4, y_size=1, x_size=1)))
    with pytest.raises(EncodingError, match="not a VTA opcode"):
        LAYOUT.decode_table((5).to_bytes(16, "little"))
    with pytest.raises(EncodingError, match="whole number"):
        LAYOUT.decode_table(b"\0" * 17)


def test_store_of_loaded_rows_cannot_be_mapped():
    """VTA stores its out buffer, which LOAD ACC does not write: a program storing loaded rows raises, naming the
    STORE (this simulator would store the loaded values)."""
    acc = np.arange(64, dtype=np.int32).reshape(4, 16)
    blob, img, _ = _alu_program(dict(alu_opcode=2, use_imm=1, imm=1), acc)
    words = [blob[i:i + 16] for i in range(0, len(blob), 16)]
    no_alu = b"".join(words[:2] + words[3:])
    with pytest.raises(ProgramError, match="last written by a LOAD ACC") as e:
        from_vta(CFG, no_alu, img)
    assert e.value.index == 2
    plain = Program(CFG, table=LAYOUT.decode_table(no_alu))
    with pytest.raises(ProgramError, match="insert an ALU SHR 0"):
        to_vta(plain, img)


def _binary(*insns) -> bytes:
    return b"".join(LAYOUT.pack(op, f).to_bytes(16, "little") for op, f in insns)


def _gemm_image(uops, inp, wgt):
    """uop words at byte 4096 (element 1024), inp at 8192 (element 512), wgt at 12288 (element 48), out at 24576."""
    img = np.zeros(32768, np.uint8)
    words = LAYOUT.encode_uops(uops).view(np.uint8)
    img[4096:4096 + len(words)] = words
    img[8192:8192 + inp.nbytes] = inp.view(np.uint8).reshape(-1)
    img[12288:12288 + wgt.nbytes] = wgt.view(np.uint8).reshape(-1)
    return img


def test_fields_vta_ignores():
    """README section 6: LOAD WGT ignores its pads, LOAD UOP copies x_size micro-ops whatever y_size, STORE reads the
    out buffer whatever its memory type, ALU ignores reset_reg. Each run checked against numpy."""
    rng = np.random.default_rng(3)
    inp = rng.integers(-128, 128, (2, 16), dtype=np.int8)
    wgt = rng.integers(-128, 128, (1, 16, 16), dtype=np.int8)
    img = _gemm_image([[0, 0, 0], [1, 1, 0], [7, 7, 7]], inp, wgt)
    prog = _binary(
        (0, dict(memory_type=0, dram_base=1024, y_size=2, x_size=2, x_stride=2)),        # y_size ignored
        (0, dict(memory_type=2, dram_base=512, y_size=1, x_size=2, x_stride=2, push_next_dep=1)),
        (0, dict(memory_type=1, dram_base=48, y_size=1, x_size=1, x_stride=1, y_pad_0=1, x_pad_0=2,
                 push_next_dep=1)),                                                       # pads ignored
        (2, dict(reset_reg=1, uop_bgn=0, uop_end=2, iter_out=1, iter_in=1, pop_prev_dep=1)),
        (2, dict(uop_bgn=0, uop_end=2, iter_out=1, iter_in=1, pop_prev_dep=1, push_prev_dep=1)),
        (4, dict(reset_reg=1, uop_bgn=0, uop_end=2, iter_out=1, iter_in=1, alu_opcode=2, use_imm=1, imm=5,
                 push_next_dep=1)),                                                       # reset_reg ignored
        (1, dict(memory_type=3, dram_base=1536, y_size=1, x_size=2, x_stride=2, pop_prev_dep=1, push_prev_dep=1)),
        (3, dict(pop_next_dep=1)))
    program = from_vta(CFG, prog, img)
    t = program.table
    assert t["y_size"][0] == 1 and t["mem"][6] == Mem.OUT and not t["x_pad0"][2] and not t["reset"][5]
    sim = Simulator(CFG)
    sim.run(program, img)
    want = inp.astype(np.int32) @ wgt[0].astype(np.int32).T + 5
    assert np.array_equal(sim.srams.acc[:2, 0], want)
    assert np.array_equal(img[24576:24576 + 32].view(np.int8).reshape(2, 16), want.astype(np.int8))
    assert np.array_equal(sim.srams.uop[:3], [[0, 0, 0], [1, 1, 0], [0, 0, 0]])  # two micro-ops copied, not four


def test_stored_reset_rows_after_a_partial_touch_cannot_be_mapped():
    """A reset of rows 0-1, an ALU on row 0 (the reset is re-issued before it, zeroing both rows), then a STORE of
    row 1, whose out value VTA still holds: refused naming the STORE. Without the ALU the reset is re-issued before
    FINISH, which hands it its pop, and the result is VTA's."""
    rng = np.random.default_rng(4)
    inp = rng.integers(-128, 128, (2, 16), dtype=np.int8)
    wgt = rng.integers(-128, 128, (1, 16, 16), dtype=np.int8)
    img = _gemm_image([[0, 0, 0], [1, 1, 0]], inp, wgt)
    head = [(0, dict(memory_type=0, dram_base=1024, y_size=1, x_size=2, x_stride=2)),
            (0, dict(memory_type=2, dram_base=512, y_size=1, x_size=2, x_stride=2)),
            (0, dict(memory_type=1, dram_base=48, y_size=1, x_size=1, x_stride=1, push_next_dep=1)),
            (2, dict(reset_reg=1, uop_bgn=0, uop_end=2, iter_out=1, iter_in=1, pop_prev_dep=1))]
    alu = (4, dict(uop_bgn=0, uop_end=1, iter_out=1, iter_in=1, alu_opcode=2, use_imm=1, imm=1, push_next_dep=1))
    store = (1, dict(memory_type=4, sram_base=1, dram_base=1536, y_size=1, x_size=1, x_stride=1, pop_prev_dep=1,
                     push_prev_dep=1))
    with pytest.raises(ProgramError, match="reset GEMM 3.*not expressible") as e:
        from_vta(CFG, _binary(*head, alu, store, (3, dict(pop_next_dep=1))), img)
    assert e.value.index == 5
    head[-1][1]["push_next_dep"] = 1
    program = from_vta(CFG, _binary(*head, store, (3, dict(pop_next_dep=1))), img)
    assert program.table["reset"].tolist() == [0, 0, 0, 0, 0, 1, 0] and program.table["pop_next"][5] == 1
    sim = Simulator(CFG)
    sim.run(program, img)
    want = inp[1].astype(np.int32) @ wgt[0].astype(np.int32).T
    assert np.array_equal(img[24576:24576 + 16].view(np.int8), want.astype(np.int8))
    assert not sim.srams.acc[:2].any()
