# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""AnomalyClip through anomalib's exporters: ONNX and OpenVINO give the eager model's outputs, text baked in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from anomalib.deploy import ExportType, OpenVINOInferencer
from PIL import Image

from anomalib_vlm.deploy import OPENVINO_FP32_CONFIG, compile_openvino, onnx_to_openvino
from tests.helpers import IMAGE_SIZE, UNSEEN_CATEGORY, TrainedRun

# One worker builds the trained_run session fixture for both files (tools/dev.py runs pytest-xdist).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained_run")]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(trained_run: TrainedRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained (and, by Engine.test, calibrated) model exported with anomalib's Engine, both formats.

    The IR is converted from the ONNX file (what ``to_openvino`` does after a second, 25 s ONNX export);
    ``anomalib export --export_type openvino`` itself runs in ``test_cli.py``.
    """
    root = tmp_path_factory.mktemp("export")
    onnx_path = trained_run.engine.export(
        trained_run.model,
        ExportType.ONNX,
        export_root=root,
        input_size=(IMAGE_SIZE, IMAGE_SIZE),
    )
    return {"onnx": Path(onnx_path), "openvino": onnx_to_openvino(onnx_path)}


def _eager(trained_run: TrainedRun, images: torch.Tensor) -> dict[str, np.ndarray]:
    model = trained_run.model.eval()
    with torch.no_grad():
        outputs = model(images)  # pre-processing + model + post-processing, as exported
    return {name: value.numpy() for name, value in outputs._asdict().items() if value is not None}


def _run_onnx(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {"input": images}), strict=True))


def _run_openvino(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    compiled = compile_openvino(path)  # float32 also on CPUs whose OpenVINO default is bfloat16
    results = compiled(images)
    return {output.get_any_name(): results[output] for output in compiled.outputs}


def _assert_match(exported: dict[str, np.ndarray], eager: dict[str, np.ndarray]) -> None:
    assert {"pred_score", "anomaly_map"} <= set(exported)
    for name in ("pred_score", "anomaly_map"):
        np.testing.assert_allclose(exported[name].reshape(eager[name].shape), eager[name], atol=TOLERANCE, rtol=0)
    for name in ("pred_label", "pred_mask"):
        mismatched = exported[name].reshape(eager[name].shape) != eager[name]
        # Labels may only flip where the score sits on the threshold within the tolerance.
        assert mismatched.mean() < 1e-3, name


@pytest.mark.parametrize("export_format", ["onnx", "openvino"])
def test_exported_outputs_match_eager(trained_run: TrainedRun, exported: dict[str, Path], export_format: str) -> None:
    images = torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    run = _run_onnx if export_format == "onnx" else _run_openvino
    _assert_match(run(exported[export_format], images.numpy()), _eager(trained_run, images))


def test_onnx_graph_is_one_image_in_scores_out_without_text_tower(exported: dict[str, Path]) -> None:
    graph = onnx.load(str(exported["onnx"]), load_external_data=False).graph
    assert [tensor.name for tensor in graph.input] == ["input"]
    assert {"pred_score", "anomaly_map"} <= {tensor.name for tensor in graph.output}
    vocabulary_size = 49408
    for initializer in graph.initializer:
        assert vocabulary_size not in initializer.dims, f"text token embedding {initializer.name} in the graph"


def test_openvino_inferencer_runs_the_export(
    trained_run: TrainedRun,
    exported: dict[str, Path],
    synthetic_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anomalib's OpenVINOInferencer on an image file gives the eager model's score and map."""
    monkeypatch.chdir(tmp_path)  # the inferencer writes its compiled-model cache to ./openvino_cache
    inferencer = OpenVINOInferencer(path=exported["openvino"], device="CPU", config=OPENVINO_FP32_CONFIG)
    defect = sorted((synthetic_root / UNSEEN_CATEGORY / "test" / "hole").glob("*.png"))[0]
    prediction = inferencer.predict(defect)
    image = np.asarray(Image.open(defect).convert("RGB"), dtype=np.float32) / 255
    eager = _eager(trained_run, torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0))
    assert float(np.asarray(prediction.pred_score).squeeze()) == pytest.approx(
        float(eager["pred_score"][0]), abs=TOLERANCE
    )
    np.testing.assert_allclose(
        np.asarray(prediction.anomaly_map).squeeze(), eager["anomaly_map"].squeeze(), atol=TOLERANCE
    )
    assert bool(np.asarray(prediction.pred_label).squeeze())  # a hole on an unseen category is flagged


def test_dynamic_size_export_accepts_any_image_size(trained_run: TrainedRun, tmp_path: Path) -> None:
    """``anomalib export`` without ``input_size``: the graph's own resize handles any input size."""
    path = trained_run.model.to_onnx(tmp_path, input_size=None)
    images = torch.rand(1, 3, 96, 160, generator=torch.Generator().manual_seed(1))
    outputs = _run_onnx(path, images.numpy())
    # LightningModule.forward runs the same exportable pre-processing (resize without antialiasing) as the graph.
    _assert_match(outputs, _eager(trained_run, images))
