# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""AnomalyClip inside anomalib: it learns, transfers zero-shot, checkpoints, and rejects bad input clearly."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
from anomalib import LearningType
from anomalib.data import MVTecAD
from anomalib.models import get_model, list_models
from torch.utils.data import DataLoader

from anomalib_vlm.data import AuxiliaryData
from anomalib_vlm.errors import CheckpointMismatchError
from anomalib_vlm.models import AnomalyClip
from tests.helpers import (
    TRAIN_CATEGORIES,
    TrainedRun,
    make_engine,
    make_model,
    training_inputs,
    unseen_datamodule,
)

# One worker builds the trained_run session fixture for both files (tools/dev.py runs pytest-xdist).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained_run")]


def test_importing_the_package_registers_the_model_with_anomalib() -> None:
    assert "anomaly_clip" in list_models()
    model = get_model("anomaly_clip", backbone="anomalib-vlm-tiny", pretrained=None, image_size=64)
    assert isinstance(model, AnomalyClip)
    assert model.learning_type == LearningType.ONE_CLASS  # untrained: Engine.fit must fit it


def test_paper_defaults() -> None:
    """Defaults are the paper's; only the backbone is swapped so no weights are needed."""
    model = AnomalyClip(backbone="anomalib-vlm-tiny", pretrained=None)
    hparams = model.hparams
    assert (hparams.image_size, list(hparams.feature_layers), hparams.pixel_loss_weight) == (518, [24], 4.0)
    assert (hparams.dpam_layers, hparams.prompt_context_length, hparams.prompt_depth) == (19, 12, 9)
    assert (hparams.prompt_deep_length, hparams.temperature, hparams.sigma) == (4, 0.07, 4.0)
    assert (hparams.learning_rate, tuple(hparams.betas), hparams.epochs) == (1e-3, (0.5, 0.999), 15)
    assert hparams.image_score == "global"
    assert AnomalyClip.__init__.__defaults__[:2] == ("ViT-L-14-336", "openai")
    assert model.model.vision.dpam_start == 5  # blocks 6..24 (1-indexed) get DPAM
    assert model.trainer_arguments["max_epochs"] == 15


def test_fit_trains_the_prompts_and_they_detect_defects_on_an_unseen_category(trained_run: TrainedRun) -> None:
    """Prompts trained on six categories segment and detect defects on a seventh far above chance."""
    before, after = trained_run.untrained_metrics, trained_run.trained_metrics
    context = trained_run.model.model.object_agnostic_prompts.context.detach()
    assert not torch.allclose(context, trained_run.untrained_context), "Engine.fit did not change the prompts"
    assert trained_run.model.learning_type == LearningType.ZERO_SHOT
    # Untrained prompts are near chance on the unseen category ...
    assert 0.2 <= before["pixel_AUROC"] <= 0.7, before
    assert 0.25 <= before["image_AUROC"] <= 0.75, before
    # ... trained ones are far above it.
    assert after["pixel_AUROC"] >= 0.85, after
    assert after["image_AUROC"] >= 0.85, after
    assert after["pixel_AUPRO"] >= 0.7, after
    assert after["pixel_AUROC"] - before["pixel_AUROC"] >= 0.2


def test_paper_image_score_and_dpam_ablation_on_the_same_prompts(
    trained_run: TrainedRun,
    synthetic_root: Path,
    tmp_path: Path,
) -> None:
    """The README's ablation on the trained prompts: the paper's global image score, and the maps without DPAM.

    On random tiny weights the global feature is weak, so the map-max option ranks images better than the paper's
    global score; DPAM makes no difference worth reading, since its benefit comes from what pretrained attention
    does to patch locality.
    """
    results = {}
    for name, overrides in {"global score": {"image_score": "global"}, "no DPAM": {"dpam_layers": 0}}.items():
        model = AnomalyClip.load_from_checkpoint(trained_run.checkpoint, **overrides)
        metrics = make_engine(tmp_path / name.replace(" ", "_")).test(
            model=model,
            datamodule=unseen_datamodule(synthetic_root),
        )[0]
        results[name] = metrics
    trained = trained_run.trained_metrics
    # The maps do not depend on the image score, so pixel metrics must agree with the main run.
    assert results["global score"]["pixel_AUROC"] == pytest.approx(trained["pixel_AUROC"], abs=1e-4)
    assert results["global score"]["image_AUROC"] < trained["image_AUROC"], results
    assert results["no DPAM"]["pixel_AUROC"] > 0.5
    assert results["no DPAM"]["pixel_AUROC"] == pytest.approx(trained["pixel_AUROC"], abs=0.05), results


def test_checkpoint_holds_only_the_prompts_and_reloads_identically(trained_run: TrainedRun) -> None:
    checkpoint = torch.load(trained_run.checkpoint, map_location="cpu", weights_only=False)
    model_state = {key: value for key, value in checkpoint["state_dict"].items() if key.startswith("model.")}
    assert set(model_state) == {
        "model.object_agnostic_prompts.context",
        "model.object_agnostic_prompts.deep_prompts",
        "model.text_features",  # the cached [normal, abnormal] text features
        "model.trained",
    }
    assert checkpoint["anomalib_vlm_backbone"]["backbone"] == "anomalib-vlm-tiny"
    assert trained_run.checkpoint.stat().st_size < 1_000_000

    reloaded = AnomalyClip.load_from_checkpoint(trained_run.checkpoint)
    assert reloaded.learning_type == LearningType.ZERO_SHOT
    images = torch.rand(3, 3, 128, 128)
    trained_run.model.eval()
    reloaded.eval()
    with torch.no_grad():
        expected, actual = trained_run.model(images), reloaded(images)
    for field in ("pred_score", "anomaly_map", "pred_label", "pred_mask"):
        assert torch.equal(getattr(expected, field), getattr(actual, field)), field


def test_fit_on_a_trained_model_only_validates_and_says_so_until_told_to_continue(
    trained_run: TrainedRun,
    synthetic_root: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``Engine.fit`` on trained prompts calibrates without training (logged); ``continue_training`` trains again."""
    model = AnomalyClip.load_from_checkpoint(trained_run.checkpoint)
    trained_context = model.model.object_agnostic_prompts.context.detach().clone()
    category = unseen_datamodule(synthetic_root)  # normal-only training split: synthetic anomalies when training
    assert model.learning_type == LearningType.ZERO_SHOT
    with caplog.at_level(logging.INFO, logger="anomalib_vlm"):
        make_engine(tmp_path / "again").fit(model=model, datamodule=category)
    assert "already trained" in caplog.text and "continue_training()" in caplog.text
    assert torch.equal(model.model.object_agnostic_prompts.context, trained_context)  # nothing was trained

    model.continue_training(epochs=1)
    assert model.learning_type == LearningType.ONE_CLASS
    assert model.trainer_arguments["max_epochs"] == 1
    make_engine(tmp_path / "continued").fit(model=model, datamodule=category)
    assert not torch.equal(model.model.object_agnostic_prompts.context, trained_context)  # it trained further
    assert model.learning_type == LearningType.ZERO_SHOT  # and is a zero-shot model again


def test_checkpoint_for_another_backbone_fails_clearly(
    trained_run: TrainedRun,
    synthetic_root: Path,
    tmp_path: Path,
) -> None:
    with pytest.raises(CheckpointMismatchError, match=r"trained for backbone 'anomalib-vlm-tiny'.*'ViT-B-32'"):
        AnomalyClip.load_from_checkpoint(trained_run.checkpoint, backbone="ViT-B-32", image_size=64)
    # The same through anomalib's Engine, with a model built for another backbone.
    other = AnomalyClip(backbone="ViT-B-32", pretrained=None, image_size=64, feature_layers=[12], dpam_layers=10)
    with pytest.raises(CheckpointMismatchError, match=r"trained for backbone 'anomalib-vlm-tiny'.*'ViT-B-32'"):
        make_engine(tmp_path / "engine").test(
            model=other, datamodule=unseen_datamodule(synthetic_root), ckpt_path=trained_run.checkpoint
        )
    # Same architecture name, different weights (e.g. another pretrained tag) is caught too.
    other_weights = tmp_path / "other.pt"
    torch.save({k: v + 0.1 for k, v in trained_run.model.model.clip.state_dict().items()}, other_weights)
    with pytest.raises(CheckpointMismatchError, match=r"pretrained=.*--model.backbone / --model.pretrained"):
        AnomalyClip.load_from_checkpoint(trained_run.checkpoint, pretrained=str(other_weights))
    with pytest.raises(CheckpointMismatchError, match="prompt settings"):
        AnomalyClip.load_from_checkpoint(trained_run.checkpoint, prompt_context_length=8)


def test_fit_accepts_any_anomalib_dataloader_of_labelled_images(synthetic_root: Path, tmp_path: Path) -> None:
    """``Engine.fit(train_dataloaders=...)``: any loader of anomalib ``ImageBatch`` trains the prompts."""
    auxiliary = AuxiliaryData(root=synthetic_root, categories=["wood"], num_workers=0)
    auxiliary.setup()
    loader = DataLoader(auxiliary.train_data, batch_size=8, shuffle=True, collate_fn=auxiliary.train_data.collate_fn)
    model = make_model(epochs=1)
    before = model.model.object_agnostic_prompts.deep_prompts.detach().clone()
    make_engine(tmp_path).fit(model=model, train_dataloaders=loader)
    assert not torch.allclose(model.model.object_agnostic_prompts.deep_prompts, before)
    assert model.learning_type == LearningType.ZERO_SHOT


def test_synthetic_anomalies_turn_normal_images_into_training_data(synthetic_root: Path) -> None:
    """Normal-only batches get Perlin anomalies pasted in, with masks and labels to match."""
    datamodule = MVTecAD(root=synthetic_root, category="wood", num_workers=0, train_batch_size=8)
    datamodule.setup()
    model = make_model(synthetic_anomaly_probability=1.0)
    batch = next(iter(datamodule.train_dataloader()))
    batch.image, batch.gt_mask = model.pre_processor.transform(batch.image, batch.gt_mask)
    assert not batch.gt_label.any()
    images, labels, masks = training_inputs(model, batch)
    assert labels.all()
    assert masks.shape == (8, 128, 128)
    assert (masks.flatten(1).sum(1) > 0).all()
    changed = (images - batch.image).abs().sum(1) > 1e-4
    assert changed[masks > 0].float().mean() > 0.9
    assert not changed[masks == 0].any()
    assert torch.isfinite(model.training_step(batch))


class TestBadInput:
    @staticmethod
    def test_wrong_channel_count() -> None:
        model = make_model().eval()
        with pytest.raises(ValueError, match=r"expects images of shape \[B, 3, H, W\], got \[2, 1, 128, 128\]"):
            model.model(torch.rand(2, 1, 128, 128))

    @staticmethod
    def test_empty_dataset(tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="No categories found"):
            AuxiliaryData(root=tmp_path).setup()
        (tmp_path / "empty" / "test").mkdir(parents=True)
        with pytest.raises(FileNotFoundError, match=r"'empty' of MVTecAD could not be read from .*Found 0 images"):
            AuxiliaryData(root=tmp_path, categories=["empty"]).setup()

    @staticmethod
    def test_missing_mask_folder(synthetic_root: Path, tmp_path: Path) -> None:
        shutil.copytree(synthetic_root / "wood", tmp_path / "wood")
        shutil.rmtree(tmp_path / "wood" / "ground_truth" / "stain")
        with pytest.raises(FileNotFoundError, match=r"no mask folder .*ground_truth/stain"):
            AuxiliaryData(root=tmp_path, categories=["wood"]).setup()

    @staticmethod
    def test_bad_options() -> None:
        with pytest.raises(ValueError, match="'sharpest' is not a valid ImageScore"):
            make_model(image_score="sharpest")
        with pytest.raises(ValueError, match="synthetic_anomaly_probability"):
            make_model(synthetic_anomaly_probability=2.0)
        with pytest.raises(ValueError, match="split must be 'test' or 'train'"):
            AuxiliaryData(split="val")
        with pytest.raises(ValueError, match=re.escape("Cannot import 'anomalib.data.Nope'")):
            AuxiliaryData(source="anomalib.data.Nope")


def test_auxiliary_data_pools_the_test_splits(synthetic_root: Path) -> None:
    auxiliary = AuxiliaryData(root=synthetic_root, categories=TRAIN_CATEGORIES[:2], num_workers=0)
    auxiliary.setup()
    labels = auxiliary.train_data.samples.label_index
    assert len(auxiliary.train_data) == 2 * 32
    assert set(labels) == {0, 1}
    assert len(auxiliary.val_data) == len(auxiliary.train_data)  # thresholds see normal and anomalous images
    assert auxiliary.train_data.samples.mask_path.str.len().gt(0).sum() == (labels == 1).sum()


def test_normal_only_training_data_gets_synthetic_anomalies_and_learns(
    synthetic_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Anomalib's normal-only train split (no anomaly anywhere) is not a silent no-op: anomalies are synthesised."""
    model = make_model(epochs=3)
    train = MVTecAD(root=synthetic_root, category="wood", num_workers=0, train_batch_size=8, seed=0)
    with caplog.at_level("WARNING", logger="anomalib_vlm"):
        make_engine(tmp_path).fit(model=model, datamodule=train)
    assert "synthetic_anomaly_probability" in caplog.text
    assert model.hparams.synthetic_anomaly_probability == 0.5
    metrics = make_engine(tmp_path / "test").test(model=model, datamodule=unseen_datamodule(synthetic_root))[0]
    assert metrics["pixel_AUROC"] >= 0.8, metrics
    assert metrics["image_AUROC"] >= 0.7, metrics


def test_normal_only_data_that_cannot_be_inspected_stops_with_a_named_error(
    synthetic_root: Path, tmp_path: Path
) -> None:
    """A loader whose dataset has no labels table and yields only normal images stops after the first epoch."""
    train = MVTecAD(root=synthetic_root, category="wood", num_workers=0)
    train.setup()
    normal_only = torch.utils.data.Subset(train.train_data, range(8))  # a Subset hides the samples table
    loader = DataLoader(normal_only, batch_size=8, collate_fn=train.train_data.collate_fn)
    with pytest.raises(ValueError, match=r"no anomalous image.*synthetic_anomaly_probability"):
        make_engine(tmp_path).fit(model=make_model(epochs=1), train_dataloaders=loader)
