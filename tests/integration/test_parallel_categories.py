# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The cross-dataset protocol's categories tested by two worker processes give the rows of testing them in turn."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anomalib_vlm.cross_dataset import evaluate_categories
from anomalib_vlm.parallel_categories import evaluate_categories_in_parallel
from tests.helpers import make_engine

pytestmark = pytest.mark.slow
CATEGORIES = ["capsule", "wood"]


def test_two_workers_give_the_rows_of_one(tmp_path: Path) -> None:
    from anomalib.data import MVTecAD

    from anomalib_vlm.data import generate_synthetic_dataset
    from anomalib_vlm.models import AnomalyClip

    root = generate_synthetic_dataset(tmp_path / "synthetic", CATEGORIES, image_size=64, seed=0)
    torch.manual_seed(0)
    model = AnomalyClip(backbone="anomalib-vlm-tiny", pretrained=None, image_size=64, visualizer=False)
    engine = make_engine(tmp_path / "one")
    engine.validate(model=model, datamodule=MVTecAD(root=root, category="wood", num_workers=0))
    checkpoint = tmp_path / "model.ckpt"
    engine.trainer.save_checkpoint(checkpoint)
    test_data = {"class_path": "anomalib.data.MVTecAD", "init_args": {"root": str(root), "num_workers": 0}}
    in_turn = evaluate_categories(engine, model, test_data, CATEGORIES)
    trainer = {"accelerator": "cpu", "logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    parallel = evaluate_categories_in_parallel(
        "anomalib_vlm.models.AnomalyClip", checkpoint, test_data, CATEGORIES, 2, trainer, tmp_path / "parallel"
    )
    assert list(parallel) == CATEGORIES
    for category in CATEGORIES:
        assert parallel[category] == pytest.approx(in_turn[category], abs=1e-5), category
    with pytest.raises(ValueError, match="--parallel: expected 1 or more worker processes, got 0"):
        evaluate_categories_in_parallel("x.Y", checkpoint, test_data, CATEGORIES, 0)
