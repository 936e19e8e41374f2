# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""anomalib's image visualizer with the model's answer written under each image.

Image-level models (OOD detection, quality assessment) have no anomaly map, so anomalib's default
:class:`~anomalib.visualization.ImageVisualizer` shows the same image three times (the image, then its two default
overlays with nothing to overlay) and nothing of the prediction. :class:`CaptionedImageVisualizer` keeps anomalib's
composition (:func:`~anomalib.visualization.image.item_visualizer.visualize_image_item` with ``fields``,
``overlay_fields`` and their configs), its text drawing (:func:`add_text_to_image`) and its file layout, and adds a
caption strip below the panels with what :meth:`~CaptionedImageVisualizer.caption` says about the item. The panels
themselves stay what anomalib draws.

Unlike anomalib's, ``overlay_fields=[]`` means no overlay (anomalib reads an empty list as "the defaults"), and the
default is no overlay, since these models have no map.

Example:
    >>> import torch
    >>> from anomalib.data import ImageItem
    >>> from anomalib_vlm.visualization import CaptionedImageVisualizer
    >>> class ScoreVisualizer(CaptionedImageVisualizer):
    ...     def caption_lines(self, item):
    ...         return [f"score {float(item.pred_score):.2f}"]
    >>> image = ScoreVisualizer().visualize(ImageItem(image=torch.rand(3, 32, 32), pred_score=torch.tensor(0.7)))
    >>> image.width, image.height > 256  # one 256 px panel, the caption strip below it
    (256, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from anomalib.utils.path import generate_output_filename
from anomalib.visualization import ImageVisualizer
from anomalib.visualization.image.functional import add_text_to_image, dynamic_font_size
from anomalib.visualization.image.item_visualizer import visualize_image_item
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from anomalib.data import ImageBatch, ImageItem
    from lightning.pytorch import LightningModule, Trainer

CAPTION_PADDING = 6
"""Pixels around the caption text."""
CAPTION_BACKGROUND = (0, 0, 0)
"""Colour of the caption strip."""


def _font(size: int, font: str | None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """The font :func:`add_text_to_image` will draw with (anomalib's choice), to measure the caption."""
    try:
        return ImageFont.truetype(font, size) if font else ImageFont.load_default(size=size)
    except OSError:
        return ImageFont.load_default(size=size)


def add_caption(image: Image.Image, lines: list[str], text_config: dict[str, Any] | None = None) -> Image.Image:
    """``image`` with a strip below it holding ``lines``, drawn by anomalib's :func:`add_text_to_image`.

    Args:
        image (Image.Image): the composed panels.
        lines (list[str]): caption lines; none gives ``image`` back unchanged.
        text_config (dict[str, Any] | None): anomalib's text settings (``font``, ``size``, ``color``); the size
            defaults to a sixteenth of the image's shorter side (at least 10 px).

    Returns:
        Image.Image: the captioned image (same width, taller).
    """
    if not lines:
        return image
    config = text_config or {}
    size = config.get("size") or dynamic_font_size(image.size, min_size=10, divisor=16)
    text = "\n".join(lines)
    # The strip's height depends on the number of lines only, so images with as many lines line up.
    sample = "\n".join(["Ag|"] * len(lines))
    box = ImageDraw.Draw(image).multiline_textbbox((0, 0), sample, font=_font(size, config.get("font")))
    canvas = Image.new("RGB", (image.width, image.height + box[3] + 2 * CAPTION_PADDING), CAPTION_BACKGROUND)
    canvas.paste(image, (0, 0))
    return add_text_to_image(
        canvas,
        text,
        font=config.get("font"),
        size=size,
        color=config.get("color", "white"),
        background=None,
        position=(CAPTION_PADDING, image.height + CAPTION_PADDING),
    )


class CaptionedImageVisualizer(ImageVisualizer):
    """anomalib's :class:`~anomalib.visualization.ImageVisualizer` plus a caption per image.

    Subclasses implement :meth:`caption_lines`; :meth:`on_test_batch_end` (and predict) hands them the model, e.g.
    to read its class names, through :meth:`update_from_model`.

    Args:
        fields (list[str] | None): panels, as anomalib's. Defaults to ``["image"]``.
        overlay_fields (list[tuple[str, list[str]]] | None): overlays, as anomalib's, but ``[]`` (and ``None``, the
            default) means none. Defaults to ``None``.
        field_size (tuple[int, int]): size of each panel. Defaults to ``(256, 256)``.
        fields_config, overlay_fields_config (dict | None): as anomalib's.
        text_config (dict[str, Any] | None): as anomalib's (panel titles; ``font``, ``size``, ``color`` also set
            the caption). Defaults to anomalib's.
        output_dir (str | Path | None): where images go; ``None`` = ``<trainer root>/images``. Defaults to ``None``.
    """

    def __init__(
        self,
        fields: list[str] | None = None,
        overlay_fields: list[tuple[str, list[str]]] | None = None,
        field_size: tuple[int, int] = (256, 256),
        fields_config: dict[str, dict[str, Any]] | None = None,
        overlay_fields_config: dict[str, dict[str, Any]] | None = None,
        text_config: dict[str, Any] | None = None,
        output_dir: str | Path | None = None,
    ) -> None:
        super().__init__(
            fields=fields or ["image"],
            overlay_fields=overlay_fields,
            field_size=field_size,
            fields_config=fields_config,
            overlay_fields_config=overlay_fields_config,
            text_config=text_config,
            output_dir=output_dir,
        )
        # anomalib turns an empty list into its default overlays (anomaly map, predicted mask).
        self.overlay_fields = [(base, list(overlays)) for base, overlays in overlay_fields or []]

    def caption_lines(self, item: ImageItem) -> list[str]:
        """The caption of one predicted item, one string per line (none = no caption)."""
        del item  # This variable is not used.
        return []

    def update_from_model(self, pl_module: LightningModule) -> None:
        """Read what the captions need from the model before a batch is drawn (nothing by default)."""

    def visualize_item(self, item: ImageItem) -> Image.Image | None:
        """Anomalib's panels of one item, with its caption below them."""
        image = visualize_image_item(
            item,
            fields=self.fields,
            overlay_fields=self.overlay_fields,
            field_size=self.field_size,
            fields_config=self.fields_config,
            overlay_fields_config=self.overlay_fields_config,
            text_config=self.text_config,
        )
        if image is None:
            return None
        return add_caption(image, self.caption_lines(item), self.text_config)

    def visualize(self, predictions: Any) -> Image.Image | list[Image.Image | None] | None:
        """Captioned images: one for an item or a one-item batch, a list for a larger batch (as anomalib's)."""
        from anomalib.data import ImageItem, NumpyImageItem

        if isinstance(predictions, (ImageItem, NumpyImageItem)):
            return self.visualize_item(predictions)
        images = [self.visualize_item(item) for item in predictions]
        return images[0] if len(images) == 1 else images

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: ImageBatch,
        batch: ImageBatch,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Save the captioned images of a batch (anomalib's file layout)."""
        del outputs, batch_idx, dataloader_idx  # These variables are not used.
        if self.output_dir is None:
            self.output_dir = Path(trainer.default_root_dir) / "images"
        self.update_from_model(pl_module)
        datamodule = getattr(trainer, "datamodule", None)
        for item in batch:
            image = self.visualize_item(item)
            if image is not None:
                filename = generate_output_filename(
                    input_path=item.image_path or "",
                    output_path=self.output_dir,
                    dataset_name=getattr(datamodule, "name", None),
                    category=getattr(datamodule, "category", None),
                )
                image.save(filename)
