# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Vision side of CLIP for dense prediction: intermediate patch tokens, any input size, and DPAM surgery.

:class:`DualPathVisionEncoder` re-runs an open_clip ``VisionTransformer`` block by block with the block's own
weights (nothing is copied), so it can

* return patch tokens after any block, projected into the joint image-text space;
* accept any input size, with the positional embedding resized once to the new patch grid;
* apply DPAM (diagonally prominent attention maps, AnomalyCLIP): from a chosen block on, a second "surgery"
  stream accumulates only V-V self-attention outputs (``softmax(v vᵀ)·v``, same scale, same heads), skipping the
  MLP. V-V attention keeps each patch's own token dominant, so its patch features stay local. The original
  stream (q-k attention and MLP) is unchanged and still gives the global image feature.

Attention is written with :func:`torch.nn.functional.scaled_dot_product_attention` rather than through
``nn.MultiheadAttention``, which keeps the graph exportable by the dynamo ONNX exporter and independent of the
open_clip version's token layout (LND before 2.26.1, NLD after).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class VisionFeatures(NamedTuple):
    """Outputs of :class:`DualPathVisionEncoder`.

    Attributes:
        global_feature: ``[B, D]`` class-token feature of the original stream, projected to the joint space.
        patch_features: one ``[B, N, D]`` tensor per requested layer, projected, in the order requested.
        grid_size: the patch grid ``(rows, cols)``, with ``rows * cols == N``.
    """

    global_feature: torch.Tensor
    patch_features: list[torch.Tensor]
    grid_size: tuple[int, int]


def resize_positional_embedding(
    positional_embedding: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
) -> torch.Tensor:
    """Bilinearly interpolate a ViT positional embedding (class token first) to a new patch grid.

    Args:
        positional_embedding (torch.Tensor): ``[1 + old_rows * old_cols, width]``.
        old_grid (tuple[int, int]): the grid the embedding was trained for.
        new_grid (tuple[int, int]): the grid of the new input size.

    Returns:
        torch.Tensor: ``[1 + new_rows * new_cols, width]``.
    """
    if tuple(old_grid) == tuple(new_grid):
        return positional_embedding
    class_position, grid_positions = positional_embedding[:1], positional_embedding[1:]
    width = grid_positions.shape[-1]
    grid_positions = grid_positions.reshape(1, *old_grid, width).permute(0, 3, 1, 2)
    grid_positions = F.interpolate(grid_positions, size=new_grid, mode="bilinear", align_corners=False)
    grid_positions = grid_positions.permute(0, 2, 3, 1).reshape(-1, width)
    return torch.cat([class_position, grid_positions], dim=0)


def block_attention(
    block: nn.Module,
    x: torch.Tensor,
    with_vv: bool,
    class_token_query_only: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Multi-head attention of an open_clip ViT ``block`` on ``x`` [B, L, W]; optionally also its V-V variant.

    With ``class_token_query_only`` the q-k path answers only the class token's query (``[B, 1, W]``): all
    the final block's original stream has to give when its patch tokens are not used.
    """
    attn = block.attn
    batch, length, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    if class_token_query_only:
        q = q[:, :, :1]
        # Tokens [0, 1) answer the class token's q-k query, tokens [1, 1 + L) are V-V attention.
        parts = [F.scaled_dot_product_attention(q, k, v)]
        if with_vv:
            parts.append(F.scaled_dot_product_attention(v, v, v))
        out = torch.cat(parts, dim=2).transpose(1, 2).reshape(batch, -1, width)
        out = block.ls_1(F.linear(out, attn.out_proj.weight, attn.out_proj.bias))
        return out[:, :1], (out[:, 1:] if with_vv else None)
    if with_vv:
        # One fused call for both paths: rows [0, B) are q-k attention, rows [B, 2B) are V-V attention.
        out = F.scaled_dot_product_attention(torch.cat([q, v]), torch.cat([k, v]), torch.cat([v, v]))
    else:
        out = F.scaled_dot_product_attention(q, k, v)
    out = out.transpose(1, 2).reshape(-1, length, width)
    out = block.ls_1(F.linear(out, attn.out_proj.weight, attn.out_proj.bias))
    if with_vv:
        return out[:batch], out[batch:]
    return out, None


class DualPathVisionEncoder(nn.Module):
    """Dense features from an open_clip ViT, with optional DPAM surgery on its last blocks.

    Args:
        visual (nn.Module): an open_clip ``VisionTransformer`` (``clip.visual``); its weights are shared, not copied,
            and it is not registered as a sub-module: the owner of the CLIP model keeps it (and its device).
        image_size (int | tuple[int, int]): input size the model will see; the positional embedding is resized to it.
        feature_layers (Sequence[int]): 1-indexed blocks whose patch tokens are returned (``24`` is the last block
            of ViT-L); negative values count from the end (``-1`` is the last block of any ViT). Blocks inside the
            DPAM range return surgery-stream tokens, the others original tokens. Empty: only the global feature
            (the last block then runs for the class token alone).
        dpam_layers (int): number of final blocks that get V-V surgery (AnomalyCLIP: 19 of ViT-L's 24, i.e. blocks
            6 to 24). ``0`` disables DPAM.
        global_ln_post (bool): apply ``ln_post`` to the class token before projection. The official AnomalyCLIP
            does not (its issue #14), so the default is ``False``.

    Raises:
        ValueError: unsupported vision tower, or layers out of range.
    """

    def __init__(
        self,
        visual: nn.Module,
        image_size: int | tuple[int, int],
        feature_layers: Sequence[int] = (24,),
        dpam_layers: int = 19,
        global_ln_post: bool = False,
    ) -> None:
        super().__init__()
        if not hasattr(visual, "transformer") or not hasattr(visual, "conv1"):
            msg = f"{type(self).__name__} needs an open_clip VisionTransformer, got {type(visual).__name__}"
            raise ValueError(msg)
        if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
            msg = "Only class-token CLIP ViTs are supported (no attentional or average pooling)."
            raise ValueError(msg)
        # A view onto a CLIP its owner holds (and moves between devices): not registered here, so the frozen
        # weights appear once in the owner's state dict, under the CLIP model's own name.
        self._visual = [visual]
        self.depth = len(visual.transformer.resblocks)
        # 1-indexed blocks; negative values count from the end (-1 is the last block).
        self.feature_layers = tuple(int(layer) + (self.depth + 1 if int(layer) < 0 else 0) for layer in feature_layers)
        if any(not 1 <= layer <= self.depth for layer in self.feature_layers):
            msg = (
                f"feature_layers must be 1-indexed blocks in [1, {self.depth}] (or -1 for the last) for this "
                f"{self.depth}-block ViT, got {list(feature_layers)}; the paper's [24] is ViT-L's last block, "
                f"use [{self.depth}] here."
            )
            raise ValueError(msg)
        if not 0 <= dpam_layers <= self.depth - 1:
            msg = (
                f"dpam_layers must be in [0, {self.depth - 1}] for this {self.depth}-block ViT, got {dpam_layers}; "
                f"the paper's 19 of ViT-L's 24 blocks is about {round(self.depth * 19 / 24)} here."
            )
            raise ValueError(msg)
        self.dpam_layers = int(dpam_layers)
        # 0-indexed block where the surgery stream starts; blocks >= this one run both paths.
        self.dpam_start = self.depth - self.dpam_layers
        # Whether the last block's original-stream patch tokens are returned (a requested layer outside DPAM).
        self._original_last_block_wanted = self.depth in self.feature_layers and self.depth - 1 < self.dpam_start
        self.global_ln_post = global_ln_post

        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.patch_size = tuple(visual.conv1.kernel_size)
        self.grid_size = (size[0] // self.patch_size[0], size[1] // self.patch_size[1])
        # Derived from frozen weights, so not persistent: checkpoints carry only what was learned.
        self.register_buffer(
            "positional_embedding",
            resize_positional_embedding(
                visual.positional_embedding.detach(),
                tuple(visual.grid_size),
                self.grid_size,
            ).clone(),
            persistent=False,
        )

    @property
    def visual(self) -> nn.Module:
        """The open_clip vision tower whose weights are used."""
        return self._visual[0]

    def _project(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = self.visual.ln_post(tokens)
        return tokens @ self.visual.proj

    def embed(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Patch embedding, class token, positional embedding and ``ln_pre``: the first block's input ``[B, L, W]``.

        Returns:
            tuple[torch.Tensor, tuple[int, int]]: the tokens and the patch grid ``(rows, cols)``.
        """
        x = self.visual.conv1(images)
        grid_size = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)
        class_token = self.visual.class_embedding.to(x.dtype).reshape(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([class_token, x], dim=1)
        positional_embedding = self.positional_embedding
        if grid_size != self.grid_size:  # static under export: the pre-processor fixes the input size
            positional_embedding = resize_positional_embedding(
                self.visual.positional_embedding,
                tuple(self.visual.grid_size),
                grid_size,
            )
        return self.visual.ln_pre(x + positional_embedding.to(x.dtype)), grid_size

    def run_blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Tokens ``[B, L, W]`` through blocks ``start:stop`` as CLIP runs them (no surgery, SDPA, exportable).

        For callers that split the tower, e.g. frozen blocks whose output is cached, then fine-tuned ones.
        """
        for block in self.visual.transformer.resblocks[start:stop]:
            attention, _ = block_attention(block, block.ln_1(x), with_vv=False)
            x = x + attention
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        return x

    def block_input(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """The tokens block ``index`` (0-indexed) runs on; subclasses insert or drop tokens here (e.g. prompts)."""
        del index  # the plain encoder changes nothing
        return x

    def class_token_output(self, token: torch.Tensor) -> torch.Tensor:
        """The last block's class token before ``ln_post`` and projection; subclasses may normalise it."""
        return token

    def forward(self, images: torch.Tensor) -> VisionFeatures:
        """Encode ``[B, 3, H, W]`` images into a global feature and per-layer patch features (not normalised)."""
        x, grid_size = self.embed(images)

        surgery: torch.Tensor | None = None
        layer_tokens: dict[int, torch.Tensor] = {}
        wanted = set(self.feature_layers)
        last = self.depth - 1
        for index, block in enumerate(self.visual.transformer.resblocks):
            x = self.block_input(index, x)
            with_vv = index >= self.dpam_start
            if with_vv and surgery is None:
                surgery = x  # the surgery stream starts from the first DPAM block's input
            # The last block's original patch tokens feed nothing unless they are a requested (non-DPAM) layer,
            # so only its class token goes through attention output and MLP (about 6% of a ViT-B forward).
            class_token_only = index == last and not self._original_last_block_wanted
            attention_out, vv_out = block_attention(block, block.ln_1(x), with_vv, class_token_only)
            x = (x[:, :1] if class_token_only else x) + attention_out
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
            if vv_out is not None:
                surgery = surgery + vv_out
            layer = index + 1
            if layer in wanted:
                layer_tokens[layer] = surgery if with_vv else x

        global_token = self.class_token_output(x[:, 0])
        if self.global_ln_post:
            global_token = self.visual.ln_post(global_token)
        global_feature = global_token @ self.visual.proj
        patch_features = [self._project(layer_tokens[layer][:, 1:]) for layer in self.feature_layers]
        return VisionFeatures(global_feature, patch_features, grid_size)
