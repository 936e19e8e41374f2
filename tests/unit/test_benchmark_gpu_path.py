# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The GPU path of ``benchmark speed``, checked on the CPU: which precisions, how rows are named and judged.

No GPU was available where this was written; the CUDA rows themselves have not been run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from anomalib_vlm.benchmark import speed
from anomalib_vlm.benchmark.precision import autocast_dtypes
from anomalib_vlm.benchmark.report import SpeedReport, judge, read_targets
from anomalib_vlm.benchmark.timing import Timing

REPO = Path(__file__).resolve().parents[2]


def test_a_gpu_is_timed_in_float16_and_bfloat16_a_cpu_in_bfloat16() -> None:
    assert autocast_dtypes(torch.device("cuda")) == [torch.float16, torch.bfloat16]
    assert autocast_dtypes(torch.device("cpu")) == [torch.bfloat16]


def test_the_paper_settings_on_a_gpu_parse_and_keep_only_eager_rows(monkeypatch) -> None:  # noqa: ANN001
    parser = argparse.ArgumentParser()
    speed.add_arguments(parser)
    args = parser.parse_args([
        "--backbone", "ViT-L-14-336", "--pretrained", "openai", "--image-size", "518", "--device", "cuda",
        "--throughput-batch-size", "16",
    ])  # fmt: skip
    assert (args.backbone, args.image_size, args.device, args.throughput_batch_size) == (
        "ViT-L-14-336",
        518,
        "cuda",
        16,
    )
    seen = {}

    def stop(*_args) -> None:  # noqa: ANN002
        seen["precisions"] = list(args.precisions)
        raise KeyboardInterrupt

    monkeypatch.setattr(speed, "_paper_dpam_layers", stop)
    monkeypatch.setattr(speed, "machine_description", lambda device: {"cpu": {"flags": []}})
    try:
        speed.run_speed(args)
    except KeyboardInterrupt:
        pass
    assert seen["precisions"] == ["autocast"]  # OpenVINO and onnxruntime are CPU runtimes


def test_gpu_rows_get_their_speedup_and_the_published_reference_target() -> None:
    rows = [
        Timing("backbone encode_image (floor)", 50.0, 20.0, 900),
        Timing("AnomalyClip (cuda) eager float32", 120.0, 8.3, 2000),
        Timing("AnomalyClip (cuda) eager float16 autocast", 60.0, 16.7, 1200),
        Timing("AnomalyClip (cuda) eager bfloat16 autocast batch 16", 10.0, 100.0, 5000),
    ]
    report = SpeedReport(settings={}, machine={}, timings=rows)
    speed.add_ratios(report)
    assert [row.speedup_to_eager for row in rows[1:]] == [1.0, 2.0, 12.0]
    gpu = next(target for target in read_targets(REPO / "docs" / "benchmark-targets.md") if "GPU" in target.name)
    assert judge(gpu, rows, flags=[])["met"] is True  # 60 ms is under half of AnomalyCLIP's 155 ms
    cpu_only = [Timing("AnomalyClip eager float32", 900.0, 1.1, 600)]
    assert judge(gpu, cpu_only, flags=[])["value"] == "not judged: no variant of that name was measured"
