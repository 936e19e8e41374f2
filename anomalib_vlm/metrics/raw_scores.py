# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Ranking metrics on the scores the model produced, next to the normalised scores users deploy.

anomalib's :class:`~anomalib.post_processing.PostProcessor` maps every test score to
``((x - threshold) / (max - min) + 0.5).clamp(0, 1)`` with the validation statistics, and anomalib's
:class:`~anomalib.metrics.Evaluator` runs after it (callback order: pre-processor, post-processor, evaluator,
visualizer). Every score more than half the validation range above the threshold becomes 1.0 (and below it 0.0),
so ranking metrics (AUROC, AUPR, AUPRO, FPR95, SRCC) see ties that the model never produced: on the synthetic OOD
data, MCM's FPR95 reads 1.000 on the clamped scores and 0.990 on its own.

Two pieces fix this without changing what is deployed:

* :class:`RawScorePostProcessor` is anomalib's post-processor (same normalisation, thresholds, buffers and
  exported graph) that first keeps the model's own values of the named fields under ``raw_<field>``
  (``raw_pred_score``, ``raw_anomaly_map``) on the validation and test batches.
* Ranking metrics name those fields, e.g. ``AUROC(fields=["raw_pred_score", "gt_label"], normalization=None)``;
  thresholded metrics (F1) keep reading the deployed ``pred_label`` / ``pred_mask``. torchmetrics' AUROC and
  AUPR apply a sigmoid to a batch whose values leave ``[0, 1]`` (per batch, so two batches can be mapped
  differently); raw scores may leave it, hence ``normalization=None``.

:class:`RawScoreEvaluator` is anomalib's evaluator that also works when the model has another post-processor
(or none): a missing ``raw_<field>`` is then filled from ``<field>`` (what the metrics read in anomalib), with a
warning at setup if that post-processor normalises.

Example:
    >>> import torch
    >>> from anomalib.data import ImageBatch
    >>> from anomalib_vlm.metrics.raw_scores import RawScorePostProcessor
    >>> post_processor = RawScorePostProcessor()
    >>> batch = ImageBatch(image=torch.rand(2, 3, 8, 8), pred_score=torch.tensor([0.2, 3.0]))
    >>> post_processor.keep_raw_scores(batch)
    >>> batch.raw_pred_score
    tensor([0.2000, 3.0000])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from anomalib.metrics import Evaluator
from anomalib.post_processing import PostProcessor

if TYPE_CHECKING:
    from anomalib.data import Batch
    from lightning.pytorch import LightningModule, Trainer

logger = logging.getLogger(__name__)

RAW_PREFIX = "raw_"
"""Prefix of the batch attributes that hold the model's own (un-normalised) values."""
RAW_PRED_SCORE = "raw_pred_score"
"""The model's image score before normalisation."""
RAW_ANOMALY_MAP = "raw_anomaly_map"
"""The model's anomaly map before normalisation."""
DEFAULT_RAW_FIELDS = ("pred_score", "anomaly_map")
"""Fields whose raw values :class:`RawScorePostProcessor` keeps by default."""


def raw_field(name: str) -> str:
    """The batch attribute holding the raw value of field ``name`` (``pred_score`` -> ``raw_pred_score``)."""
    return f"{RAW_PREFIX}{name}"


def keep_raw_fields(batch: Batch, fields: Sequence[str], overwrite: bool = True) -> None:
    """Store the current value of every field of ``fields`` under ``raw_<field>`` on ``batch``.

    anomalib's batches are plain dataclasses, so the copies are ordinary attributes: anomalib's metrics read them
    by name (``getattr``), while ``Batch.items``, ``update`` and the visualizers, which go by the dataclass
    fields, ignore them. Nothing is copied: normalisation assigns new tensors and leaves these ones as they are.

    Args:
        batch (Batch): the batch, changed in place.
        fields (Sequence[str]): field (or property) names, e.g. ``("pred_score", "anomaly_map")``. A field the
            batch lacks is stored as ``None``.
        overwrite (bool): replace a raw value that is already there. Defaults to ``True``.
    """
    for name in fields:
        if overwrite or getattr(batch, raw_field(name), None) is None:
            setattr(batch, raw_field(name), getattr(batch, name, None))


class RawScorePostProcessor(PostProcessor):
    """anomalib's post-processor that keeps the model's own scores for the ranking metrics.

    Normalisation, thresholds and their buffers are anomalib's, unchanged; the validation and test hooks first
    store the named fields under ``raw_<field>`` (prediction batches are left alone: no metric reads them, and the
    copies would double the maps kept in memory), and the exported ``forward`` passes through the fields a model
    returns beyond anomalib's four (Supreme's ``pred_class``), so exported graphs output them too.

    Args:
        raw_fields (Sequence[str]): fields (or batch properties) to keep. Defaults to
            ``("pred_score", "anomaly_map")``.
        **kwargs (Any): anomalib's :class:`~anomalib.post_processing.PostProcessor` arguments
            (``enable_normalization``, ``image_sensitivity``, ...).
    """

    def __init__(self, raw_fields: Sequence[str] = DEFAULT_RAW_FIELDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.raw_fields = list(raw_fields)

    @property
    def _checkpoint_config_keys(self) -> tuple[str, ...]:
        """Persisted settings: anomalib's plus ``raw_fields``."""
        return (*super()._checkpoint_config_keys, "raw_fields")

    def forward(self, predictions: Any) -> Any:
        """Post-process the four ``InferenceBatch`` fields; other fields pass through unchanged."""
        processed = super().forward(predictions)
        if type(predictions)._fields == processed._fields:
            return processed
        return type(predictions)(**{**predictions._asdict(), **processed._asdict()})

    def keep_raw_scores(self, batch: Batch) -> None:
        """Store the raw values of :attr:`raw_fields` on ``batch`` (see :func:`keep_raw_fields`)."""
        keep_raw_fields(batch, self.raw_fields)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Batch,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Keep the raw scores (validation metrics read them too), then collect anomalib's statistics."""
        self.keep_raw_scores(outputs)
        super().on_validation_batch_end(trainer, pl_module, outputs, *args, **kwargs)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Batch,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        """Keep the raw scores, then normalise and threshold the batch as anomalib does."""
        self.keep_raw_scores(outputs)
        super().on_test_batch_end(trainer, pl_module, outputs, *args, **kwargs)


class RawScoreEvaluator(Evaluator):
    """anomalib's evaluator whose metrics may read ``raw_<field>`` whatever the model's post-processor.

    With :class:`RawScorePostProcessor` it is anomalib's evaluator. With another post-processor, or none, the
    ``raw_<field>`` a metric names is filled from ``<field>`` before the metrics update: exact when nothing
    normalised the scores (no post-processor, or ``enable_normalization=False``), anomalib's clamped scores
    otherwise, which :meth:`setup` warns about.
    """

    def _raw_fields_read(self, metrics: Sequence[Any]) -> list[str]:
        """The plain field names behind every ``raw_<field>`` the metrics read."""
        names = {key for metric in metrics for key in getattr(metric, "fields", ())}
        return sorted(name.removeprefix(RAW_PREFIX) for name in names if name.startswith(RAW_PREFIX))

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Set up as anomalib does, and warn when the ranking metrics will read normalised, clamped scores."""
        super().setup(trainer, pl_module, stage)
        post_processor = getattr(pl_module, "post_processor", None)
        normalises = post_processor is not None and getattr(post_processor, "enable_normalization", False)
        reads_raw = self._raw_fields_read([*self.val_metrics, *self.test_metrics])
        if normalises and reads_raw and not isinstance(post_processor, RawScorePostProcessor):
            logger.warning(
                "%s's post-processor (%s) normalises and clamps scores without keeping the raw ones, so metrics on "
                "%s read the clamped scores (ties at 0 and 1). Use anomalib_vlm.metrics.RawScorePostProcessor.",
                type(pl_module).__name__,
                type(post_processor).__name__,
                ", ".join(raw_field(name) for name in reads_raw),
            )

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Fill missing raw fields, then update anomalib's validation metrics."""
        keep_raw_fields(batch, self._raw_fields_read(self.val_metrics), overwrite=False)
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Fill missing raw fields, then update anomalib's test metrics."""
        keep_raw_fields(batch, self._raw_fields_read(self.test_metrics), overwrite=False)
        super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx, dataloader_idx)
