# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Running exported OpenVINO models with the eager model's float32 numbers.

OpenVINO's CPU plugin picks bfloat16 by default on processors with AVX512-BF16 or AMX, which moves CLIP's outputs
by about 1e-2. Pass :data:`OPENVINO_FP32_CONFIG` (to ``openvino.Core.compile_model`` or to anomalib's
``OpenVINOInferencer(config=...)``) where the exported model must reproduce the eager one to 1e-4; leave it out
to let OpenVINO trade that precision for speed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

OPENVINO_FP32_CONFIG: dict[str, str] = {"INFERENCE_PRECISION_HINT": "f32"}
"""Compile configuration that keeps OpenVINO's CPU inference in float32 on every processor."""


def compile_openvino(path: str | Path, device: str = "CPU", *, exact: bool = True) -> Any:  # noqa: ANN401
    """Compile an exported OpenVINO IR (or ONNX) file.

    Args:
        path: the ``.xml`` (or ``.onnx``) file written by ``Engine.export``.
        device: OpenVINO device name.
        exact: compile in float32 (see the module docstring); ``False`` keeps OpenVINO's default precision.

    Returns:
        The ``openvino.CompiledModel``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    import openvino

    path = Path(path)
    if not path.is_file():
        msg = f"OpenVINO model file not found: {path}"
        raise FileNotFoundError(msg)
    config = OPENVINO_FP32_CONFIG if exact and device.upper().startswith("CPU") else {}
    return openvino.Core().compile_model(str(path), device, config)
