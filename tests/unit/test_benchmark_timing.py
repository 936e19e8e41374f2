# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The speed benchmark's timing discipline: warm-up first, then one call of every variant per round.

Durations come from a fake clock, so nothing here depends on how busy the machine is.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomalib_vlm.benchmark import timing


def test_variants_are_warmed_up_then_timed_round_robin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timing, "SETTLE_SECONDS", 0.0)
    # A fake resident size: the real one, in a process the rest of the suite has used, also moves with memory that
    # other threads and glibc release meanwhile, which is not what this test is about.
    resident_mb = [500.0]
    monkeypatch.setattr(timing, "resident_memory_mb", lambda: resident_mb[0])
    now = [0.0]  # a fake clock that only the variants advance
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    calls: list[str] = []
    bench = timing.VariantBench(torch.device("cpu"), warmup=2, repeats=3)

    def variant(name: str, seconds: float):  # noqa: ANN202
        def run() -> None:
            calls.append(name)
            now[0] += seconds

        return run

    bench.mark()
    bench.add("fast", variant("fast", 0.010), images_per_call=1)
    bench.mark()
    resident_mb[0] += 30  # what building the second variant allocates: counted as what it adds
    bench.add("slow", variant("slow", 0.050), images_per_call=2, note="two images per call", difference=0.5,
              image_auroc=0.9)  # fmt: skip
    bench.skip("absent", "not installed")
    assert calls == ["fast", "fast", "slow", "slow"]  # each warmed up as it is added
    calls.clear()
    bench.time_round_robin()
    assert calls == ["fast", "slow"] * 3  # interleaved: drift slows every variant alike
    fast, slow, absent = bench.timings()
    assert (fast.name, slow.name) == ("fast", "slow")
    assert fast.ms_per_image == pytest.approx(10)
    assert slow.ms_per_image == pytest.approx(25)  # 50 ms per call of two images
    assert slow.images_per_second == pytest.approx(40)
    assert (slow.note, slow.max_abs_difference, slow.image_auroc) == ("two images per call", 0.5, 0.9)
    assert fast.peak_memory_mb == 0
    assert slow.peak_memory_mb == pytest.approx(30)  # measured from its own mark, not from the first variant's
    assert absent.note == "not installed"
    assert np.isnan(absent.peak_memory_mb)


def test_openvino_throughput_keeps_several_requests_in_flight() -> None:
    import openvino

    layer = torch.nn.Linear(16, 4)
    model = openvino.convert_model(layer, example_input=torch.zeros(2, 16))
    compiled = openvino.Core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    images_per_second = timing.openvino_throughput(compiled, np.zeros((2, 16), dtype=np.float32), requests=3)
    assert images_per_second > 0
