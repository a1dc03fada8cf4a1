"""The example notebook's code runs top to bottom (executed without a Jupyter kernel)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path
) -> None:
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEPRIOR_ROOT", str(tmp_path))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    # small data for the test: shrink the synthetic splits the notebook generates
    code[0] = code[0].replace(
        "'data.num_workers=0'",
        "'data.num_workers=0', 'data.synthetic.train=8', 'data.synthetic.val=2', 'data.synthetic.test=2', 'data.batch_size=8'",
    )
    scope: dict[str, object] = {}
    for block in code:
        exec(compile(block, str(NOTEBOOK), "exec"), scope)
    out = scope["out"]
    assert out["lq"].shape == (8, 3, 64, 64)  # type: ignore[index]
    assert os.path.isdir(tmp_path / "data" / "synthetic_64" / "train" / "images")
