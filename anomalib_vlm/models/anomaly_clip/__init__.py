# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""AnomalyCLIP: zero-shot anomaly detection and segmentation with object-agnostic learned prompts."""

from .lightning_model import AnomalyClip
from .loss import AnomalyClipLoss
from .torch_model import AnomalyClipModel, ImageScore

__all__ = ["AnomalyClip", "AnomalyClipLoss", "AnomalyClipModel", "ImageScore"]
