# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""A quality gate in front of any anomalib model: captures whose quality is below a threshold are rejected.

Anomaly scores of blurred, noisy or badly exposed captures mean little, so an inspection line sends those back
before trusting the detector. :class:`QualityGate` is a Lightning callback: add it to anomalib's ``Engine`` and,
for every test or predict batch, it scores the raw images with a quality model (e.g. a fine-tuned
:class:`~anomalib_vlm.models.meta_iqa.MetaIqa`) *before* the anomaly model's own pre-processing, attaches
``batch.quality`` and ``batch.rejected`` to the batch, keeps a per-image record, and reports the rejected count
(``gate_rejected`` and ``gate_rejection_rate`` in ``Engine.test``'s results). Without Lightning,
:meth:`QualityGate.assess` scores a tensor of images directly.

Example:
    >>> from anomalib.engine import Engine  # doctest: +SKIP
    >>> gate = QualityGate(quality_model, threshold=0.4)  # doctest: +SKIP
    >>> Engine(callbacks=[gate]).test(anomaly_model, datamodule=datamodule)  # doctest: +SKIP
    >>> gate.num_rejected, gate.records[0]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

logger = logging.getLogger(__name__)


@dataclass
class GateResult:
    """Quality of a set of captures and which of them the gate rejects.

    Attributes:
        quality: ``[B]`` quality in ``[0, 1]`` (higher = better).
        rejected: ``[B]`` bool, ``quality < threshold``.
    """

    quality: torch.Tensor
    rejected: torch.Tensor


@dataclass
class _Record:
    image_path: str | None
    quality: float
    rejected: bool


@dataclass(eq=False)  # identity semantics: Lightning keeps callbacks in lists and compares them
class QualityGate(Callback):
    """Reject captures whose quality is below ``threshold`` before anomaly scoring.

    Args:
        quality_model (nn.Module): a module mapping ``[B, 3, H, W]`` RGB images in ``[0, 1]`` to an anomalib
            ``InferenceBatch`` whose ``pred_score`` is ``1 - quality``: a :class:`MetaIqa` (its forward includes its
            own pre-processing) or its export.
        threshold (float): captures with quality below it are rejected. Defaults to ``0.5``.
        log_metrics (bool): log ``gate_rejected`` / ``gate_rejection_rate`` at the end of a test. Defaults to ``True``.
    """

    quality_model: nn.Module
    threshold: float = 0.5
    log_metrics: bool = True
    records: list[_Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Check the threshold."""
        if not 0.0 <= self.threshold <= 1.0:
            msg = f"threshold must be in [0, 1], got {self.threshold}"
            raise ValueError(msg)

    # ------------------------------------------------------------------ scoring
    @torch.no_grad()
    def assess(self, images: torch.Tensor) -> GateResult:
        """Score ``[B, 3, H, W]`` RGB images in ``[0, 1]`` and decide which to reject."""
        self.quality_model.eval()
        device = next(self.quality_model.parameters()).device
        scores = self.quality_model(images.to(device)).pred_score.detach().float().flatten().to(images.device)
        quality = 1 - scores
        return GateResult(quality=quality, rejected=quality < self.threshold)

    @property
    def num_seen(self) -> int:
        """Captures scored since the last :meth:`reset`."""
        return len(self.records)

    @property
    def num_rejected(self) -> int:
        """Captures rejected since the last :meth:`reset`."""
        return sum(record.rejected for record in self.records)

    def summary(self) -> dict[str, float]:
        """``seen``, ``rejected`` and ``rejection_rate``."""
        seen = self.num_seen
        return {
            "seen": seen,
            "rejected": self.num_rejected,
            "rejection_rate": self.num_rejected / seen if seen else 0.0,
        }

    def reset(self) -> None:
        """Forget the records (a new run starts counting from zero)."""
        self.records.clear()

    # ------------------------------------------------------------------ Lightning hooks
    def _gate(self, batch: Any) -> None:
        result = self.assess(batch.image)
        # Plain attributes, not dataclass fields: any anomalib batch type can carry them.
        batch.quality, batch.rejected = result.quality, result.rejected
        paths = getattr(batch, "image_path", None) or [None] * len(result.quality)
        self.records.extend(
            _Record(path, float(q), bool(r))
            for path, q, r in zip(paths, result.quality.tolist(), result.rejected.tolist(), strict=True)
        )

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start counting from zero."""
        del trainer, pl_module  # These variables are not used.
        self.reset()

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start counting from zero."""
        del trainer, pl_module  # These variables are not used.
        self.reset()

    def on_test_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Score the raw captures before the tested model's pre-processor sees them."""
        del trainer, pl_module, batch_idx, dataloader_idx  # These variables are not used.
        self._gate(batch)

    def on_predict_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """Score the raw captures before the predicting model's pre-processor sees them."""
        del trainer, pl_module, batch_idx, dataloader_idx  # These variables are not used.
        self._gate(batch)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Report the rejected count with the test metrics."""
        del trainer  # These variables are not used.
        summary = self.summary()
        logger.info(
            "Quality gate: %d of %d captures rejected (threshold %.2f)",
            summary["rejected"],
            summary["seen"],
            self.threshold,
        )
        if self.log_metrics:
            pl_module.log("gate_rejected", float(summary["rejected"]))
            pl_module.log("gate_rejection_rate", float(summary["rejection_rate"]))

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the rejected count (predict has no metrics table)."""
        del trainer, pl_module  # These variables are not used.
        summary = self.summary()
        logger.info(
            "Quality gate: %d of %d captures rejected (threshold %.2f)",
            summary["rejected"],
            summary["seen"],
            self.threshold,
        )
