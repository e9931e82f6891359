"""The built-in tasks' command line and Task.accuracy refuse limits and batches that would silently change what is
measured (a negative limit dropped samples from the end) or crash after a long compile (a zero limit)."""
import numpy as np
import pytest
import torch

from tvm_codesign import tasks
from tvm_codesign.tasks.__main__ import main
from tvm_codesign.tasks.task import Task


@pytest.mark.parametrize("args,match", [(["--limit", "-5"], "--limit"), (["--limit", "0"], "--limit"),
                                        (["--batch", "0"], "--batch"), (["--batch", "two"], "--batch"),
                                        (["--target", "no_such_preset"], "no preset named 'no_such_preset'")])
def test_cli_refuses_bad_arguments_before_loading(monkeypatch, capsys, args, match):
    monkeypatch.setattr(tasks, "load", lambda *a, **k: pytest.fail("the task was loaded before the arguments "
                                                                    "were checked"))
    with pytest.raises(SystemExit) as e:
        main(["digits", *args])
    assert e.value.code == 2 and match in capsys.readouterr().err


def tiny_task() -> Task:
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3).eval()
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    y = np.arange(10) % 3
    return Task("tiny", {}, net, {"calibration": (x[:2], y[:2]), "heldout": (x, y)}, {})


@pytest.mark.parametrize("limit", [-5, 0, 2.5, True])
def test_accuracy_refuses_limits_that_are_not_a_count(limit):
    t = tiny_task()
    with pytest.raises(ValueError, match="limit must be a whole number >= 1"):
        t.accuracy(lambda x: x @ np.ones((4, 3), np.float32), limit=limit)
    with pytest.raises(ValueError, match="limit must be a whole number >= 1"):
        t.fp32_accuracy(limit=limit)


def test_accuracy_limit_and_batch_still_count_the_first_samples():
    t = tiny_task()
    with torch.no_grad():
        ref = t.model(torch.from_numpy(t.heldout[0])).numpy().argmax(1)
    f = lambda x: t.model(torch.from_numpy(x)).detach().numpy()
    for limit, batch in [(None, 1), (3, 2), (10, 4), (7, None)]:
        n = 10 if limit is None else limit
        assert t.accuracy(f, limit=limit, batch=batch) == pytest.approx((ref[:n] == t.heldout[1][:n]).mean())
    with pytest.raises(ValueError, match="batch must be a whole number >= 1"):
        t.accuracy(f, batch=-1)
