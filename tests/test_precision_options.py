"""compile(precision=, sparsity=): per-layer weight/activation bits and 2:4 pruning of post-training quantisation.

Bit-exactness: the compiled model (accelerator kernels in the simulator) against a numpy interpreter of the
quantised Relax graph (int64 arithmetic, torch's float64 conv on integer values). Quality: MSE-clipped per-channel
4-bit PTQ against naive max-abs per-tensor 4-bit fake quantisation (torch) on a small CNN trained on
scikit-learn's digits.
"""
import numpy as np
import pytest
import torch
from torch import nn
from tvm import relax
from tvm.ir.expr import Constant

import digits_net
import tvm_codesign as tc
from tvm_codesign import model as M
from tvm_codesign.frontend import lowbit


def interpret(func: relax.Function, x: np.ndarray, seen: dict | None = None) -> np.ndarray:
    """Run a quantised Relax main in numpy; ``seen`` receives each named int32 conv/matmul's (input, weight)."""
    env = {func.params[0]: x}

    def val(e):
        if isinstance(e, Constant) and hasattr(e.value, "numpy"):  # a tensor (PrimValues are read below)
            return e.value.numpy()
        if isinstance(e, relax.ShapeExpr):
            return [int(v) for v in e.values]
        return env[e] if isinstance(e, relax.Var) else None  # clip's bounds are read from the call

    for block in func.body.blocks:
        for bd in block.bindings:
            v = bd.value
            if isinstance(v, relax.Var):
                env[bd.var] = env[v]
                continue
            op, a = v.op.name, [val(e) for e in v.args]
            dt = str(bd.var.ty.dtype)
            if op == "relax.nn.conv2d":
                at = v.attrs
                r = torch.nn.functional.conv2d(torch.from_numpy(a[0].astype(np.float64)),
                                               torch.from_numpy(a[1].astype(np.float64)),
                                               stride=[int(s) for s in at.strides],
                                               padding=[int(p) for p in at.padding][:2], groups=int(at.groups))
                r = r.numpy().astype(np.int64)
            elif op == "relax.matmul":
                r = a[0].astype(np.int64) @ a[1].astype(np.int64) if dt == "int32" else a[0] @ a[1]
            elif op == "relax.add":
                r = a[0].astype(np.int64) + a[1] if dt == "int32" else a[0] + a[1]
            elif op == "relax.multiply":
                r = a[0].astype(np.int64) * a[1] if dt == "int32" else a[0] * a[1]
            elif op == "relax.right_shift":
                r = a[0] >> a[1]
            elif op == "relax.clip":
                r = np.clip(a[0], float(v.args[1].value), float(v.args[2].value))
            elif op == "relax.astype":
                r = a[0]
            elif op == "relax.round":
                r = np.round(a[0])
            elif op == "relax.nn.relu":
                r = np.maximum(a[0], 0)
            elif op == "relax.reshape":
                r = a[0].reshape(a[1])
            else:
                raise NotImplementedError(op)
            if dt == "int32":
                assert np.abs(r).max() < 2 ** 31  # no wrap: int64 here is int32 there
            env[bd.var] = np.asarray(r).astype(dt)
            if seen is not None and op in ("relax.nn.conv2d", "relax.matmul") and dt == "int32":
                seen[bd.var.name] = (a[0], a[1])
    return env[func.body.body]


class Small(nn.Module):
    def __init__(self, bias_last=False):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, 1, 1)
        self.c2 = nn.Conv2d(8, 16, 3, 2, 1)
        self.c3 = nn.Conv2d(16, 12, 3, 1, 1)
        self.fc = nn.Linear(12 * 16, 10, bias=bias_last)

    def forward(self, x):
        x = torch.relu(self.c2(torch.relu(self.c1(x))))
        return self.fc(torch.relu(self.c3(x)).flatten(1))


@pytest.fixture(scope="module")
def digits():
    return train_digits()


def train_digits():
    """A small CNN trained on sklearn's digits (deterministic, ~1 s), with calibration and held-out images."""
    return digits_net.train(lambda: Small(bias_last=True), 20, 256, 128)


def snr_db(out, ref):
    return 10 * np.log10((ref ** 2).sum() / ((out - ref) ** 2).sum())


def naive_fake_quant(model: Small, calib: np.ndarray, x: np.ndarray, bits: int, a_bits: int | None = None) -> np.ndarray:
    """Naive PTQ at ``bits`` as float fake quantisation: per-tensor max-abs scales for every weight and every
    conv/linear input (max over the calibration batch)."""
    fq = lambda t, amax, b: torch.clamp(torch.round(t / (amax / (2 ** (b - 1) - 1))), -2 ** (b - 1),
                                        2 ** (b - 1) - 1) * (amax / (2 ** (b - 1) - 1))
    layers = [model.c1, model.c2, model.c3, model.fc]
    with torch.no_grad():
        def run(t, amaxes=None):
            seen = []
            for k, layer in enumerate(layers):
                if k == 3:
                    t = t.flatten(1)
                seen.append(float(t.abs().max()))
                if amaxes is not None:
                    t = fq(t, amaxes[k], a_bits or bits)
                    w = fq(layer.weight, float(layer.weight.abs().max()), bits)
                    t = (nn.functional.conv2d(t, w, layer.bias, layer.stride, layer.padding) if k < 3
                         else nn.functional.linear(t, w, layer.bias))
                else:
                    t = layer(t)
                t = torch.relu(t) if k < 3 else t
            return t, seen
        _, amaxes = run(torch.tensor(calib))
        return run(torch.tensor(x), amaxes)[0].numpy()


def test_weight_scales_minimise_channel_mse():
    """Per output channel, the chosen clipping ratio has the least squared error over the grid (brute force, one
    channel and ratio at a time), and the values lie in the bit range."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 5, 3, 3)) * np.array([0.1, 1, 3, 0.01, 1, 0])[:, None, None, None]
    w[1, 0, 0, 0] = 9.0  # an outlier: clipping pays
    for bits in (8, 4, 2):
        q, s = lowbit.quantize_weight(w, bits, axis=0)
        lo, hi = lowbit.qrange(bits)
        assert q.dtype == np.int8 and q.min() >= lo and q.max() <= hi
        for o in range(6):
            c = w[o].ravel()
            if not c.any():
                assert not q[o].any()
                continue
            errs = [((np.clip(np.round(c / (r * np.abs(c).max() / hi)), lo, hi) * (r * np.abs(c).max() / hi) - c)
                     ** 2).sum() for r in lowbit.RATIOS]
            got = ((q[o].ravel() * s[o] - c) ** 2).sum()
            assert got == pytest.approx(min(errs), rel=1e-9)
    assert lowbit.quantize_weight(w, 4, axis=0)[1][1] < np.abs(w[1]).max() / 7  # the outlier was clipped
    qt, st = lowbit.quantize_weight(w, 4, axis=0, per_channel=False)
    assert (st == st[0]).all()


def test_activation_clip_from_histogram():
    """The histogram's clip is within 2% of the best clip's error on the raw values (a heavy-tailed sample)."""
    x = np.random.default_rng(1).standard_t(3, 200_000)
    amax = np.abs(x).max()
    for bits in (8, 4):
        c = lowbit.clip_from_histogram(lowbit.histogram(x, amax), amax, bits)
        lo, hi = lowbit.qrange(bits)
        err = lambda c: ((np.clip(np.round(x / (c / hi)), lo, hi) * (c / hi) - x) ** 2).mean()
        best = min(err(r * amax) for r in lowbit.RATIOS)
        assert err(c) <= 1.02 * best
    assert lowbit.clip_from_histogram(lowbit.histogram(x, amax), amax, 4) < 0.5 * amax


@pytest.mark.parametrize("shape,axis", [((5, 6, 3, 3), 1), ((10, 7), 0), ((4, 8, 1, 1), 1), ((3, 1, 3, 3), 1)])
def test_prune_2_4_keeps_two_largest_of_four(shape, axis):
    w = np.random.default_rng(2).standard_normal(shape)
    p, keep = lowbit.prune_2_4(w, axis)
    assert keep.shape == w.shape and np.array_equal(p, np.where(keep, w, 0))
    a, k = np.moveaxis(np.abs(w), axis, -1), np.moveaxis(keep, axis, -1)
    n = a.shape[-1]
    for idx in np.ndindex(a.shape[:-1]):
        for g in range(0, n, 4):
            grp, kg = a[idx][g:g + 4], k[idx][g:g + 4]
            assert kg.sum() == min(2, len(grp))  # exactly 2 of every 4 (fewer only in a short last group)
            assert grp[kg].min() >= grp[~kg].max(initial=0)


def test_precision_names_and_bits_errors():
    torch.manual_seed(0)
    m = Small().eval()
    cal = [(np.random.default_rng(i).standard_normal((1, 1, 8, 8)).astype(np.float32),) for i in range(2)]
    with pytest.raises(ValueError, match=r"no layer named 'conv9'.*conv2d_0, conv2d_1, conv2d_2, dense_0"):
        tc.compile(m, calibration=cal, precision={"conv9": (4, 4)}, progress=False)
    with pytest.raises(ValueError, match=r"weight bits must be one of \(8, 4, 2\), got 3"):
        tc.compile(m, calibration=cal, precision={"conv2d_1": (3, 8)}, progress=False)
    with pytest.raises(ValueError, match=r"activation bits must be one of \(8, 4\), got 2"):
        tc.compile(m, calibration=cal, precision="w4a2", progress=False)
    with pytest.raises(ValueError, match="'w<bits>a<bits>'"):
        tc.compile(m, calibration=cal, precision="int4", progress=False)
    with pytest.raises(ValueError, match=r"only '2:4'"):
        tc.compile(m, calibration=cal, sparsity={"dense_0": "1:4"}, progress=False)
    with pytest.raises(ValueError, match=r"sparsity: no layer named 'fc'"):
        tc.compile(m, calibration=cal, sparsity={"fc": "2:4"}, progress=False)
    with pytest.raises(ValueError, match="weight_scales='tensor'"):
        tc.compile(m, calibration=cal, precision="w4a8", requant="shift", weight_scales="channel", progress=False)


@pytest.mark.parametrize("weight_scales", ["channel", "tensor"])
def test_lowbit_compiled_bit_exact(weight_scales):
    """Mixed w4a8 / w2a4 / 2:4 layers: the simulated model equals the numpy interpreter of its quantised graph;
    every layer's operands lie in its bit ranges, a 4-bit layer's input comes from an epilogue saturating to
    [-8, 7], and the sparse layers' weights have at most 2 nonzeros in every 4 input channels."""
    torch.manual_seed(1)
    m = Small().eval()
    cal = [(np.random.default_rng(i).standard_normal((4, 1, 8, 8)).astype(np.float32),) for i in range(3)]
    prec = {"conv2d_0": "w4a8", "conv2d_1": (2, 4), "conv2d_2": "w8a4", "dense_0": (4, 4)}
    sparse = {"conv2d_2": "2:4", "dense_0": "2:4"}
    kw = dict(calibration=cal, precision=prec, sparsity=sparse, weight_scales=weight_scales)
    cm = tc.compile(m, "vta_default", progress=False, **kw)
    info = {}
    mod = M._quantized(m, None, None, cal, "alu", info, prec, sparse, weight_scales)
    x = np.random.default_rng(9).standard_normal((4, 1, 8, 8)).astype(np.float32)
    seen = {}
    ref = interpret(mod["main"], x, seen)
    assert np.array_equal(cm(x), ref)
    assert set(seen) == set(cm.layer_modes) == {"conv2d_0", "conv2d_1", "conv2d_2", "dense_0"}
    for name, mode in cm.layer_modes.items():
        xi, wi = seen[name]
        (wlo, whi), (alo, ahi) = lowbit.qrange(mode["w_bits"]), lowbit.qrange(mode["a_bits"])
        assert wi.dtype == np.int8 and wlo <= wi.min() and wi.max() <= whi, name
        assert alo <= xi.min() and xi.max() <= ahi, name
        assert mode["sparse"] == (name in sparse) and mode["kernel"] is not None
        if mode["sparse"]:
            keep = cm.keep_masks[name]
            assert not wi[~keep].any()
            red = np.moveaxis(keep, 1 if wi.ndim == 4 else 0, -1)
            red = np.concatenate([red, np.zeros(red.shape[:-1] + (-red.shape[-1] % 4,), bool)], -1)
            assert (red.reshape(red.shape[:-1] + (-1, 4)).sum(-1) == 2).all()
    assert seen["conv2d_1"][0].max() <= 7 and seen["conv2d_1"][0].max() == 7  # saturated to the 4-bit range
    names = [r["layers"] for r in cm.profile() if r["device"] == "accelerator"]
    assert sorted(", ".join(names).split(", ")) == sorted(cm.layer_modes)
    if weight_scales == "tensor":  # one multiplier per layer: the epilogue runs fused on the accelerator
        assert all(k["workload"].get("out_dtype") == "int8" for k in cm.kernels)


def test_default_is_int8_unchanged():
    """No precision/sparsity: today's quantiser (per-tensor max-abs int8 weights in [-127, 127], scalar
    multiplier fused on the accelerator, int8 results), bit-exact against the numpy interpreter, and every
    layer reported as w8a8 dense."""
    torch.manual_seed(2)
    m = Small().eval()
    cal = [(np.random.default_rng(i).standard_normal((2, 1, 8, 8)).astype(np.float32),) for i in range(2)]
    cm = tc.compile(m, "vta_default", calibration=cal, progress=False)
    mod = M._quantized(m, None, None, cal, "alu")
    x = cal[0][0]
    seen = {}
    assert np.array_equal(cm(x), interpret(mod["main"], x, seen))
    floats = [m.c1.weight, m.c2.weight, m.c3.weight, m.fc.weight.T]
    for (name, (_, wq)), w in zip(sorted(seen.items()), floats):
        w = w.detach().numpy().astype(np.float64)
        assert np.array_equal(wq, np.clip(np.round(w / (np.abs(w).max() / 127)), -127, 127).astype(np.int8)), name
    assert cm.layer_modes == {n: {"w_bits": 8, "a_bits": 8, "sparse": False, "kernel": cm.layer_modes[n]["kernel"],
                                  "hw_mode": "w8a8"}
                              for n in ("conv2d_0", "conv2d_1", "conv2d_2", "dense_0")}
    assert all(k["workload"]["out_dtype"] == "int8" and isinstance(k["workload"]["multiplier"], int)
               for k in cm.kernels) and cm.keep_masks == {}


@pytest.mark.parametrize("w_bits,a_bits,gain_db", [(4, 4, 0.5), (2, 8, 2.0)])
def test_lowbit_ptq_beats_naive(digits, w_bits, a_bits, gain_db):
    """On a CNN trained on real digits: PTQ at w4a4 / w2a8 (per-channel MSE weights, MSE activation clipping,
    integer requantisation) is closer to the float model than naive max-abs per-tensor fake quantisation at
    the same bits (float, no requantisation) and keeps top-1 at least as well (measured here: w4a4 17.1 dB,
    98.0 % against 16.3 dB, 97.3 %; w2a8 6.5 dB, 92.6 % against 3.9 dB, 28.5 %; float 97.7 %)."""
    m, calib, x, y = digits
    with torch.no_grad():
        ref = m(torch.tensor(x)).numpy()
    cm = tc.compile(m, "vta_default", calibration=[(calib,)], precision=(w_bits, a_bits), progress=False)
    out = np.concatenate([cm(x[i:i + len(calib)]) for i in range(0, len(x), len(calib))])
    naive = naive_fake_quant(m, calib, x, w_bits, a_bits)
    assert snr_db(out, ref) > snr_db(naive, ref) + gain_db
    top1 = lambda o: (o.argmax(1) == y).mean()
    assert top1(ref) > 0.95 and top1(out) >= top1(naive) and top1(out) >= top1(ref) - (0.02 if w_bits == 4 else 0.1)
