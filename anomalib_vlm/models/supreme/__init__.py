# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""SUPREME: few-shot OOD detection with multi-modal (text and image) prototypes, as an anomalib model."""

from .lightning_model import Supreme
from .loss import SupremeLoss
from .torch_model import SupremeMode, SupremeModel
from .visualizer import OODVisualizer

__all__ = ["OODVisualizer", "Supreme", "SupremeLoss", "SupremeMode", "SupremeModel"]
