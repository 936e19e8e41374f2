# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Prompts whose shared learnable context is shifted by a conditioning vector (CoCoOp-style conditioning).

:class:`ConditionalPromptLearner` is a :class:`~anomalib_vlm.clip.PromptLearner` with one context shared by all
class prompts (CoOp), optionally initialised from words ("a photo of a"), and a ``shift`` argument added to every
context token before encoding: ``[V1 + s] ... [Vn + s] <class>.`` The shift is what SUPREME's biased prompt
generation feeds in (an image-conditioned term plus a sampled image-domain bias); CoCoOp's meta-token is the same
mechanism. Reused as is; nothing of :class:`PromptLearner` is copied.

Example:
    >>> import torch
    >>> from anomalib_vlm.clip import load_clip_model
    >>> from anomalib_vlm.clip.conditional_prompts import ConditionalPromptLearner
    >>> clip = load_clip_model("anomalib-vlm-tiny", pretrained=None)
    >>> prompts = ConditionalPromptLearner(clip, "anomalib-vlm-tiny", ["wood", "tile"], context_length=8)
    >>> prompts(torch.zeros(64)).shape
    torch.Size([2, 64])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from anomalib_vlm.clip.prompts import PromptLearner, encode_text_embeddings, tokenize


class ConditionalPromptLearner(PromptLearner):
    """Shared learnable context ``[V1 ... Vn]`` before each text, shifted by a conditioning vector.

    Args:
        clip (nn.Module): frozen open_clip CLIP model.
        backbone (str): backbone name, for the tokenizer.
        texts (Sequence[str]): the text after the context, one prompt per text (e.g. the class names).
        context_length (int): learnable context tokens. Defaults to ``16``.
        context_init (str | None): words whose token embeddings initialise the *last* context positions (the
            ones just before the class name), the others start random. ``None`` starts all random.
            Defaults to ``None``.
        init_std (float): standard deviation of the random initialisation. Defaults to ``0.02``.

    Raises:
        ValueError: empty ``texts``, or ``context_init`` longer than ``context_length`` tokens.
    """

    def __init__(
        self,
        clip: nn.Module,
        backbone: str,
        texts: Sequence[str],
        context_length: int = 16,
        context_init: str | None = None,
        init_std: float = 0.02,
    ) -> None:
        super().__init__(
            clip,
            backbone,
            texts,
            context_length=context_length,
            shared_context=True,
            deep_depth=0,
            init_std=init_std,
        )
        if context_init:
            tokens = tokenize(backbone, [context_init]).to(clip.token_embedding.weight.device)[0]
            words = int((tokens != 0).sum()) - 2  # without start- and end-of-text
            if words > context_length:
                msg = f"context_init '{context_init}' has {words} tokens, more than context_length={context_length}"
                raise ValueError(msg)
            with torch.no_grad():
                self.context[0, context_length - words :] = clip.token_embedding(tokens[1 : 1 + words])

    @property
    def width(self) -> int:
        """Width of a context token (the text tower's embedding width)."""
        return int(self.context.shape[-1])

    def forward(self, shift: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """Encode the prompts with ``shift`` (``[width]``) added to every context token.

        Returns:
            torch.Tensor: ``[len(texts), D]`` text features (not normalised).
        """
        context = self.context if shift is None else self.context + shift.reshape(1, 1, -1)
        prefix = self.token_embeddings[:, :1]
        suffix = self.token_embeddings[:, 1 + self.context_length :]
        embeddings = torch.cat([prefix, context.expand(len(self.texts), -1, -1), suffix], dim=1)
        return encode_text_embeddings(self.clip, embeddings, self.tokens)
