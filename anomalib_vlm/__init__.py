# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""anomalib-vlm: vision-language (CLIP) models for anomalib.

Importing the package registers its models with anomalib, so ``anomalib.models.get_model("anomaly_clip")`` and
the CLI's short names work.
"""

__version__ = "0.1.0"

from anomalib_vlm.models import AnomalyClip, MetaIqa, Supreme

__all__ = ["AnomalyClip", "MetaIqa", "Supreme", "__version__"]
