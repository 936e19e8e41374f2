# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""AnomalyCLIP's loss: the terms reward the right maps, and mask-less samples only train the image prompts."""

from __future__ import annotations

import torch

from anomalib_vlm.models.anomaly_clip.loss import AnomalyClipLoss, dice_loss, focal_loss


def _maps_from(abnormal_probability: torch.Tensor) -> torch.Tensor:
    return torch.stack([1 - abnormal_probability, abnormal_probability], dim=1)


def test_pixel_terms_prefer_maps_that_match_the_mask() -> None:
    mask = torch.zeros(2, 16, 16)
    mask[:, 4:8, 4:8] = 1
    right = _maps_from(mask * 0.9 + 0.05)
    wrong = _maps_from((1 - mask) * 0.9 + 0.05)
    assert focal_loss(right, mask) < 0.01 < focal_loss(wrong, mask)
    assert dice_loss(right[:, 1], mask) < 0.35
    assert dice_loss(wrong[:, 1], mask) > 0.8


def test_total_is_image_loss_plus_weighted_pixel_loss() -> None:
    loss = AnomalyClipLoss(pixel_loss_weight=4.0)
    logits = torch.tensor([[2.0, -1.0], [-1.0, 2.0]])
    masks = torch.zeros(2, 8, 8)
    masks[1, :4] = 1
    maps = [_maps_from(torch.rand(2, 8, 8))]
    terms = loss(logits, maps, torch.tensor([0, 1]), masks)
    assert torch.isclose(terms["loss"], terms["image_loss"] + 4.0 * terms["pixel_loss"])
    assert terms["pixel_loss"] > 0


def test_anomalous_samples_without_masks_train_image_prompts_only() -> None:
    """An anomalous image with an empty mask has *no* mask: it must not teach "everything is normal"."""
    loss = AnomalyClipLoss()
    logits = torch.tensor([[0.0, 1.0]], requires_grad=True)
    maps = [_maps_from(torch.full((1, 8, 8), 0.9, requires_grad=True))]
    terms = loss(logits, maps, torch.tensor([1]), torch.zeros(1, 8, 8))
    assert terms["pixel_loss"] == 0
    assert torch.isclose(terms["loss"], terms["image_loss"])
    # A batch without any masks behaves the same.
    assert loss(logits, maps, torch.tensor([1]), None)["pixel_loss"] == 0


def test_normal_samples_with_empty_masks_do_train_the_maps() -> None:
    loss = AnomalyClipLoss()
    logits = torch.tensor([[1.0, 0.0]])
    confident_normal = loss(logits, [_maps_from(torch.full((1, 8, 8), 0.05))], torch.tensor([0]), torch.zeros(1, 8, 8))
    false_alarm = loss(logits, [_maps_from(torch.full((1, 8, 8), 0.95))], torch.tensor([0]), torch.zeros(1, 8, 8))
    assert confident_normal["pixel_loss"] < false_alarm["pixel_loss"]
