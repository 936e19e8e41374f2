# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The benchmark commands produce their tables from real measurements and fail clearly without inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anomalib_vlm.benchmark import main as benchmark
from anomalib_vlm.benchmark.speed import MATRIX_PRODUCTS
from anomalib_vlm.errors import WeightsUnavailableError
from tests.helpers import set_network

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_speed_benchmark_measures_floor_every_model_winclip_and_training(tmp_path: Path) -> None:
    from anomalib.models.image.winclip import torch_model as winclip

    docs = tmp_path / "benchmarks.md"
    benchmark([
        "speed", "--backbone", "anomalib-vlm-tiny", "--image-size", "64", "--repeats", "2", "--warmup", "1",
        "--precisions", "autocast", "--no-accuracy", "--output", str(tmp_path / "out"), "--docs", str(docs),
        "--target", "bf16 eager | AnomalyClip eager bfloat16 autocast | max_abs_difference <= 0.5 |",
    ])  # fmt: skip
    report = json.loads((tmp_path / "out" / "speed.json").read_text())
    timings = {timing["name"]: timing for timing in report["timings"]}
    assert list(timings) == [
        "backbone encode_image (floor)",
        "backbone matrix products alone (float32 bound)",
        "AnomalyClip eager float32",
        "AnomalyClip eager bfloat16 autocast",
        "Supreme eager float32",
        "Supreme eager bfloat16 autocast",
        "MetaIqa eager float32",
        "MetaIqa eager bfloat16 autocast",
        "anomalib WinClip eager",
        "AnomalyClip training step",
    ]
    assert (winclip.BACKBONE, winclip.PRETRAINED) == ("ViT-B-16-plus-240", "laion400m_e31")  # built, not patched
    assert report["settings"]["weights"].startswith("random")
    assert set(report["machine"]["cpu"]) == {"model", "flags"}
    for timing in timings.values():
        assert timing["ms_per_image"] > 0
        assert timing["peak_memory_mb"] >= 0
        assert timing["images_per_second"] == pytest.approx(1000 / timing["ms_per_image"], rel=0.01)
    floor, matrix_products = timings["backbone encode_image (floor)"], timings[MATRIX_PRODUCTS]
    eager, autocast = timings["AnomalyClip eager float32"], timings["AnomalyClip eager bfloat16 autocast"]
    # Peak memory is the growth over the process's resident memory before a variant, so a variant whose tensors
    # fit in memory already freed reads 0; one of them at least must have allocated some.
    assert max(timing["peak_memory_mb"] for timing in timings.values()) > 0
    # Ratios are computed from the medians (which one is faster depends on the machine's load, not asserted).
    ceiling = eager["ms_per_image"] / matrix_products["ms_per_image"]
    assert report["float32_speedup_ceiling"] == pytest.approx(ceiling, rel=0.01)
    assert eager["ratio_to_floor"] == pytest.approx(eager["ms_per_image"] / floor["ms_per_image"], rel=0.01)
    assert autocast["speedup_to_eager"] == pytest.approx(eager["ms_per_image"] / autocast["ms_per_image"], rel=0.01)
    # bfloat16 keeps 8 bits of mantissa: the map moves, by far less than its [0, 1] range.
    assert 0 < autocast["max_abs_difference"] < 0.5
    assert [(row["target"], row["met"]) for row in report["targets"]] == [("bf16 eager", True)]
    assert (tmp_path / "out" / "speed.csv").read_text().startswith("name,ms_per_image")
    page = docs.read_text()
    assert "anomalib-vlm benchmark speed --backbone anomalib-vlm-tiny" in page
    assert "cpu_count" in page
    assert "instruction sets:" in page


def test_speed_benchmark_measures_each_precisions_cost_in_auroc(tmp_path: Path) -> None:
    """Exported float32 keeps eager's numbers; the device's default precision is scored on the synthetic split.

    INT8 (anomalib's own ``--compression_type INT8_PTQ`` export) is checked in ``test_int8_export.py``; its row here
    goes through the same export, so the suite runs it once.
    """
    from anomalib_vlm.benchmark.report import cpu_features

    benchmark([
        "speed", "--backbone", "anomalib-vlm-tiny", "--image-size", "64", "--repeats", "1", "--warmup", "1",
        "--models", "anomaly_clip", "--precisions", "onnx", "openvino_f32", "openvino_default",
        "--requests", "2", "--skip-winclip", "--skip-training", "--output", str(tmp_path / "out"),
        "--targets", str(REPO / "docs" / "benchmark-targets.md"),
    ])  # fmt: skip
    report = json.loads((tmp_path / "out" / "speed.json").read_text())
    timings = {timing["name"]: timing for timing in report["timings"]}
    assert list(timings)[2:] == [
        "AnomalyClip eager float32",
        "AnomalyClip ONNX (onnxruntime)",
        "AnomalyClip OpenVINO float32",
        "AnomalyClip OpenVINO default precision",
    ]
    assert "synthetic 'capsule' test split" in report["settings"]["test_data"]
    eager = timings["AnomalyClip eager float32"]
    assert 0 <= eager["image_auroc"] <= 1
    assert 0 <= eager["pixel_auroc"] <= 1
    for name in ("AnomalyClip ONNX (onnxruntime)", "AnomalyClip OpenVINO float32"):
        assert timings[name]["max_abs_difference"] <= 1e-4
        assert timings[name]["image_auroc_change"] == pytest.approx(0, abs=0.01)
        assert timings[name]["pixel_auroc_change"] == pytest.approx(0, abs=0.01)
    default = timings["AnomalyClip OpenVINO default precision"]  # bfloat16 where the CPU has it
    assert default["max_abs_difference"] < 0.1
    assert abs(default["pixel_auroc_change"]) < 5
    for name in list(timings)[4:]:
        assert timings[name]["throughput_images_per_second"] > 0
        assert "2 requests async" in timings[name]["note"]
    flags = set(cpu_features()["flags"])
    amx = next(row for row in report["targets"] if row["target"].startswith("a deployment precision"))
    if not flags & {"amx_bf16", "amx_tile"}:  # this machine says what it lacks instead of failing
        assert (amx["met"], amx["value"]) == (None, "not judged: this CPU lacks amx_bf16 / amx_tile")
    else:
        assert amx["met"] in (True, False)
    assert "OpenVINO float32 equals eager to 1e-4" in [row["target"] for row in report["targets"] if row["met"]]


def test_accuracy_benchmark_names_the_missing_dataset(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train_data: dataset folder .*nowhere.* does not exist"):
        benchmark(["accuracy", "--protocol", "mvtec_to_visa", "--root-override", str(tmp_path / "nowhere"),
                   str(tmp_path / "visa"), "--output", str(tmp_path / "out")])  # fmt: skip


def test_accuracy_benchmark_names_missing_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_network(monkeypatch, reachable=False)
    (tmp_path / "mvtec").mkdir()
    (tmp_path / "visa").mkdir()
    with pytest.raises(WeightsUnavailableError, match="'openai' for CLIP model 'ViT-L-14-336'"):
        benchmark(["accuracy", "--protocol", "mvtec_to_visa", "--root-override", str(tmp_path / "mvtec"),
                   str(tmp_path / "visa"), "--output", str(tmp_path / "out")])  # fmt: skip


def test_accuracy_benchmark_on_synthetic_data_writes_table_csv_and_chart(tmp_path: Path) -> None:
    root = tmp_path / "synthetic"
    output = tmp_path / "out"
    benchmark([
        "accuracy", "--protocol", "synthetic", "--root-override", str(root), str(root), "--output", str(output),
        "--model.init_args.epochs", "1", "--train_data.init_args.categories", "[wood, chip]",
        "--test_categories", "[capsule]", "--docs", str(tmp_path / "benchmarks.md"),
    ])  # fmt: skip
    assert (output / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (output / "metrics.md").read_text()
    assert "| capsule |" in table
    assert "| mean |" in table
    assert (output / "metrics.csv").is_file()
    assert "Accuracy: AnomalyClip synthetic" in (tmp_path / "benchmarks.md").read_text()
