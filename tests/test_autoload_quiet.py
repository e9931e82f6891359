"""``import tvm`` runs the ``tvm.backends`` entry point even when our own import started it: nothing printed,
everything registered, whichever module comes first."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("code", [
    "import tvm_codesign as tc; tc.target('vta_default')",
    "import tvm; import tvm_codesign as tc; tc.target('vta_default')",
    "import tvm_codesign.backend, tvm; assert 'vta' in tvm.target.Target('vta/edge_tiny').keys",
])
def test_first_tvm_call_prints_nothing(code):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)
