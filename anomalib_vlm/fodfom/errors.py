# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Clear errors for the real foundation models FodFoM needs (optional extra ``anomalib-vlm[fodfom]``)."""

from __future__ import annotations

import importlib
from types import ModuleType

from anomalib_vlm.errors import AnomalibVlmError


class MissingModelError(AnomalibVlmError):
    """A foundation model (BLIP-2, CLIP ViT-L/14, Stable Diffusion, GroundingDINO) or its library is missing."""


def require(module: str, stage: str) -> ModuleType:
    """Import ``module`` for ``stage``, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        msg = (
            f"The {stage} stage needs the Python package '{module}', which is not installed. "
            "Install the real-model extra: pip install 'anomalib-vlm[fodfom]'."
        )
        raise MissingModelError(msg) from None


def load_pretrained(loader: object, name: str, stage: str, **kwargs: object) -> object:
    """``loader.from_pretrained(name, **kwargs)`` with an error that names the stage, the model and the fix."""
    try:
        return loader.from_pretrained(name, **kwargs)  # type: ignore[attr-defined]
    except (OSError, ValueError) as error:
        msg = (
            f"The {stage} stage cannot load '{name}' ({type(error).__name__}: {str(error).splitlines()[0]}). "
            "Give a local folder holding the model (as saved by save_pretrained), or download it first on a "
            "machine with network access (huggingface-cli download " + name + ") and set HF_HOME accordingly."
        )
        raise MissingModelError(msg) from None
