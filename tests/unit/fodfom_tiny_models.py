# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Tiny random ``transformers`` / ``diffusers`` models for the FodFoM stage tests (no downloads)."""

from __future__ import annotations

import torch


def tiny_clip_text(seed: int = 0) -> torch.nn.Module:
    """A 2-layer CLIP text tower with a square projection (like ViT-L/14's), OpenAI's vocabulary size."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=32,
        eos_token_id=49407,
        bos_token_id=49406,
        pad_token_id=0,
    )
    return CLIPTextModelWithProjection(config).eval()


def tiny_stable_diffusion(text_encoder: torch.nn.Module, inpainting: bool = False, seed: int = 0) -> object:
    """A Stable Diffusion (in-painting) pipeline with a tiny UNet and VAE (32 px images, 16 px latents)."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=9 if inpainting else 4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 32),
        latent_channels=4,
        norm_num_groups=8,
    )
    pipeline_class = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    return pipeline_class(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=None,
        unet=unet,
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
