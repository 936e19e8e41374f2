# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""PyTorch model of a TRUST-adapted CLIP classifier: Supreme's ID classifier with a trainable image tower.

The classifier is SUPREME's text-prototype term (MCM): ``p(c | x) = softmax_c(cos(f(x), P_c) / tau)``. TRUST
adapts it to the target domain by fine-tuning the CLIP image tower ``f`` (all of it, as the official code does
with its ViT / Swin, or only its last blocks) and the prototypes ``P`` (initialised from the class prompts or from a
tuned Supreme model). :meth:`TrustModel.forward` returns Supreme's
:class:`~anomalib_vlm.models.supreme.torch_model.OODInferenceBatch` (OOD score ``1 - max_c p(c | x)`` and the
predicted class), so the adapted model is tested and exported like the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from anomalib_vlm.clip import DualPathVisionEncoder, encode_fixed_texts
from anomalib_vlm.data.utils import readable_name
from anomalib_vlm.models.components import FrozenClipModel
from anomalib_vlm.models.supreme.torch_model import OODInferenceBatch, check_class_names, mcm_terms


class TrustModel(FrozenClipModel):
    """A CLIP image tower and class prototypes, adapted by TRUST.

    Args:
        backbone (str): open_clip model name. Defaults to ``"ViT-B-16"``.
        pretrained (str | Path | None): open_clip tag, local file, or ``None`` (seeded random weights).
            Defaults to ``"openai"``.
        image_size (int): square input side. Defaults to ``224``.
        temperature (float): tau of the class softmax (Supreme's). Defaults to ``0.01``.
        prompt_template (str): class prompt that initialises the prototypes, ``{}`` = class name. Defaults to
            ``"a photo of a {}."``.
        trainable_blocks (int | None): how many of the last image-tower blocks are fine-tuned (with the final
            layer norm and projection); ``None`` fine-tunes the whole tower (official). Defaults to ``None``.
        cache_dir (str | Path | None): open_clip weight cache. Defaults to open_clip's own.
    """

    def __init__(
        self,
        backbone: str = "ViT-B-16",
        pretrained: str | Path | None = "openai",
        image_size: int = 224,
        temperature: float = 0.01,
        prompt_template: str = "a photo of a {}.",
        trainable_blocks: int | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if temperature <= 0:
            msg = f"temperature must be > 0, got {temperature}"
            raise ValueError(msg)
        if "{}" not in prompt_template:
            msg = f"prompt_template must contain '{{}}' for the class name, got {prompt_template!r}"
            raise ValueError(msg)
        super().__init__(backbone, pretrained, image_size, cache_dir)
        self.temperature = temperature
        self.prompt_template = prompt_template
        self.vision = DualPathVisionEncoder(
            self.clip.visual, image_size=image_size, feature_layers=(), dpam_layers=0, global_ln_post=True
        )
        depth = len(self.clip.visual.transformer.resblocks)
        if trainable_blocks is not None and not 0 <= trainable_blocks <= depth:
            msg = (
                f"trainable_blocks must be in [0, {depth}] for this {depth}-block image tower (or None), "
                f"got {trainable_blocks}"
            )
            raise ValueError(msg)
        self.trainable_blocks = trainable_blocks
        self.class_names: list[str] = []
        embed_dim = int(self.clip.text_projection.shape[-1])
        self.prototypes = nn.Parameter(torch.zeros(0, embed_dim))
        self.freeze_untrained()

    # ------------------------------------------------------------------ what is trained
    def trainable_visual_names(self) -> list[str]:
        """Names (in ``clip.visual``) of the image-tower parameters that TRUST fine-tunes."""
        visual = self.clip.visual
        names = [name for name, _ in visual.named_parameters()]
        if self.trainable_blocks is None:
            return names
        depth = len(visual.transformer.resblocks)
        blocks = {f"transformer.resblocks.{index}." for index in range(depth - self.trainable_blocks, depth)}
        return [
            name for name in names if any(name.startswith(b) for b in blocks) or name.startswith(("ln_post", "proj"))
        ]

    def freeze_untrained(self) -> None:
        """Freeze the text tower and the image-tower parts that are not fine-tuned."""
        for parameter in self.clip.parameters():
            parameter.requires_grad_(False)
        trainable = set(self.trainable_visual_names())
        for name, parameter in self.clip.visual.named_parameters():
            parameter.requires_grad_(name in trainable)

    def learnable_parameters(self) -> list[nn.Parameter]:
        """The fine-tuned image-tower parameters and the prototypes."""
        return [p for p in self.clip.visual.parameters() if p.requires_grad] + [self.prototypes]

    # ------------------------------------------------------------------ classes
    @property
    def num_classes(self) -> int:
        """Number of classes (0 before :meth:`set_classes`)."""
        return len(self.class_names)

    @torch.no_grad()
    def set_classes(self, class_names: Sequence[str], prototypes: torch.Tensor | None = None) -> None:
        """Set the classes; the prototypes start at ``prototypes`` or at the class prompts' text embeddings.

        Args:
            class_names (Sequence[str]): the class names, in label order.
            prototypes (torch.Tensor | None): ``[C, D]`` initial prototypes (e.g. a tuned Supreme's text
                prototypes); ``None`` encodes ``prompt_template`` for every class (Supreme's MCM classifier).

        Raises:
            ValueError: bad class names, or prototypes of the wrong shape.
        """
        names = check_class_names(class_names)
        embed_dim = self.prototypes.shape[1]
        if prototypes is None:
            texts = [self.prompt_template.format(readable_name(name)) for name in names]
            prototypes = encode_fixed_texts(self.clip, self.backbone, texts)
        if tuple(prototypes.shape) != (len(names), embed_dim):
            msg = f"prototypes must be [{len(names)}, {embed_dim}] for classes {names}, got {list(prototypes.shape)}"
            raise ValueError(msg)
        self.class_names = names
        self.prototypes = nn.Parameter(F.normalize(prototypes.float(), dim=-1).to(self.prototypes.device))

    # ------------------------------------------------------------------ inference
    @property
    def frozen_depth(self) -> int:
        """Image-tower blocks that are not fine-tuned (their output can be cached for fixed inputs)."""
        if self.trainable_blocks is None:
            return 0
        return len(self.clip.visual.transformer.resblocks) - self.trainable_blocks

    def encode_prefix(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, L, W]`` tokens after the frozen blocks (the encoder's embedding, then the frozen blocks)."""
        self.check_images(images)
        tokens, _ = self.vision.embed(images)
        return self.vision.run_blocks(tokens, stop=self.frozen_depth)

    def encode_from_prefix(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` normalised image embeddings from :meth:`encode_prefix`'s tokens (the fine-tuned blocks)."""
        tokens = self.vision.run_blocks(tokens, start=self.frozen_depth)
        visual = self.clip.visual
        return F.normalize(visual.ln_post(tokens[:, 0]) @ visual.proj, dim=-1)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` normalised image embeddings of pre-processed images (with gradient where trained).

        The frozen blocks run without gradient; split in two so that a caller may cache :meth:`encode_prefix`.
        """
        if self.frozen_depth:
            with torch.no_grad():
                tokens = self.encode_prefix(images)
        else:
            tokens = self.encode_prefix(images)
        return self.encode_from_prefix(tokens)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` class logits ``cos(f, P_c) / tau`` of normalised features."""
        if self.num_classes == 0:
            msg = "TrustModel has no classes yet: call set_classes() (the lightning model does it from the datamodule)."
            raise RuntimeError(msg)
        return features @ F.normalize(self.prototypes, dim=-1).T / self.temperature

    def forward(self, images: torch.Tensor) -> OODInferenceBatch:
        """Supreme's MCM form: ``pred_score = 1 - max_c p(c | x)`` (higher = more OOD) and ``pred_class``."""
        id_score, probabilities = mcm_terms(self.encode(images), F.normalize(self.prototypes, dim=-1), self.temperature)
        return OODInferenceBatch(pred_score=1.0 - id_score, pred_class=probabilities.argmax(dim=-1))

    def train(self, mode: bool = True) -> TrustModel:
        """Switch mode; the image tower is fine-tuned (it follows ``mode``), the frozen text tower stays in eval."""
        nn.Module.train(self, mode)  # not FrozenClipModel's: that keeps the whole backbone in eval mode
        self.clip.transformer.eval()
        return self
