# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Metrics anomalib lacks, as anomalib metrics (``fields``, ``prefix``, ``strict``) built on torchmetrics.

Also the post-processor and evaluator that let ranking metrics read the model's own, un-normalised scores
(:mod:`anomalib_vlm.metrics.raw_scores`).
"""

from .fpr95 import FPR95, IDAccuracy, fpr_at_tpr
from .raw_scores import (
    RAW_ANOMALY_MAP,
    RAW_PRED_SCORE,
    RawScoreEvaluator,
    RawScorePostProcessor,
    keep_raw_fields,
    raw_field,
)
from .srcc_plcc import PLCC, SRCC

__all__ = [
    "FPR95",
    "PLCC",
    "RAW_ANOMALY_MAP",
    "RAW_PRED_SCORE",
    "SRCC",
    "IDAccuracy",
    "RawScoreEvaluator",
    "RawScorePostProcessor",
    "fpr_at_tpr",
    "keep_raw_fields",
    "raw_field",
]
