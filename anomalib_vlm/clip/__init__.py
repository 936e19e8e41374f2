# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The one place that knows open_clip: loading, dense vision features with DPAM surgery, and prompts."""

from anomalib_vlm.clip.backbone import (
    RANDOM_WEIGHTS_SEED,
    SMALL_MODEL_NAME,
    SMALL_PRETRAINED_TAG,
    TINY_MODEL_NAME,
    backbone_fingerprint,
    list_backbones,
    load_clip_model,
)
from anomalib_vlm.clip.prompts import PromptLearner, encode_fixed_texts, encode_text_embeddings, tokenize
from anomalib_vlm.clip.surgery import DualPathVisionEncoder, VisionFeatures, resize_positional_embedding

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""Normalisation mean of OpenAI CLIP (also used by the open_clip models this package targets)."""
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""Normalisation standard deviation of OpenAI CLIP."""

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "RANDOM_WEIGHTS_SEED",
    "SMALL_MODEL_NAME",
    "SMALL_PRETRAINED_TAG",
    "TINY_MODEL_NAME",
    "DualPathVisionEncoder",
    "PromptLearner",
    "VisionFeatures",
    "backbone_fingerprint",
    "encode_fixed_texts",
    "encode_text_embeddings",
    "list_backbones",
    "load_clip_model",
    "resize_positional_embedding",
    "tokenize",
]
