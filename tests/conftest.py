# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Shared fixtures: synthetic data on disk and one AnomalyClip trained through anomalib's Engine."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

# Train on textures and two objects; test on an object category the prompts never saw.
TRAIN_CATEGORIES = ("weave", "wood", "tile", "leather", "bottle_cap", "chip")
UNSEEN_CATEGORY = "capsule"
IMAGE_SIZE = 128
EPOCHS = 4


def pytest_configure(config: pytest.Config) -> None:
    """Keep test output readable: anomalib and Lightning are chatty at INFO level."""
    logging.getLogger("anomalib").setLevel(logging.WARNING)
    logging.getLogger("lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All synthetic categories, generated once per test session."""
    from anomalib_vlm.data import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("data") / "synthetic", image_size=IMAGE_SIZE, seed=0)


def make_engine(root: Path, **kwargs) -> "Engine":  # noqa: ANN003, F821, UP037
    """A quiet CPU Engine writing under ``root``."""
    from anomalib.engine import Engine

    return Engine(
        default_root_dir=root,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def make_model(**kwargs) -> "AnomalyClip":  # noqa: ANN003, F821, UP037
    """The tiny AnomalyClip used throughout the tests (seeded prompt initialisation)."""
    from anomalib_vlm.models import AnomalyClip

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


def unseen_datamodule(root: Path, category: str = UNSEEN_CATEGORY) -> "MVTecAD":  # noqa: F821, UP037
    """The held-out category, read by anomalib's own MVTecAD datamodule."""
    from anomalib.data import MVTecAD

    return MVTecAD(root=root, category=category, num_workers=0, eval_batch_size=16, seed=0)


@dataclass
class TrainedRun:
    """What the training fixture produced."""

    model: "AnomalyClip"  # noqa: F821, UP037
    engine: "Engine"  # noqa: F821, UP037
    untrained_metrics: dict[str, float]
    trained_metrics: dict[str, float]
    untrained_context: torch.Tensor
    checkpoint: Path


@pytest.fixture(scope="session")
def trained_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """Prompts trained on TRAIN_CATEGORIES' test splits through ``Engine.fit``, tested zero-shot on the unseen one.

    The same prompts, untrained, are tested first through the same Engine path.
    """
    from anomalib_vlm.data import AuxiliaryData

    work = tmp_path_factory.mktemp("trained")
    model = make_model()
    untrained_context = model.model.object_agnostic_prompts.context.detach().clone()
    untrained = make_engine(work / "untrained").test(model=model, datamodule=unseen_datamodule(synthetic_root))

    engine = make_engine(work / "run")
    auxiliary = AuxiliaryData(
        source="anomalib.data.MVTecAD",
        root=synthetic_root,
        categories=TRAIN_CATEGORIES,
        num_workers=0,
        seed=0,
    )
    engine.fit(model=model, datamodule=auxiliary)
    trained = engine.test(model=model, datamodule=unseen_datamodule(synthetic_root))
    checkpoints = sorted(Path(engine.trainer.default_root_dir).rglob("*.ckpt"))
    assert checkpoints, "Engine.fit wrote no checkpoint"
    return TrainedRun(
        model=model,
        engine=engine,
        untrained_metrics={name: float(value) for name, value in untrained[0].items()},
        trained_metrics={name: float(value) for name, value in trained[0].items()},
        untrained_context=untrained_context,
        checkpoint=checkpoints[-1],
    )
