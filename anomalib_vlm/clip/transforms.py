# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""CLIP's image preprocessing as anomalib pre-processor transforms, per backbone and pretrained tag."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from anomalib.data.transforms import ExportableCenterCrop
from anomalib.pre_processing import PreProcessor
from torchvision import tv_tensors
from torchvision.transforms.v2 import Compose, InterpolationMode, Normalize, Resize, Transform

from anomalib_vlm.clip.backbone import clip_preprocessing

if TYPE_CHECKING:
    from pathlib import Path


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


_INTERPOLATION = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
}


def clip_pre_processor(
    backbone: str,
    pretrained: str | Path | None,
    image_size: tuple[int, int],
    resize_mode: str | None = None,
) -> PreProcessor:
    """An anomalib pre-processor with the resizing and normalisation the backbone's weights were trained with.

    Statistics, interpolation and (unless given) the resize mode come from :func:`clip_preprocessing`, i.e.
    from open_clip's declarations for the model and pretrained tag.

    Args:
        backbone (str): open_clip model name.
        pretrained (str | Path | None): pretrained tag, local file or ``None`` (files and ``None``: open_clip's
            defaults, OpenAI's statistics).
        image_size (tuple[int, int]): model input size (height, width).
        resize_mode (str | None): ``"shortest"`` (shorter side to the size, then centre crop, one
            :class:`ResizeShorterSideCenterCrop`) or ``"squash"`` (a plain resize to ``image_size``); ``None``
            takes the backbone's. Models whose paper fixes the geometry pass it.

    Raises:
        ValueError: an unknown backbone, a non-square size for ``"shortest"``, or an unsupported resize mode.
    """
    settings = clip_preprocessing(backbone, pretrained)
    mode = resize_mode or settings.resize_mode
    interpolation = _INTERPOLATION.get(settings.interpolation, InterpolationMode.BICUBIC)
    size = (int(image_size[0]), int(image_size[1]))
    if mode == "shortest":
        if size[0] != size[1]:
            msg = f"resize mode 'shortest' (CLIP's centre crop) takes square inputs only, got image_size {size}"
            raise ValueError(msg)
        resize: Resize = ResizeShorterSideCenterCrop(size[0], interpolation=interpolation)
    elif mode == "squash":
        resize = Resize(size, interpolation=interpolation, antialias=True)
    else:
        msg = f"Unsupported resize mode '{mode}' for CLIP model '{backbone}': use 'shortest' or 'squash'"
        raise ValueError(msg)
    return PreProcessor(transform=Compose([resize, Normalize(mean=settings.mean, std=settings.std)]))


def normalization_of(transform: Transform | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Mean and std of the (last) ``Normalize`` in a transform or ``Compose``; ``None`` if it has none.

    Code that must undo the normalisation (to paste synthetic defects in pixel space, say) reads the statistics
    from the model's own pre-processor with this, so it always matches what the images went through.
    """
    if isinstance(transform, Normalize):
        return tuple(transform.mean), tuple(transform.std)
    for child in reversed(getattr(transform, "transforms", None) or []):
        if (found := normalization_of(child)) is not None:
            return found
    return None
