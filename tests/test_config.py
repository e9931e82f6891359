import json

import pytest

from tvm_codesign import AcceleratorConfig, ConfigError, preset_names


def test_presets_exist_and_differ():
    names = preset_names()
    assert "vta_default" in names and len(names) >= 4
    cfgs = [AcceleratorConfig.load(n) for n in names]
    assert len({c.key for c in cfgs}) == len(cfgs)
    shapes = {(c.batch, c.block_in, c.block_out) for c in cfgs}
    assert {(1, 16, 16), (1, 32, 32), (4, 16, 16)} <= shapes
    assert len({c.dram_bandwidth for c in cfgs}) >= 3
    assert len({(c.inp_buffer_bytes, c.wgt_buffer_bytes, c.acc_buffer_bytes) for c in cfgs}) >= 3
    assert any(c.clock_mhz == 333 and c.dram_bandwidth == 16 for c in cfgs)


def test_vta_default_is_the_pynq_config():
    c = AcceleratorConfig.load("vta_default")
    assert (c.batch, c.block_in, c.block_out) == (1, 16, 16)
    assert (c.inp_bits, c.wgt_bits, c.acc_bits, c.out_bits) == (8, 8, 32, 8)
    assert (c.uop_buffer_bytes, c.inp_buffer_bytes, c.wgt_buffer_bytes, c.acc_buffer_bytes) == (
        32 << 10, 32 << 10, 256 << 10, 128 << 10)
    assert (c.clock_mhz, c.dram_bandwidth) == (100, 8)
    # derived sizes from the VTA reference
    assert (c.inp_elem_bytes, c.wgt_elem_bytes, c.acc_elem_bytes, c.out_elem_bytes) == (16, 256, 64, 16)
    assert (c.uop_depth, c.inp_depth, c.wgt_depth, c.acc_depth) == (8192, 2048, 1024, 2048)
    assert c.uop_bytes == 4 and c.peak_gops == pytest.approx(51.2)
    assert c.key == AcceleratorConfig().key  # the dataclass defaults are the same hardware
    # VTA's Chisel ALU (II 1 with an immediate, 2 vector-vector, one lane per element) and AXI DMA (16-beat
    # bursts, 16 reads in flight, tsim's idle cycle between bursts)
    assert (c.alu_ii_imm, c.alu_ii_vec, c.alu_lanes, c.alu_passes) == (1, 2, 16, 1)
    assert (c.dma_burst_beats, c.dma_request_cycles, c.dma_outstanding) == (16, 1, 16)


def test_alu_lanes_default_to_the_vector_and_follow_it():
    """No alu_lanes: one lane per accumulator of a batch x block_out vector; a full-width ALU stays full width
    when the core is reshaped, a narrower one keeps its lanes (and may then be too wide)."""
    assert AcceleratorConfig(batch=2, block_out=32).alu_lanes == 64
    base = AcceleratorConfig.load("edge_tiny")  # 1x8x8: 8 lanes
    assert base.alu_lanes == 8 and base.replace(block_out=16).alu_lanes == 16
    assert base.replace(batch=2, block_out=16).alu_lanes == 32
    narrow = base.replace(alu_lanes=2)
    assert narrow.alu_passes == 4 and narrow.replace(block_out=16).alu_lanes == 2
    assert base.replace(alu_lanes=3).alu_passes == 3  # ceil(8 / 3)
    assert base.replace(block_out=16, alu_lanes=4).alu_lanes == 4
    with pytest.raises(ConfigError, match="alu_lanes.*exceeds batch x block_out = 4"):
        base.replace(block_out=16, alu_lanes=8).replace(block_out=4)
    assert AcceleratorConfig.from_dict({"name": "x", "block_out": 32}).alu_lanes == 32
    assert base.replace(alu_lanes=4).key != base.key


def test_old_alu_ii_names_its_replacement(tmp_path):
    """A config written before the ALU II was split by operand: a clear error naming the new fields."""
    old = AcceleratorConfig.load("vta_default").to_dict()
    del old["alu_ii_imm"], old["alu_ii_vec"]
    old["alu_ii"] = 2
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="'alu_ii': no longer a field.*alu_ii_imm.*alu_ii_vec") as e:
        AcceleratorConfig.load(tmp_path / "old.json")
    assert e.value.field == "alu_ii"
    with pytest.raises(ConfigError, match="alu_ii_imm"):
        AcceleratorConfig.load("vta_default").replace(alu_ii=1)
    from tvm_codesign.hardware.space import DesignSpace
    with pytest.raises(ConfigError, match="'alu_ii': no longer a field"):
        DesignSpace.from_dict({"name": "s", "params": {"alu_ii": [1, 2]}})


def test_isa_widths_derive_from_config():
    d = AcceleratorConfig.load("vta_default").isa_layout
    from tvm_codesign.hardware.isa import Opcode
    assert d.bits_used(Opcode.GEMM) == 127 and d.bits_used(Opcode.ALU) <= 128  # VTA's default nearly fills 128
    big = AcceleratorConfig(acc_buffer_bytes=256 << 10, insn_bits=192)  # 4096-deep acc: 12-bit indices
    assert big.isa_layout.field_range(Opcode.GEMM, "dst_out") == (0, 4095)
    assert big.uop_bytes == 8  # 12 + 12 + 10 index bits no longer fit a 32-bit micro-op


def test_roundtrip_dict_json_and_key(tmp_path):
    for n in preset_names():
        c = AcceleratorConfig.load(n)
        assert AcceleratorConfig.from_dict(c.to_dict()) == c
        p = c.save(tmp_path / f"{n}.json")
        assert AcceleratorConfig.load(p) == c
        assert AcceleratorConfig.load(str(p)).key == c.key
    a = AcceleratorConfig()
    assert a.key == AcceleratorConfig(name="other", description="x").key  # identity ignores the name
    assert a.key != a.replace(dram_bandwidth=16.0).key
    assert a.key.startswith("1x16x16-") and "/" not in a.key
    assert AcceleratorConfig(dram_bandwidth=8, clock_mhz=100).key == a.key  # int and float spell the same value


def test_targets_env_dir(tmp_path, monkeypatch):
    AcceleratorConfig(name="mine", dram_bandwidth=4.0).save(tmp_path / "mine.json")
    monkeypatch.setenv("TVM_CODESIGN_TARGETS", str(tmp_path))
    assert AcceleratorConfig.load("mine").dram_bandwidth == 4.0
    assert "mine" in preset_names()


@pytest.mark.parametrize("changes, field, words", [
    (dict(batch=3), "batch", "power of two"),
    (dict(block_in=0), "block_in", "power of two"),
    (dict(block_out=24), "block_out", "power of two"),
    (dict(batch=True), "batch", "power of two"),
    (dict(dram_bandwidth="8"), "dram_bandwidth", "> 0"),
    (dict(dram_bandwidth=float("nan")), "dram_bandwidth", "> 0"),
    (dict(clock_mhz=float("inf")), "clock_mhz", "finite"),
    (dict(inp_buffer_bytes=48 * 1024), "inp_buffer_bytes", "power of two"),
    (dict(wgt_buffer_bytes=128), "wgt_buffer_bytes", "cannot hold one 256 B element"),
    (dict(acc_buffer_bytes=32), "acc_buffer_bytes", "cannot hold one 64 B element"),
    (dict(dram_bandwidth=-8.0), "dram_bandwidth", "> 0"),
    (dict(dram_bandwidth=0), "dram_bandwidth", "> 0"),
    (dict(clock_mhz=0), "clock_mhz", "> 0"),
    (dict(dram_latency=-1), "dram_latency", ">= 0"),
    (dict(alu_ii_imm=0), "alu_ii_imm", ">= 1"),
    (dict(alu_ii_vec=0), "alu_ii_vec", ">= 1"),
    (dict(alu_lanes=0), "alu_lanes", ">= 1"),
    (dict(alu_lanes=32), "alu_lanes", "exceeds batch x block_out = 16"),
    (dict(batch=2, block_out=8, alu_lanes=32), "alu_lanes", "exceeds batch x block_out = 16"),
    (dict(dma_burst_beats=0), "dma_burst_beats", ">= 1"),
    (dict(dma_burst_beats=512), "dma_burst_beats", "exceeds 256"),
    (dict(dma_burst_beats=256, dram_bandwidth=32.0), "dma_burst_beats", "8192 B exceeds 4096 B"),
    (dict(dma_request_cycles=-1), "dma_request_cycles", ">= 0"),
    (dict(dma_outstanding=0), "dma_outstanding", ">= 1"),
    (dict(queue_depth=0), "queue_depth", ">= 1"),
    (dict(inp_bits=4), "inp_bits", "not supported"),
    (dict(out_bits=32, acc_bits=16), "out_bits", "exceeds acc_bits"),
    (dict(insn_bits=100), "insn_bits", "multiple of 64"),
    (dict(inp_buffer_bytes=64 << 10, acc_buffer_bytes=256 << 10), "insn_bits", "GEMM needs 129 bits"),
    (dict(loop_iter_bits=20), "insn_bits", "needs"),
])
def test_bad_config_names_field_and_limit(changes, field, words):
    with pytest.raises(ConfigError, match=words) as e:
        AcceleratorConfig(**changes)
    assert e.value.field == field and field in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="no preset named 'nope'.*vta_default"):
        AcceleratorConfig.load("nope")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        AcceleratorConfig.load(tmp_path / "bad.json")
    (tmp_path / "extra.json").write_text(json.dumps({"name": "x", "blok_in": 16}))
    with pytest.raises(ConfigError, match="'blok_in': unknown field"):
        AcceleratorConfig.load(tmp_path / "extra.json")
    with pytest.raises(ConfigError, match="does not exist"):
        AcceleratorConfig.load(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        AcceleratorConfig.from_dict([1, 2])
