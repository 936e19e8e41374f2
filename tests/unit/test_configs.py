# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Every shipped YAML config parses against the current signatures, the paper-protocol ones included.

The paper-protocol configs need real weights and datasets, so no test runs them; parsing them (without
instantiating anything) still catches a renamed or removed option before a user does.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml
from anomalib.cli.cli import AnomalibCLI

import anomalib_vlm  # noqa: F401 - registers the models with anomalib's CLI
from anomalib_vlm.cross_dataset import build_parser

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(REPO.glob("configs/*/*.yaml"))
# `anomalib-vlm cross-dataset` configs have train_data / test_data; the others are for `anomalib-vlm train / test`.
CROSS_DATASET = [path for path in CONFIGS if "\ntrain_data:" in path.read_text()]
ANOMALIB_CLI = [path for path in CONFIGS if path not in CROSS_DATASET]


def _anomalib_cli_exit_code(config: Path) -> tuple[int, str]:
    """``anomalib-vlm train --config <config> --print_config``: parse and validate only."""
    output, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors), pytest.raises(SystemExit) as stop:
        AnomalibCLI(args=["train", "--config", str(config), "--print_config"])
    return int(stop.value.code or 0), errors.getvalue()


def test_every_config_is_covered() -> None:
    assert [path.name for path in CROSS_DATASET] == [
        "mvtec_to_visa.yaml",
        "small_synthetic.yaml",
        "tiny_synthetic.yaml",
        "visa_to_mvtec.yaml",
    ]
    assert {path.parent.name for path in ANOMALIB_CLI} == {"anomaly_clip", "meta_iqa", "supreme", "trust"}


@pytest.mark.parametrize("config", ANOMALIB_CLI, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_anomalib_cli_configs_parse(config: Path) -> None:
    code, errors = _anomalib_cli_exit_code(config)
    assert code == 0, errors[-2000:]


@pytest.mark.parametrize("config", CROSS_DATASET, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_cross_dataset_configs_parse(config: Path) -> None:
    parsed = build_parser().parse_args(["--config", str(config)])
    assert parsed.model.class_path == "anomalib_vlm.models.AnomalyClip"


def test_an_unknown_option_fails_the_parse(tmp_path: Path) -> None:
    """The checks above have teeth: a stale option is an error, not ignored."""
    config = tmp_path / "stale.yaml"
    text = (REPO / "configs/supreme/imagenet_fewshot.yaml").read_text()
    config.write_text(text.replace("  init_args:\n", "  init_args:\n    no_such_option: 3\n", 1))
    code, errors = _anomalib_cli_exit_code(config)
    assert code != 0
    assert "no_such_option" in errors
    stale = tmp_path / "stale_cross_dataset.yaml"
    text = CROSS_DATASET[0].read_text()
    stale.write_text(text.replace("  init_args:\n", "  init_args:\n    no_such_option: 3\n", 1))
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
        build_parser().parse_args(["--config", str(stale)])


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_config_fixes_its_seed(config: Path) -> None:
    """The anomalib CLI seeds at random unless told (``seed_everything: true``): quoted numbers must reproduce."""
    settings = yaml.safe_load(config.read_text())
    seed = settings.get("seed") if config in CROSS_DATASET else settings.get("seed_everything")
    assert isinstance(seed, int) and not isinstance(seed, bool), f"{config.name}: no integer seed ({seed!r})"
