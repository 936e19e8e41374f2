# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""anomalib's image visualizer for quality scores: the image with its quality (and MOS, and the gate's verdict).

anomalib's :class:`~anomalib.visualization.ImageVisualizer` draws anomaly maps and masks, which a quality model
does not have (its panels would repeat the plain image). :class:`QualityVisualizer` keeps anomalib's saving
logic and output layout (``<root>/images/...``) but draws one panel captioned ``quality 0.73 | MOS 3.20`` and,
when the quality is below the model's threshold, ``| rejected``.

Example:
    >>> from anomalib_vlm.models.meta_iqa.visualizer import QualityVisualizer
    >>> QualityVisualizer().fields
    ['image']
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from anomalib.utils.path import generate_output_filename
from anomalib.visualization import ImageVisualizer
from anomalib.visualization.image.functional import add_text_to_image
from anomalib.visualization.image.item_visualizer import visualize_image_item

if TYPE_CHECKING:
    from anomalib.data import ImageBatch, ImageItem
    from lightning.pytorch import LightningModule, Trainer
    from PIL import Image


def quality_caption(item: ImageItem) -> str:
    """``quality 0.73 | MOS 3.20 | rejected`` for one predicted item (parts without data are left out)."""
    parts = []
    if item.pred_score is not None:
        parts.append(f"quality {1 - float(item.pred_score):.2f}")
    mos = getattr(item, "mos", None)
    if mos is not None:
        parts.append(f"MOS {float(mos):.2f}")
    if item.pred_label is not None and bool(item.pred_label):
        parts.append("rejected")
    return " | ".join(parts)


class QualityVisualizer(ImageVisualizer):
    """Save each tested or predicted image with its quality caption.

    Args:
        field_size (tuple[int, int]): size of the saved image. Defaults to ``(256, 256)``.
        output_dir (str | Path | None): where to save; ``None`` = ``<trainer root>/images``. Defaults to ``None``.
        **kwargs (Any): passed to :class:`~anomalib.visualization.ImageVisualizer` (``text_config``, ...).
    """

    def __init__(
        self, field_size: tuple[int, int] = (256, 256), output_dir: str | Path | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("fields", ["image"])
        kwargs.setdefault("overlay_fields", [])
        super().__init__(field_size=field_size, output_dir=output_dir, **kwargs)

    def visualize_item(self, item: ImageItem) -> Image.Image | None:
        """The captioned image of one item."""
        image = visualize_image_item(
            item,
            fields=self.fields,
            overlay_fields=self.overlay_fields,
            field_size=self.field_size,
            fields_config=self.fields_config,
            overlay_fields_config=self.overlay_fields_config,
            text_config={**self.text_config, "enable": False},  # the caption replaces the field title
        )
        caption = quality_caption(item)
        if image is None or not caption:
            return image
        text = {key: value for key, value in self.text_config.items() if key in {"font", "size", "color", "background"}}
        return add_text_to_image(image, caption, **text)

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
        del pl_module, outputs, batch_idx, dataloader_idx  # These variables are not used.
        if self.output_dir is None:
            self.output_dir = Path(trainer.default_root_dir) / "images"
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
