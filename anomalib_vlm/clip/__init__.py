# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The one place that knows open_clip: loading, dense vision features with DPAM surgery, and prompts."""

from anomalib_vlm.clip.backbone import (
    QUICK_GELU_SUFFIX,
    RANDOM_WEIGHTS_SEED,
    SMALL_MODEL_NAME,
    SMALL_PRETRAINED_TAG,
    TINY_MODEL_NAME,
    ClipPreprocessing,
    backbone_fingerprint,
    clip_preprocessing,
    list_backbones,
    load_clip_model,
    load_weights_only,
    open_clip_config,
    read_weights_file,
)
from anomalib_vlm.clip.prompts import PromptLearner, encode_fixed_texts, encode_text_embeddings, tokenize
from anomalib_vlm.clip.surgery import DualPathVisionEncoder, VisionFeatures, resize_positional_embedding
from anomalib_vlm.clip.transforms import clip_pre_processor, normalization_of

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""Normalisation mean of OpenAI's CLIP models, open_clip's default. Other weights declare other statistics
(LAION's ``ViT-L-14`` ``laion2b_s32b_b82k``, CLIPA, SigLIP): models take theirs from :func:`clip_preprocessing`."""
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""Normalisation standard deviation of OpenAI's CLIP models (see :data:`CLIP_MEAN`)."""

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "QUICK_GELU_SUFFIX",
    "RANDOM_WEIGHTS_SEED",
    "SMALL_MODEL_NAME",
    "SMALL_PRETRAINED_TAG",
    "TINY_MODEL_NAME",
    "ClipPreprocessing",
    "DualPathVisionEncoder",
    "PromptLearner",
    "VisionFeatures",
    "backbone_fingerprint",
    "clip_pre_processor",
    "clip_preprocessing",
    "encode_fixed_texts",
    "encode_text_embeddings",
    "list_backbones",
    "load_clip_model",
    "load_weights_only",
    "normalization_of",
    "open_clip_config",
    "read_weights_file",
    "resize_positional_embedding",
    "tokenize",
]
