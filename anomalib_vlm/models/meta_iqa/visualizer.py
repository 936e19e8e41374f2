# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""anomalib's image visualizer for quality scores: the image with its quality (and MOS, and the verdict).

A quality model has no anomaly map, so anomalib's default panels would repeat the plain image.
:class:`QualityVisualizer` draws anomalib's image panel (any ``fields`` / ``overlay_fields`` given) with a caption
below it: ``quality 0.73``, ``MOS 3.20`` when the data has one, and ``rejected`` or ``accepted`` (quality below or
above the model's threshold).

Example:
    >>> import torch
    >>> from anomalib_vlm.data import IqaItem
    >>> from anomalib_vlm.models.meta_iqa.visualizer import QualityVisualizer
    >>> item = IqaItem(image=torch.rand(3, 32, 32), pred_score=torch.tensor(0.25), pred_label=torch.tensor(False))
    >>> QualityVisualizer().caption_lines(item)
    ['quality 0.75', 'accepted']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from anomalib_vlm.data import quality_from_score
from anomalib_vlm.visualization import CaptionedImageVisualizer

if TYPE_CHECKING:
    from anomalib.data import ImageItem


def quality_lines(item: ImageItem) -> list[str]:
    """``["quality 0.73", "MOS 3.20", "rejected"]`` for one predicted item (lines without data are left out)."""
    lines = []
    if item.pred_score is not None:
        lines.append(f"quality {quality_from_score(float(item.pred_score)):.2f}")
    mos = getattr(item, "mos", None)
    if mos is not None:
        lines.append(f"MOS {float(mos):.2f}")
    if item.pred_label is not None:
        lines.append("rejected" if bool(item.pred_label) else "accepted")
    return lines


class QualityVisualizer(CaptionedImageVisualizer):
    """Save each tested or predicted image with its quality, MOS and verdict written below it.

    Takes :class:`~anomalib_vlm.visualization.CaptionedImageVisualizer`'s arguments (anomalib's ``fields``,
    ``overlay_fields``, ``field_size``, ``text_config``, ``output_dir``, ...).
    """

    def caption_lines(self, item: ImageItem) -> list[str]:
        """Quality, MOS and verdict of one item."""
        return quality_lines(item)
