# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Lightning's DDP: prompt training and testing on two processes (CPU, gloo) equal one process.

Training (``ddp_spawn``, in this process): each of the two processes takes half of every batch and DDP averages the
gradients; AnomalyClip's loss is a mean over images, so two halves of the one-process batch give its gradient
exactly. One batch per epoch makes the data order (DistributedSampler's versus the single loader's) irrelevant.

Testing (``ddp``, through ``anomalib-vlm test``): the zero-shot model is validated on the new category first, and
the thresholds and normalisation that anomalib's post-processor calibrates there are torchmetrics states that DDP
gathers from both processes, as are the test metrics: every metric, F1 included, equals one process's. (Under
``ddp_spawn``, ``Engine.test`` would lose that calibration: Lightning's spawn launcher hands only *fitted* weights
back to the main process, so its test ran on the previous thresholds; see the README, "Many devices".)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import BIN, printed_metric, run_command

pytestmark = pytest.mark.slow
IMAGE_SIZE = 64
TEST_BATCH = 13  # the 32 test images split into unequal batches on each process


def _train(root: Path, work: Path, processes: int, train_images: int) -> tuple[object, torch.Tensor, object]:
    """The model (initial prompts), its trained prompts, and the Engine that trained it."""
    from anomalib.engine import Engine

    from anomalib_vlm.data import AuxiliaryData
    from anomalib_vlm.models import AnomalyClip

    torch.manual_seed(0)
    model = AnomalyClip(
        backbone="anomalib-vlm-tiny", pretrained=None, image_size=IMAGE_SIZE, epochs=2, visualizer=False
    )
    train = AuxiliaryData(
        source="anomalib.data.MVTecAD",
        root=root,
        categories=["wood"],
        num_workers=0,
        seed=0,
        train_batch_size=train_images // processes,
    )
    strategy = {"strategy": "ddp_spawn", "devices": processes} if processes > 1 else {"devices": 1}
    engine = Engine(
        default_root_dir=work,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **strategy,
    )
    initial = model.model.object_agnostic_prompts.context.detach().clone()
    engine.fit(model=model, datamodule=train)
    return initial, model.model.object_agnostic_prompts.context.detach().clone(), engine


def test_two_ddp_processes_learn_the_prompts_and_metrics_of_one(tmp_path: Path) -> None:
    from anomalib.data import MVTecAD

    from anomalib_vlm.data import generate_synthetic_dataset

    root = generate_synthetic_dataset(tmp_path / "synthetic", ["wood", "capsule"], image_size=IMAGE_SIZE, seed=0)
    train_images = len(list((root / "wood" / "test").rglob("*.png")))
    assert train_images % 2 == 0  # two equal halves of the one batch
    initial, one_prompts, one_engine = _train(root, tmp_path / "one", 1, train_images)
    _, two_prompts, _ = _train(root, tmp_path / "two", 2, train_images)
    assert (one_prompts - initial).abs().max() > 1e-3  # two Adam steps moved the prompts
    torch.testing.assert_close(two_prompts, one_prompts, atol=1e-5, rtol=1e-4)

    checkpoint = next((tmp_path / "one").rglob("model.ckpt"))
    test_data = {"root": root, "category": "capsule", "num_workers": 0, "eval_batch_size": TEST_BATCH, "seed": 0}
    from anomalib_vlm.models import AnomalyClip

    one = one_engine.test(model=AnomalyClip.load_from_checkpoint(checkpoint), datamodule=MVTecAD(**test_data))[0]
    output = run_command(
        BIN / "anomalib-vlm", "test", "--model", "AnomalyClip", "--ckpt_path", checkpoint,
        "--model.visualizer", "false",
        "--data", "anomalib.data.MVTecAD", "--data.root", root, "--data.category", "capsule",
        "--data.num_workers", "0", "--data.eval_batch_size", str(TEST_BATCH),
        "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2",
        "--default_root_dir", tmp_path / "ddp_test",
    )  # fmt: skip
    assert "MEMBER: 2/2" in output  # Lightning started the second rank
    for name in ("image_AUROC", "image_F1Score", "pixel_AUROC", "pixel_F1Score", "image_AUPR", "pixel_AUPRO"):
        assert printed_metric(output, name) == pytest.approx(one[name], abs=2e-3), name
