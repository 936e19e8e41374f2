# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Shared fixtures: synthetic data on disk, one AnomalyClip trained through anomalib's Engine, one torch thread.

What the fixtures and tests build alike (the tiny model, a quiet Engine) is in :mod:`tests.helpers`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.helpers import IMAGE_SIZE, TRAIN_CATEGORIES, TrainedRun, make_engine, make_model, unseen_datamodule


def pytest_configure(config: pytest.Config) -> None:
    """Keep test output readable: anomalib and Lightning are chatty at INFO level."""
    logging.getLogger("anomalib").setLevel(logging.WARNING)
    logging.getLogger("lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning)
    # Under pytest-xdist (tools/dev.py test) the workers share the cores: one thread each, for the worker and for
    # the processes it starts (command lines, notebook kernels, DDP ranks), which read OMP_NUM_THREADS. Two
    # threads of tiny matrices on a shared core mostly wait for each other.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    else:
        torch.set_num_threads(2)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` every test runs on the worker of its file, unless it names its own group.

    Module- and session-scoped fixtures are then built once per file (xdist's "loadfile"); files that share an
    expensive session fixture share a group (``pytest.mark.xdist_group``), and independent tests of one file may
    take one group each (the notebooks).
    """
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module, restored afterwards (``pytest.mark.usefixtures("one_thread")``).

    The tiny model's ops are microseconds long: on two shared cores a second thread only adds synchronisation
    (5-30x slower when another process shares them).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All synthetic categories, generated once per test session."""
    from anomalib_vlm.data import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("data") / "synthetic", image_size=IMAGE_SIZE, seed=0)


@pytest.fixture(scope="session")
def trained_run(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """Prompts trained on TRAIN_CATEGORIES' test splits through ``Engine.fit``, tested zero-shot on the unseen one.

    The same prompts, untrained, are tested first through the same Engine path.
    """
    from anomalib_vlm.data import AuxiliaryData

    work = tmp_path_factory.mktemp("trained")
    model = make_model()
    untrained_context = model.model.object_agnostic_prompts.context.detach().clone()
    untrained = make_engine(work / "untrained").test(model=model, datamodule=unseen_datamodule(synthetic_root))

    engine = make_engine(work / "run")
    auxiliary = AuxiliaryData(
        source="anomalib.data.MVTecAD",
        root=synthetic_root,
        categories=TRAIN_CATEGORIES,
        num_workers=0,
        seed=0,
    )
    engine.fit(model=model, datamodule=auxiliary)
    trained = engine.test(model=model, datamodule=unseen_datamodule(synthetic_root))
    checkpoints = sorted(Path(engine.trainer.default_root_dir).rglob("*.ckpt"))
    assert checkpoints, "Engine.fit wrote no checkpoint"
    return TrainedRun(
        model=model,
        engine=engine,
        untrained_metrics={name: float(value) for name, value in untrained[0].items()},
        trained_metrics={name: float(value) for name, value in trained[0].items()},
        untrained_context=untrained_context,
        checkpoint=checkpoints[-1],
    )
