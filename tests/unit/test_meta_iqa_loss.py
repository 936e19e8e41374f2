# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""MetaIqa's losses, the gradient-regularisation rules, its semantic anchor, and the SRCC/PLCC metrics."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from anomalib_vlm.data import IqaBatch
from anomalib_vlm.metrics.srcc_plcc import PLCC, SRCC
from anomalib_vlm.models.meta_iqa.loss import quality_loss, regularize_gradients, semantic_loss
from anomalib_vlm.models.meta_iqa.torch_model import SCENE_CLASSES, MetaIqaModel


def test_quality_loss_is_soft_bce_minimised_at_the_target() -> None:
    target = torch.tensor([0.8])
    losses = {p: float(quality_loss(torch.tensor([[math.log(p), math.log(1 - p)]]), target)) for p in (0.5, 0.8, 0.95)}
    assert losses[0.8] < losses[0.5] and losses[0.8] < losses[0.95]
    assert losses[0.8] == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)), rel=1e-5)


def test_semantic_loss_is_zero_only_when_distributions_agree() -> None:
    teacher = torch.randn(4, 9, generator=torch.Generator().manual_seed(0))
    assert float(semantic_loss(teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
    assert float(semantic_loss(teacher.flip(-1), teacher)) > 0.1


def test_grmp_rule_reverses_the_aligned_component_with_lambda() -> None:
    g_s = torch.tensor([1.0, 0.0])
    aligned = torch.tensor([2.0, 3.0])  # g_q . g_s = 2 > 0
    conflicting = torch.tensor([-2.0, 3.0])
    out = regularize_gradients([aligned, conflicting, aligned], [g_s, g_s, None], "grmp", lam=5.0)
    assert torch.allclose(out[0], torch.tensor([2.0 - 5 * 2.0, 3.0]))  # component along g_s: x (1 - lambda)
    assert torch.equal(out[1], conflicting)  # conflict: unchanged
    assert torch.equal(out[2], aligned)  # no semantic gradient (e.g. the text context): unchanged


def test_prograd_rule_projects_only_on_conflict_and_none_is_identity() -> None:
    g_s = torch.tensor([1.0, 0.0])
    conflicting = torch.tensor([-2.0, 3.0])
    out = regularize_gradients([conflicting, torch.tensor([2.0, 3.0])], [g_s, g_s], "prograd", lam=1.0)
    assert torch.allclose(out[0], torch.tensor([0.0, 3.0]))  # conflicting part removed
    assert torch.equal(out[1], torch.tensor([2.0, 3.0]))
    assert regularize_gradients([conflicting], [g_s], "none")[0] is conflicting
    with pytest.raises(ValueError, match="1 quality gradients but 2 semantic"):
        regularize_gradients([conflicting], [g_s, g_s])


def test_srcc_plcc_match_scipy_over_several_batches() -> None:
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(40, generator=generator)
    predicted = truth + 0.3 * torch.rand(40, generator=generator)
    srcc, plcc = SRCC(prefix="test_"), PLCC()
    for chunk in range(4):
        part = slice(chunk * 10, (chunk + 1) * 10)
        batch = IqaBatch(image=torch.rand(10, 3, 4, 4), gt_quality=truth[part], pred_score=1 - predicted[part])
        srcc.update(batch)
        plcc.update(batch)
    assert float(srcc.compute()) == pytest.approx(spearmanr(predicted, truth).statistic, abs=1e-5)
    assert float(plcc.compute()) == pytest.approx(pearsonr(predicted, truth).statistic, abs=1e-5)
    assert srcc.name == "test_SRCC"


def test_metrics_report_missing_fields() -> None:
    batch = IqaBatch(image=torch.rand(2, 3, 4, 4), pred_score=torch.rand(2))
    with pytest.raises(ValueError, match="gt_quality"):
        SRCC().update(batch)
    lenient = PLCC(strict=False)
    lenient.update(batch)
    assert lenient.compute() is None


def test_the_semantic_anchor_scenes_are_an_option() -> None:
    """Default: the paper's nine scenes; a line can anchor on its own content instead (at least two scenes)."""
    tiny = {"backbone": "anomalib-vlm-tiny", "pretrained": None, "image_size": 32, "visual_prompt_tokens": 2}
    assert MetaIqaModel(**tiny).scene_classes == SCENE_CLASSES
    model = MetaIqaModel(**tiny, scene_classes=["screw", "metal nut", "cable"])
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    features = model.image_features(images)
    assert model.scene_logits(features).shape == (2, 3)
    assert model.teacher_scene_logits(images).shape == (2, 3)
    with pytest.raises(ValueError, match=r"at least two non-blank scenes .*\['screw'\]"):
        MetaIqaModel(**tiny, scene_classes=["screw"])
    with pytest.raises(TypeError, match="a list of scenes, got the string 'screw'"):
        MetaIqaModel(**tiny, scene_classes="screw")
