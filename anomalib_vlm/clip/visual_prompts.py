# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Visual prompt tuning (VPT-deep) for open_clip ViTs: learnable tokens inserted into every vision block.

:class:`VisualPromptEncoder` re-runs an open_clip ``VisionTransformer`` with the block's own weights (nothing is
copied), inserting ``num_tokens`` learnable prompt tokens after the class token (VPT, Jia et al., ECCV 2022):

* before block 1 the shallow prompts are inserted; before blocks ``2 .. depth`` the prompt slots are overwritten
  by that block's own deep prompts; after block ``depth`` the prompt slots are dropped;
* every prompt set passes through a shared linear projection and dropout (a mask per image, as GRMP-IQA's code),
  and the final token sequence through a LayerNorm (``prompt_norm``) before CLIP's ``ln_post`` and projection, as
  GRMP-IQA's ``VPTVisionTransformer``.

Attention runs through :class:`~anomalib_vlm.clip.surgery.DualPathVisionEncoder`'s block attention
(``scaled_dot_product_attention``), so gradients reach both the prompts and any unfrozen blocks and the graph
exports with the dynamo ONNX exporter whatever the open_clip token layout.

Example:
    >>> import torch
    >>> from anomalib_vlm.clip import load_clip_model
    >>> from anomalib_vlm.clip.visual_prompts import VisualPromptEncoder
    >>> clip = load_clip_model("anomalib-vlm-tiny", pretrained=None)
    >>> encoder = VisualPromptEncoder(clip.visual, image_size=64, num_tokens=4)
    >>> encoder(torch.rand(2, 3, 64, 64)).shape
    torch.Size([2, 64])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from anomalib_vlm.clip.surgery import DualPathVisionEncoder, resize_positional_embedding


class VisualPromptEncoder(nn.Module):
    """Global image features of an open_clip ViT with deep visual prompts.

    Args:
        visual (nn.Module): an open_clip ``VisionTransformer`` (``clip.visual``); its weights are used, not copied,
            and it is not registered here (its owner keeps it, so it appears once in the owner's state dict).
        image_size (int | tuple[int, int]): input size; the positional embedding is resized to it once.
        num_tokens (int): prompt tokens per block (GRMP-IQA: 100). ``0`` gives plain CLIP (with ``prompt_norm``).
            Defaults to ``100``.
        depth (int | None): blocks that see prompts (1 = shallow VPT); ``None`` = all blocks (GRMP-IQA: 12 of 12).
            Defaults to ``None``.
        dropout (float): dropout on the projected prompts. Defaults to ``0.1``.
        per_sample_dropout (bool): draw the dropout mask for every image of the batch (GRMP-IQA's code drops out
            the prompts after expanding them to the batch); ``False`` draws one mask shared by the whole batch.
            Defaults to ``True``.

    Raises:
        ValueError: unsupported vision tower or out-of-range settings.
    """

    def __init__(
        self,
        visual: nn.Module,
        image_size: int | tuple[int, int],
        num_tokens: int = 100,
        depth: int | None = None,
        dropout: float = 0.1,
        per_sample_dropout: bool = True,
    ) -> None:
        super().__init__()
        if not hasattr(visual, "transformer") or not hasattr(visual, "conv1"):
            msg = f"VisualPromptEncoder needs an open_clip VisionTransformer, got {type(visual).__name__}"
            raise ValueError(msg)
        if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
            msg = "Only class-token CLIP ViTs are supported (no attentional or average pooling)."
            raise ValueError(msg)
        blocks = len(visual.transformer.resblocks)
        depth = blocks if depth is None else int(depth)
        if num_tokens < 0 or not 1 <= depth <= blocks:
            msg = f"num_tokens must be >= 0 and depth in [1, {blocks}], got {num_tokens} and {depth}"
            raise ValueError(msg)
        self._visual = [visual]
        self.num_tokens = int(num_tokens)
        self.depth = depth
        width = visual.conv1.out_channels
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        patch = tuple(visual.conv1.kernel_size)
        self.grid_size = (size[0] // patch[0], size[1] // patch[1])
        self.register_buffer(
            "positional_embedding",
            resize_positional_embedding(
                visual.positional_embedding.detach(), tuple(visual.grid_size), self.grid_size
            ).clone(),
            persistent=False,
        )
        # VPT's initialisation: uniform with the Xavier bound of a patch embedding.
        bound = math.sqrt(6.0 / float(3 * patch[0] * patch[1] + width))
        self.prompt_embeddings = nn.Parameter(torch.empty(1, self.num_tokens, width).uniform_(-bound, bound))
        self.deep_prompt_embeddings = nn.Parameter(
            torch.empty(depth - 1, self.num_tokens, width).uniform_(-bound, bound),
        )
        self.prompt_proj = nn.Linear(width, width)
        nn.init.kaiming_normal_(self.prompt_proj.weight, a=0, mode="fan_out")
        nn.init.zeros_(self.prompt_proj.bias)
        self.prompt_norm = nn.LayerNorm(width, eps=1e-6)
        self.prompt_dropout = nn.Dropout(dropout)
        self.per_sample_dropout = bool(per_sample_dropout)

    @property
    def visual(self) -> nn.Module:
        """The open_clip vision tower whose weights are used."""
        return self._visual[0]

    def _prompts(self, embeddings: torch.Tensor, batch: int) -> torch.Tensor:
        prompts = self.prompt_proj(embeddings).unsqueeze(0)
        if self.per_sample_dropout:  # one mask per image, drawn over the expanded [B, n, width] prompts
            return self.prompt_dropout(prompts.expand(batch, -1, -1))
        return self.prompt_dropout(prompts).expand(batch, -1, -1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, D]`` global image features (projected, not normalised) of ``[B, 3, H, W]`` normalised images."""
        visual = self.visual
        x = visual.conv1(images)
        grid_size = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)
        batch = x.shape[0]
        class_token = visual.class_embedding.to(x.dtype).reshape(1, 1, -1).expand(batch, -1, -1)
        x = torch.cat([class_token, x], dim=1)
        positional_embedding = self.positional_embedding
        if grid_size != self.grid_size:  # static under export: the pre-processor fixes the input size
            positional_embedding = resize_positional_embedding(
                visual.positional_embedding,
                tuple(visual.grid_size),
                grid_size,
            )
        x = visual.ln_pre(x + positional_embedding.to(x.dtype))
        n = self.num_tokens
        if n:
            x = torch.cat([x[:, :1], self._prompts(self.prompt_embeddings[0], batch), x[:, 1:]], dim=1)
        last = len(visual.transformer.resblocks) - 1
        for index, block in enumerate(visual.transformer.resblocks):
            if n and 1 <= index < self.depth:
                x = torch.cat(
                    [x[:, :1], self._prompts(self.deep_prompt_embeddings[index - 1], batch), x[:, 1 + n :]], 1
                )
            elif n and index == self.depth:
                x = torch.cat([x[:, :1], x[:, 1 + n :]], dim=1)  # prompts end after the last prompted block
            # Only the class token leaves the last block, so only its query is answered there.
            class_token_only = index == last
            attention_out, _ = DualPathVisionEncoder._attention(block, block.ln_1(x), False, class_token_only)
            x = (x[:, :1] if class_token_only else x) + attention_out
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        x = visual.ln_post(self.prompt_norm(x[:, 0]))
        return x @ visual.proj
