# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Data that anomalib lacks: pooled auxiliary training data and synthetic anomaly datasets."""

from .auxiliary import AuxiliaryData
from .synthetic import CATEGORIES, DEFECT_TYPES, generate_synthetic_dataset, render_sample

__all__ = ["CATEGORIES", "DEFECT_TYPES", "AuxiliaryData", "generate_synthetic_dataset", "render_sample"]
