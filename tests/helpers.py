# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""What several test modules share: the tiny AnomalyClip, a quiet Engine, the held-out category, observers."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from anomalib.data import ImageBatch, MVTecAD
from anomalib.engine import Engine

from anomalib_vlm.models import AnomalyClip

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the environment's console scripts (anomalib, anomalib-vlm)

# Train on textures and two objects; test on an object category the prompts never saw.
TRAIN_CATEGORIES = ("weave", "wood", "tile", "leather", "bottle_cap", "chip")
UNSEEN_CATEGORY = "capsule"
IMAGE_SIZE = 128
EPOCHS = 4


def make_engine(root: Path, **kwargs) -> Engine:  # noqa: ANN003
    """A quiet CPU Engine writing under ``root``."""
    return Engine(
        default_root_dir=root,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def make_model(**kwargs) -> AnomalyClip:  # noqa: ANN003
    """The tiny AnomalyClip used throughout the tests (seeded prompt initialisation)."""
    torch.manual_seed(0)
    settings = {
        "backbone": "anomalib-vlm-tiny",
        "pretrained": None,
        "image_size": IMAGE_SIZE,
        "epochs": EPOCHS,
        # The random tiny backbone's global feature is weak; the documented map-max option carries the image
        # decision together with it. The paper's pure "global" score is reported alongside in the tests.
        "image_score": "global_plus_map_max",
    }
    return AnomalyClip(**(settings | kwargs))


def unseen_datamodule(root: Path, category: str = UNSEEN_CATEGORY) -> MVTecAD:
    """The held-out category, read by anomalib's own MVTecAD datamodule."""
    return MVTecAD(root=root, category=category, num_workers=0, eval_batch_size=16, seed=0)


@dataclass
class TrainedRun:
    """What the ``trained_run`` fixture produced."""

    model: AnomalyClip
    engine: Engine
    untrained_metrics: dict[str, float]
    trained_metrics: dict[str, float]
    untrained_context: torch.Tensor
    checkpoint: Path


def training_inputs(model: AnomalyClip, batch: ImageBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """What ``model.training_step(batch)`` trains on: the images its CLIP model sees and the loss's labels and masks.

    Recorded through torch's forward pre-hooks, so the test sees the public step, synthetic anomalies included.
    """
    seen: dict[str, torch.Tensor | None] = {}
    hooks = [
        model.model.register_forward_pre_hook(lambda _, inputs: seen.update(images=inputs[0])),
        model.loss.register_forward_pre_hook(lambda _, inputs: seen.update(labels=inputs[2], masks=inputs[3])),
    ]
    try:
        model.training_step(batch)
    finally:
        for hook in hooks:
            hook.remove()
    return seen["images"], seen["labels"], seen["masks"]


def set_network(monkeypatch: pytest.MonkeyPatch, reachable: bool) -> None:
    """Simulate the network at the socket layer: every host accepts a connection (``True``) or none does.

    An accepted connection is an unconnected socket: a reachability probe succeeds, a download on it fails.
    """

    def connect(*args, **kwargs) -> socket.socket:  # noqa: ANN002, ANN003
        if not reachable:
            raise OSError("[Errno 101] Network is unreachable")
        return socket.socket()

    monkeypatch.setattr(socket, "create_connection", connect)


def run_command(*args: str | Path, cwd: Path = REPO) -> str:
    """Run a command line to completion; its stdout and stderr, or a failed assertion that shows both."""
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def printed_metric(output: str, name: str) -> float:
    """A value from the metrics table that anomalib's CLI prints."""
    match = re.search(rf"{name}\s*│\s*([0-9.]+)", output)
    assert match, f"{name} not in the output:\n{output[-3000:]}"
    return float(match.group(1))
