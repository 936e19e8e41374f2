# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""False positive rate at 95 % true positive rate (FPR95) and ID classification accuracy, as anomalib metrics.

FPR95 has two conventions in the OOD literature, and their values differ (AUROC does not):

* ``positive="id"`` (default, the CLIP-OOD papers: MCM, NegLabel, SUPREME): the threshold keeps 95 % of the
  in-distribution (ID) images, and the metric is the fraction of OOD images that still pass as ID.
* ``positive="ood"`` (OpenOOD, pytorch-ood): the threshold catches 95 % of the OOD images, and the metric is the
  fraction of ID images wrongly flagged as OOD.

Both read anomalib's fields: ``pred_score`` (higher = more OOD / anomalous) and ``gt_label`` (1 = OOD), so they
plug into anomalib's :class:`~anomalib.metrics.Evaluator` next to ``AUROC``.

Example:
    >>> import torch
    >>> from anomalib.data import ImageBatch
    >>> from anomalib_vlm.metrics import FPR95
    >>> metric = FPR95()
    >>> batch = ImageBatch(image=torch.rand(4, 3, 8, 8), gt_label=torch.tensor([0, 0, 1, 1]),
    ...                    pred_score=torch.tensor([0.1, 0.2, 0.15, 0.9]))
    >>> metric.update(batch)
    >>> float(metric.compute())
    0.5
"""

from __future__ import annotations

import math
from typing import Any

import torch
from anomalib.metrics import AnomalibMetric
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat


def fpr_at_tpr(scores: torch.Tensor, labels: torch.Tensor, tpr: float = 0.95, positive: str = "id") -> torch.Tensor:
    """False positive rate at a true positive rate, for OOD scores.

    Args:
        scores (torch.Tensor): ``[N]`` OOD scores, higher = more likely OOD.
        labels (torch.Tensor): ``[N]`` 1 for OOD, 0 for ID.
        tpr (float): true positive rate the threshold must reach. Defaults to ``0.95``.
        positive (str): ``"id"`` (ID is the positive class: FPR on OOD at ``tpr`` on ID) or ``"ood"``
            (OOD is positive: FPR on ID at ``tpr`` on OOD). Defaults to ``"id"``.

    Returns:
        torch.Tensor: scalar in [0, 1]; NaN when one of the two classes is missing.

    Raises:
        ValueError: ``positive`` or ``tpr`` is invalid.
    """
    if positive not in {"id", "ood"}:
        msg = f"positive must be 'id' or 'ood', got {positive!r}"
        raise ValueError(msg)
    if not 0.0 < tpr <= 1.0:
        msg = f"tpr must be in (0, 1], got {tpr}"
        raise ValueError(msg)
    scores = scores.flatten().double()
    labels = labels.flatten().bool()
    if positive == "id":
        # ID-ness is the negated OOD score; ID images are the positives.
        positives, negatives = -scores[~labels], -scores[labels]
    else:
        positives, negatives = scores[labels], scores[~labels]
    if positives.numel() == 0 or negatives.numel() == 0:
        return torch.tensor(float("nan"))
    # The lowest threshold at which `tpr` of the positives score at or above it.
    count = math.ceil(tpr * positives.numel() - 1e-9)
    threshold = positives.sort(descending=True).values[count - 1]
    return (negatives >= threshold).double().mean().float()


class _FPRAtTPR(Metric):
    """torchmetrics state holder for :func:`fpr_at_tpr` (all scores are kept, as for AUROC)."""

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, tpr: float = 0.95, positive: str = "id", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        fpr_at_tpr(torch.zeros(2), torch.tensor([0, 1]), tpr, positive)  # validate the options early
        self.tpr = tpr
        self.positive = positive
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        """Store a batch of scores and labels."""
        self.scores.append(scores.detach().flatten())
        self.labels.append(labels.detach().flatten())

    def compute(self) -> torch.Tensor:
        """FPR at the chosen TPR over everything seen."""
        return fpr_at_tpr(dim_zero_cat(self.scores), dim_zero_cat(self.labels), self.tpr, self.positive)


class FPR95(AnomalibMetric, _FPRAtTPR):  # type: ignore[misc]
    """FPR at 95 % TPR as an anomalib metric.

    Logged as ``<prefix>FPR95`` (paper convention) or ``<prefix>FPR95_OODpositive``.

    Args:
        fields (list[str] | None): batch fields ``[score, label]``. Defaults to ``["pred_score", "gt_label"]``.
        prefix (str): name prefix. Defaults to ``""``.
        strict (bool): raise when a batch lacks the fields. Defaults to ``True``.
        tpr (float): the true positive rate. Defaults to ``0.95``.
        positive (str): ``"id"``: FPR of OOD images at 95 % TPR of ID images (MCM / SUPREME papers, default);
            ``"ood"``: FPR of ID images at 95 % TPR of OOD images (OpenOOD, pytorch-ood).
    """

    default_fields = ("pred_score", "gt_label")

    def __init__(
        self,
        fields: list[str] | None = None,
        prefix: str = "",
        strict: bool = True,
        tpr: float = 0.95,
        positive: str = "id",
        **kwargs: Any,
    ) -> None:
        super().__init__(fields=fields, prefix=prefix, strict=strict, tpr=tpr, positive=positive, **kwargs)
        suffix = "" if positive == "id" else "_OODpositive"
        rate = "" if math.isclose(tpr, 0.95) else f"@{tpr:g}"
        self.name = f"{prefix}FPR95{rate}{suffix}" if not rate else f"{prefix}FPR{rate}{suffix}"


class _IDAccuracy(Metric):
    """Top-1 accuracy over samples whose class target is >= 0 (OOD samples carry -1 and are skipped)."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        """Count correct predictions among ID samples."""
        predictions, targets = predictions.flatten(), targets.flatten()
        known = targets >= 0
        self.correct += (predictions[known] == targets[known]).sum()
        self.total += known.sum()

    def compute(self) -> torch.Tensor:
        """Accuracy; NaN when no ID sample was seen."""
        if self.total == 0:
            return torch.tensor(float("nan"))
        return self.correct.float() / self.total


class IDAccuracy(AnomalibMetric, _IDAccuracy):  # type: ignore[misc]
    """ID classification accuracy on fields ``["pred_class", "gt_class"]`` (OOD samples, ``gt_class == -1``, skipped).

    Batches without the fields (one-class anomalib datamodules) are skipped when ``strict=False`` (the default
    here), so the metric can sit in any evaluator.
    """

    default_fields = ("pred_class", "gt_class")

    def __init__(self, fields: list[str] | None = None, prefix: str = "", strict: bool = False, **kwargs: Any) -> None:
        super().__init__(fields=fields, prefix=prefix, strict=strict, **kwargs)
