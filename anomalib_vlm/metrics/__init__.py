# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Metrics anomalib lacks, as anomalib metrics (``fields``, ``prefix``, ``strict``) built on torchmetrics."""

from .fpr95 import FPR95, IDAccuracy, fpr_at_tpr
from .srcc_plcc import PLCC, SRCC

__all__ = ["FPR95", "PLCC", "SRCC", "IDAccuracy", "fpr_at_tpr"]
