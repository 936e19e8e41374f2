# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The speed benchmark's timing discipline: warm-up first, then one call of every variant per round."""

from __future__ import annotations

import time

import pytest
import torch

from anomalib_vlm.benchmark import speed


def test_variants_are_warmed_up_then_timed_round_robin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speed, "SETTLE_SECONDS", 0.0)
    # A fake resident size: the real one, in a process the rest of the suite has used, also moves with memory that
    # other threads and glibc release meanwhile, which is not what this test is about.
    resident_mb = [500.0]
    monkeypatch.setattr(speed, "resident_memory_mb", lambda: resident_mb[0])
    calls: list[str] = []
    bench = speed.VariantBench(torch.device("cpu"), warmup=2, repeats=3)

    def variant(name: str, seconds: float):  # noqa: ANN202
        def run() -> None:
            calls.append(name)
            time.sleep(seconds)

        return run

    bench.mark()
    bench.add("fast", variant("fast", 0.01), images_per_call=1)
    bench.mark()
    resident_mb[0] += 30  # what building the second variant allocates: counted as what it adds
    bench.add("slow", variant("slow", 0.05), images_per_call=2, note="two images per call", difference=0.5)
    assert calls == ["fast", "fast", "slow", "slow"]  # each warmed up as it is added
    calls.clear()
    bench.time_round_robin()
    assert calls == ["fast", "slow"] * 3  # interleaved: drift slows every variant alike
    fast, slow = bench.timings()
    assert (fast.name, slow.name) == ("fast", "slow")
    # Sleeps only overshoot; the upper bounds are loose for a loaded CI machine.
    assert 10 <= fast.ms_per_image < 200
    assert 25 <= slow.ms_per_image < 200  # 50 ms per call of two images
    assert slow.ms_per_image > fast.ms_per_image
    assert slow.images_per_second == pytest.approx(1000 / slow.ms_per_image, rel=0.01)
    assert (slow.note, slow.max_abs_difference) == ("two images per call", 0.5)
    assert fast.peak_memory_mb == 0
    assert slow.peak_memory_mb == pytest.approx(30)  # measured from its own mark, not from the first variant's
