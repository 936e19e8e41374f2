# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""SUPREME's few-shot tuning loss: ID classification, image-text consistency (ITC) and the BPG bias pull.

``L = L_id + alpha (L_inter + L_intra) + beta L_bias`` (README Eq. 10) with

* ``L_id``: cross-entropy of ``cos(I, P_txt) / tau`` against the ID classes;
* ``L_inter``: cross-entropy of ``cos(I, f_t2i(P_txt)) / tau`` plus that of ``cos(f_i2t(I), P_txt) / tau``;
* ``L_intra``: L1 cycle losses ``|I - f_t2i(f_i2t(I))| + |P_txt - f_i2t(f_t2i(P_txt))|``;
* ``L_bias``: L1 pull of the bias mean ``mu`` and the sample ``b`` toward ``m(I)``.

Terms of switched-off modules are zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .torch_model import SupremeTrainingOutput


class SupremeLoss(nn.Module):
    """The total tuning loss and its parts.

    Args:
        temperature (float): tau of the logits. Defaults to ``0.01``.
        itc_weight (float): alpha, weight of ``L_inter + L_intra``. Defaults to ``0.005``.
        bias_weight (float): beta, weight of ``L_bias``. Defaults to ``0.1``.
    """

    def __init__(self, temperature: float = 0.01, itc_weight: float = 0.005, bias_weight: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature
        self.itc_weight = itc_weight
        self.bias_weight = bias_weight

    def forward(self, outputs: SupremeTrainingOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Compute the loss terms for a batch of shot embeddings with class ``labels`` ``[B]``.

        Returns:
            dict[str, torch.Tensor]: ``loss`` (the total) and the detached parts ``id_loss``, ``inter_loss``,
            ``intra_loss`` and ``bias_loss``.
        """
        images, text = outputs.image_features, outputs.text_prototypes
        id_loss = F.cross_entropy(images @ text.T / self.temperature, labels)
        zero = id_loss.new_zeros(())
        inter_loss = intra_loss = bias_loss = zero
        if outputs.image_to_text is not None:
            inter_loss = F.cross_entropy(images @ outputs.text_to_image.T / self.temperature, labels)
            inter_loss = inter_loss + F.cross_entropy(outputs.image_to_text @ text.T / self.temperature, labels)
            intra_loss = F.l1_loss(outputs.image_cycle, images) + F.l1_loss(outputs.text_cycle, text)
        if outputs.image_condition is not None:
            condition = outputs.image_condition
            bias_loss = F.l1_loss(outputs.bias_mean, condition) + F.l1_loss(outputs.bias_sample, condition)
        loss = id_loss + self.itc_weight * (inter_loss + intra_loss) + self.bias_weight * bias_loss
        return {
            "loss": loss,
            "id_loss": id_loss.detach(),
            "inter_loss": inter_loss.detach(),
            "intra_loss": intra_loss.detach(),
            "bias_loss": bias_loss.detach(),
        }
