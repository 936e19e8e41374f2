# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Deployment helpers: float32 OpenVINO compilation and ONNX-to-IR conversion, with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anomalib_vlm.deploy import compile_openvino, onnx_to_openvino


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ONNX model file not found: .*absent\.onnx"):
        onnx_to_openvino(tmp_path / "absent.onnx")
    with pytest.raises(FileNotFoundError, match=r"OpenVINO model file not found: .*absent\.xml"):
        compile_openvino(tmp_path / "absent.xml")


def test_onnx_file_becomes_an_ir_in_anomalibs_layout_that_computes_in_float32(tmp_path: Path) -> None:
    layer = torch.nn.Linear(8, 3)
    onnx_path = tmp_path / "weights" / "onnx" / "model.onnx"
    onnx_path.parent.mkdir(parents=True)
    inputs = torch.randn(2, 8)
    torch.onnx.export(layer, (inputs,), str(onnx_path), input_names=["input"], dynamo=False)
    xml_path = onnx_to_openvino(onnx_path)
    assert xml_path == tmp_path / "weights" / "openvino" / "model.xml"
    compiled = compile_openvino(xml_path)
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    result = compiled(inputs.numpy())[compiled.outputs[0]]
    with torch.no_grad():
        np.testing.assert_allclose(result, layer(inputs).numpy(), atol=1e-6, rtol=0)
