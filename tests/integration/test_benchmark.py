# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The benchmark commands produce their tables from real measurements and fail clearly without inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anomalib_vlm.benchmark import main as benchmark
from anomalib_vlm.errors import WeightsUnavailableError
from tests.helpers import set_network

pytestmark = pytest.mark.slow


def test_speed_benchmark_measures_floor_every_model_winclip_and_training(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    benchmark([
        "speed", "--backbone", "anomalib-vlm-tiny", "--image-size", "64", "--repeats", "3", "--warmup", "1",
        "--skip-export", "--output", str(tmp_path / "out"), "--docs", str(docs),
    ])  # fmt: skip
    report = json.loads((tmp_path / "out" / "speed.json").read_text())
    names = [timing["name"] for timing in report["timings"]]
    assert names == [
        "backbone encode_image (floor)",
        "backbone matrix products alone (float32 bound)",
        "AnomalyClip eager",
        "Supreme eager",
        "MetaIqa eager",
        "anomalib WinClip eager",
        "AnomalyClip training step",
    ]
    assert report["settings"]["weights"].startswith("random")
    for timing in report["timings"]:
        assert timing["ms_per_image"] > 0
        assert timing["peak_memory_mb"] >= 0
        assert timing["images_per_second"] == pytest.approx(1000 / timing["ms_per_image"], rel=0.01)
    floor, matrix_products, eager = report["timings"][:3]
    assert floor["peak_memory_mb"] > 0  # at least the floor's own CLIP weights
    # The bare GEMMs are a part of the forward, so they bound what a float32 export can gain.
    assert matrix_products["ms_per_image"] < floor["ms_per_image"]
    ceiling = eager["ms_per_image"] / matrix_products["ms_per_image"]
    assert report["float32_speedup_ceiling"] == pytest.approx(ceiling, rel=0.01)
    assert eager["ratio_to_floor"] == pytest.approx(eager["ms_per_image"] / floor["ms_per_image"], rel=0.01)
    assert {target["target"] for target in report["targets"]} >= {"AnomalyClip eager <= 1.15 x backbone floor"}
    assert (tmp_path / "out" / "speed.csv").read_text().startswith("name,ms_per_image")
    page = docs.read_text()
    assert "anomalib-vlm benchmark speed --backbone anomalib-vlm-tiny" in page
    assert "cpu_count" in page


def test_speed_benchmark_exports_each_model_and_checks_it_against_eager(tmp_path: Path) -> None:
    benchmark([
        "speed", "--backbone", "anomalib-vlm-tiny", "--image-size", "64", "--repeats", "2", "--warmup", "1",
        "--models", "supreme", "--skip-winclip", "--output", str(tmp_path / "out"),
    ])  # fmt: skip
    report = json.loads((tmp_path / "out" / "speed.json").read_text())
    timings = {timing["name"]: timing for timing in report["timings"]}
    assert list(timings) == [
        "backbone encode_image (floor)",
        "backbone matrix products alone (float32 bound)",
        "Supreme eager",
        "Supreme ONNX (onnxruntime)",
        "Supreme OpenVINO",
    ]
    for name in ("Supreme ONNX (onnxruntime)", "Supreme OpenVINO"):
        assert timings[name]["max_abs_difference"] <= 1e-4


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
