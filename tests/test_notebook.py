"""docs/quickstart.ipynb runs top to bottom (on its tiny settings): build, probe, train, plot."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RESLAB_NOTEBOOK_TINY", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in nb.cells if c.cell_type == "code"]
    text = "\n".join(outputs)
    assert "plain20:" in text and "resnet20:" in text and "findings:" in text
    assert "training error" in text and "after training" in text
    last = nb.cells[-1]["outputs"]
    assert any("image/png" in o.get("data", {}) for o in last), "the final cell shows the curves figure"
