"""End to end: Workload -> schedule -> tensorize -> lowering -> tvm.compile -> simulator, bit-exact vs numpy."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tvm_codesign as tc
from tvm_codesign.schedules import knobs as K
from tvm_codesign.schedules.resnet import resnet18_convs

PRESETS = tc.preset_names()
EPI = dict(bias=True, shift=9, relu=True, out_dtype="int8")


def operands(wl, seed=0):
    rng = np.random.default_rng(seed)
    r = lambda shape: rng.integers(-128, 128, shape, dtype=np.int8)
    if wl.kind == "conv2d":
        x, w = r((wl.n, wl.ci, wl.h, wl.w)), r((wl.co, wl.ci, wl.kh, wl.kw))
    elif wl.kind == "dense":
        x, w = r((wl.n, wl.ci)), r((wl.co, wl.ci))
    else:
        x, w = r((wl.groups, wl.n, wl.ci)), r((wl.groups, wl.co, wl.ci))
    b = rng.integers(-20000, 20000, wl.co).astype(np.int32) if wl.bias else None
    return x, w, b


def check(wl, cfg, knobs=None, seed=0):
    m = tc.build(wl, cfg, knobs=knobs)
    x, w, b = operands(wl, seed)
    out = m(x, w, b) if wl.bias else m(x, w)
    ref = wl.reference(x, w, b)
    assert out.dtype == ref.dtype and out.shape == ref.shape
    assert np.array_equal(out, ref), f"{wl.describe()} on {cfg}: {(out != ref).mean():.3%} of outputs differ"
    return m


@pytest.mark.parametrize("cfg", PRESETS)
@pytest.mark.parametrize("wl", resnet18_convs(**EPI), ids=lambda w: w.name)
def test_resnet18_layers_fused_epilogue_on_every_preset(cfg, wl):
    m = check(wl, cfg)
    st = m.stats
    assert st.macs >= wl.macs and st.cycles > 0
    # VTA granularity: loops fold into instructions, so one GEMM covers many block multiplies
    assert st.activity["gemm_uop_iterations"] / st.instructions["GEMM"] >= 16
    assert st.energy_pj["total"] > 0 and st.dram_write_bytes  # a run reports its figures


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4"])
@pytest.mark.parametrize("wl", resnet18_convs(batch=4, **EPI)[1::3], ids=lambda w: w.name)
def test_resnet18_batch4(cfg, wl):
    check(wl, cfg)


@pytest.mark.parametrize("cfg", PRESETS)
@pytest.mark.parametrize("m,k,n", [(1, 16, 16), (17, 33, 50), (64, 100, 7), (5, 300, 129)])
def test_dense_any_shape(cfg, m, k, n):
    check(tc.Workload.dense(m, k, n), cfg)


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4", "edge_tiny"])
def test_batch_matmul_with_requantisation(cfg):
    check(tc.Workload.batch_matmul(4, 24, 40, 20, bias=True, shift=7, out_dtype="int8"), cfg)
    check(tc.Workload.batch_matmul(2, 9, 16, 16), cfg)


@pytest.mark.parametrize("epi", [dict(), dict(bias=True), dict(shift=4, out_dtype="int8"), dict(clip=(-50, 60)),
                                 dict(relu=True), dict(bias=True, shift=20, clip=(-3, 3), out_dtype="int8"),
                                 dict(shift=0, out_dtype="int8")])
def test_epilogue_variants(epi):
    check(tc.Workload.conv2d(1, 24, 10, 10, 40, 3, 1, 1, **epi), "vta_default")


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4", "edge_tiny"])
@pytest.mark.parametrize("epi", [dict(bias=True, multiplier=1234, shift=18, relu=True, out_dtype="int8"),
                                 dict(multiplier=77, shift=9, out_dtype="int8"),
                                 dict(bias=True, multiplier=30000, shift=24, clip=(-100, 90), out_dtype="int8")])
def test_integer_requantisation_multiply_shift(cfg, epi):
    """(acc + bias) * M >> s on the ALU, wrapping at 32 bits like the hardware (the last case overflows often)."""
    check(tc.Workload.conv2d(1, 24, 10, 10, 40, 3, 1, 1, **epi), cfg)
    check(tc.Workload.dense(9, 70, 33, **epi), cfg)


def test_multiplier_must_fit_the_alu_immediate():
    with pytest.raises(K.KnobError, match="multiplier 40000 exceeds the ALU immediate"):
        tc.build(tc.Workload.dense(4, 16, 16, multiplier=40000, shift=3), "vta_default")


def test_every_knob_order_and_vthread_count_is_exact():
    wl = tc.Workload.conv2d(2, 32, 8, 8, 32, 3, 1, 1, bias=True, shift=6, out_dtype="int8")
    for order in ("nchw", "whcn", "cnhw", "hwnc"):
        for v in (1, 2, 3):
            for ti in (1, 2):  # several reduction steps, and one (operands hoisted per order)
                check(wl, "vta_default", dict(tile_n=1, tile_co=1, tile_h=4, tile_w=8, tile_ci=ti, order=order,
                                              vthreads=v))


def test_double_buffering_overlaps():
    wl = tc.Workload.conv2d(1, 64, 28, 28, 64, 3, 1, 1)
    kn = dict(tile_n=1, tile_co=4, tile_h=7, tile_w=14, tile_ci=1, order="nchw")
    one = tc.build(wl, "vta_default", knobs={**kn, "vthreads": 1}).time()
    two = tc.build(wl, "vta_default", knobs={**kn, "vthreads": 2}).time()
    assert two.cycles < 0.85 * one.cycles  # loads hide behind compute with a second context


# ----- property-based: random shapes x random knob vectors -----------------------------------------
@st.composite
def layer_and_knobs(draw):
    cfg = tc.AcceleratorConfig.load(draw(st.sampled_from(PRESETS)))
    k = draw(st.integers(1, 3)) * 2 - 1
    pad = draw(st.integers(0, k // 2))
    lo = max(1, k - 2 * pad)  # down to 1x1 inputs when padding allows
    wl = tc.Workload.conv2d(draw(st.integers(1, 2)), draw(st.integers(1, 40)), draw(st.integers(lo, 9)),
                            draw(st.integers(lo, 9)), draw(st.integers(1, 40)), k, draw(st.integers(1, 2)),
                            pad, bias=draw(st.booleans()),
                            shift=draw(st.sampled_from([None, 3, 10])), relu=draw(st.booleans()),
                            out_dtype=draw(st.sampled_from(["int8", "int32"])))
    sp = K.space(wl, cfg)
    kn = K.Knobs(**{name: draw(st.sampled_from(choices)) for name, choices in sp.items()})
    return wl, cfg, kn


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layer_and_knobs(), st.integers(0, 1000))
def test_random_layers_and_knobs_exact_or_rejected_up_front(case, seed):
    wl, cfg, kn = case
    if not K.is_valid(wl, cfg, kn):
        with pytest.raises(tc.KnobError):
            tc.build(wl, cfg, knobs=kn)
        return
    check(wl, cfg, kn, seed)


def test_invalid_knobs_name_the_problem():
    wl = tc.Workload.conv2d(1, 64, 56, 56, 64, 3, 1, 1)
    with pytest.raises(tc.KnobError, match="tile_h.*divisor of 56"):
        tc.build(wl, "vta_default", knobs=dict(tile_h=5))
    with pytest.raises(tc.KnobError, match="inp tiles need .* > 2048 .*inp_buffer_bytes"):
        tc.build(wl, "vta_default", knobs=dict(tile_h=28, tile_w=56, tile_ci=4))
    with pytest.raises(tc.KnobError, match="order"):
        tc.build(wl, "vta_default", knobs=dict(order="nchx"))
    with pytest.raises(tc.KnobError, match="vthreads"):
        tc.build(wl, "vta_default", knobs=dict(vthreads=9))
    with pytest.raises(tc.KnobError, match="unknown knob"):
        tc.build(wl, "vta_default", knobs=dict(tile_q=1))


@pytest.mark.parametrize("inp_tile", ["window", "strided", "strided_hwc"])
@pytest.mark.parametrize("wl", [tc.Workload.conv2d(1, 40, 13, 11, 24, 1, 2, 0, **EPI),
                                tc.Workload.conv2d(2, 32, 9, 12, 16, (1, 3), (3, 2), 0, bias=True),
                                tc.Workload.conv2d(1, 16, 8, 8, 32, 1, (2, 1), 0, relu=True, out_dtype="int8")],
                         ids=["1x1s2", "1x3s3x2", "1x1s2x1"])
def test_strided_input_tiles_are_exact(wl, inp_tile):
    """A 1-wide strided kernel dimension: the input tile holds only the pixels read (odd sizes, both layouts)."""
    cib = K.dims(wl, tc.AcceleratorConfig.load("vta_default"))["ci"]
    for knobs in (dict(tile_h=wl.oh, tile_w=wl.ow, tile_ci=cib, vthreads=1),      # one step, whole image
                  dict(tile_h=1, tile_w=wl.ow, order="nhwc", vthreads=2)):        # row tiles, ci steps
        check(wl, "vta_default", {**knobs, "inp_tile": inp_tile})


def test_strided_input_tile_reads_only_the_pixels_it_needs():
    wl = resnet18_convs(**EPI)[9]  # C10: 14x14x256 -> 512, 1x1 stride 2
    knobs = dict(tile_co=1, tile_h=7, tile_w=7, tile_ci=16, order="nhwc", vthreads=2)
    window = tc.build(wl, "vta_default", knobs={**knobs, "tile_h": 1, "tile_w": 7}).time()
    strided = tc.build(wl, "vta_default", knobs={**knobs, "inp_tile": "strided_hwc"}).time()
    assert strided.dram_read_bytes["INP"] == 7 * 7 * 256        # every read pixel once, nothing else
    assert window.dram_read_bytes["INP"] == 7 * 13 * 256     # row tiles: every other column read in vain
    with pytest.raises(tc.KnobError, match="inp tiles need 5408 elements"):
        tc.build(wl, "vta_default", knobs=knobs)             # the dense 13x13 window does not fit
    with pytest.raises(tc.KnobError, match="inp_tile.*1-wide strided kernel"):
        tc.build(resnet18_convs()[1], "vta_default", knobs=dict(inp_tile="strided"))
    with pytest.raises(tc.KnobError, match="inp_tile.*must be one of"):
        tc.build(wl, "vta_default", knobs=dict(inp_tile="dense"))


def test_regression_unpadded_tile_spanning_the_whole_input_height():
    """Found by the property test: TVM's tensorize rejects this input copy; it must still be exact."""
    check(tc.Workload.conv2d(1, 1, 5, 6, 1, 5, 1, 0, out_dtype="int8"), "edge_tiny",
          dict(tile_n=1, tile_co=1, tile_h=1, tile_w=1, tile_ci=1, order="nchw", vthreads=1))


def test_regression_padded_conv_on_a_one_pixel_input():
    """ResNet-18's last stage at 32x32 input: 3x3 pad 1 on a 1x1 map (DRAM index loses the h, w terms)."""
    check(tc.Workload.conv2d(1, 64, 1, 1, 32, 3, 1, 1, bias=True, shift=6, out_dtype="int8"), "vta_default")
    check(tc.Workload.conv2d(2, 16, 1, 3, 16, 3, 1, 1), "edge_tiny")
