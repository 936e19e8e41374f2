# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""TRUST: caption-guided unsupervised domain adaptation of our CLIP classifiers."""

from .caption_classifier import CaptionClassifier, ClipCaptionClassifier, DistilBertCaptionClassifier
from .lightning_model import Trust
from .loss import SoftContrastiveLoss, TrustLoss, caption_uncertainty_weights
from .torch_model import TrustModel

__all__ = [
    "CaptionClassifier",
    "ClipCaptionClassifier",
    "DistilBertCaptionClassifier",
    "SoftContrastiveLoss",
    "Trust",
    "TrustLoss",
    "TrustModel",
    "caption_uncertainty_weights",
]
