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


def default_device(device: str | None) -> str:
    """``device`` as given, or CUDA when present, else the CPU (``"auto"`` counts as not given)."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_diffusion_pipeline(pipeline: str, name: str, stage: str, device: str | None) -> object:
    """A ``diffusers`` pipeline class by name, loaded without the safety checker, fp16 on a GPU, on ``device``."""
    import torch

    diffusers = require("diffusers", stage)
    device = default_device(device)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    loaded = load_pretrained(
        getattr(diffusers, pipeline), name, stage, torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
    )
    return loaded.to(device)
