# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Stage 3: boundary ("edge") embeddings per class, and the perturbation that pushes them outwards.

Official code (``clip_text.py``, ImageNet-100 and CIFAR-100 branches):

* ``edge_feature_search``: per class, the mean of the (unnormalised) text embeddings, the cosine similarity of
  every embedding to it, and the embeddings whose similarity is at or below the 20th percentile (``--percentage 20``);
* ``fake_feature_generate``: for each edge embedding ``e`` and ``k = 0 .. num_per_sample - 1``,
  ``e + d * (slide + k * add_slide)`` with ``d = ||e - mean||`` (``--slide 3e-5 --add_slide 3e-5
  --num_per_sample 5``). ``d`` is a **scalar**, so the same offset is added to every dimension: the official
  rule moves every embedding along the all-ones direction, by an amount that grows with its distance from the
  class mean. :func:`perturb` reproduces it (``direction="official"``) and offers the reading of the paper's text,
  a step along ``e - mean`` itself (``direction="outward"``: ``e + (slide + k * add_slide) * (e - mean)``).
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch
import torch.nn.functional as F

BOUNDARY_PERCENTAGE = 20.0
SLIDE = 3e-5
ADD_SLIDE = 3e-5
NUM_PER_SAMPLE = 5


class PerturbationDirection(str, Enum):
    """How an edge embedding is moved: ``official`` scalar offset, or ``outward`` along ``e - mean``."""

    OFFICIAL = "official"
    OUTWARD = "outward"


def select_boundary(
    embeddings: torch.Tensor, percentage: float = BOUNDARY_PERCENTAGE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of one class's boundary embeddings and the class mean.

    Args:
        embeddings (torch.Tensor): ``[N, D]`` unnormalised text embeddings of one class.
        percentage (float): the share (in percent) least similar to the class mean. Defaults to ``20``.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: indices ``[M]`` (ascending) and the mean ``[D]``.

    Raises:
        ValueError: no embeddings, or a percentage outside ``(0, 100]``.
    """
    if embeddings.ndim != 2 or len(embeddings) == 0:
        msg = f"select_boundary needs a non-empty [N, D] tensor of one class's embeddings, got {list(embeddings.shape)}"
        raise ValueError(msg)
    if not 0 < percentage <= 100:
        msg = f"percentage must be in (0, 100], got {percentage}"
        raise ValueError(msg)
    embeddings = embeddings.double()
    mean = embeddings.mean(0)
    similarity = F.cosine_similarity(embeddings, mean[None], dim=-1)
    # numpy's linear-interpolation percentile, as the official code, so ties and small classes select the same rows
    threshold = float(np.percentile(similarity.numpy(), percentage))
    return torch.nonzero(similarity <= threshold).flatten(), mean.float()


def perturb(
    edges: torch.Tensor,
    mean: torch.Tensor,
    slide: float = SLIDE,
    add_slide: float = ADD_SLIDE,
    num_per_sample: int = NUM_PER_SAMPLE,
    direction: PerturbationDirection | str = PerturbationDirection.OFFICIAL,
) -> torch.Tensor:
    """Fake embeddings from edge embeddings: ``[M * num_per_sample, D]``, the ``k`` steps of each edge in a row.

    Args:
        edges (torch.Tensor): ``[M, D]`` boundary embeddings.
        mean (torch.Tensor): ``[D]`` their class mean.
        slide (float): first step. Defaults to ``3e-5``.
        add_slide (float): increment per further step. Defaults to ``3e-5``.
        num_per_sample (int): fakes per edge embedding. Defaults to ``5``.
        direction (PerturbationDirection | str): ``official`` adds ``||e - mean|| * step`` to every dimension;
            ``outward`` adds ``step * (e - mean)``.

    Raises:
        ValueError: ``num_per_sample < 1`` or an unknown direction.
    """
    if num_per_sample < 1:
        msg = f"num_per_sample must be >= 1, got {num_per_sample}"
        raise ValueError(msg)
    direction = PerturbationDirection(direction)
    steps = slide + add_slide * torch.arange(num_per_sample, dtype=torch.float64)  # [S]
    offset = edges.double() - mean.double()[None]  # [M, D]
    if direction == PerturbationDirection.OFFICIAL:
        moves = offset.norm(dim=-1)[:, None, None] * steps[None, :, None]  # broadcast to every dimension
    else:
        moves = offset[:, None, :] * steps[None, :, None]
    fakes = edges.double()[:, None, :] + moves
    return fakes.reshape(-1, edges.shape[-1]).to(edges.dtype)
