# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The models of anomalib-vlm.

Each is a direct ``AnomalibModule`` subclass, so importing this package is enough for
``anomalib.models.get_model("<snake_name>")`` and for the CLI's short class names.
"""

from .anomaly_clip import AnomalyClip
from .meta_iqa import MetaIqa
from .supreme import Supreme
from .trust import Trust

__all__ = ["AnomalyClip", "MetaIqa", "Supreme", "Trust"]
