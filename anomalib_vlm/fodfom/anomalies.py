# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Fake anomalies: defects painted into normal images inside generated masks, with their masks.

Not in the FodFoM paper (it makes fake *outliers* for OOD detection); the same machinery applied to anomaly
detection: a team with normal images only gets defect images with masks to train AnomalyClip's prompts on.

* :func:`defect_region`: a random smooth blob (thresholded low-frequency noise inside an ellipse) covering about
  2-10 % of the image, away from the border: where a defect may go.
* A painter is anything with ``paint(image, region, defect, rng) -> (image, mask)``:

  * :class:`StableDiffusionInpainter`: Stable Diffusion in-painting (``diffusers``) with the prompt
    ``"a photo of a <object> with a <defect word>"`` inside the region; the mask is the region.
  * :class:`RenderedDefectPainter`: offline; draws one of the caption corpus's defects (crack, burn mark, chipped
    edge, dent, contamination: drawers the synthetic anomaly dataset does not use, so a model trained on them is
    tested on defects of another generator) inside the region; the mask is what was drawn.

Perlin pasting (AnomalyClip's ``synthetic_anomaly_probability``) stays the cheap default in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch

from anomalib_vlm.data.utils import readable_name
from anomalib_vlm.fodfom.errors import load_diffusion_pipeline

INPAINTING_MODEL = "stable-diffusion-v1-5/stable-diffusion-inpainting"
DEFECT_WORDS: dict[str, str] = {
    "crack": "crack",
    "scratch": "scratch",
    "burn": "burn mark",
    "chip": "chipped edge",
    "stain": "stain",
    "hole": "hole",
    "dent": "dent",
    "missing": "missing part",
    "contamination": "contamination",
}
"""Defect kinds and the words the in-painting prompt uses."""
RENDERED_DEFECTS: tuple[str, ...] = ("burn", "chip", "contamination", "crack", "dent")
"""Defects :class:`RenderedDefectPainter` draws (none of them is drawn by the synthetic anomaly dataset)."""


def defect_region(size: int, rng: np.random.Generator, share: tuple[float, float] = (0.02, 0.10)) -> np.ndarray:
    """A random blob mask ``bool (size, size)`` covering ``share`` of the image, at least 1/8 from the border."""
    low, high = share
    target = rng.uniform(low, high)
    cx, cy = rng.uniform(0.25, 0.75, 2) * size
    noise = cv2.resize(rng.random((6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    radius = np.sqrt(target / np.pi) * size * 1.4
    ratio = rng.uniform(0.5, 1.0)
    ellipse = ((xx - cx) / radius) ** 2 + ((yy - cy) / (radius * ratio)) ** 2
    field = (1 - ellipse) + 0.6 * (noise - 0.5)
    threshold = np.quantile(field, 1 - target)
    return field >= threshold


@runtime_checkable
class DefectPainter(Protocol):
    """Anything that paints a defect into a normal image inside a region."""

    def paint(
        self, image: np.ndarray, region: np.ndarray, defect: str, object_name: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """The defect image ``uint8 (H, W, 3)`` and its mask ``bool (H, W)`` (inside ``region``)."""
        ...


class RenderedDefectPainter:
    """Offline painter: the caption corpus's procedural defect drawers (:mod:`anomalib_vlm.data.generators.corpus`)."""

    defects: tuple[str, ...] = RENDERED_DEFECTS

    def paint(
        self, image: np.ndarray, region: np.ndarray, defect: str, object_name: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``defect`` inside ``region`` (sized to about 1-8 % of the image)."""
        from anomalib_vlm.data.generators.corpus import place_defect

        del object_name
        if defect not in self.defects:
            msg = f"RenderedDefectPainter draws {list(self.defects)}, got defect '{defect}'"
            raise ValueError(msg)
        painted, mask = place_defect(image.astype(np.float32) / 255, region, defect, rng)
        return (np.clip(painted, 0, 1) * 255 + 0.5).astype(np.uint8), mask


class StableDiffusionInpainter:
    """Stable Diffusion in-painting (``diffusers``) of defect words inside the region.

    Args:
        pipeline: a ``diffusers.StableDiffusionInpaintPipeline``.
        steps (int): denoising steps. Defaults to ``50``.
        guidance_scale (float): Defaults to ``7.5``.
        image_size (int): the side the pipeline works at (the result is resized back). Defaults to ``512``.
        prompt (str): ``{object}`` and ``{defect}`` are filled in.
    """

    defects: tuple[str, ...] = tuple(DEFECT_WORDS)

    def __init__(
        self,
        pipeline: object,
        steps: int = 50,
        guidance_scale: float = 7.5,
        image_size: int = 512,
        prompt: str = "a photo of a {object} with a {defect}",
    ) -> None:
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline, self.steps, self.guidance_scale, self.image_size, self.prompt = (
            pipeline,
            steps,
            guidance_scale,
            image_size,
            prompt,
        )

    @classmethod
    def from_pretrained(cls, name: str = INPAINTING_MODEL, device: str | None = None) -> StableDiffusionInpainter:
        """Load an SD in-painting pipeline; a clear error when it is not available offline."""
        stage = "defect in-painting (Stable Diffusion)"
        return cls(load_diffusion_pipeline("StableDiffusionInpaintPipeline", name, stage, device))

    @torch.no_grad()
    def paint(
        self, image: np.ndarray, region: np.ndarray, defect: str, object_name: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """In-paint the defect; only the region changes (the rest is pasted back from the input)."""
        from PIL import Image

        size = self.image_size
        height, width = image.shape[:2]
        words = DEFECT_WORDS.get(defect, defect)
        generator = torch.Generator(self.pipeline.unet.device).manual_seed(int(rng.integers(2**31)))
        result = self.pipeline(
            prompt=self.prompt.format(object=readable_name(object_name), defect=words),
            image=Image.fromarray(image).resize((size, size)),
            mask_image=Image.fromarray(region.astype(np.uint8) * 255).resize((size, size)),
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            height=size,
            width=size,
            generator=generator,
            output_type="np",
        ).images[0]
        painted = cv2.resize((np.clip(result, 0, 1) * 255 + 0.5).astype(np.uint8), (width, height))
        output = np.where(region[..., None], painted, image)
        return output, region.copy()


def defect_kinds(painter: DefectPainter, requested: Sequence[str] | None) -> list[str]:
    """The defects to paint: ``requested`` (checked against the painter's) or all the painter knows."""
    known = list(getattr(painter, "defects", DEFECT_WORDS))
    if requested is None:
        return known
    unknown = [name for name in requested if name not in known]
    if unknown:
        msg = f"Unknown defect(s) {unknown} for {type(painter).__name__}; expected some of {known}"
        raise ValueError(msg)
    return list(requested)
