# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Image-quality metrics as anomalib metrics: SRCC (Spearman) and PLCC (Pearson) between predicted and true quality.

Both wrap torchmetrics (``SpearmanCorrCoef``, ``PearsonCorrCoef``) in anomalib's :class:`AnomalibMetric`, so they
read fields of a batch and plug into anomalib's :class:`~anomalib.metrics.Evaluator`. The default fields are
``pred_quality`` (the model's quality score, higher = better) and ``gt_quality`` (the mean opinion score rescaled
so that higher = better), which :class:`anomalib_vlm.data.IqaBatch` provides.

Example:
    >>> import torch
    >>> from anomalib_vlm.data import IqaBatch
    >>> from anomalib_vlm.metrics.srcc_plcc import PLCC, SRCC
    >>> batch = IqaBatch(image=torch.rand(4, 3, 8, 8), gt_quality=torch.tensor([0.1, 0.4, 0.5, 0.9]),
    ...                  pred_score=torch.tensor([0.8, 0.7, 0.3, 0.2]))  # pred_quality = 1 - pred_score
    >>> metric = SRCC()
    >>> metric.update(batch)
    >>> float(metric.compute())
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from anomalib.metrics import AnomalibMetric
from torchmetrics import Metric
from torchmetrics.regression import PearsonCorrCoef, SpearmanCorrCoef

__all__ = ["PLCC", "SRCC"]

_DEFAULT_FIELDS = ("pred_quality", "gt_quality")


def _flat_float(value: Any) -> torch.Tensor:
    """``[B]``, ``[B, 1]`` or integer values as the flat float tensor torchmetrics' correlations want."""
    return torch.as_tensor(value).detach().flatten().float()


def _update_correlation(
    metric: AnomalibMetric,
    correlation: type[Metric],
    batch: Any,
    *args: Any,
    **kwargs: Any,
) -> None:
    """Feed ``metric``'s two batch fields, flattened to floats, to its torchmetrics ``correlation`` class.

    A function rather than a shared base class: anomalib requires every ``AnomalibMetric`` subclass to derive
    from a torchmetrics metric as well, so the two metrics cannot share an intermediate class.
    """
    if any(getattr(batch, key, None) is None for key in metric.fields):
        AnomalibMetric.update(metric, batch, *args, **kwargs)  # anomalib's handling: raise (strict) or skip
        return
    preds, target = (_flat_float(getattr(batch, key)) for key in metric.fields)
    correlation.update(metric, preds, target)


class SRCC(AnomalibMetric, SpearmanCorrCoef):  # type: ignore[misc]
    """Spearman rank-order correlation between predicted and true quality, over the whole evaluation set.

    Args:
        fields (Sequence[str] | None): batch fields ``(prediction, target)``. Defaults to
            ``("pred_quality", "gt_quality")``.
        prefix (str): prefix of the logged name (``"SRCC"``). Defaults to ``""``.
        strict (bool): raise if a batch lacks a field (otherwise skip it). Defaults to ``True``.
        **kwargs (Any): passed to torchmetrics' ``SpearmanCorrCoef``.
    """

    default_fields: Sequence[str] = _DEFAULT_FIELDS

    def update(self, batch: Any, *args: Any, **kwargs: Any) -> None:
        """Add a batch's ``(prediction, target)`` fields to the running statistics."""
        _update_correlation(self, SpearmanCorrCoef, batch, *args, **kwargs)


class PLCC(AnomalibMetric, PearsonCorrCoef):  # type: ignore[misc]
    """Pearson linear correlation between predicted and true quality, over the whole evaluation set.

    The IQA literature sometimes fits a logistic before PLCC; this is the plain (linear) PLCC, as the GRMP-IQA
    code reports it.

    Args:
        fields (Sequence[str] | None): batch fields ``(prediction, target)``. Defaults to
            ``("pred_quality", "gt_quality")``.
        prefix (str): prefix of the logged name (``"PLCC"``). Defaults to ``""``.
        strict (bool): raise if a batch lacks a field (otherwise skip it). Defaults to ``True``.
        **kwargs (Any): passed to torchmetrics' ``PearsonCorrCoef``.
    """

    default_fields: Sequence[str] = _DEFAULT_FIELDS

    def update(self, batch: Any, *args: Any, **kwargs: Any) -> None:
        """Add a batch's ``(prediction, target)`` fields to the running statistics."""
        _update_correlation(self, PearsonCorrCoef, batch, *args, **kwargs)
