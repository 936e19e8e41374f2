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


def _existing_file(path: str | Path, kind: str) -> Path:
    """``path`` as a ``Path``, or a ``FileNotFoundError`` that names the kind of file and the path."""
    path = Path(path)
    if not path.is_file():
        msg = f"{kind} file not found: {path}"
        raise FileNotFoundError(msg)
    return path


def compile_openvino(path: str | Path, device: str = "CPU", *, exact: bool = True) -> Any:
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

    path = _existing_file(path, "OpenVINO model")
    config = OPENVINO_FP32_CONFIG if exact and device.upper().startswith("CPU") else {}
    return openvino.Core().compile_model(str(path), device, config)


def onnx_to_openvino(onnx_path: str | Path, xml_path: str | Path | None = None) -> Path:
    """Convert an exported ONNX file to OpenVINO IR, in float32, as ``AnomalibModule.to_openvino`` does.

    ``to_openvino`` runs the (slow) ONNX export again before converting; where the ONNX file already exists,
    converting it directly gives the same IR.

    Args:
        onnx_path: the ``.onnx`` file written by ``Engine.export`` or ``to_onnx``.
        xml_path: where to write the IR. Defaults to ``weights/openvino/model.xml`` beside the ONNX file's
            ``weights/onnx`` folder, anomalib's layout.

    Returns:
        The ``.xml`` path.

    Raises:
        FileNotFoundError: ``onnx_path`` does not exist.
    """
    import openvino

    onnx_path = _existing_file(onnx_path, "ONNX model")
    xml_path = Path(xml_path) if xml_path is not None else onnx_path.parent.parent / "openvino" / "model.xml"
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    openvino.save_model(openvino.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return xml_path
