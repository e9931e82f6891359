"""The notebooks run top to bottom (executed with nbclient, as a user would in Jupyter)."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_codesign_notebook_runs_twice_with_inline_plots(tmp_path):
    """03 again in the same directory: its run resumes from its own log instead of refusing to overwrite it,
    and both runs show their plots inline."""
    path = next(p for p in NOTEBOOKS if p.name.startswith("03_"))
    for run in range(2):
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        errors = [o for o in outputs if o.output_type == "error"]
        assert not errors, f"run {run + 1}: {errors[0].get('ename')}: {errors[0].get('evalue')}" if errors else ""
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2, f"run {run + 1}: plots not inline"
