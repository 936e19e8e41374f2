# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Precision variants of one model for ``benchmark speed``, each with its speed and its accuracy cost.

For a model the variants are: eager float32 (the reference), eager autocast (bfloat16 on CPU; float16 and
bfloat16 on CUDA), ONNX (onnxruntime), OpenVINO float32, OpenVINO at the device's default precision (bfloat16 on
CPUs with AVX512-BF16 or AMX), the FP16 IR, and INT8 through anomalib's own export compression (``INT8_PTQ``,
``INT8_ACQ``, calibrated on the test data's validation split through the model's NNCF hook). Each variant runs
over the test split once: the largest difference of its anomaly map (or score, for a model without a map) from
eager float32, and its image and pixel AUROC, whose change against eager float32 is the accuracy cost.

Which output is compared is read from what the model returns (an ``anomaly_map`` or not), never from its class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anomalib_vlm.benchmark.timing import VariantBench, openvino_throughput

PRECISIONS = ("autocast", "onnx", "openvino_f32", "openvino_default", "openvino_fp16", "int8_ptq", "int8_acq")
"""What ``--precisions`` can name, besides eager float32 (always measured: it is the reference)."""


@dataclass
class TestSplit:
    """The images every variant is scored on, at the model's input size, with their ground truth."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None
    datamodule: Any
    description: str


def load_test_split(datamodule: Any, image_size: int, description: str) -> TestSplit:
    """Read a datamodule's test split, resized to ``image_size`` (bilinear images, nearest masks).

    Raises:
        ValueError: the split is empty or has only one class of image label (AUROC needs both).
    """
    datamodule.setup("test")
    images, labels, masks = [], [], []
    for batch in datamodule.test_dataloader():
        images.append(torch.nn.functional.interpolate(batch.image, size=(image_size,) * 2, mode="bilinear"))
        labels.append(batch.gt_label.long())
        if batch.gt_mask is not None:
            gt_mask = batch.gt_mask.float().reshape(len(batch.image), 1, *batch.gt_mask.shape[-2:])
            masks.append(torch.nn.functional.interpolate(gt_mask, size=(image_size,) * 2, mode="nearest")[:, 0])
    if not images or len(torch.cat(labels).unique()) < 2:
        msg = f"{description}: the test split needs normal and anomalous images (AUROC), found {len(images)} batches"
        raise ValueError(msg)
    return TestSplit(torch.cat(images), torch.cat(labels), torch.cat(masks) if masks else None, datamodule, description)


def compared_output(outputs: Any) -> str:
    """The output whose difference from eager is reported: the anomaly map when the model gives one."""
    return "anomaly_map" if getattr(outputs, "anomaly_map", None) is not None else "pred_score"


def _auroc(scores: torch.Tensor, targets: torch.Tensor) -> float | None:
    from torchmetrics.functional.classification import binary_auroc

    if targets.unique().numel() < 2:
        return None
    return float(binary_auroc(scores.float().flatten(), targets.long().flatten()))


@dataclass
class Scored:
    """One variant's outputs on the test split."""

    compared: np.ndarray
    image_auroc: float | None
    pixel_auroc: float | None


Predict = Callable[[np.ndarray], dict[str, np.ndarray]]
"""A variant as a function of a float32 NCHW batch in [0, 1] to its named outputs."""


def score(predict: Predict, split: TestSplit, output: str, batch_size: int = 8) -> Scored:
    """Run ``predict`` over the test split; its image AUROC (``pred_score``) and pixel AUROC (``anomaly_map``)."""
    results: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(split.images), batch_size):
        chunk = split.images[start : start + batch_size].numpy()
        for name, value in predict(chunk).items():
            results.setdefault(name, []).append(np.asarray(value, dtype=np.float32).reshape(len(chunk), -1))
    joined = {name: np.concatenate(values) for name, values in results.items()}
    pixel = None
    if split.masks is not None and "anomaly_map" in joined:
        pixel = _auroc(torch.from_numpy(joined["anomaly_map"]), split.masks.reshape(len(split.masks), -1))
    return Scored(joined[output], _auroc(torch.from_numpy(joined["pred_score"]).reshape(-1), split.labels), pixel)


def _eager_predict(model: torch.nn.Module, device: torch.device, dtype: torch.dtype | None) -> Predict:
    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            outputs = model(torch.from_numpy(images).to(device))
        return {name: value.float().cpu().numpy() for name, value in outputs._asdict().items() if value is not None}

    return predict


def autocast_dtypes(device: torch.device) -> list[torch.dtype]:
    """Reduced precisions eager torch is timed in: bfloat16 on CPU; float16 and bfloat16 on CUDA."""
    return [torch.float16, torch.bfloat16] if device.type == "cuda" else [torch.bfloat16]


def _openvino_predict(compiled: Any) -> Predict:
    request = compiled.create_infer_request()
    names = {port.get_any_name(): port for port in compiled.outputs}

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        results = request.infer({0: images})
        return {name: results[port] for name, port in names.items()}

    return predict


class PrecisionBench:
    """Adds one model's precision variants to a :class:`VariantBench`, with accuracy against eager float32."""

    def __init__(self, bench: VariantBench, split: TestSplit | None, requests: int | None) -> None:
        self.bench = bench
        self.split = split
        self.requests = requests
        self._output = "pred_score"
        self._reference: Scored | None = None
        self._reference_outputs: np.ndarray | None = None

    def add(self, name: str, predict: Predict, timed_input: np.ndarray, note: str, **extra: Any) -> None:
        """Score ``predict`` on the test split (against the eager reference) and queue it for timing."""
        if self.split is not None:
            scored = score(predict, self.split, self._output)
            extra |= {"image_auroc": scored.image_auroc, "pixel_auroc": scored.pixel_auroc}
            if self._reference is None:
                self._reference = scored
                difference = None
            else:
                difference = float(np.abs(scored.compared - self._reference.compared).max())
                for key in ("image_auroc", "pixel_auroc"):
                    before, after = getattr(self._reference, key), extra[key]
                    extra[f"{key}_change"] = None if None in (before, after) else round(100 * (after - before), 3)
        else:
            difference = None
            if self._reference_outputs is None:
                self._reference_outputs = predict(timed_input)[self._output]
            else:
                difference = float(np.abs(predict(timed_input)[self._output] - self._reference_outputs).max())
        self.bench.add(name, lambda: predict(timed_input), len(timed_input), note, difference, **extra)

    def add_eager(
        self, title: str, model: torch.nn.Module, device: torch.device, raw: torch.Tensor, precisions: Sequence[str]
    ) -> None:
        """Start a model: eager float32, then autocast in each reduced precision of the device.

        Eager float32 is the reference of every variant added after it, until the next model starts.
        """
        with torch.inference_mode():
            self._output = compared_output(model(raw.to(device)))
        self._reference = None
        self._reference_outputs = None
        self.bench.mark()
        inputs = raw.cpu().numpy()
        self.add(f"{title} eager float32", _eager_predict(model, device, None), inputs, "pre-processing + model + post")
        if "autocast" not in precisions:
            return
        for dtype in autocast_dtypes(device):
            short = str(dtype).removeprefix("torch.")
            self.add(
                f"{title} eager {short} autocast",
                _eager_predict(model, device, dtype),
                inputs,
                f"torch.autocast({device.type!r}, {short})",
            )

    def add_onnx(self, title: str, onnx_path: Path, raw: torch.Tensor) -> None:
        """The ONNX file run by onnxruntime (a row saying so where onnxruntime is missing)."""
        try:
            import onnxruntime
        except ImportError:
            self.bench.skip(f"{title} ONNX (onnxruntime)", "onnxruntime not installed")
            return
        self.bench.mark()
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads leave the cores
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]

        def predict(images: np.ndarray) -> dict[str, np.ndarray]:
            return dict(zip(names, session.run(names, {"input": images}), strict=True))

        self.add(f"{title} ONNX (onnxruntime)", predict, raw.cpu().numpy(), "CPU, float32")

    def add_openvino(self, name: str, xml_path: Path, raw: torch.Tensor, *, exact: bool, note: str = "") -> None:
        """An IR compiled for latency (timed) and for throughput (several requests in flight)."""
        import openvino

        from anomalib_vlm.deploy import OPENVINO_FP32_CONFIG

        self.bench.mark()
        config = dict(OPENVINO_FP32_CONFIG) if exact else {}
        core = openvino.Core()
        compiled = core.compile_model(str(xml_path), "CPU", config | {"PERFORMANCE_HINT": "LATENCY"})
        precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32", "bf16", ...
        inputs = raw.cpu().numpy()
        throughput_model = core.compile_model(str(xml_path), "CPU", config | {"PERFORMANCE_HINT": "THROUGHPUT"})
        requests = self.requests or throughput_model.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        throughput = openvino_throughput(throughput_model, inputs, requests)
        del throughput_model
        self.add(
            name,
            _openvino_predict(compiled),
            inputs,
            f"CPU, runs {precision}; {requests} requests async" + (f"; {note}" if note else ""),
            throughput_images_per_second=throughput,
        )


def save_openvino(
    module: Any,
    onnx_path: Path,
    xml_path: Path,
    compression: str | None,
    datamodule: Any = None,
) -> Path:
    """The IR ``module.to_openvino(compression_type=...)`` writes, converted from an existing ONNX file.

    ``to_openvino`` exports ONNX again before converting (the slow step); this runs the rest of its path
    unchanged: ``openvino.convert_model``, then anomalib's ``_compress_ov_model`` for the INT8 types (which calls
    the model's NNCF hook), then ``openvino.save_model`` with FP16 compression for ``FP16``.
    """
    import openvino
    from anomalib.deploy import CompressionType

    model = openvino.convert_model(str(onnx_path))
    compression_type = CompressionType(compression) if compression else None
    if compression_type not in (None, CompressionType.FP16):
        model = module._compress_ov_model(model, compression_type, datamodule)  # anomalib's own step
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    openvino.save_model(model, str(xml_path), compress_to_fp16=compression_type == CompressionType.FP16)
    return xml_path
