"""Calibration data: integer inputs stay integer, float64 is cast to the declared float dtype, NaN/Inf (given, or
computed inside the model) is refused with an error naming the sample and input, wrong shapes and dtypes too."""
import numpy as np
import pytest
import torch

import tvm_codesign as tc

nn = torch.nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.fc = nn.Embedding(20, 16), nn.Linear(16, 4)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(1))


class Log(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(torch.log(x))


def _mlp():
    torch.manual_seed(0)
    return MLP().eval()


def _floats(n, dtype=np.float32, shape=(2, 8)):
    return [np.random.default_rng(i).standard_normal(shape).astype(dtype) for i in range(n)]


def _cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_integer_inputs_calibrate_as_integers():
    torch.manual_seed(0)
    model = Embed().eval()
    ids = [np.random.default_rng(i).integers(0, 20, (2, 5)) for i in range(4)]
    cm = tc.compile(model, "vta_default", calibration=ids)
    x = np.random.default_rng(9).integers(0, 20, (2, 5))
    assert _cosine(cm(x), model(torch.as_tensor(x)).detach().numpy()) >= 0.99


def test_float64_calibration_is_cast_to_the_model_dtype():
    model = _mlp()
    cm64 = tc.compile(model, "vta_default", calibration=_floats(4, np.float64))
    cm32 = tc.compile(model, "vta_default", calibration=_floats(4, np.float32))
    x = _floats(1)[0]
    np.testing.assert_array_equal(cm64(x), cm32(x))  # same data up to the cast: same scales, same int8 model
    assert _cosine(cm64(x), model(torch.as_tensor(x)).detach().numpy()) >= 0.99


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_calibration_data_is_refused(bad):
    cal = _floats(4)
    cal[2][1, 3] = bad
    with pytest.raises(ValueError, match=r"calibration sample 2, input 'x' has 1 non-finite values"):
        tc.compile(_mlp(), "vta_default", calibration=cal)


def test_non_finite_values_computed_inside_the_model_are_refused():
    torch.manual_seed(0)
    cal = [np.abs(x) + 0.1 for x in _floats(3)]
    cal[1][0, 0] = -1.0  # log(-1): NaN into the Linear
    with pytest.raises(ValueError, match=r"the model computes non-finite values \(NaN/Inf\) around relax\.matmul"):
        tc.compile(Log().eval(), "vta_default", calibration=cal)


def test_float_data_for_integer_inputs_names_the_dtype():
    torch.manual_seed(0)
    ids = [np.random.default_rng(0).integers(0, 20, (2, 5)), np.random.default_rng(1).random((2, 5))]
    with pytest.raises(ValueError, match=r"calibration sample 1, input 'ids' is float64, the model expects int64"):
        tc.compile(Embed().eval(), "vta_default", calibration=ids)


def test_calibration_shape_and_count_are_checked():
    cal = _floats(2) + _floats(1, shape=(2, 9))
    with pytest.raises(ValueError, match=r"calibration sample 2, input 'x' has shape \(2, 9\), the model expects "
                                         r"\(2, 8\)"):
        tc.compile(_mlp(), "vta_default", calibration=cal)
    cal = _floats(2) + [(_floats(1)[0], _floats(1)[0])]
    with pytest.raises(ValueError, match=r"calibration sample 2: 2 inputs given, the model takes 1 \(x\)"):
        tc.compile(_mlp(), "vta_default", calibration=cal)


@pytest.mark.parametrize("batch", [torch.randn(4, 2, 8), np.random.default_rng(0).standard_normal((4, 2, 8))])
def test_one_array_as_calibration_is_refused_with_the_form_expected(batch):
    """One tensor or array is ambiguous (samples or a batch?): a TypeError showing the list form, not torch's
    'Boolean value of Tensor ... is ambiguous' (a tensor) or an indexing error."""
    with pytest.raises(TypeError, match=r"calibration must be a list of samples .*\[\(x,\) for x in batch\]"):
        tc.compile(_mlp(), "vta_default", calibration=batch)


def test_calibration_from_a_generator():
    """Any iterable of samples works, e.g. a generator: it is read once, into a list."""
    gen = (x for x in _floats(3))
    cm = tc.compile(_mlp(), "vta_default", calibration=gen)
    assert cm.offloaded_mac_fraction == 1.0
