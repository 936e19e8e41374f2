# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Every notebook runs top to bottom on CPU with the tiny model and synthetic data, and shows pictures."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 600  # a hang guard, not a speed check (speed is the benchmarks' business)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "notebook",
    [pytest.param(path, marks=pytest.mark.xdist_group(f"notebook_{path.stem}")) for path in NOTEBOOKS],
    ids=[path.stem for path in NOTEBOOKS],
)
def test_notebook_runs_and_shows_pictures(notebook: Path, tmp_path: Path) -> None:
    """Execute the notebook in a scratch folder (its outputs land there) and check that it drew figures."""
    import nbformat
    from nbclient import NotebookClient

    document = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        document,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback, on any error
    pictures = [
        output
        for cell in document.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert pictures, f"{notebook.name} shows no picture"


def test_every_model_has_a_notebook() -> None:
    """One walkthrough per model of the package, named like anomalib names the model (``anomaly_clip``)."""
    from anomalib.utils.path import convert_to_snake_case

    from anomalib_vlm import models

    expected = {f"{convert_to_snake_case(name)}.ipynb" for name in models.__all__}
    assert expected <= {path.name for path in NOTEBOOKS}
