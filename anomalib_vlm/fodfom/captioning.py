# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Stage 1: a caption per in-distribution image, and the text FodFoM embeds from it.

Official code: ``BLIP2_I2T.py`` captions every ID training image with ``Salesforce/blip2-opt-2.7b`` (no text
prompt, fp16, ``generate`` defaults); ``clip_text.py`` then builds ``"This is a photo of {class} and {caption}"``
with the caption cut to 60 characters (ImageNet-100 branch).

A captioner is anything with ``__call__(images, paths) -> list[str]``: :class:`Blip2Captioner` runs BLIP-2 through
``transformers``; :class:`CaptionTable` reads captions the user already has (a CSV with ``image`` and ``caption``
columns), so the stage needs no model at all.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from anomalib_vlm.fodfom.errors import default_device, load_pretrained, require

CAPTION_TEMPLATE = "This is a photo of {class_name} and {caption}"
"""The text embedded per image (``clip_text.py``, ImageNet-100 branch)."""
CAPTION_CHARACTERS = 60
"""Captions are cut to this many characters before they enter the template (``clip_text.py``)."""
BLIP2_MODEL = "Salesforce/blip2-opt-2.7b"
"""The captioner of the official code (``BLIP2_I2T.py``)."""


def caption_text(class_name: str, caption: str, characters: int = CAPTION_CHARACTERS) -> str:
    """The official per-image text: ``"This is a photo of <class> and <caption[:60]>"``."""
    return CAPTION_TEMPLATE.format(class_name=class_name, caption=caption.strip()[:characters])


@runtime_checkable
class Captioner(Protocol):
    """Anything that captions images: ``images`` are ``uint8`` ``(H, W, 3)`` arrays, ``paths`` their files."""

    def __call__(self, images: Sequence[np.ndarray], paths: Sequence[Path]) -> list[str]:
        """One caption per image."""
        ...


class CaptionTable:
    """Captions from a CSV file with the columns ``image`` (path or file name) and ``caption``.

    Args:
        path (str | Path): the CSV file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a column is missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            msg = f"Caption table {self.path} does not exist"
            raise FileNotFoundError(msg)
        with self.path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"image", "caption"} - set(reader.fieldnames or [])
            if missing:
                msg = f"Caption table {self.path} lacks the column(s) {sorted(missing)}; expected 'image' and 'caption'"
                raise ValueError(msg)
            rows = list(reader)
        self.by_path = {str(Path(row["image"])): row["caption"] for row in rows}
        self.by_name = {Path(row["image"]).name: row["caption"] for row in rows}

    def __call__(self, images: Sequence[np.ndarray], paths: Sequence[Path]) -> list[str]:
        """The table's caption of every path (matched by full path, then by file name)."""
        del images
        captions = []
        for path in paths:
            caption = self.by_path.get(str(Path(path)), self.by_name.get(Path(path).name))
            if caption is None:
                msg = f"Caption table {self.path} has no row for image {path} (column 'image')"
                raise ValueError(msg)
            captions.append(caption)
        return captions


class Blip2Captioner:
    """BLIP-2 captions through ``transformers`` (prompt-free ``generate``, as ``BLIP2_I2T.py``).

    Args:
        model: a ``Blip2ForConditionalGeneration`` (or any model with the same ``generate``).
        processor: its ``Blip2Processor``.
        max_new_tokens (int): caption length limit. Defaults to ``30``.
    """

    def __init__(self, model: torch.nn.Module, processor: object, max_new_tokens: int = 30) -> None:
        self.model = model.eval()
        self.processor = processor
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_pretrained(cls, name: str = BLIP2_MODEL, device: str | None = None) -> Blip2Captioner:
        """Load BLIP-2 (fp16 on a GPU, fp32 on the CPU); a clear error when it is not available offline."""
        transformers = require("transformers", "captioning")
        device = default_device(device)
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        processor = load_pretrained(transformers.Blip2Processor, name, "captioning (BLIP-2)")
        model = load_pretrained(
            transformers.Blip2ForConditionalGeneration, name, "captioning (BLIP-2)", torch_dtype=dtype
        )
        return cls(model.to(device), processor)

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray], paths: Sequence[Path]) -> list[str]:
        """Captions of a batch of images."""
        del paths
        parameter = next(self.model.parameters())
        inputs = self.processor(images=list(images), return_tensors="pt")
        pixels = inputs["pixel_values"].to(parameter.device, parameter.dtype)
        generated = self.model.generate(pixel_values=pixels, max_new_tokens=self.max_new_tokens)
        return [text.strip() for text in self.processor.batch_decode(generated, skip_special_tokens=True)]
