# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Visual prompt tuning (VPT-deep) for open_clip ViTs: learnable tokens inserted into every vision block.

:class:`VisualPromptEncoder` is :class:`~anomalib_vlm.clip.surgery.DualPathVisionEncoder` (no surgery, global
feature only) with ``num_tokens`` learnable prompt tokens inserted after the class token (VPT, Jia et al., ECCV 2022)
through the encoder's per-block hook:

* before block 1 the shallow prompts are inserted; before blocks ``2 .. depth`` the prompt slots are overwritten
  by that block's own deep prompts; after block ``depth`` the prompt slots are dropped;
* every prompt set passes through a shared linear projection and dropout (a mask per image, as GRMP-IQA's code),
  and the final token sequence through a LayerNorm (``prompt_norm``) before CLIP's ``ln_post`` and projection, as
  GRMP-IQA's ``VPTVisionTransformer``.

The blocks run as in the encoder (``scaled_dot_product_attention``), so gradients reach both the prompts and any
unfrozen blocks and the graph exports with the dynamo ONNX exporter whatever the open_clip token layout.

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

from anomalib_vlm.clip.surgery import DualPathVisionEncoder


class VisualPromptEncoder(DualPathVisionEncoder):
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
        super().__init__(visual, image_size, feature_layers=(), dpam_layers=0, global_ln_post=True)
        depth = self.depth if depth is None else int(depth)
        if num_tokens < 0 or not 1 <= depth <= self.depth:
            msg = f"num_tokens must be >= 0 and depth in [1, {self.depth}], got {num_tokens} and {depth}"
            raise ValueError(msg)
        self.num_tokens = int(num_tokens)
        self.prompt_depth = depth
        width = visual.conv1.out_channels
        patch = self.patch_size
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

    def _prompts(self, embeddings: torch.Tensor, batch: int) -> torch.Tensor:
        prompts = self.prompt_proj(embeddings).unsqueeze(0)
        if self.per_sample_dropout:  # one mask per image, drawn over the expanded [B, n, width] prompts
            return self.prompt_dropout(prompts.expand(batch, -1, -1))
        return self.prompt_dropout(prompts).expand(batch, -1, -1)

    def block_input(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Prompts in before block 1, each block's deep prompts in their slots up to ``prompt_depth``, then out."""
        n = self.num_tokens
        if not n or index > self.prompt_depth:
            return x
        if index == 0:
            return torch.cat([x[:, :1], self._prompts(self.prompt_embeddings[0], x.shape[0]), x[:, 1:]], dim=1)
        if index < self.prompt_depth:
            prompts = self._prompts(self.deep_prompt_embeddings[index - 1], x.shape[0])
            return torch.cat([x[:, :1], prompts, x[:, 1 + n :]], dim=1)
        return torch.cat([x[:, :1], x[:, 1 + n :]], dim=1)  # prompts end after the last prompted block

    def class_token_output(self, token: torch.Tensor) -> torch.Tensor:
        """GRMP-IQA's ``prompt_norm`` on the class token, before CLIP's ``ln_post``."""
        return self.prompt_norm(token)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """``[B, D]`` global image features (projected, not normalised) of ``[B, 3, H, W]`` normalised images."""
        return super().forward(images).global_feature
