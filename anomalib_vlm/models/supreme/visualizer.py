# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""anomalib's image visualizer for OOD detection: each image with the predicted ID class, OOD score and decision.

Supreme scores whole images, so anomalib's default panels (image, anomaly-map and mask overlays) would repeat the
plain image. :class:`OODVisualizer` draws anomalib's image panel (any ``fields`` / ``overlay_fields`` given) with a
caption below it::

    class: wood
    OOD score 0.83 -> OOD
    truth: OOD

The OOD score is the deployed one (normalised; the decision threshold is 0.5), the class is the closest ID class
(also for images judged OOD), and the truth line appears when the data has labels.

Example:
    >>> import torch
    >>> from anomalib_vlm.data import OODImageItem
    >>> from anomalib_vlm.models.supreme.visualizer import OODVisualizer
    >>> item = OODImageItem(image=torch.rand(3, 32, 32), pred_score=torch.tensor(0.83), pred_label=torch.tensor(True),
    ...                     pred_class=torch.tensor(1), gt_label=torch.tensor(1), gt_class=torch.tensor(-1))
    >>> OODVisualizer(class_names=["tile", "wood"]).caption_lines(item)
    ['class: wood', 'OOD score 0.83 -> OOD', 'truth: OOD']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from anomalib_vlm.visualization import CaptionedImageVisualizer

if TYPE_CHECKING:
    from anomalib.data import ImageItem
    from lightning.pytorch import LightningModule


def _decision(label: Any) -> str:
    return "OOD" if bool(label) else "ID"


class OODVisualizer(CaptionedImageVisualizer):
    """Save each tested or predicted image with its predicted ID class, OOD score and OOD decision below it.

    Args:
        class_names (Sequence[str] | None): the ID class names ``pred_class`` indexes; ``None`` takes them from the
            model (``model.class_names``) when a batch is drawn. Defaults to ``None``.
        **kwargs (Any): :class:`~anomalib_vlm.visualization.CaptionedImageVisualizer`'s arguments (anomalib's
            ``fields``, ``overlay_fields``, ``field_size``, ``text_config``, ``output_dir``, ...).
    """

    def __init__(self, class_names: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.class_names = None if class_names is None else list(class_names)
        self._names_from_model = class_names is None

    def update_from_model(self, pl_module: LightningModule) -> None:
        """Take the ID class names from the model unless they were given."""
        if self._names_from_model:
            names = getattr(getattr(pl_module, "model", None), "class_names", None)
            self.class_names = list(names) if names else None

    def class_name(self, index: Any) -> str | None:
        """The name of ID class ``index`` (its number when the names are unknown); ``None`` for no index."""
        if index is None or int(index) < 0:
            return None
        index = int(index)
        if self.class_names and index < len(self.class_names):
            return self.class_names[index]
        return f"#{index}"

    def caption_lines(self, item: ImageItem) -> list[str]:
        """Predicted ID class, OOD score and decision, and the truth when known."""
        lines = []
        predicted = getattr(item, "pred_class", None)
        if predicted is None and self.class_names and len(self.class_names) == 1:
            predicted = 0  # one ID class (e.g. an MVTec AD category): it is the closest by definition
        name = self.class_name(predicted)
        if name is not None:
            lines.append(f"class: {name}")
        if item.pred_score is not None:
            decision = "" if item.pred_label is None else f" -> {_decision(item.pred_label)}"
            lines.append(f"OOD score {float(item.pred_score):.2f}{decision}")
        if item.gt_label is not None:
            truth = _decision(item.gt_label)
            true_class = self.class_name(getattr(item, "gt_class", None))
            lines.append(f"truth: {truth}" if truth == "OOD" or true_class is None else f"truth: ID, {true_class}")
        return lines
