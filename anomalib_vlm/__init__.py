# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""anomalib-vlm: vision-language (CLIP) models for anomalib.

Importing the package registers its models with anomalib, so ``anomalib.models.get_model("anomaly_clip")`` and
the CLI's short names work.
"""

__version__ = "0.1.0"

import warnings

with warnings.catch_warnings():
    # Importing anomalib's model registry imports modules that announce their own deprecations (timm's old layer
    # path, anomalib's dinov2 package); they concern code this package never calls, so they are not shown here.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(?!anomalib_vlm)")
    from anomalib_vlm.models import AnomalyClip, MetaIqa, Supreme, Trust

__all__ = ["AnomalyClip", "MetaIqa", "Supreme", "Trust", "__version__"]
