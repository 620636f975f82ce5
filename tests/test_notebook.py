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


def test_committed_notebook_shows_a_real_run_to_the_reader():
    """A reader on GitHub sees the outputs of one top-to-bottom run on Fashion-MNIST, not empty cells."""
    assert NOTEBOOK.stat().st_size < 300_000
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run top to bottom, once"
    text = "\n".join(o.get("text", "") for c in code for o in c.outputs)
    assert "validation error" in text and "after training" in text and "findings:" in text
    assert all(c.outputs for c in code[1:]), "every cell after the settings shows its output"
    assert any("image/png" in o.get("data", {}) for o in code[-1].outputs)
    assert not any(o.get("name") == "stderr" for c in code for o in c.outputs), "quiet=True runs print nothing"
    assert 'ITERATIONS = 4 if TINY else' in code[0].source and "TINY = os.environ" in code[0].source
