# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""CLIP's image preprocessing as anomalib pre-processor transforms."""

from __future__ import annotations

from typing import Any

from anomalib.data.transforms import ExportableCenterCrop
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode, Resize


class ResizeShorterSideCenterCrop(Resize):
    """CLIP's geometry: resize the shorter side to ``size``, then crop the centre ``size x size``.

    One ``Resize`` rather than ``Resize`` followed by ``CenterCrop``, because anomalib's datamodules move the
    model's first ``Resize`` into the dataset and run the rest after collation. A lone shorter-side resize would
    leave non-square images (ImageNet, OOD photographs) with different shapes, and anomalib's collate would then
    stretch them all to the largest one, so the crop, and the score, would depend on the other images in the
    batch. Here every image leaves the dataset square. The crop is anomalib's exportable one, and anomalib's
    export turns off the antialiasing of this resize as of any other.

    Args:
        size (int): side of the square output.
        interpolation (InterpolationMode): resize interpolation. Defaults to bicubic, as CLIP.
        antialias (bool): antialias the resize. Defaults to ``True``.
    """

    def __init__(
        self,
        size: int,
        interpolation: InterpolationMode = InterpolationMode.BICUBIC,
        antialias: bool = True,
    ) -> None:
        super().__init__(size, interpolation=interpolation, antialias=antialias)
        self.center_crop = ExportableCenterCrop(size)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Resize the shorter side, then crop the centre; images and masks keep their tv_tensor type."""
        cropped = self.center_crop.transform(super().transform(inpt, params), {})
        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask, tv_tensors.Video)):
            return tv_tensors.wrap(cropped, like=inpt)  # the crop slices, which drops the type
        return cropped
