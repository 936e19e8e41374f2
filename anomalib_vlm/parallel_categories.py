# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Testing categories in parallel: one process per worker, each on its own device, the same results as in turn.

The cross-dataset protocol tests one trained model on many categories, each independently (calibrate on the
category's validation split, then test). ``anomalib-vlm cross-dataset --parallel N`` hands the categories to N
processes; each rebuilds the model from the trained checkpoint and, with a GPU accelerator, uses device
``worker % number of GPUs``. On CPU the processes share the cores, which pays only where one category leaves
cores idle (small images, data loading).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _test_categories(
    worker: int,
    model_class: str,
    checkpoint: str,
    test_data: dict[str, Any],
    categories: Sequence[str],
    trainer: dict[str, Any],
    results_dir: str,
) -> dict[str, dict[str, float]]:
    """One worker: the model from ``checkpoint``, an Engine on this worker's device, its categories in turn."""
    import torch
    from anomalib.engine import Engine

    import anomalib_vlm  # noqa: F401 - registers the models in the fresh process
    from anomalib_vlm.cross_dataset import evaluate_categories
    from anomalib_vlm.data.datamodules.auxiliary import import_class

    settings = dict(trainer)
    settings.pop("strategy", None)  # one device per worker: the training's DDP strategy does not apply
    if settings.get("accelerator") in ("gpu", "cuda") and torch.cuda.device_count() > 0:
        settings["devices"] = [worker % torch.cuda.device_count()]
    else:
        settings["devices"] = 1
    torch.set_num_threads(max(1, torch.get_num_threads() // max(1, settings.pop("parallel_workers", 1))))
    model = import_class(model_class).load_from_checkpoint(checkpoint)
    engine = Engine(default_root_dir=Path(results_dir) / f"worker_{worker}", **settings)
    return evaluate_categories(engine, model, test_data, categories)


def evaluate_categories_in_parallel(
    model_class: str,
    checkpoint: str | Path,
    test_data: dict[str, Any],
    categories: Sequence[str],
    workers: int,
    trainer: dict[str, Any] | None = None,
    results_dir: str | Path = "results/cross_dataset",
) -> dict[str, dict[str, float]]:
    """Test ``categories`` with ``workers`` processes; the rows come back in the order of ``categories``.

    Args:
        model_class: dotted class path of the model (``anomalib_vlm.models.AnomalyClip``).
        checkpoint: the trained model's checkpoint, which every worker loads.
        test_data: ``{"class_path": ..., "init_args": {...}}`` of the test datamodule.
        categories: categories to test.
        workers: number of processes (at most one per category is used).
        trainer: Engine / Trainer arguments; ``devices`` is chosen per worker.
        results_dir: each worker writes under ``results_dir/worker_<n>``.

    Raises:
        ValueError: ``workers`` is below 1.
    """
    if workers < 1:
        msg = f"--parallel: expected 1 or more worker processes, got {workers}"
        raise ValueError(msg)
    workers = min(workers, len(categories))
    shares = [list(categories[index::workers]) for index in range(workers)]
    settings = dict(trainer or {}) | {"parallel_workers": workers}
    # 'spawn': a forked process would inherit the parent's torch threads and, on GPUs, its CUDA context.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(
                _test_categories, worker, model_class, str(checkpoint), test_data, share, settings, str(results_dir)
            )
            for worker, share in enumerate(shares)
        ]
        rows: dict[str, dict[str, float]] = {}
        for future in futures:
            rows.update(future.result())
    return {category: rows[category] for category in categories}
