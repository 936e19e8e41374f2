# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""GRMP-IQA: few-shot image quality assessment with meta-learned CLIP prompts.

Its quality gate for any anomalib model is :class:`anomalib_vlm.callbacks.QualityGate`.
"""

from .lightning_model import MetaIqa
from .loss import GradientRule, quality_loss, regularize_gradients, semantic_loss
from .torch_model import MetaIqaModel
from .visualizer import QualityVisualizer

__all__ = [
    "GradientRule",
    "MetaIqa",
    "MetaIqaModel",
    "QualityVisualizer",
    "quality_loss",
    "regularize_gradients",
    "semantic_loss",
]
