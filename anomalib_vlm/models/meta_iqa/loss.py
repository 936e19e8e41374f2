# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""GRMP-IQA's losses and its quality-aware gradient regularisation.

* :func:`quality_loss`: binary cross-entropy between the softmax over (high, low) quality and the MOS rescaled to
  ``[0, 1]`` (a soft target).
* :func:`semantic_loss`: KL divergence from a frozen zero-shot CLIP's scene distribution to the model's (the
  semantic anchor).
* :func:`regularize_gradients`: per parameter tensor, combine the quality gradient ``g_q`` with the semantic
  gradient ``g_s``:

  - ``"grmp"`` (the official code, default): if ``g_q · g_s > 0``, use ``g_q - λ (g_q · g_s / ‖g_s‖²) g_s``;
    else ``g_q``. With λ = 5 the part of the quality step that also moves the scene prediction toward the anchor
    is reversed (times 1 - λ), which the paper motivates as keeping the model from fitting content.
  - ``"prograd"`` (ProGrad, Zhu et al. 2023): if ``g_q · g_s < 0`` (conflict), use
    ``g_q - λ (g_q · g_s / ‖g_s‖²) g_s``; else ``g_q``. λ ≤ 1 there.
  - ``"none"``: ``g_q``.

  Both gradients are computed explicitly (``torch.autograd.grad`` over a fixed parameter list), so every tensor
  is paired with its own gradients; a parameter the semantic loss does not reach (the text context) gets
  ``g_s = 0`` and keeps ``g_q``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import torch
import torch.nn.functional as F


class GradientRule(str, Enum):
    """How the semantic gradient regularises the quality gradient (see the module docstring)."""

    GRMP = "grmp"
    PROGRAD = "prograd"
    NONE = "none"


def quality_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft binary cross-entropy ``-(y log p_high + (1 - y) log p_low)``, averaged.

    Args:
        logits (torch.Tensor): ``[B, 2]`` (high, low) quality logits.
        target (torch.Tensor): ``[B]`` quality in ``[0, 1]`` (clamped), higher = better.
        eps (float): keeps the logarithm finite. Defaults to ``1e-6``.
    """
    log_probabilities = F.log_softmax(logits, dim=-1).clamp_min(torch.log(torch.tensor(eps)))
    target = target.to(logits.dtype).clamp(0, 1)
    return -(target * log_probabilities[:, 0] + (1 - target) * log_probabilities[:, 1]).mean()


def semantic_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``T² · KL(softmax(teacher / T) ‖ softmax(student / T))``, averaged over the batch."""
    teacher = F.softmax(teacher_logits / temperature, dim=-1)
    student_log = F.log_softmax(student_logits / temperature, dim=-1)
    return F.kl_div(student_log, teacher, reduction="batchmean") * temperature**2


def regularize_gradients(
    quality_grads: Sequence[torch.Tensor | None],
    semantic_grads: Sequence[torch.Tensor | None],
    rule: GradientRule | str = GradientRule.GRMP,
    lam: float = 5.0,
    eps: float = 1e-12,
) -> list[torch.Tensor | None]:
    """Combine quality and semantic gradients tensor by tensor.

    Args:
        quality_grads (Sequence[torch.Tensor | None]): gradient of the quality loss per parameter (``None`` =
            the loss does not reach it).
        semantic_grads (Sequence[torch.Tensor | None]): gradient of the semantic loss, same parameters and order.
        rule (GradientRule | str): ``"grmp"``, ``"prograd"`` or ``"none"``. Defaults to ``"grmp"``.
        lam (float): λ, the strength of the projection. Defaults to ``5.0``.
        eps (float): below this ``‖g_s‖²`` the semantic gradient is treated as zero. Defaults to ``1e-12``.

    Returns:
        list[torch.Tensor | None]: the gradient to apply per parameter.

    Raises:
        ValueError: the two lists differ in length.
    """
    if len(quality_grads) != len(semantic_grads):
        msg = f"{len(quality_grads)} quality gradients but {len(semantic_grads)} semantic gradients"
        raise ValueError(msg)
    rule = GradientRule(rule)
    out: list[torch.Tensor | None] = []
    for g_q, g_s in zip(quality_grads, semantic_grads, strict=True):
        if rule == GradientRule.NONE or g_q is None or g_s is None:
            out.append(g_q)
            continue
        dot = (g_q * g_s).sum()
        norm = (g_s * g_s).sum()
        project = dot > 0 if rule == GradientRule.GRMP else dot < 0
        if bool(project) and float(norm) > eps:
            out.append(g_q - lam * dot / norm * g_s)
        else:
            out.append(g_q)
    return out
