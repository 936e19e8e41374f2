# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Stage 6: background fakes: detect the ID object with a text-prompted detector and blur it away.

Official code (``GroundingDINO/demo/inference_on_a_image_background.py``): GroundingDINO SwinT-OGC, the class name
as the text prompt (lower case, ending with ``"."``), box threshold 0.3, text threshold 0.25. Every detected box
covering at most half of the image is blurred with ``cv2.blur`` and a 50 x 50 kernel; if any box covers more than
half, the image is dropped (no background is left to keep). An image with no detection is kept as it is.

A detector is anything with ``detect(image, text) -> [M, 4]`` boxes ``(x0, y0, x1, y1)`` in pixels:
:class:`GroundingDinoDetector` runs GroundingDINO through ``transformers``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import cv2
import numpy as np
import torch

from anomalib_vlm.data.utils import readable_name
from anomalib_vlm.fodfom.errors import default_device, load_pretrained, require

GROUNDING_DINO_MODEL = "IDEA-Research/grounding-dino-tiny"
"""GroundingDINO SwinT-OGC in ``transformers`` (the official code's ``groundingdino_swint_ogc.pth``)."""
BOX_THRESHOLD = 0.3
TEXT_THRESHOLD = 0.25
MAX_BOX_SHARE = 0.5
BLUR_KERNEL = 50


@runtime_checkable
class ObjectDetector(Protocol):
    """Anything that finds ``text`` in an image."""

    def detect(self, image: np.ndarray, text: str) -> np.ndarray:
        """``[M, 4]`` float boxes ``(x0, y0, x1, y1)`` in pixels of ``image`` (``uint8`` ``(H, W, 3)``)."""
        ...


def detector_prompt(class_name: str) -> str:
    """The official text prompt: the class name, lower case, stripped, ending with a full stop."""
    prompt = readable_name(class_name).lower().strip()
    return prompt if prompt.endswith(".") else prompt + "."


class GroundingDinoDetector:
    """GroundingDINO through ``transformers`` (``AutoModelForZeroShotObjectDetection``).

    Args:
        model: a ``GroundingDinoForObjectDetection``.
        processor: its ``GroundingDinoProcessor``.
        box_threshold (float): Defaults to ``0.3``.
        text_threshold (float): Defaults to ``0.25``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: object,
        box_threshold: float = BOX_THRESHOLD,
        text_threshold: float = TEXT_THRESHOLD,
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.box_threshold, self.text_threshold = box_threshold, text_threshold

    @classmethod
    def from_pretrained(cls, name: str = GROUNDING_DINO_MODEL, device: str | None = None) -> GroundingDinoDetector:
        """Load GroundingDINO; a clear error when it is not available offline."""
        transformers = require("transformers", "background detection")
        device = default_device(device)
        processor = load_pretrained(transformers.AutoProcessor, name, "background detection (GroundingDINO)")
        model = load_pretrained(
            transformers.AutoModelForZeroShotObjectDetection, name, "background detection (GroundingDINO)"
        )
        return cls(model.to(device), processor)

    @torch.no_grad()
    def detect(self, image: np.ndarray, text: str) -> np.ndarray:
        """Boxes of ``text`` in ``image`` above both thresholds."""
        device = next(self.model.parameters()).device
        inputs = self.processor(images=image, text=detector_prompt(text), return_tensors="pt").to(device)
        outputs = self.model(**inputs)
        result = self.processor.post_process_grounded_object_detection(
            outputs,
            inputs["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[image.shape[:2]],
        )[0]
        return result["boxes"].float().cpu().numpy().reshape(-1, 4)


def blur_objects(
    image: np.ndarray, boxes: np.ndarray, max_share: float = MAX_BOX_SHARE, kernel: int = BLUR_KERNEL
) -> np.ndarray | None:
    """The official box rule: blur every box of at most ``max_share`` of the image; ``None`` if one is larger.

    Boxes are truncated to integers as the official code does, and clipped to the image (the official code
    slices with negative coordinates as they come).
    """
    height, width = image.shape[:2]
    result = image.copy()
    for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        x0, y0, x1, y1 = (int(value) for value in box)
        if (y1 - y0) * (x1 - x0) / (height * width) > max_share:
            return None
        x0, x1 = (int(value) for value in np.clip([x0, x1], 0, width))
        y0, y1 = (int(value) for value in np.clip([y0, y1], 0, height))
        if x1 <= x0 or y1 <= y0:
            return None  # an empty crop drops the image, as the official code's flag
        result[y0:y1, x0:x1] = cv2.blur(np.ascontiguousarray(result[y0:y1, x0:x1]), (kernel, kernel))
    return result
