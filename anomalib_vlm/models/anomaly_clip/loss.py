# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""AnomalyCLIP's training loss: image cross-entropy plus weighted focal and dice losses on the anomaly maps.

The pixel terms follow the official code: a focal loss (gamma 2) on the two-channel ``[normal, abnormal]``
probability map, and dice losses on the abnormal channel against the mask and on the normal channel against its
complement. Samples without a usable mask (an anomalous image whose mask is empty) are left out of the pixel terms,
so datasets without masks still train the image-level prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def focal_loss(
    probabilities: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, eps: float = 1e-5
) -> torch.Tensor:
    """Focal loss on class probabilities.

    Args:
        probabilities (torch.Tensor): ``[B, C, H, W]`` probabilities summing to 1 over ``C``.
        target (torch.Tensor): ``[B, H, W]`` integer class of each pixel.
        gamma (float): focusing parameter. Defaults to ``2.0``.
        eps (float): clamp that keeps ``log`` finite. Defaults to ``1e-5``.

    Returns:
        torch.Tensor: mean loss over pixels.
    """
    true_class_probability = probabilities.gather(1, target.long().unsqueeze(1)).squeeze(1).clamp(eps, 1.0)
    return (-((1 - true_class_probability) ** gamma) * true_class_probability.log()).mean()


def dice_loss(prediction: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft dice loss ``1 - (2|P∩T| + s) / (|P| + |T| + s)`` per sample, averaged over the batch."""
    prediction = prediction.flatten(1)
    target = target.flatten(1).to(prediction.dtype)
    dice = (2 * (prediction * target).sum(1) + smooth) / (prediction.sum(1) + target.sum(1) + smooth)
    return (1 - dice).mean()


class AnomalyClipLoss(nn.Module):
    """Image-level cross-entropy + ``pixel_loss_weight`` x sum over layers of (focal + dice + dice).

    Args:
        pixel_loss_weight (float): weight of the pixel terms. The official code uses 4 with one feature layer,
            which reproduces its earlier sum over four identical layers. Defaults to ``4.0``.
    """

    def __init__(self, pixel_loss_weight: float = 4.0) -> None:
        super().__init__()
        self.pixel_loss_weight = pixel_loss_weight

    def forward(
        self,
        image_logits: torch.Tensor,
        layer_probabilities: Sequence[torch.Tensor],
        labels: torch.Tensor,
        masks: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Compute the loss terms.

        Args:
            image_logits (torch.Tensor): ``[B, 2]`` (normal, abnormal) logits of the global feature.
            layer_probabilities (Sequence[torch.Tensor]): per feature layer, ``[B, 2, H, W]`` probabilities at
                mask resolution.
            labels (torch.Tensor): ``[B]`` image labels (1 = anomalous).
            masks (torch.Tensor | None): ``[B, H, W]`` ground-truth masks, or ``None`` if the batch has none.

        Returns:
            dict[str, torch.Tensor]: ``loss`` (the total) and its parts ``image_loss`` and ``pixel_loss``.
        """
        labels = labels.long()
        image_loss = F.cross_entropy(image_logits, labels)
        pixel_loss = image_logits.new_zeros(())
        if masks is not None and layer_probabilities:
            masks = (masks > 0.5).to(image_logits.dtype)
            # An anomalous image with an empty mask has no mask, not a defect-free one.
            has_mask = (labels == 0) | (masks.flatten(1).sum(1) > 0)
            if has_mask.any():
                masks = masks[has_mask]
                for all_probabilities in layer_probabilities:
                    probabilities = all_probabilities[has_mask]
                    pixel_loss = pixel_loss + focal_loss(probabilities, masks)
                    pixel_loss = pixel_loss + dice_loss(probabilities[:, 1], masks)
                    pixel_loss = pixel_loss + dice_loss(probabilities[:, 0], 1 - masks)
        loss = image_loss + self.pixel_loss_weight * pixel_loss
        return {"loss": loss, "image_loss": image_loss.detach(), "pixel_loss": pixel_loss.detach()}
