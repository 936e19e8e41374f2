# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Ranking metrics read the model's own scores; deployed scores and labels stay anomalib's normalised ones.

Each model's own post-processor and evaluator (``configure_post_processor`` / ``configure_evaluator``) are driven
through Lightning's hook order (post-processor, then evaluator) with test scores outside the validation range,
where anomalib's normalisation clamps and ties them.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from anomalib.data import ImageBatch
from anomalib.metrics import AUPRO
from anomalib.post_processing import PostProcessor
from torchmetrics.functional.classification import binary_auroc, binary_average_precision, binary_f1_score
from torchmetrics.functional.regression import pearson_corrcoef, spearman_corrcoef

from anomalib_vlm.data import IqaBatch, OODImageBatch
from anomalib_vlm.metrics import FPR95, RawScoreEvaluator, RawScorePostProcessor, fpr_at_tpr
from anomalib_vlm.models.anomaly_clip import AnomalyClip
from anomalib_vlm.models.meta_iqa import MetaIqa
from anomalib_vlm.models.supreme import Supreme

TRAINER = SimpleNamespace(num_devices=1)
MODULE = SimpleNamespace()

# Validation: ID scores in [0.30, 0.40], OOD in [0.45, 0.50]; threshold ~0.45, range 0.2, so normalisation
# clamps every test score above ~0.55 to 1 and below ~0.35 to 0.
VAL_SCORES = torch.tensor([0.30, 0.35, 0.40, 0.45, 0.50])
VAL_LABELS = torch.tensor([0, 0, 0, 1, 1])
# Test: OOD 0.6..0.9 and an ID image at 0.65 all clamp to 1.0 (ties), although the model ranks them.
TEST_SCORES = torch.tensor([0.10, 0.20, 0.65, 0.60, 0.70, 0.80, 0.90, 0.32])
TEST_LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0])


def validate(post_processor: PostProcessor, evaluator: RawScoreEvaluator, batch: ImageBatch) -> None:
    """One validation epoch of one batch, in Lightning's callback order."""
    post_processor.on_validation_batch_end(TRAINER, MODULE, batch, batch, 0)
    evaluator.on_validation_batch_end(TRAINER, MODULE, batch, batch, 0)
    post_processor.on_validation_epoch_end(TRAINER, MODULE)


def test_batch(post_processor: PostProcessor, evaluator: RawScoreEvaluator, batch: ImageBatch) -> dict[str, float]:
    """One test batch in Lightning's callback order; the evaluator's test metrics by name."""
    post_processor.on_test_batch_end(TRAINER, MODULE, batch, batch, 0)
    evaluator.on_test_batch_end(TRAINER, MODULE, batch, batch, 0)
    return {metric.name: float(metric.compute()) for metric in evaluator.test_metrics}


test_batch.__test__ = False  # a helper, not a test


def ood_batch(scores: torch.Tensor, labels: torch.Tensor) -> OODImageBatch:
    return OODImageBatch(
        image=torch.rand(len(scores), 3, 8, 8),
        gt_label=labels,
        pred_score=scores.clone(),
        gt_class=torch.where(labels.bool(), -1, 0),
        pred_class=torch.zeros(len(scores), dtype=torch.long),
    )


def test_clamping_ties_the_scores_this_test_uses() -> None:
    """The premise: anomalib's normalisation turns the distinct test scores into ties and changes the metrics."""
    post_processor = PostProcessor()
    post_processor.on_validation_batch_end(TRAINER, MODULE, ood_batch(VAL_SCORES, VAL_LABELS))
    post_processor.on_validation_epoch_end(TRAINER, MODULE)
    batch = ood_batch(TEST_SCORES, TEST_LABELS)
    post_processor.on_test_batch_end(TRAINER, MODULE, batch)
    assert int((batch.pred_score == 1).sum()) == 5
    assert float(binary_auroc(batch.pred_score, TEST_LABELS)) != pytest.approx(
        float(binary_auroc(TEST_SCORES, TEST_LABELS)),
    )


def test_normalisation_is_monotone_so_only_the_clamp_changes_auroc() -> None:
    """Unclamped normalisation keeps AUROC and FPR95 exactly; the clamp alone is what changes them."""
    post_processor = PostProcessor()
    post_processor.on_validation_batch_end(TRAINER, MODULE, ood_batch(VAL_SCORES, VAL_LABELS))
    post_processor.on_validation_epoch_end(TRAINER, MODULE)
    low, high = post_processor.image_min, post_processor.image_max
    unclamped = (TEST_SCORES - post_processor.image_threshold) / (high - low) + 0.5
    assert unclamped.max() > 1
    assert float(binary_auroc(unclamped.sigmoid(), TEST_LABELS)) == pytest.approx(
        float(binary_auroc(TEST_SCORES, TEST_LABELS)),
    )
    assert float(fpr_at_tpr(unclamped, TEST_LABELS)) == pytest.approx(float(fpr_at_tpr(TEST_SCORES, TEST_LABELS)))
    clamped = unclamped.clamp(0, 1)
    assert float(fpr_at_tpr(clamped, TEST_LABELS)) > float(fpr_at_tpr(TEST_SCORES, TEST_LABELS))


def test_supreme_ranks_its_own_ood_scores_and_deploys_normalised_ones() -> None:
    post_processor, evaluator = Supreme.configure_post_processor(), Supreme.configure_evaluator()
    validate(post_processor, evaluator, ood_batch(VAL_SCORES, VAL_LABELS))
    batch = ood_batch(TEST_SCORES, TEST_LABELS)
    metrics = test_batch(post_processor, evaluator, batch)

    assert metrics["image_AUROC"] == pytest.approx(float(binary_auroc(TEST_SCORES, TEST_LABELS)))
    assert metrics["image_FPR95"] == pytest.approx(float(fpr_at_tpr(TEST_SCORES, TEST_LABELS)))
    # What users deploy is still anomalib's: normalised to [0, 1], threshold at 0.5.
    assert batch.pred_score.min() >= 0
    assert batch.pred_score.max() <= 1
    assert torch.equal(batch.pred_label, batch.pred_score > 0.5)
    assert torch.equal(batch.raw_pred_score, TEST_SCORES)


def test_anomaly_clip_ranks_raw_scores_and_maps_but_scores_f1_on_deployed_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(4, 16, 16, dtype=torch.bool)
    masks[1, 4:10, 4:10] = True
    masks[3, 2:6, 8:14] = True
    labels = torch.tensor([0, 1, 0, 1])

    def maps(normal: tuple[float, float], anomalous: tuple[float, float]) -> torch.Tensor:
        values = torch.rand(4, 16, 16, generator=generator)
        return torch.where(
            masks,
            anomalous[0] + (anomalous[1] - anomalous[0]) * values,
            normal[0] + (normal[1] - normal[0]) * values,
        )

    def batch(scores: torch.Tensor, anomaly_map: torch.Tensor) -> ImageBatch:
        return ImageBatch(
            image=torch.rand(4, 3, 16, 16),
            gt_label=labels,
            gt_mask=masks,
            pred_score=scores.clone(),
            anomaly_map=anomaly_map.clone(),
        )

    post_processor, evaluator = AnomalyClip.configure_post_processor(), AnomalyClip.configure_evaluator()
    validate(post_processor, evaluator, batch(torch.tensor([0.3, 0.5, 0.35, 0.45]), maps((0.0, 1.0), (1.0, 2.0))))
    test_scores = torch.tensor([0.9, 0.7, 0.1, 0.8])  # beyond the validation range on both sides
    test_maps = maps((0.0, 3.0), (1.5, 4.0))  # normal pixels up to 3 and anomalous from 1.5: ties at 1 when clamped
    tested = batch(test_scores, test_maps)
    metrics = test_batch(post_processor, evaluator, tested)

    assert metrics["image_AUROC"] == pytest.approx(float(binary_auroc(test_scores, labels)))
    assert metrics["image_AUPR"] == pytest.approx(float(binary_average_precision(test_scores, labels)))
    pixel_auroc = float(binary_auroc(test_maps.flatten(), masks.flatten().int()))
    assert metrics["pixel_AUROC"] == pytest.approx(pixel_auroc, abs=1e-6)
    clamped_pixel_auroc = float(binary_auroc(tested.anomaly_map.flatten(), masks.flatten().int()))
    assert abs(clamped_pixel_auroc - pixel_auroc) > 0.01  # the clamp would have mattered
    aupro = AUPRO(fields=["anomaly_map", "gt_mask"])
    aupro.update(ImageBatch(image=torch.rand(4, 3, 16, 16), gt_mask=masks, anomaly_map=test_maps))
    assert metrics["pixel_AUPRO"] == pytest.approx(float(aupro.compute()))
    # F1 scores the deployed decisions.
    assert metrics["image_F1Score"] == pytest.approx(float(binary_f1_score(tested.pred_label.int(), labels)))
    assert metrics["pixel_F1Score"] == pytest.approx(
        float(binary_f1_score(tested.pred_mask.flatten().int(), masks.flatten().int())),
    )
    assert tested.anomaly_map.max() <= 1
    assert torch.equal(tested.raw_anomaly_map, test_maps)


def test_meta_iqa_correlates_its_own_quality_even_when_normalisation_is_switched_on() -> None:
    mos = torch.tensor([0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8, 0.95])
    quality = torch.tensor([0.05, 0.30, 0.25, 0.55, 0.80, 0.70, 0.90, 0.99])

    def batch(pred_quality: torch.Tensor, gt_quality: torch.Tensor) -> IqaBatch:
        return IqaBatch(
            image=torch.rand(len(gt_quality), 3, 8, 8),
            gt_label=torch.zeros(len(gt_quality), dtype=torch.long),
            gt_quality=gt_quality,
            pred_score=1 - pred_quality,
        )

    post_processor, evaluator = MetaIqa.configure_post_processor(), MetaIqa.configure_evaluator()
    assert not post_processor.enable_normalization  # the default deploys the quality itself
    post_processor.enable_normalization = True  # a user's choice; the metrics must not depend on it
    validate(post_processor, evaluator, batch(torch.tensor([0.45, 0.5, 0.55, 0.6]), torch.tensor([0.4, 0.5, 0.6, 0.7])))
    tested = batch(quality, mos)
    metrics = test_batch(post_processor, evaluator, tested)

    assert metrics["test_SRCC"] == pytest.approx(float(spearman_corrcoef(quality, mos)))
    assert metrics["test_PLCC"] == pytest.approx(float(pearson_corrcoef(quality, mos)), abs=1e-5)
    assert float(spearman_corrcoef(tested.pred_quality, mos)) != pytest.approx(metrics["test_SRCC"])


def test_meta_iqa_default_metrics_are_unchanged_without_normalisation() -> None:
    """With the default post-processor (no normalisation) raw and deployed quality are the same tensor."""
    post_processor, evaluator = MetaIqa.configure_post_processor(), MetaIqa.configure_evaluator()
    quality = torch.tensor([0.2, 0.9, 0.4, 0.7])
    mos = torch.tensor([0.1, 0.8, 0.5, 0.6])
    tested = IqaBatch(image=torch.rand(4, 3, 8, 8), gt_quality=mos, pred_score=1 - quality)
    metrics = test_batch(post_processor, evaluator, tested)
    assert metrics["test_SRCC"] == pytest.approx(float(spearman_corrcoef(tested.pred_quality, mos)))
    assert torch.equal(tested.pred_label, quality < 0.5)


@pytest.mark.parametrize("post_processor", [None, PostProcessor(enable_normalization=False)])
def test_evaluator_fills_raw_fields_when_nothing_normalised(post_processor: PostProcessor | None) -> None:
    """Another post-processor (or none) that leaves the scores alone: the raw fields are the plain ones."""
    evaluator = Supreme.configure_evaluator()
    batch = ood_batch(TEST_SCORES, TEST_LABELS)
    if post_processor is not None:
        post_processor.on_test_batch_end(TRAINER, MODULE, batch)
    evaluator.on_test_batch_end(TRAINER, MODULE, batch, batch, 0)
    metrics = {metric.name: float(metric.compute()) for metric in evaluator.test_metrics}
    assert metrics["image_FPR95"] == pytest.approx(float(fpr_at_tpr(TEST_SCORES, TEST_LABELS)))


def test_evaluator_warns_when_another_post_processor_clamps(caplog: pytest.LogCaptureFixture) -> None:
    evaluator = RawScoreEvaluator(test_metrics=[FPR95(fields=["raw_pred_score", "gt_label"])])
    with caplog.at_level(logging.WARNING, logger="anomalib_vlm.metrics.raw_scores"):
        evaluator.setup(TRAINER, SimpleNamespace(post_processor=PostProcessor()), "test")
    assert "RawScorePostProcessor" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="anomalib_vlm.metrics.raw_scores"):
        evaluator.setup(TRAINER, SimpleNamespace(post_processor=RawScorePostProcessor()), "test")
    assert not caplog.text


def test_raw_fields_survive_a_checkpoint_config_round_trip() -> None:
    saved = RawScorePostProcessor(raw_fields=("pred_score", "pred_quality")).checkpoint_config()
    restored = RawScorePostProcessor()
    restored.load_checkpoint_config(saved)
    assert restored.raw_fields == ["pred_score", "pred_quality"]
