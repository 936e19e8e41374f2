# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Stage 2: CLIP text embeddings of the per-image texts.

Official code: ``clip_text.py`` encodes the texts with OpenAI CLIP ViT-L/14's ``encode_text`` (the projected
end-of-text feature, **not** normalised), tokenised by ``clip.tokenize`` (77 tokens, zero padding). ViT-L/14's
text tower is Stable Diffusion v1's text encoder, which is what lets the perturbed embedding be mapped back into
SD's conditioning (:mod:`~anomalib_vlm.fodfom.conditioning`).

A text embedder is anything with ``embed(texts) -> Tensor[N, D]``:

* :class:`TransformersClipText`: a ``transformers`` ``CLIPTextModelWithProjection`` (``openai/clip-vit-large-patch14``
  for the paper); it also gives the hidden states the conditioning mapper needs;
* :class:`OpenClipText`: any open_clip model of this package (``anomalib-vlm-small`` offline, ``ViT-L-14`` /
  ``openai`` for the paper's encoder), for generators that take embeddings directly.

Both tokenise with open_clip's tokenizer, which is OpenAI's ``clip.tokenize`` (same ids, zero padding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from anomalib_vlm.fodfom.errors import default_device, load_pretrained, require

CLIP_TEXT_MODEL = "openai/clip-vit-large-patch14"
"""The text encoder of the official code (ViT-L/14, Stable Diffusion v1's text encoder)."""


@runtime_checkable
class TextEmbedder(Protocol):
    """Anything that embeds texts into CLIP's joint space (unnormalised, as ``encode_text``)."""

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """``[len(texts), D]`` float32 embeddings."""
        ...


def openai_tokenizer() -> Callable[[Sequence[str]], torch.Tensor]:
    """OpenAI CLIP's tokenizer (open_clip's ``SimpleTokenizer``): ``[N, 77]`` ids, zero padded."""
    import open_clip

    tokenizer = open_clip.get_tokenizer("ViT-L-14")
    return lambda texts: tokenizer(list(texts))


class TransformersClipText:
    """A ``transformers`` CLIP text tower with its projection.

    Args:
        model: a ``CLIPTextModelWithProjection``.
        tokenizer: texts to ``[N, L]`` token ids; defaults to OpenAI's tokenizer (:func:`openai_tokenizer`).
        batch_size (int): texts per forward pass. Defaults to ``64``.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Callable[[Sequence[str]], torch.Tensor] | None = None,
        batch_size: int = 64,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer or openai_tokenizer()
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name: str = CLIP_TEXT_MODEL, device: str | None = None) -> TransformersClipText:
        """Load the text tower and projection of a ``transformers`` CLIP checkpoint."""
        transformers = require("transformers", "text embedding")
        device = default_device(device)
        model = load_pretrained(transformers.CLIPTextModelWithProjection, name, "text embedding (CLIP)")
        return cls(model.to(device))

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return next(self.model.parameters()).device

    def tokens(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids of ``texts``, cut to the model's context length."""
        ids = self.tokenizer(texts)
        return ids[:, : self.model.config.max_position_embeddings].to(self.device)

    @torch.no_grad()
    def hidden_states(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Final-layer-norm hidden states ``[N, L, H]`` (Stable Diffusion's conditioning) and projected embeddings."""
        ids = self.tokens(texts)
        output = self.model(input_ids=ids)
        return output.last_hidden_state.float(), output.text_embeds.float()

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Projected end-of-text features ``[N, D]`` (CLIP's ``encode_text``, unnormalised)."""
        chunks = [
            self.model(input_ids=self.tokens(texts[start : start + self.batch_size])).text_embeds.float()
            for start in range(0, len(texts), self.batch_size)
        ]
        return torch.cat(chunks).cpu() if chunks else torch.empty(0, self.model.config.projection_dim)


class OpenClipText:
    """The text tower of an open_clip model of this package (``anomalib_vlm.clip.load_clip_model``).

    Args:
        clip: the open_clip model.
        backbone (str): its name, for the tokenizer.
        batch_size (int): texts per forward pass. Defaults to ``64``.
    """

    def __init__(self, clip: nn.Module, backbone: str, batch_size: int = 64) -> None:
        self.clip = clip.eval()
        self.backbone = backbone
        self.batch_size = batch_size

    @classmethod
    def load(
        cls, backbone: str = "anomalib-vlm-small", pretrained: str | None = "anomalib-vlm-synthetic"
    ) -> OpenClipText:
        """Load through the package's one CLIP loader (tags, files, or random weights)."""
        from anomalib_vlm.clip import load_clip_model

        return cls(load_clip_model(backbone, pretrained), backbone)

    @torch.no_grad()
    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """``encode_text`` of ``texts`` ``[N, D]``, unnormalised."""
        from anomalib_vlm.clip.prompts import tokenize

        device = next(self.clip.parameters()).device
        chunks = [
            self.clip.encode_text(tokenize(self.backbone, list(texts[start : start + self.batch_size])).to(device))
            for start in range(0, len(texts), self.batch_size)
        ]
        return torch.cat(chunks).float().cpu()
