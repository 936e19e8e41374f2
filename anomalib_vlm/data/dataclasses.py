# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Batch types: anomalib's image item and batch plus opinion scores (IQA) or ID classes (OOD).

A quality model keeps anomalib's convention that ``pred_score`` is higher when worse; the quality is
:func:`quality_from_score` of it. OOD images have ``gt_label = 1`` and ``gt_class =`` :data:`OOD_CLASS_INDEX`.

Example:
    >>> import torch
    >>> from anomalib_vlm.data.dataclasses import IqaBatch
    >>> IqaBatch(image=torch.rand(2, 3, 8, 8), pred_score=torch.tensor([0.2, 0.9])).pred_quality
    tensor([0.8000, 0.1000])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
import torch
from anomalib.data import ImageBatch, ImageItem
from anomalib.data.dataclasses.numpy import NumpyImageBatch, NumpyImageItem

OOD_CLASS_INDEX = -1
"""``gt_class`` of OOD images."""

REFERENCE_TYPE = "reference"
"""``distortion`` of a clean (undistorted) image in an IQA table."""

Score = TypeVar("Score", float, torch.Tensor)


def quality_from_score(pred_score: Score) -> Score:
    """Quality in ``[0, 1]`` (higher = better) from an anomaly-style ``pred_score`` (higher = worse)."""
    return 1 - pred_score


@dataclass
class IqaItem(ImageItem):
    """One image with its opinion score.

    Attributes:
        mos: raw mean opinion score, as in the CSV.
        gt_quality: the MOS rescaled so that higher is better and the training shots span ``[0, 1]``.
        distortion: distortion type (``"Authentic"`` for in-the-wild datasets, ``"reference"`` for clean images).
    """

    mos: torch.Tensor | None = None
    gt_quality: torch.Tensor | None = None
    distortion: str | None = None


@dataclass
class IqaBatch(ImageBatch):
    """anomalib's :class:`~anomalib.data.ImageBatch` carrying the opinion scores.

    Its fields are :class:`IqaItem`'s, batched; :attr:`pred_quality` is the quality (:func:`quality_from_score`).
    """

    item_class = IqaItem

    mos: torch.Tensor | None = None
    gt_quality: torch.Tensor | None = None
    distortion: list[str] | None = None

    @property
    def pred_quality(self) -> torch.Tensor | None:
        """Predicted quality in ``[0, 1]`` (higher = better): ``1 - pred_score``."""
        return None if self.pred_score is None else quality_from_score(self.pred_score)


@dataclass
class NumpyOODImageItem(NumpyImageItem):
    """:class:`NumpyImageItem` with ``gt_class`` and ``pred_class``."""

    gt_class: np.ndarray | None = None
    pred_class: np.ndarray | None = None


@dataclass
class NumpyOODImageBatch(NumpyImageBatch):
    """:class:`NumpyImageBatch` with ``gt_class`` and ``pred_class``."""

    item_class: ClassVar[Callable] = NumpyOODImageItem
    gt_class: np.ndarray | None = None
    pred_class: np.ndarray | None = None


@dataclass
class OODImageItem(ImageItem):
    """:class:`~anomalib.data.ImageItem` with ``gt_class`` (ID class index, -1 for OOD) and ``pred_class``."""

    numpy_class: ClassVar[Callable] = NumpyOODImageItem
    gt_class: torch.Tensor | None = None
    pred_class: torch.Tensor | None = None


@dataclass
class OODImageBatch(ImageBatch):
    """:class:`~anomalib.data.ImageBatch` with ``gt_class`` ``[B]`` and ``pred_class`` ``[B]``."""

    item_class: ClassVar[Callable] = OODImageItem
    numpy_class: ClassVar[Callable] = NumpyOODImageBatch
    gt_class: torch.Tensor | None = None
    pred_class: torch.Tensor | None = None
