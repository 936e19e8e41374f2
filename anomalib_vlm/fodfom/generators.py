# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Stage 5: images from (perturbed) CLIP text embeddings.

A generator is anything with ``generate(embeddings, seeds) -> list[uint8 (H, W, 3)]``, one image per embedding,
image ``i`` a function of ``(embeddings[i], seeds[i])``:

* :class:`StableDiffusionGenerator`: Stable Diffusion v1 through ``diffusers``, conditioned on the embedding
  written into the end-of-text slot of a fixed prompt
  (:class:`~anomalib_vlm.fodfom.conditioning.EndOfTextConditioning`).
  Defaults from the official ``stable_diffusion/scripts/txt2img.py``: DDIM, 50 steps, ``eta = 0``, guidance scale
  7.5 against the empty prompt, 512 x 512, seed 42.
* :class:`DescriptionRenderer`: an offline generator for tests and the offline proof. It ranks a fixed list of
  describable contents of the package's caption corpus (:mod:`anomalib_vlm.data.generators.corpus`: material
  textures and
  object shapes in colours) by the cosine similarity of their descriptions' embeddings to the given embedding,
  keeps the nearest ``top_k`` that are not in-distribution content, draws one with the seed and renders it.
  It stands in for "an image of what the embedding describes", with the FodFoM premise built in: a fake outlier
  shows something near the ID classes that is not one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from anomalib_vlm.fodfom.conditioning import EndOfTextConditioning
from anomalib_vlm.fodfom.errors import default_device, load_diffusion_pipeline, require
from anomalib_vlm.fodfom.text_embedding import TextEmbedder, TransformersClipText

STABLE_DIFFUSION_MODEL = "CompVis/stable-diffusion-v1-4"
"""Stable Diffusion v1 (the official code runs CompVis' v1 ``txt2img.py`` with ``v1-inference.yaml``)."""
STEPS = 50
GUIDANCE_SCALE = 7.5
IMAGE_SIZE = 512


@runtime_checkable
class OutlierGenerator(Protocol):
    """Anything that turns CLIP text embeddings into images."""

    def generate(self, embeddings: torch.Tensor, seeds: Sequence[int]) -> list[np.ndarray]:
        """One ``uint8`` ``(H, W, 3)`` image per embedding."""
        ...


def _to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """``[N, 3, H, W]`` floats in ``[0, 1]`` to ``uint8`` ``(H, W, 3)`` arrays."""
    array = (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return list(array)


class StableDiffusionGenerator:
    """Stable Diffusion v1 (``diffusers``) conditioned through the end-of-text slot.

    Args:
        pipeline: a ``diffusers.StableDiffusionPipeline``; its scheduler is replaced by DDIM from its config.
        conditioning (EndOfTextConditioning): the embedding-to-conditioning map (on SD's own text encoder).
        steps (int): DDIM steps. Defaults to ``50``.
        guidance_scale (float): classifier-free guidance. Defaults to ``7.5``.
        image_size (int): output side. Defaults to ``512``.
        batch_size (int): images per denoising run. Defaults to ``4`` (the official script's).
    """

    def __init__(
        self,
        pipeline: object,
        conditioning: EndOfTextConditioning,
        steps: int = STEPS,
        guidance_scale: float = GUIDANCE_SCALE,
        image_size: int = IMAGE_SIZE,
        batch_size: int = 4,
    ) -> None:
        diffusers = require("diffusers", "generation")
        pipeline.scheduler = diffusers.DDIMScheduler.from_config(pipeline.scheduler.config)
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline
        self.conditioning = conditioning
        self.steps, self.guidance_scale, self.image_size, self.batch_size = (
            steps,
            guidance_scale,
            image_size,
            batch_size,
        )

    @classmethod
    def from_pretrained(
        cls, name: str = STABLE_DIFFUSION_MODEL, text_model: str | None = None, device: str | None = None
    ) -> StableDiffusionGenerator:
        """Load SD v1 and the CLIP text tower with projection whose ``text_projection`` is inverted.

        SD v1's ``text_encoder`` folder lacks the projection, so it comes from ``text_model``
        (``openai/clip-vit-large-patch14``, whose text tower SD v1 uses unchanged).
        """
        device = default_device(device)
        pipeline = load_diffusion_pipeline("StableDiffusionPipeline", name, "generation (Stable Diffusion)", device)
        from anomalib_vlm.fodfom.text_embedding import CLIP_TEXT_MODEL

        text = TransformersClipText.from_pretrained(text_model or CLIP_TEXT_MODEL, device=device)
        return cls(pipeline, EndOfTextConditioning(text))

    @torch.no_grad()
    def generate(self, embeddings: torch.Tensor, seeds: Sequence[int]) -> list[np.ndarray]:
        """Images of the embeddings, ``batch_size`` at a time; image ``i`` uses generator seed ``seeds[i]``."""
        images: list[np.ndarray] = []
        unet = self.pipeline.unet
        for start in range(0, len(embeddings), self.batch_size):
            chunk = embeddings[start : start + self.batch_size]
            condition = self.conditioning(chunk).to(unet.device, unet.dtype)
            negative = self.conditioning.unconditional(len(chunk)).to(unet.device, unet.dtype)
            generators = [
                torch.Generator(unet.device).manual_seed(int(seed)) for seed in seeds[start : start + len(chunk)]
            ]
            output = self.pipeline(
                prompt_embeds=condition,
                negative_prompt_embeds=negative,
                num_inference_steps=self.steps,
                guidance_scale=self.guidance_scale,
                eta=0.0,
                height=self.image_size,
                width=self.image_size,
                generator=generators,
                output_type="pt",
            )
            images += _to_uint8(output.images.float())
        return images


@dataclass(frozen=True)
class Content:
    """Something the corpus renderer can draw: a family (texture or shape) in a colour."""

    family: str
    colour: str

    @property
    def description(self) -> str:
        """Plain words for it (corpus vocabulary)."""
        return f"{self.colour} {self.family.replace('_', ' ')}"


class DescriptionRenderer:
    """Offline generator: render the nearest non-ID describable content of each embedding.

    Args:
        embedder (TextEmbedder): the embedder the embeddings came from (the descriptions are embedded with it).
        excluded (Callable[[Content], bool]): which contents are in-distribution (never drawn).
        families (Sequence[str] | None): corpus families to draw from; ``None``: every material and shape family
            the small CLIP was trained on.
        image_size (int): output side. Defaults to ``64``.
        top_k (int): nearest contents to draw from. Defaults to ``3``.
        wordings (int): captions per content averaged into its embedding. Defaults to ``4``.
    """

    def __init__(
        self,
        embedder: TextEmbedder,
        excluded: Callable[[Content], bool] = lambda content: False,
        families: Sequence[str] | None = None,
        image_size: int = 64,
        top_k: int = 3,
        wordings: int = 4,
    ) -> None:
        from anomalib_vlm.data.generators.corpus import COLOURS, FAMILIES, HELD_OUT_FAMILIES, CaptionCorpus

        self.corpus = CaptionCorpus(image_size=image_size, photos=False)
        if families is None:
            families = [
                f for f, kind in FAMILIES.items() if kind in {"material", "shape"} and f not in HELD_OUT_FAMILIES
            ]
        self.contents = [Content(f, c) for f in families for c in COLOURS if not excluded(Content(f, c))]
        if not self.contents:
            msg = "DescriptionRenderer has no content left to draw: every family/colour is excluded"
            raise ValueError(msg)
        self.top_k = top_k
        texts = []
        for index, content in enumerate(self.contents):
            rng = np.random.default_rng(index)
            texts += [
                self.corpus.caption(content.family, content.colour, None, None, None, rng) for _ in range(wordings)
            ]
        embedded = F.normalize(embedder.embed(texts), dim=-1).reshape(len(self.contents), wordings, -1)
        self.content_embeddings = F.normalize(embedded.mean(1), dim=-1)

    def nearest(self, embeddings: torch.Tensor) -> torch.Tensor:
        """``[N, top_k]`` indices into :attr:`contents`, nearest first."""
        similarity = F.normalize(embeddings.float(), dim=-1) @ self.content_embeddings.T
        return similarity.topk(min(self.top_k, len(self.contents)), dim=-1).indices

    def generate(self, embeddings: torch.Tensor, seeds: Sequence[int]) -> list[np.ndarray]:
        """One rendered image per embedding (content drawn among the nearest with the seed)."""
        images = []
        for candidates, seed in zip(self.nearest(embeddings).tolist(), seeds, strict=True):
            rng = np.random.default_rng(int(seed))
            content = self.contents[candidates[int(rng.integers(len(candidates)))]]
            images.append(self.corpus.render(content.family, content.colour, None, None, rng).image)
        return images
