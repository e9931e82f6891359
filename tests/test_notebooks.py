"""The notebooks run top to bottom twice in a row (Run All, then Run All again in the same kernel and directory, as
a user would in Jupyter) and show their plots inline."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_twice_with_inline_plots(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for run in range(2):  # raises CellExecutionError (with the cell and traceback) on an error
            for i, cell in enumerate(nb.cells):
                client.execute_cell(cell, i)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    if any("plt." in c.source or ".plot(" in c.source for c in nb.cells if c.cell_type == "code"):
        assert any("image/png" in o.get("data", {}) for o in outputs), "a plot that is not shown inline"
