# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Packaging: our requirements install with anomalib's ``clip`` extra, the tiny config ships, the code is lint-clean."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

REPO = Path(__file__).resolve().parents[2]


def _project_requirements() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(line) for line in project["dependencies"]]
    return {requirement.name.replace("_", "-").lower(): requirement for requirement in requirements}


def test_core_dependencies_are_declared() -> None:
    assert {"anomalib", "torch", "open-clip-torch", "lightning", "jsonargparse"} <= set(_project_requirements())


def test_open_clip_range_agrees_with_anomalibs_clip_extra() -> None:
    """Anomalib pins open-clip-torch < 2.26.1 in its `clip` extra; every version we accept must satisfy it."""
    anomalib_clip = next(
        Requirement(line)
        for line in requires("anomalib") or []
        if line.startswith("open-clip-torch") and "clip" in line
    )
    ours = _project_requirements()["open-clip-torch"].specifier
    for version in ("2.23.0", "2.24.0", "2.26.0", "2.26.1", "2.29.0"):
        if version in ours:
            assert version in anomalib_clip.specifier, version
    assert "2.24.0" in ours  # and the range is not empty


def test_tiny_model_config_ships_with_the_package() -> None:
    from anomalib_vlm.clip import TINY_MODEL_NAME, list_backbones
    from anomalib_vlm.clip.backbone import CONFIG_DIR

    assert (CONFIG_DIR / f"{TINY_MODEL_NAME}.json").is_file()
    assert TINY_MODEL_NAME in list_backbones()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "configs/*.json" in project["tool"]["setuptools"]["package-data"]["anomalib_vlm.clip"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_code_passes_ruff(command: list[str]) -> None:
    """The pyproject's ruff rules hold for the package, the tests, the tools and the notebooks."""
    pytest.importorskip("ruff")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", str(REPO)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_project_urls_name_this_project_not_anomalib() -> None:
    urls = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    for key in ("Homepage", "Repository"):
        assert "anomalib-vlm" in urls[key] and "open-edge-platform" not in urls[key], key
