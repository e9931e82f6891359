"""compile(train=(x, y), qat_epochs=): quantisation-aware fine-tune before post-training quantisation.

Accuracy: the built-in digits CNN at w2a4 on every layer, top-1 on the held-out split through the bit-exact
simulator, PTQ alone against QAT + the same PTQ. Numerics: the fine-tune's fake quantisers against
frontend/lowbit.py's numpy quantiser; the compiled QAT model against the numpy interpreter of its quantised graph.
"""
import numpy as np
import pytest
import torch
from test_precision_options import Small, interpret

import tvm_codesign as tc
from tvm_codesign import model as M
from tvm_codesign.frontend import lowbit, qat
from tvm_codesign.hardware.modes import Mode


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_data(n=96, seed=0):
    """A Small CNN and a learnable toy task on 8x8 images (label: the brightest of 10 fixed patterns)."""
    rng = np.random.default_rng(seed)
    pats = rng.standard_normal((10, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, n)
    x = (pats[y] + 0.5 * rng.standard_normal((n, 1, 8, 8))).astype(np.float32)
    torch.manual_seed(seed)
    return Small().eval(), x, y


def state(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_qat_recovers_digits_accuracy_through_simulator():
    """Digits CNN, every layer w2a4: PTQ alone loses 3.1 points on the held-out split through the simulator
    (99.17 % fp32 -> 96.11 %); 2 epochs of QAT (about 3 s) recover most of it (98.33 %; 5 epochs, the default,
    99.17 %). The task's model is unchanged."""
    from tvm_codesign import tasks
    task = tasks.load("digits")
    before = state(task.model)
    fp32 = task.fp32_accuracy()
    ptq = task.accuracy(task.compile("vta_default", precision="w2a4", progress=False))
    cm = task.compile("vta_default", precision="w2a4", progress=False, train=task.splits["train"], qat_epochs=2)
    got = task.accuracy(cm)
    assert fp32 - ptq >= 0.02  # the assignment hurts
    assert got - ptq >= 0.5 * (fp32 - ptq), (fp32, ptq, got)  # QAT recovers at least half of the drop
    assert all(torch.equal(v, task.model.state_dict()[k]) for k, v in before.items())
    assert {d["w_bits"] for d in cm.layer_modes.values()} == {2}


def test_fake_quantisers_match_lowbit():
    """The fine-tune's weight quantiser is the PTQ's (lowbit.quantize_weight, per channel and per tensor, float64
    numpy) and passes gradients straight through; the activation quantiser is quantize._quant's at the clip
    and passes gradients only inside it."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 5, 3, 3)) * np.array([0.1, 1, 3, 0.01, 1, 0])[:, None, None, None]
    w[1, 0, 0, 0] = 9.0
    for bits in (8, 4, 2):
        for per_channel in (True, False):
            q, s = lowbit.quantize_weight(w, bits, 0, per_channel)
            t = torch.tensor(w, requires_grad=True)
            fq = qat.fake_weight(t, bits, per_channel)
            np.testing.assert_allclose(fq.detach().numpy(), q * s[:, None, None, None], rtol=1e-12, atol=0)
            fq.sum().backward()
            assert torch.equal(t.grad, torch.ones_like(t))
    x = torch.linspace(-3, 3, 601, dtype=torch.float32, requires_grad=True)
    y = qat.fake_act(x, 1.4, 4)
    s = 1.4 / 7
    ref = np.clip(np.round(x.detach().numpy() * np.float32(1 / s)), -8, 7) * s
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-6, atol=1e-7)
    y.sum().backward()
    inside = (x.detach() >= -8 * s) & (x.detach() <= 7 * s)
    assert torch.equal(x.grad, inside.float())


def test_finetune_deterministic_and_leaves_model():
    """Two fine-tunes give identical weights, different from the float ones; the 2:4 layers keep exactly the
    PTQ's mask of the float weights (pruned weights zero); the user's model, its training flag and torch's
    global state (threads, RNG, deterministic flag) are unchanged."""
    m, x, y = small_data()
    m.train()
    before = state(m)
    modes = {"conv2d_0": Mode(4, 8), "conv2d_1": Mode(2, 4, True), "conv2d_2": Mode(4, 4), "dense_0": Mode(2, 4, True)}
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    torch.set_num_threads(2)
    a = qat.finetune(m, modes, x[:32], torch.from_numpy(x), torch.from_numpy(y), epochs=2)
    assert torch.get_num_threads() == 2 and torch.equal(torch.get_rng_state(), rng)
    assert not torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    b = qat.finetune(m, modes, x[:32], torch.from_numpy(x), torch.from_numpy(y), epochs=2)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(a.c1.weight, m.c1.weight)
    assert m.training and all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    assert a is not m and not a.training
    for mod in (m.c2, m.fc):
        keep = lowbit.prune_2_4(mod.weight.detach().numpy(), 1)[1]
        tuned = dict(m.named_modules())
        got = dict(a.named_modules())[next(k for k, v in tuned.items() if v is mod)].weight.detach().numpy()
        assert not got[~keep].any() and got[keep].all()
    assert "forward" not in vars(a.c1)  # the fake-quant forward is gone


def test_compiled_qat_model_is_bit_exact():
    """The compiled QAT model equals the numpy interpreter of its quantised graph (the same deterministic
    fine-tune, w2a4 with two 2:4 layers) and differs from the PTQ-only model."""
    m, x, y = small_data(256)
    cal = [(x[i:i + 16],) for i in range(0, 64, 16)]
    kw = {"calibration": cal, "precision": "w2a4", "sparsity": {"conv2d_1": "2:4", "dense_0": "2:4"}}
    train = (x, y)
    cm = tc.compile(m, "vta_default", progress=False, train=train, qat_epochs=3, **kw)
    mod = M._quantized(m, None, None, cal, "alu", {}, kw["precision"], kw["sparsity"], None, train, 3)
    xt = x[:16]
    assert np.array_equal(cm(xt), interpret(mod["main"], xt))
    assert set(cm.keep_masks) == {"conv2d_1", "dense_0"}
    ptq = tc.compile(m, "vta_default", progress=False, **kw)
    assert not np.array_equal(cm(xt), ptq(xt))  # the weights were fine-tuned


def test_default_without_train_unchanged_and_unused_train_warns():
    """No train=: no fine-tune (the compiled model equals the interpreter of the plain PTQ graph). train= with
    every layer w8a8 dense warns that it is unused and compiles the same model bit for bit."""
    m, x, y = small_data()
    cal = [(x[:16],)]
    plain = tc.compile(m, "vta_default", calibration=cal, precision="w4a4", progress=False)
    mod = M._quantized(m, None, None, cal, "alu", {}, "w4a4", None, None)
    assert np.array_equal(plain(x[:16]), interpret(mod["main"], x[:16]))
    int8 = tc.compile(m, "vta_default", calibration=cal, progress=False)
    with pytest.warns(UserWarning, match="train= is unused"):
        same = tc.compile(m, "vta_default", calibration=cal, progress=False, train=(x, y))
    assert np.array_equal(int8(x[:16]), same(x[:16]))


@pytest.mark.parametrize("train,epochs,err,match", [
    (None, 2, ValueError, "qat_epochs= needs train"),
    ("xy", None, TypeError, "pair"),
    ("xy", 0, ValueError, "qat_epochs must be a whole number >= 1"),
    ("xy", 1.5, ValueError, "qat_epochs must be a whole number >= 1"),
    ("float_y", None, ValueError, "integer class indices"),
    ("short_y", None, ValueError, "96 samples .* 95 labels"),
    ("shape", None, ValueError, r"each sample of x has shape \(1, 9, 8\)"),
    ("range", None, ValueError, r"class indices in \[0, 9\]"),
])
def test_train_errors(train, epochs, err, match):
    m, x, y = small_data()
    cal = [(x[:16],)]
    train = {None: None, "xy": (x, y) if epochs is not None else [x, y, y], "float_y": (x, y.astype(np.float32)),
             "short_y": (x, y[:-1]), "shape": (x[:, :, :9].repeat(2, 2)[:, :, :9], y),
             "range": (x, y + 1)}[train]
    with pytest.raises(err, match=match):
        tc.compile(m, "vta_default", calibration=cal, precision="w4a4", progress=False, train=train, qat_epochs=epochs)


def test_train_needs_a_torch_model():
    import tvm
    xy = (np.zeros((2, 3), np.float32), np.zeros(2, np.int64))
    for model in ("model.onnx", tvm.IRModule()):
        with pytest.raises(TypeError, match="train= fine-tunes a torch.nn.Module"):
            tc.compile(model, "vta_default", train=xy)
        with pytest.raises(TypeError, match="train= fine-tunes a torch.nn.Module"):
            M.layers(model, train=xy)


class Functional(torch.nn.Module):
    """A conv written with F.conv2d: a quantised layer that is no nn.Conv2d module."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 1, 3, 3))
        self.fc = torch.nn.Linear(4 * 64, 10)

    def forward(self, x):
        return self.fc(torch.relu(torch.nn.functional.conv2d(x, self.w, padding=1)).flatten(1))


class Dense(torch.nn.Module):
    """Per-pixel logits (batch, classes, h, w): not a classifier's (batch, classes)."""

    def __init__(self):
        super().__init__()
        self.c = torch.nn.Conv2d(1, 10, 3, 1, 1)

    def forward(self, x):
        return self.c(x)


@pytest.mark.parametrize("net,match", [(Functional, (r"layer 0 of the imported graph is conv2d_0 \(weight 4x1x3x3\) "
                                                     r"but the model's 0-th .* is dense_0")),
                                       (Dense, r"output is \(batch, classes\) logits; got shape \(2, 10, 8, 8\)")])
def test_train_needs_module_layers_and_logits(net, match):
    torch.manual_seed(0)
    _, x, y = small_data()
    with pytest.raises(ValueError, match=match):
        tc.compile(net().eval(), "vta_default", calibration=[(x[:8],)], precision="w4a4", progress=False,
                   train=(x, y))
