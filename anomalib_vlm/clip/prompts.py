# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Text side of CLIP: cached tokenisation, fixed-prompt encoding and learnable (deep compound) prompts.

:class:`PromptLearner` holds learnable context words placed before fixed text (CoOp), optionally initialised from
words ("a photo of a"), optionally with deep prompts that overwrite the first context positions inside the first
text blocks (MaPLe-style compound prompts, as AnomalyCLIP does), and optionally shifted by a conditioning vector
added to every context token (CoCoOp's meta-token; SUPREME's biased prompt generation). Only the context and the
deep prompts are parameters; the token embeddings of the fixed text are frozen buffers derived from the backbone.

Example:
    >>> from anomalib_vlm.clip import PromptLearner, load_clip_model
    >>> clip = load_clip_model("anomalib-vlm-tiny", pretrained=None)
    >>> prompts = PromptLearner(clip, "anomalib-vlm-tiny", ["object", "damaged object"], context_length=12)
    >>> prompts().shape
    torch.Size([2, 64])
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn

from anomalib_vlm.clip.backbone import open_clip_config, open_clip_module

CONTEXT_PLACEHOLDER = "X"


@lru_cache(maxsize=8)
def get_tokenizer(backbone: str):  # noqa: ANN201
    """open_clip tokenizer of a backbone, created once per process."""
    return open_clip_module().get_tokenizer(open_clip_config(backbone)[0])


@lru_cache(maxsize=64)
def _tokenize_cached(backbone: str, texts: tuple[str, ...]) -> torch.Tensor:
    return get_tokenizer(backbone)(list(texts))


def tokenize(backbone: str, texts: Sequence[str]) -> torch.Tensor:
    """Token ids ``[len(texts), context_length]`` of ``texts`` for ``backbone`` (cached)."""
    return _tokenize_cached(backbone, tuple(texts)).clone()


def _uses_batch_first(clip: nn.Module) -> bool:
    """open_clip < 2.26.1 runs its transformer in LND layout, later versions in NLD."""
    return bool(getattr(clip.transformer, "batch_first", False))


def encode_text_embeddings(
    clip: nn.Module,
    embeddings: torch.Tensor,
    tokens: torch.Tensor,
    deep_prompts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run CLIP's text tower on token embeddings, optionally injecting deep prompts.

    Args:
        clip (nn.Module): open_clip CLIP model.
        embeddings (torch.Tensor): ``[P, T, W]`` input token embeddings (context already in place).
        tokens (torch.Tensor): ``[P, T]`` token ids, used to find each prompt's end-of-text position.
        deep_prompts (torch.Tensor | None): ``[depth - 1, L, W]``. Before text block ``i`` (1-indexed ``i + 1``,
            for ``i`` in ``1 .. depth - 1``) positions ``1 .. L`` are overwritten by ``deep_prompts[i - 1]``.

    Returns:
        torch.Tensor: ``[P, D]`` text features (not normalised).
    """
    from open_clip.transformer import text_global_pool

    positional_embedding, attn_mask = clip.positional_embedding, clip.attn_mask
    pool_type = getattr(clip, "text_pool_type", "argmax")
    if pool_type == "argmax" and attn_mask is not None:
        # Causal attention: the end-of-text feature never sees the padding after it, so the tower only has to run
        # up to the last prompt's end token (about 20 of 77 positions for AnomalyCLIP's prompts).
        end = int(tokens.argmax(dim=-1).max()) + 1
        embeddings, tokens = embeddings[:, :end], tokens[:, :end]
        positional_embedding, attn_mask = positional_embedding[:end], attn_mask[:end, :end]
    x = embeddings + positional_embedding.to(embeddings.dtype)
    batch_first = _uses_batch_first(clip)
    if not batch_first:
        x = x.permute(1, 0, 2)
    for index, block in enumerate(clip.transformer.resblocks):
        if deep_prompts is not None and 1 <= index <= deep_prompts.shape[0]:
            prompt = deep_prompts[index - 1]
            length = prompt.shape[0]
            if batch_first:
                x = torch.cat([x[:, :1], prompt.unsqueeze(0).expand(x.shape[0], -1, -1), x[:, 1 + length :]], dim=1)
            else:
                x = torch.cat([x[:1], prompt.unsqueeze(1).expand(-1, x.shape[1], -1), x[1 + length :]], dim=0)
        x = block(x, attn_mask=attn_mask)
    if not batch_first:
        x = x.permute(1, 0, 2)
    x = clip.ln_final(x)
    pooled, _ = text_global_pool(x, tokens, pool_type)
    projection = clip.text_projection
    return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection


@torch.no_grad()
def encode_fixed_texts(clip: nn.Module, backbone: str, texts: Sequence[str]) -> torch.Tensor:
    """Text features ``[len(texts), D]`` of hand-written prompts (no learnable part), not normalised."""
    device = clip.token_embedding.weight.device
    tokens = tokenize(backbone, texts).to(device)
    return encode_text_embeddings(clip, clip.token_embedding(tokens), tokens)


class PromptLearner(nn.Module):
    """Learnable prompts ``[V1 ... Vn] <text>`` with optional deep compound prompts.

    Args:
        clip (nn.Module): frozen open_clip CLIP model whose text tower encodes the prompts.
        backbone (str): backbone name, for the tokenizer.
        texts (Sequence[str]): the fixed text after the context of each prompt, e.g.
            ``["object", "damaged object"]``. One prompt, hence one output feature, per text.
        context_length (int): learnable context words per prompt. Defaults to ``12``.
        shared_context (bool): one context for all prompts (CoOp) instead of one per prompt (AnomalyCLIP).
            Defaults to ``False``.
        deep_depth (int): text blocks that see prompts; blocks ``2 .. deep_depth`` get fresh deep prompts.
            ``1`` (or ``0``) disables deep prompts. Defaults to ``9``.
        deep_length (int): positions overwritten by each deep prompt (at most ``context_length``). Defaults to ``4``.
        init_std (float): standard deviation of the normal initialisation. Defaults to ``0.02``.
        context_init (str | None): words whose token embeddings initialise the *last* context positions (the ones
            just before the text); the others start random. ``None`` starts all random. Defaults to ``None``.

    Raises:
        ValueError: empty text list, inconsistent lengths, or ``context_init`` longer than the context.
    """

    def __init__(
        self,
        clip: nn.Module,
        backbone: str,
        texts: Sequence[str],
        context_length: int = 12,
        shared_context: bool = False,
        deep_depth: int = 9,
        deep_length: int = 4,
        init_std: float = 0.02,
        context_init: str | None = None,
    ) -> None:
        super().__init__()
        texts = list(texts)
        if not texts:
            msg = "PromptLearner needs at least one text"
            raise ValueError(msg)
        if context_length < 1:
            msg = f"context_length must be >= 1, got {context_length}"
            raise ValueError(msg)
        text_blocks = len(clip.transformer.resblocks)
        if not 0 <= deep_depth <= text_blocks:
            msg = f"deep_depth must be in [0, {text_blocks}] for this text tower, got {deep_depth}"
            raise ValueError(msg)
        if deep_depth > 1 and not 1 <= deep_length <= context_length:
            msg = f"deep_length must be in [1, context_length={context_length}], got {deep_length}"
            raise ValueError(msg)

        # The frozen tower is shared with the caller, not registered here, so this module's
        # parameters and state are exactly the learned prompts.
        self._clip = [clip]
        self.texts = texts
        self.context_length = context_length
        width = clip.token_embedding.weight.shape[-1]
        prompts = [" ".join([CONTEXT_PLACEHOLDER] * context_length) + f" {text}." for text in texts]
        tokens = tokenize(backbone, prompts).to(clip.token_embedding.weight.device)
        self.register_buffer("tokens", tokens, persistent=False)
        with torch.no_grad():
            self.register_buffer("token_embeddings", clip.token_embedding(tokens).clone(), persistent=False)

        self.context = nn.Parameter(torch.empty(1 if shared_context else len(texts), context_length, width))
        nn.init.normal_(self.context, std=init_std)
        if context_init:
            init_tokens = tokenize(backbone, [context_init]).to(tokens.device)[0]
            words = int((init_tokens != 0).sum()) - 2  # without start- and end-of-text
            if words > context_length:
                msg = f"context_init '{context_init}' has {words} tokens, more than context_length={context_length}"
                raise ValueError(msg)
            with torch.no_grad():
                self.context[:, context_length - words :] = clip.token_embedding(init_tokens[1 : 1 + words])
        self.deep_prompts: nn.Parameter | None = None
        if deep_depth > 1:
            self.deep_prompts = nn.Parameter(torch.empty(deep_depth - 1, deep_length, width))
            nn.init.normal_(self.deep_prompts, std=init_std)

    @property
    def clip(self) -> nn.Module:
        """The frozen CLIP model the prompts are encoded with."""
        return self._clip[0]

    def forward(self, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Encode the prompts: ``[len(texts), D]`` text features (not normalised).

        Args:
            shift (torch.Tensor | None): ``[width]`` vector added to every context token (conditioning), or
                ``None``.
        """
        prefix = self.token_embeddings[:, :1]
        suffix = self.token_embeddings[:, 1 + self.context_length :]
        context = self.context if shift is None else self.context + shift.reshape(1, 1, -1)
        context = context.expand(len(self.texts), -1, -1)
        embeddings = torch.cat([prefix, context, suffix], dim=1)
        return encode_text_embeddings(self.clip, embeddings, self.tokens, self.deep_prompts)
