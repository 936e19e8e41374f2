# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""TRUST's losses: caption-uncertainty weights, weak / strong pseudo-label cross-entropies and the soft contrast.

``L = L_s + L_t + L_t_strong + L_ctr`` (README, "Method"), every weight an option:

* ``L_s``: cross-entropy of the source weak view against the source labels;
* ``L_t``: cross-entropy of the target weak view against the caption classifier's pseudo-labels, each sample
  weighted by ``w_i`` (:func:`caption_uncertainty_weights`);
* ``L_t_strong``: cross-entropy of the target strong view against the vision model's own weak-view prediction,
  weighted by ``1 - w_i``: where the caption is unreliable the model teaches itself consistency instead;
* ``L_ctr``: :class:`SoftContrastiveLoss` over both views of source and target, whose positives and negatives are
  weighted by how similar the captions are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def caption_uncertainty_weights(
    image_features: torch.Tensor,
    caption_features: torch.Tensor,
    logit_scale: float | torch.Tensor,
    temperature: float = 3.0,
) -> torch.Tensor:
    """Per-sample weight ``w_i``: how strongly image ``i`` picks its own caption among the batch's captions.

    ``w_i = softmax_j(logit_scale * cos(image_i, caption_j) / temperature)[i]``, computed with a frozen CLIP. A
    caption that fits its image better than the other captions of the batch gets a weight near 1, a caption that
    fits it no better than the others about ``1 / B``.

    Args:
        image_features (torch.Tensor): ``[B, D]`` frozen-CLIP image embeddings (normalised or not).
        caption_features (torch.Tensor): ``[B, D]`` frozen-CLIP text embeddings of the same samples' captions.
        logit_scale (float | torch.Tensor): CLIP's learned logit scale (``exp`` already applied, 100 for OpenAI's).
        temperature (float): divides the CLIP logits before the softmax. Defaults to ``3.0`` (the official code).

    Returns:
        torch.Tensor: ``[B]`` weights in ``(0, 1]``, without gradient.

    Raises:
        ValueError: features of different shapes, or a temperature that is not positive.
    """
    if image_features.shape != caption_features.shape or image_features.ndim != 2:
        msg = (
            f"image and caption features must both be [B, D], got {list(image_features.shape)} and "
            f"{list(caption_features.shape)}"
        )
        raise ValueError(msg)
    if temperature <= 0:
        msg = f"uncertainty temperature must be > 0, got {temperature}"
        raise ValueError(msg)
    with torch.no_grad():
        images = F.normalize(image_features.float(), dim=-1)
        captions = F.normalize(caption_features.float(), dim=-1)
        logits = float(logit_scale) * images @ captions.T / temperature
        return logits.softmax(dim=1).diagonal().clone()


class SoftContrastiveLoss(nn.Module):
    """Supervised-contrastive loss whose positives are caption similarities instead of label equality.

    For ``M = N * V`` features (``N`` samples, ``V`` views) and the caption similarity ``S`` ``[N, N]`` (tiled
    over the views), anchor ``a`` and candidate ``b != a``:

    * ``log p(a, b) = z_a . z_b / tau - log sum_{c != a} (1 - S_ac) exp(z_a . z_c / tau)``: a candidate whose
      caption is as similar as the anchor's own counts as little as a negative;
    * ``loss_a = -(tau / tau_base) * sum_b S_ab log p(a, b) / sum_b S_ab``: every candidate is a positive in
      proportion to its caption similarity.

    Similarities are clamped to ``[0, 1]`` (a negative similarity would turn a positive into a repulsion; the
    official caption features come out of a ReLU, where the clamp changes nothing).

    Args:
        temperature (float): tau. Defaults to ``0.07``.
        base_temperature (float): tau_base, the loss scale of SupCon. Defaults to ``0.07``.
    """

    def __init__(self, temperature: float = 0.07, base_temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0 or base_temperature <= 0:
            msg = f"contrastive temperatures must be > 0, got {temperature} and {base_temperature}"
            raise ValueError(msg)
        self.temperature = temperature
        self.base_temperature = base_temperature

    def forward(self, features: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
        """Loss of ``features`` ``[N, V, D]`` (normalised) under caption similarity ``similarity`` ``[N, N]``.

        Raises:
            ValueError: shapes that do not fit.
        """
        if features.ndim != 3:
            msg = f"features must be [N, views, D], got {list(features.shape)}"
            raise ValueError(msg)
        samples, views = features.shape[:2]
        if similarity.shape != (samples, samples):
            msg = f"similarity must be [{samples}, {samples}] for {samples} samples, got {list(similarity.shape)}"
            raise ValueError(msg)
        flat = features.transpose(0, 1).reshape(samples * views, -1)  # view-major rows
        logits = flat @ flat.T / self.temperature
        logits = logits - logits.amax(dim=1, keepdim=True).detach()
        tiled = similarity.clamp(0.0, 1.0).repeat(views, views).to(logits.dtype)
        not_self = 1.0 - torch.eye(len(flat), device=flat.device, dtype=logits.dtype)
        positives = tiled * not_self
        negatives = (1.0 - tiled) * not_self
        log_norm = torch.log((negatives * logits.exp()).sum(dim=1, keepdim=True).clamp_min(1e-12))
        log_prob = logits - log_norm
        mass = positives.sum(dim=1)
        mass = torch.where(mass < 1e-6, torch.ones_like(mass), mass)
        per_anchor = -(positives * log_prob).sum(dim=1) / mass
        return (self.temperature / self.base_temperature) * per_anchor.mean()


class TrustLoss(nn.Module):
    """TRUST's total loss and its parts.

    Args:
        source_weight (float): weight of ``L_s``. Defaults to ``1.0``.
        target_weight (float): weight of ``L_t``. Defaults to ``1.0``.
        strong_weight (float): weight of ``L_t_strong``. Defaults to ``1.0``.
        contrastive_weight (float): weight of ``L_ctr``; ``0`` switches the term off. Defaults to ``1.0``.
        contrastive_temperature (float): tau of :class:`SoftContrastiveLoss`. Defaults to ``0.07``.
        use_uncertainty (bool): weight the target terms by ``w`` and ``1 - w``; off, ``w = 1`` (plain
            pseudo-label cross-entropy, LaGTran's), so the strong-view term vanishes. Defaults to ``True``.
    """

    def __init__(
        self,
        source_weight: float = 1.0,
        target_weight: float = 1.0,
        strong_weight: float = 1.0,
        contrastive_weight: float = 1.0,
        contrastive_temperature: float = 0.07,
        use_uncertainty: bool = True,
    ) -> None:
        super().__init__()
        self.source_weight = source_weight
        self.target_weight = target_weight
        self.strong_weight = strong_weight
        self.contrastive_weight = contrastive_weight
        self.use_uncertainty = use_uncertainty
        self.contrastive = SoftContrastiveLoss(temperature=contrastive_temperature)

    def forward(
        self,
        source_logits: torch.Tensor,
        source_labels: torch.Tensor,
        target_logits: torch.Tensor,
        target_strong_logits: torch.Tensor,
        pseudo_labels: torch.Tensor,
        weights: torch.Tensor,
        contrastive_features: torch.Tensor | None = None,
        caption_similarity: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """All terms for one source batch and one target batch.

        Args:
            source_logits (torch.Tensor): ``[Bs, C]`` logits of the source weak view.
            source_labels (torch.Tensor): ``[Bs]`` source class indices.
            target_logits (torch.Tensor): ``[Bt, C]`` logits of the target weak view.
            target_strong_logits (torch.Tensor): ``[Bt, C]`` logits of the target strong view.
            pseudo_labels (torch.Tensor): ``[Bt]`` caption classifier's class indices for the target captions.
            weights (torch.Tensor): ``[Bt]`` uncertainty weights ``w`` (ignored without ``use_uncertainty``).
            contrastive_features (torch.Tensor | None): ``[Bs + Bt, 2, D]`` normalised features of both views.
            caption_similarity (torch.Tensor | None): ``[Bs + Bt, Bs + Bt]`` cosine similarity of the captions.

        Returns:
            dict[str, torch.Tensor]: ``loss`` and the detached parts ``source_loss``, ``target_loss``,
            ``strong_loss``, ``contrastive_loss``.
        """
        source_loss = F.cross_entropy(source_logits, source_labels)
        weights = weights.detach() if self.use_uncertainty else torch.ones_like(weights)
        target_loss = (weights * F.cross_entropy(target_logits, pseudo_labels, reduction="none")).mean()
        self_labels = target_logits.detach().argmax(dim=1)
        strong_loss = ((1.0 - weights) * F.cross_entropy(target_strong_logits, self_labels, reduction="none")).mean()
        contrastive_loss = source_loss.new_zeros(())
        if self.contrastive_weight and contrastive_features is not None and caption_similarity is not None:
            contrastive_loss = self.contrastive(contrastive_features, caption_similarity)
        loss = (
            self.source_weight * source_loss
            + self.target_weight * target_loss
            + self.strong_weight * strong_loss
            + self.contrastive_weight * contrastive_loss
        )
        return {
            "loss": loss,
            "source_loss": source_loss.detach(),
            "target_loss": target_loss.detach(),
            "strong_loss": strong_loss.detach(),
            "contrastive_loss": contrastive_loss.detach(),
        }
