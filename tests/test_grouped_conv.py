"""Grouped and depthwise convolutions on the accelerator: bit-exact through tc.build (one group per kernel group
and merged into block-diagonal kernel groups), through the Relax offload, PTQ (ALU and CPU requantisation) and
onnxruntime's QDQ models; the merge pays and the cost model prices what runs."""
import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import tvm
from tvm import relax
from onnxruntime import quantization as quant

import tvm_codesign as tc
from tvm_codesign.costmodel import analytical as A
from tvm_codesign.frontend.relax import offload, offloaded, workload_of
from tvm_codesign.schedules import groups as G
from tvm_codesign.schedules.workload import WorkloadError

W = tc.Workload.conv2d
EP8 = dict(bias=True, shift=7, relu=True, out_dtype="int8")
SHAPES = [
    W(1, 8, 6, 7, 12, 3, 1, 1, groups=2),                                           # 4 -> 6 per group
    W(2, 9, 7, 7, 15, 1, 1, 0, groups=3, **EP8),                                    # 1x1, batch 2
    W(1, 20, 9, 9, 12, 5, 2, 2, groups=4, bias=True, multiplier=77, shift=12, out_dtype="int8"),
    W(2, 24, 7, 7, 24, 3, 2, 1, groups=24, **EP8),                                  # depthwise, stride 2
    W(1, 12, 5, 6, 24, 3, 1, 1, groups=12, bias=True),                              # channel multiplier 2
    W(1, 40, 8, 8, 40, 3, 1, 1, groups=40, clip=(-50, 60), out_dtype="int8"),       # merge 14: last group partial
    W(1, 20, 9, 9, 20, 7, 1, 3, groups=20),                                         # 7x7 depthwise
    W(1, 32, 8, 8, 16, 1, 2, 0, groups=4, **EP8),                                   # 1x1 stride 2 (strided tiles)
]


def args_for(wl, rng):
    x = rng.integers(-128, 128, (wl.n, wl.channels_in, wl.h, wl.w), dtype=np.int8)
    w = rng.integers(-128, 128, (wl.channels_out, wl.ci, wl.kh, wl.kw), dtype=np.int8)
    return (x, w, rng.integers(-20000, 20000, wl.channels_out).astype(np.int32)) if wl.bias else (x, w)


def test_reference_matches_torch():
    """Workload.reference on grouped convs against torch's conv2d (float64: integer sums below 2^53 are exact)."""
    rng = np.random.default_rng(0)
    for wl in SHAPES:
        x, w = args_for(wl, rng)[:2]
        t = torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                                       stride=wl.stride, padding=wl.pad, groups=wl.groups).numpy().astype(np.int64)
        assert np.array_equal(tc.Workload(**{**wl.to_dict(), "bias": False, "shift": None, "multiplier": None,
                                              "relu": False, "clip": None, "out_dtype": "int32"}).reference(x, w), t)
        assert wl.macs == t.size * wl.ci * wl.kh * wl.kw  # real MACs: each output sums ci * kh * kw products


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4", "vta_1x32x32"])
@pytest.mark.parametrize("merge", ["one", "derived"])
def test_grouped_conv_bit_exact(cfg, merge):
    cfg = tc.AcceleratorConfig.load(cfg)
    rng = np.random.default_rng(1)
    for wl in SHAPES:
        kwl = G.merged(wl, cfg, 1 if merge == "one" else None)
        a = args_for(wl, rng)
        m = tc.build(kwl, cfg)
        assert np.array_equal(m(*a), wl.reference(*a)), (kwl.describe(), cfg.name)
        assert m.stats.macs >= wl.macs and kwl.macs == wl.macs


def test_merge_factor_fills_the_blocks():
    d, wide, tiny = (tc.AcceleratorConfig.load(c) for c in ("vta_default", "vta_1x32x32", "edge_tiny"))
    dw = W(1, 96, 14, 14, 96, 3, 1, 1, groups=96)
    assert (G.merge_factor(dw, d), G.merge_factor(dw, wide), G.merge_factor(dw, tiny)) == (16, 32, 8)
    assert G.merge_factor(W(1, 40, 8, 8, 40, 3, 1, 1, groups=40), d) == 14      # 3 kernel groups, as 16 would
    assert G.merge_factor(W(1, 96, 14, 14, 192, 3, 1, 1, groups=96), d) in (8, 16)  # 16 outputs per block
    assert G.merge_factor(W(1, 96, 13, 13, 256, 3, 1, 1, groups=2), d) == 1    # AlexNet: 48 -> 128 per group
    assert G.merge_factor(W(1, 240, 7, 7, 240, 1, groups=3), d) == 1          # ShuffleNet 1x1: 80 per group
    assert G.merge_factor(W(1, 64, 8, 8, 64, 3, 1, 1), d) == 1
    assert G.kernel_workload(W(1, 3, 32, 32, 16, 7, 2, 3), d).kw == 1             # the stem still folds


def test_merge_pays_and_the_model_sees_it():
    """A MobileNetV2 depthwise layer on vta_default: merged 16 groups per block vs one group per block, both with
    the analytical model's best schedule, simulated."""
    cfg = tc.AcceleratorConfig.load("vta_default")
    from tvm_codesign.tuner import knob_grid
    wl = W(1, 96, 28, 28, 96, 3, 1, 1, groups=96, **EP8)
    cyc = {}
    for k in (1, None):
        kwl = G.merged(wl, cfg, k)
        knobs, fig = knob_grid.best(kwl, cfg)
        st = tc.build(kwl, cfg, knobs=knobs).time()
        cyc[kwl.merge] = st.cycles
        assert abs(fig["cycles"] / st.cycles - 1) < 0.1
    assert cyc[16] * 5 < cyc[1], cyc


def test_workload_errors():
    with pytest.raises(WorkloadError, match="groups 3 must be a positive integer dividing ci 8"):
        W(1, 8, 6, 6, 12, 3, groups=3)
    with pytest.raises(WorkloadError, match="merge 5 needs a conv2d with at least that many groups"):
        W(1, 8, 6, 6, 8, 3, groups=4, merge=5)
    with pytest.raises(WorkloadError, match="merge 2 needs a conv2d"):
        tc.Workload.batch_matmul(4, 8, 16, 16, merge=2)
    m = tc.build(W(1, 8, 6, 6, 8, 3, 1, 1, groups=8, merge=8), "vta_default")
    with pytest.raises(WorkloadError, match=r"weight .* must have shape \(8, 1, 3, 3\)"):
        m(np.zeros((1, 8, 6, 6), np.int8), np.zeros((8, 8, 3, 3), np.int8))


def _relax_conv(x_shape, w, groups, stride, pad, bias=None):
    """int8 conv2d(groups) -> int32, optionally + bias, relu, >> 6, clip, int8 (the fused epilogue)."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(x_shape, "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(x, relax.const(w), strides=stride, padding=pad, groups=groups,
                                           out_dtype="int32"))
            if bias is not None:
                y = bb.emit(relax.op.add(y, relax.const(bias.reshape(1, -1, 1, 1))))
                y = bb.emit(relax.op.right_shift(y, relax.const(6, "int32")))
                y = bb.emit(relax.op.astype(relax.op.clip(y, 0, 127), "int8"))
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    return bb.get()


@pytest.mark.parametrize("cfg", ["vta_default", "vta_batch4"])
def test_relax_offload_grouped_bit_exact(cfg):
    """Through the offload pass (TIR packing of merged groups, block-diagonal weights folded at compile time,
    fused bias/shift/relu/clip epilogue): equal to TVM's own CPU build of the same module."""
    rng = np.random.default_rng(2)
    for (n, c, h, co, k, s, p, g), fused in [((2, 40, 9, 40, 3, 2, 1, 40), True), ((1, 12, 7, 24, 3, 1, 1, 12), False),
                                             ((1, 24, 6, 36, 1, 1, 0, 3), True)]:
        w = rng.integers(-128, 128, (co, c // g, k, k), dtype=np.int8)
        b = rng.integers(-3000, 3000, co).astype(np.int32) if fused else None
        mod = _relax_conv((n, c, h, h), w, g, (s, s), (p, p), b)
        off = offload(cfg)(mod)
        ks = offloaded(off)
        assert len(ks) == 1 and ks[0]["workload"]["groups"] == g and ks[0]["workload"]["bias"] == fused
        assert ks[0]["workload"]["merge"] == G.merge_factor(tc.Workload(**{**ks[0]["workload"], "merge": 1}),
                                                             tc.AcceleratorConfig.load(cfg))
        assert "_pack_w" not in off["main"].script()
        x = rng.integers(-128, 128, (n, c, h, h), dtype=np.int8)
        run = lambda m: relax.VirtualMachine(tvm.compile(m, target="llvm"), tvm.cpu())["main"](
            tvm.runtime.tensor(x)).numpy()
        assert np.array_equal(run(off), run(mod))


def test_workload_of_takes_grouped_int8_convs():
    mod = _relax_conv((1, 12, 7, 7), np.zeros((24, 1, 3, 3), np.int8), 12, (2, 2), (1, 1))
    call = [b.value for blk in mod["main"].body.blocks for b in blk.bindings][0]
    wl = workload_of(call)
    assert (wl.groups, wl.ci, wl.co, wl.channels_in, wl.channels_out, wl.stride, wl.merge) == \
        (12, 1, 2, 12, 24, (2, 2), 1)
    assert wl.macs == 24 * 4 * 4 * 9


class DW(torch.nn.Module):
    """Depthwise (multiplier 1 and 2, stride 2, MobileNet), a group-4 3x3 conv, a group-2 5x5 conv (AlexNet), a
    group-4 1x1 conv with a channel shuffle (ShuffleNet) and pointwise convs."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 24, 3, padding=1)
        self.dw = torch.nn.Conv2d(24, 24, 3, stride=2, padding=1, groups=24)
        self.dw2 = torch.nn.Conv2d(24, 48, 3, padding=1, groups=24)
        self.g4 = torch.nn.Conv2d(48, 32, 3, padding=1, groups=4)
        self.g2 = torch.nn.Conv2d(32, 40, 5, padding=2, groups=2)
        self.shuffle = torch.nn.Conv2d(40, 32, 1, groups=4)
        self.pw = torch.nn.Conv2d(32, 16, 1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        x = torch.nn.functional.relu6(self.dw(x))
        x = torch.relu(self.g4(torch.relu(self.dw2(x))))
        x = torch.relu(self.shuffle(torch.relu(self.g2(x))))
        n, c, h, w = x.shape
        x = x.reshape(n, 4, c // 4, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.fc(self.pw(x).mean((2, 3)))


def _xs(n, first=0, shape=(1, 3, 12, 12)):
    return [np.random.default_rng(first + i).standard_normal(shape).astype(np.float32) for i in range(n)]


def _convs_on_cpu(cm):
    return {op: n for op, n in cm.cpu_ops.items() if "conv" in op}


@pytest.mark.parametrize("requant", ["alu", "cpu"])
def test_ptq_grouped_convs_offloaded(requant):
    """Float grouped / depthwise convs become quantisation targets (per-tensor weights with ALU requantisation,
    per-channel with CPU requantisation) and run on the accelerator."""
    torch.manual_seed(0)
    model = DW().eval()
    cm = tc.compile(model, "vta_default", calibration=[(x,) for x in _xs(4)], requant=requant)
    assert not _convs_on_cpu(cm), cm.cpu_ops
    convs = [k["workload"] for k in cm.kernels if k["workload"]["kind"] == "conv2d"]
    assert sorted(w["groups"] for w in convs) == [1, 1, 2, 4, 4, 24, 24]
    if requant == "alu":  # bias, requantisation and ReLU / ReLU6 fused: int8 out of every grouped kernel
        assert all(w["out_dtype"] == "int8" and w["bias"] and w["multiplier"] for w in convs if w["groups"] > 1)
    for x in _xs(4, first=100):
        ref = model(torch.as_tensor(x)).detach().numpy()
        out = cm(x)
        assert float((out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref)) > 0.995


def test_mobilenet_v2_depthwise_on_the_accelerator():
    """MobileNetV2 x0.35 at 32x32 with per-channel weights and CPU requantisation (the ALU path is covered by
    test_models): every conv, its 17 depthwise ones included, on the accelerator; cosine to torch fp32."""
    from tvm_codesign import models
    model = models.mobilenet_v2(10, width=0.35)
    shape = (1, 3, 32, 32)
    cm = tc.compile(model, "vta_default", calibration=[(x,) for x in _xs(4, shape=shape)], requant="cpu")
    assert not _convs_on_cpu(cm), cm.cpu_ops
    dw = [k["workload"] for k in cm.kernels if k["workload"]["groups"] > 1]
    assert dw and all(w["ci"] == 1 and w["merge"] > 1 for w in dw)
    assert sum(cm.calls[k["name"]] for k in cm.kernels if k["workload"]["groups"] > 1) == 17
    for x in _xs(4, first=100, shape=shape):
        ref = model(torch.as_tensor(x)).detach().numpy()
        out = cm(x)
        assert float((out * ref).sum() / np.linalg.norm(out) / np.linalg.norm(ref)) > 0.995
        assert out.argmax() == ref.argmax()


@pytest.mark.parametrize("act,per_channel", [("QUInt8", True), ("QInt8", False)])
def test_qdq_depthwise_bit_exact_with_onnxruntime(tmp_path, act, per_channel):
    """onnxruntime-quantised (QDQ) depthwise and grouped convs run as integer kernels on the accelerator and equal
    onnxruntime's own execution of the graph bit for bit."""
    torch.manual_seed(1)
    buf = io.BytesIO()
    torch.onnx.export(DW().eval(), (torch.as_tensor(_xs(1)[0]),), buf, input_names=["x"], opset_version=17,
                      dynamo=False)
    (tmp_path / "f.onnx").write_bytes(buf.getvalue())

    class Reader(quant.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": x} for x in _xs(8)])

        def get_next(self):
            return next(self.it, None)

    quant.quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(),
                          quant_format=quant.QuantFormat.QDQ, per_channel=per_channel,
                          activation_type=getattr(quant.QuantType, act), weight_type=quant.QuantType.QInt8)
    model = onnx.load(str(tmp_path / "q.onnx"))
    cm = tc.compile(model, "vta_default")
    assert not _convs_on_cpu(cm), cm.cpu_ops
    assert sorted(k["workload"]["groups"] for k in cm.kernels if k["workload"]["kind"] == "conv2d") == \
        [1, 1, 2, 4, 4, 24, 24]
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    for x in _xs(4, first=100):
        assert np.array_equal(cm(x), sess.run(None, {"x": x})[0])


def test_tuner_prices_the_merged_kernel():
    """The tuner evaluates the kernel compile runs (merged groups) and its prior counts the merged blocks."""
    from tvm_codesign.tuner import network
    from tvm_codesign.tuner.pool import Pool
    from tvm_codesign.hardware.space import DesignSpace
    cfg = tc.AcceleratorConfig.load("vta_default")
    dw = W(1, 96, 28, 28, 96, 3, 1, 1, groups=96, **EP8)
    r = network.evaluate(cfg, network.group([(dw, 1)]))
    row = r["layers"][0]
    kwl = G.kernel_workload(dw, cfg)
    assert r["feasible"] and kwl.merge == 16
    assert row["cycles"] == pytest.approx(A.predict(kwl, cfg, row["knobs"])["cycles"])
    assert network.evaluate(cfg, network.group([(G.merged(dw, cfg, 1), 1)]))["layers"][0] == row  # layer's merge: ignored
    from tvm_codesign.tuner import knob_grid
    assert row["cycles"] * 5 < knob_grid.best(G.merged(dw, cfg, 1), cfg)[1]["cycles"]
    sp = DesignSpace.load("small")
    pool = Pool(sp)
    lat, _ = pool.prior(network.group([(dw, 1)]))
    dense = W(1, 96, 28, 28, 96, 3, 1, 1, **EP8)  # 16x the real MACs of the depthwise layer
    lat_dense, _ = pool.prior(network.group([(dense, 1)]))
    assert np.all(lat < lat_dense)
