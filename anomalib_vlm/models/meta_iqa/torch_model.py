# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""PyTorch model of GRMP-IQA: CLIP with learnable text context, deep visual prompts and a two-prompt quality head.

The quality of an image is the softmax probability of ``[X X X X] high quality.`` against
``[X X X X] low quality.`` given its (visually prompted) CLIP feature. In eval mode :meth:`MetaIqaModel.forward`
returns anomalib's :class:`~anomalib.data.InferenceBatch` with ``pred_score = 1 - quality`` (the probability of
"low quality", so "higher = worse" like an anomaly score), from text features cached in a buffer: the export is
one image tensor in, one score out, no tokenizer or text tower in the graph.

For the fine-tuning regulariser the model also gives the class distribution over scene prompts (by default the
9 of the official code, "a photo of a {animal, cityscape, ..., still_life, others}"), with its own (fine-tuned)
towers and with a frozen zero-shot CLIP (the semantic anchor, loaded lazily and never saved).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from anomalib.data import InferenceBatch
from torch import nn

from anomalib_vlm.clip import (
    DualPathVisionEncoder,
    PromptLearner,
    encode_fixed_texts,
    encode_text_embeddings,
    load_clip_model,
    tokenize,
)
from anomalib_vlm.clip.visual_prompts import VisualPromptEncoder
from anomalib_vlm.models.components import FrozenClipModel

QUALITY_TEXTS = ("high quality", "low quality")
"""Class words after the learnable context: ``[X1 .. Xn] high quality.`` / ``[X1 .. Xn] low quality.``"""
SCENE_CLASSES = (
    "animal",
    "cityscape",
    "human",
    "indoor",
    "landscape",
    "night",
    "plant",
    "still_life",
    "others",
)
"""The nine scene words of the official ``finetune.py`` (LIQE's scene classes), the semantic anchor of the
gradient regulariser: the prompts are literally "a photo of a indoor", "a photo of a still_life" (underscore kept)."""
SPELLED_OUT_SCENE_CLASSES = (
    "animal",
    "cityscape",
    "human",
    "indoor scene",
    "landscape",
    "night scene",
    "plant",
    "still life",
    "others",
)
"""The same nine scenes as LIQE's paper spells them ("indoor scene", "night scene", "still life"): an option, not
the official code. Against :data:`SCENE_CLASSES` it moves the zero-shot scene logits by ~0.6 and the
regularised gradients by ~130 % (measured side by side on identical random weights)."""
SCENE_TEMPLATE = "a photo of a {}"


class MetaIqaModel(FrozenClipModel):
    """GRMP-IQA's CLIP quality model.

    Args:
        backbone (str): open_clip model name. Defaults to ``"ViT-B-16"``.
        pretrained (str | Path | None): open_clip tag, local checkpoint, or ``None`` (seeded random weights).
            Defaults to ``"openai"``.
        image_size (int): square input side; the positional embedding is resized to it. Defaults to ``224``.
        prompt_context_length (int): shared learnable context words of the two quality prompts. Defaults to ``4``.
        visual_prompt_tokens (int): VPT prompt tokens per vision block. Defaults to ``100``.
        visual_prompt_depth (int | None): vision blocks with prompts; ``None`` = all. Defaults to ``None``.
        visual_prompt_dropout (float): dropout on the projected visual prompts. Defaults to ``0.1``.
        visual_prompt_dropout_per_sample (bool): one dropout mask per image (the official code); ``False`` shares
            one mask across the batch. Defaults to ``True``.
        finetune_blocks (int): last blocks of each tower trained in fine-tuning. Defaults to ``4``.
        scene_classes (Sequence[str] | None): the semantic anchor's classes, as in "a photo of a {scene}"; at least
            two. ``None`` = :data:`SCENE_CLASSES` (the official code's words); :data:`SPELLED_OUT_SCENE_CLASSES`
            spells three of them out as LIQE's paper does. Defaults to ``None``.
        cache_dir (str | Path | None): open_clip weight cache. Defaults to open_clip's own.

    Raises:
        TypeError: ``scene_classes`` is a string, not a list.
        ValueError: fewer than two scene classes, or a bad ``finetune_blocks``.
    """

    model_name = "MetaIqa"

    def __init__(
        self,
        backbone: str = "ViT-B-16",
        pretrained: str | Path | None = "openai",
        image_size: int = 224,
        prompt_context_length: int = 4,
        visual_prompt_tokens: int = 100,
        visual_prompt_depth: int | None = None,
        visual_prompt_dropout: float = 0.1,
        visual_prompt_dropout_per_sample: bool = True,
        finetune_blocks: int = 4,
        scene_classes: Sequence[str] | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if isinstance(scene_classes, str):
            msg = f"scene_classes must be a list of scenes, got the string {scene_classes!r}"
            raise TypeError(msg)
        self.scene_classes = SCENE_CLASSES if scene_classes is None else tuple(str(scene) for scene in scene_classes)
        if len(self.scene_classes) < 2 or not all(scene.strip() for scene in self.scene_classes):
            msg = (
                f"scene_classes needs at least two non-blank scenes (a KL over one class is always zero), got "
                f"{list(self.scene_classes)}"
            )
            raise ValueError(msg)
        super().__init__(backbone, pretrained, image_size, cache_dir)
        text_blocks, vision_blocks = len(self.clip.transformer.resblocks), len(self.clip.visual.transformer.resblocks)
        if not 0 <= finetune_blocks <= min(text_blocks, vision_blocks):
            limit = min(text_blocks, vision_blocks)
            msg = f"finetune_blocks must be in [0, {limit}] for this backbone, got {finetune_blocks}"
            raise ValueError(msg)
        self.finetune_blocks = finetune_blocks
        self.quality_prompts = PromptLearner(
            self.clip,
            backbone,
            list(QUALITY_TEXTS),
            context_length=prompt_context_length,
            shared_context=True,
            deep_depth=0,
        )
        self.visual_prompts = VisualPromptEncoder(
            self.clip.visual,
            image_size=image_size,
            num_tokens=visual_prompt_tokens,
            depth=visual_prompt_depth,
            dropout=visual_prompt_dropout,
            per_sample_dropout=visual_prompt_dropout_per_sample,
        )
        embed_dim = self.clip.text_projection.shape[-1]
        self.scene_texts = [SCENE_TEMPLATE.format(scene) for scene in self.scene_classes]
        self.register_buffer("scene_tokens", tokenize(backbone, self.scene_texts), persistent=False)
        # Normalised [high, low] text features used in eval mode and baked into exports.
        self.register_buffer("text_features", torch.zeros(2, embed_dim))
        self._teacher: list[tuple[nn.Module, DualPathVisionEncoder, torch.Tensor]] = []
        self.refresh_cached_features()

    # ------------------------------------------------------------------ parameter groups
    def prompt_parameters(self) -> list[nn.Parameter]:
        """Text context plus every visual-prompt parameter: what meta-pre-training learns."""
        return [self.quality_prompts.context, *self.visual_prompts.parameters()]

    def _finetune_modules(self) -> Iterator[nn.Module]:
        if self.finetune_blocks:
            yield from self.clip.transformer.resblocks[-self.finetune_blocks :]
            yield from self.clip.visual.transformer.resblocks[-self.finetune_blocks :]
        yield self.clip.ln_final
        yield self.clip.visual.ln_post

    def finetune_parameters(self) -> list[nn.Parameter]:
        """Text context, the last ``finetune_blocks`` blocks of both towers, ``ln_final`` and ``ln_post``."""
        return [self.quality_prompts.context] + [p for module in self._finetune_modules() for p in module.parameters()]

    def finetuned_state_keys(self) -> set[str]:
        """State-dict keys (relative to this module) of the CLIP weights fine-tuning changes."""
        ids = {id(p) for module in self._finetune_modules() for p in module.parameters()}
        return {f"clip.{name}" for name, p in self.clip.named_parameters() if id(p) in ids}

    def set_trainable(self, phase: str) -> list[nn.Parameter]:
        """Enable gradients for one phase only (``"meta"``, ``"finetune"`` or ``"none"``) and return its parameters.

        Frozen parts then build no autograd graph, so a fine-tuning step back-propagates through the last blocks
        only.
        """
        self.requires_grad_(False)
        params = {"meta": self.prompt_parameters, "finetune": self.finetune_parameters}.get(phase, list)()
        for param in params:
            param.requires_grad_(True)
        return params

    # ------------------------------------------------------------------ features
    def encode_quality_prompts(self) -> torch.Tensor:
        """``[2, D]`` L2-normalised (high, low) quality text features of the current prompts and towers."""
        return F.normalize(self.quality_prompts(), dim=-1)

    def cached_features(self) -> dict[str, torch.Tensor]:
        """The quality text features of the current prompts and towers, which eval mode and exports use."""
        return {"text_features": self.encode_quality_prompts()}

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` L2-normalised image features with the visual prompts."""
        return F.normalize(self.visual_prompts(images), dim=-1)

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLIP's learned temperature (100 for OpenAI weights)."""
        return self.clip.logit_scale.exp()

    def quality_logits(self, image_features: torch.Tensor, text_features: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, 2]`` (high, low) quality logits."""
        text_features = self.encode_quality_prompts() if text_features is None else text_features
        return self.logit_scale * image_features @ text_features.T

    def scene_logits(self, image_features: torch.Tensor) -> torch.Tensor:
        """``[B, scenes]`` scene logits with the model's own (possibly fine-tuned) towers; gradients flow."""
        tokens = self.scene_tokens
        text = encode_text_embeddings(self.clip, self.clip.token_embedding(tokens), tokens)
        return self.logit_scale * image_features @ F.normalize(text, dim=-1).T

    @torch.no_grad()
    def teacher_scene_logits(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, scenes]`` scene logits of the frozen zero-shot CLIP (no prompts, original weights)."""
        if not self._teacher:
            # A fresh load gives the original weights even after fine-tuning changed this model's blocks.
            teacher = load_clip_model(self.backbone, self.pretrained, self.cache_dir)
            encoder = DualPathVisionEncoder(
                teacher.visual,
                image_size=self.image_size,
                feature_layers=(),  # the global feature only
                dpam_layers=0,
                global_ln_post=True,  # plain CLIP's image embedding
            )
            scenes = F.normalize(encode_fixed_texts(teacher, self.backbone, self.scene_texts), dim=-1)
            self._teacher.append((teacher, encoder, scenes))
        teacher, encoder, scenes = self._teacher[0]
        teacher.to(images.device)
        encoder.to(images.device)
        features = F.normalize(encoder(images).global_feature, dim=-1)
        return teacher.logit_scale.exp() * features @ scenes.to(images.device).T

    # ------------------------------------------------------------------ forward
    def forward(self, images: torch.Tensor) -> torch.Tensor | InferenceBatch:
        """Score ``[B, 3, H, W]`` normalised images.

        Returns:
            torch.Tensor | InferenceBatch: ``[B, 2]`` (high, low) logits in train mode; in eval mode
            ``pred_score = 1 - quality`` ``[B]``, where quality is the probability of "high quality".
        """
        self.check_images(images)
        features = self.image_features(images)
        if self.training:
            return self.quality_logits(features)
        probabilities = self.quality_logits(features, self.text_features).softmax(dim=-1)
        return InferenceBatch(pred_score=probabilities[:, 1])
