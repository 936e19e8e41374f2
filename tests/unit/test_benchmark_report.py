# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The speed report: CPU instruction sets, targets from a docs page or the command line, judged or not judged."""

from __future__ import annotations

from pathlib import Path

import pytest

from anomalib_vlm.benchmark.report import SpeedReport, Target, cpu_features, format_report, judge, read_targets
from anomalib_vlm.benchmark.timing import Timing

REPO = Path(__file__).resolve().parents[2]
FLAGS = "fpu sse avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"


def _timings() -> list[Timing]:
    return [
        Timing("AnomalyClip eager float32", 160.0, 6.25, 600, speedup_to_eager=1.0, image_auroc=0.9),
        Timing(
            "AnomalyClip OpenVINO default precision",
            40.0,
            25.0,
            500,
            speedup_to_eager=4.0,
            image_auroc_change=-0.2,
            pixel_auroc_change=-0.1,
        ),
        Timing(
            "AnomalyClip OpenVINO INT8_PTQ",
            100.0,
            10.0,
            400,
            speedup_to_eager=1.6,
            image_auroc_change=-1.5,
            pixel_auroc_change=-0.3,
        ),
    ]


def test_cpu_features_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some Xeon\nflags\t\t: {FLAGS}\n\nprocessor\t: 1\n")
    features = cpu_features(cpuinfo)
    assert features["model"] == "Some Xeon"
    assert features["flags"] == ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "avx512_vnni"]
    assert cpu_features(tmp_path / "absent")["flags"] == []


def test_a_target_holds_when_one_matching_variant_meets_every_condition() -> None:
    target = Target.parse("bf16 deploy | AnomalyClip OpenVINO* | speedup_to_eager >= 3, image_auroc_change >= -0.5, "
                          "pixel_auroc_change >= -0.5 | amx_bf16 or amx_tile")  # fmt: skip
    assert target.needs == ["amx_bf16", "amx_tile"]
    row = judge(target, _timings(), ["avx512_bf16", "amx_bf16"])
    assert row["met"] is True
    assert "OpenVINO default precision" in row["value"]
    int8 = Target.parse("int8 | *INT8* | speedup_to_eager >= 2 | avx512_vnni or avx_vnni")
    row = judge(int8, _timings(), ["avx512_vnni"])
    assert row["met"] is False
    assert "speedup_to_eager 1.6" in row["value"]


def test_a_cpu_without_the_needed_instruction_sets_is_named_not_failed() -> None:
    target = Target.parse("bf16 | AnomalyClip OpenVINO* | speedup_to_eager >= 3 | amx_bf16 or amx_tile")
    row = judge(target, _timings(), ["avx512_bf16", "avx512_vnni"])
    assert row["met"] is None
    assert row["value"] == "not judged: this CPU lacks amx_bf16 / amx_tile"
    absent = judge(Target.parse("gpu | * cuda * | speedup_to_eager >= 2"), _timings(), [])
    assert (absent["met"], absent["value"]) == (None, "not judged: no variant of that name was measured")


def test_bad_targets_name_the_source_and_the_expected_form() -> None:
    with pytest.raises(ValueError, match=r"--target: target 'x \| y' has 2 fields; expected 'name \| variants"):
        Target.parse("x | y")
    with pytest.raises(ValueError, match=r"condition 'speed > 3' of target 'x' is not 'measure >= value'"):
        Target.parse("x | * | speed > 3")
    with pytest.raises(ValueError, match=r"condition 'fastness >= 3' .* with a measure among .*speedup_to_eager"):
        Target.parse("x | * | fastness >= 3")


def test_the_docs_page_holds_the_issue_targets_and_the_report_shows_them(tmp_path: Path) -> None:
    targets = read_targets(REPO / "docs" / "benchmark-targets.md")
    assert len(targets) >= 3
    assert all(target.conditions for target in targets)
    report = SpeedReport(
        settings={
            "backbone": "ViT-B-16",
            "image_size": 224,
            "batch_size": 1,
            "device": "cpu",
            "threads": 2,
            "weights": "random",
            "repeats": 5,
            "warmup": 1,
        },
        machine={"cpu": {"model": "AMD EPYC", "flags": ["avx512_bf16", "avx512_vnni"]}},
        timings=_timings(),
        targets=[judge(target, _timings(), ["avx512_bf16", "avx512_vnni"]) for target in targets],
    )
    markdown = format_report(report)
    assert "instruction sets: avx512_bf16, avx512_vnni" in markdown
    assert "not judged: this CPU lacks amx_bf16" in markdown
    assert "| AnomalyClip OpenVINO INT8_PTQ | 100.0 | 10.00 | 1.60 |" in markdown
    with pytest.raises(FileNotFoundError, match=r"--targets: page .*absent\.md not found"):
        read_targets(tmp_path / "absent.md")
