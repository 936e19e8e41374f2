# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The timing harness of ``anomalib-vlm benchmark speed``: build and warm variants, then time them round robin.

Every variant is built and warmed up first; then the timed runs go round robin, one call of each variant per
round, so that a noisy machine (a shared virtual CPU drifts by 10-20% within a minute) slows every variant alike.
Each figure is the median over the rounds. Memory is the peak resident set size during the variant's warm-up
calls above the process's size before the variant was built (CPU), or the peak allocated memory above the
allocation before it (CUDA): what the variant itself adds. Nothing here knows about models or targets.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

SETTLE_SECONDS = 0.2
"""Pause before each timed call (see :meth:`VariantBench.time_round_robin`)."""


@dataclass
class Timing:
    """One benchmarked variant: what it costs and, where known, how far its outputs are from eager float32."""

    name: str
    ms_per_image: float
    images_per_second: float
    peak_memory_mb: float
    ratio_to_floor: float | None = None
    ratio_to_winclip: float | None = None
    max_abs_difference: float | None = None
    speedup_to_eager: float | None = None
    throughput_images_per_second: float | None = None
    image_auroc: float | None = None
    pixel_auroc: float | None = None
    image_auroc_change: float | None = None
    pixel_auroc_change: float | None = None
    note: str = ""


@dataclass
class Variant:
    """A callable to time, with what is known about it before the timed rounds."""

    name: str
    run: Callable[[], object]
    images_per_call: int
    memory_mb: float
    note: str = ""
    difference: float | None = None
    durations: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    """Further measured fields of :class:`Timing` (throughput, AUROC), copied as they are."""


class _PeakMemory:
    """Peak RSS (CPU, sampled by a thread) or peak allocated memory (CUDA) while the block runs, in MiB."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sample_once()
            time.sleep(0.01)

    def _sample_once(self) -> None:
        self.peak = max(self.peak, resident_memory_mb())

    @contextlib.contextmanager
    def track(self) -> Iterator[_PeakMemory]:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            yield self
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        # A block shorter than one sampling period still gets a reading; a missing psutil fails here, not in the thread.
        self._sample_once()
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self._sample_once()


def resident_memory_mb() -> float:
    """This process's resident set size now, in MiB."""
    import psutil  # a declared dependency; imported here so that importing the module stays cheap

    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def current_memory_mb(device: torch.device) -> float:
    """Resident set size (CPU) or allocated memory (CUDA) now, in MiB."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return resident_memory_mb()


class VariantBench:
    """Builds variants one after another (measuring what each adds), then times them round robin."""

    def __init__(self, device: torch.device, warmup: int, repeats: int) -> None:
        self.device = device
        self.warmup = max(1, warmup)
        self.repeats = repeats
        self.variants: list[Variant] = []
        self._baseline = 0.0

    def mark(self) -> None:
        """Call before building a variant's model: its memory is counted from here."""
        gc.collect()
        self._baseline = current_memory_mb(self.device)

    def add(
        self,
        name: str,
        run: Callable[[], object],
        images_per_call: int,
        note: str = "",
        difference: float | None = None,
        **extra: Any,
    ) -> Variant:
        """Warm ``run`` up (measuring its memory) and queue it for the timed rounds."""
        with _PeakMemory(self.device).track() as memory:
            for _ in range(self.warmup):
                run()
        added = max(memory.peak - self._baseline, 0.0)
        variant = Variant(name, run, images_per_call, added, note, difference, extra=extra)
        self.variants.append(variant)
        return variant

    def skip(self, name: str, note: str) -> None:
        """A row that says why a variant was not measured (a missing package, a CPU without an instruction set)."""
        self.variants.append(Variant(name, lambda: None, 1, float("nan"), note))

    def time_round_robin(self) -> None:
        """One call of every variant per round, ``repeats`` rounds.

        A short pause before each call lets the previous runtime's worker threads (OpenMP, onnxruntime, TBB) stop
        spinning, so no variant pays for the one before it.
        """
        for _ in range(self.repeats):
            for variant in self.variants:
                time.sleep(SETTLE_SECONDS)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                started = time.perf_counter()
                variant.run()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                variant.durations.append(time.perf_counter() - started)

    def timings(self) -> list[Timing]:
        """Median milliseconds per image of every variant."""
        timings = []
        for variant in self.variants:
            median = float(np.median(variant.durations)) if variant.durations else float("nan")
            ms = max(round(median * 1000 / variant.images_per_call, 3), 0.001)
            timing = Timing(
                variant.name,
                ms,
                round(1000 / ms, 4),
                round(variant.memory_mb, 1),
                max_abs_difference=variant.difference,
                note=variant.note,
            )
            for key, value in variant.extra.items():
                setattr(timing, key, value)
            timings.append(timing)
        return timings


def inference(function: Callable[[], object]) -> Callable[[], object]:
    """``function`` run under ``torch.inference_mode`` (the models are built outside it, so they stay trainable)."""

    def run() -> object:
        with torch.inference_mode():
            return function()

    return run


def openvino_throughput(compiled: Any, inputs: np.ndarray, requests: int, rounds: int = 4) -> float:
    """Images per second of ``compiled`` with ``requests`` inferences in flight (OpenVINO's AsyncInferQueue).

    Single-image latency leaves cores idle between the layers that do not parallelise; several requests in flight
    fill them, which is what a line camera feeding frames continuously gets.

    Args:
        compiled: an ``openvino.CompiledModel`` (best compiled with ``PERFORMANCE_HINT=THROUGHPUT``).
        inputs: one batch, as the model takes it.
        requests: inferences kept in flight.
        rounds: batches per request; the clock runs over ``requests * rounds`` batches after one warm-up round.
    """
    import openvino

    queue = openvino.AsyncInferQueue(compiled, max(1, requests))
    for _ in range(len(queue)):  # warm-up: every request allocates its buffers once
        queue.start_async({0: inputs})
    queue.wait_all()
    started = time.perf_counter()
    for _ in range(len(queue) * rounds):
        queue.start_async({0: inputs})
    queue.wait_all()
    elapsed = time.perf_counter() - started
    return round(len(queue) * rounds * len(inputs) / elapsed, 3)
