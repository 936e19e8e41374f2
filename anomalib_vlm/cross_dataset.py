# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Cross-dataset zero-shot protocol: train on one datamodule, test every category of another.

``anomalib-vlm cross-dataset --config configs/anomaly_clip/mvtec_to_visa.yaml`` trains the prompts once on the
auxiliary data (``train_data``), then, for each category of ``test_data``, calibrates thresholds on that
category's validation split and tests it with anomalib's Evaluator. It prints and writes (markdown and CSV) the
per-category metrics and their mean.

The config holds ``model`` and ``train_data`` as anomalib class-path entries, ``test_data`` as one too (its
``category`` is replaced by each entry of ``test_categories``), and optional ``trainer`` arguments for anomalib's
``Engine``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anomalib.data import AnomalibDataModule
from anomalib.engine import Engine
from anomalib.models import AnomalibModule
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from lightning.pytorch import seed_everything

from anomalib_vlm.cli import fit_workers_to_machine
from anomalib_vlm.data.datamodules.auxiliary import find_categories, import_class

logger = logging.getLogger(__name__)


def metrics_table(rows: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    """Per-category rows plus a ``mean`` row, metric values in percent with one decimal."""
    metric_names = sorted({name for values in rows.values() for name in values})
    table = [
        [category] + [f"{100 * values[name]:.1f}" if name in values else "" for name in metric_names]
        for category, values in rows.items()
    ]
    if rows:
        means = []
        for name in metric_names:
            present = [values[name] for values in rows.values() if name in values]
            means.append(f"{100 * sum(present) / len(present):.1f}" if present else "")
        table.append(["mean", *means])
    return ["category", *metric_names], table


def format_markdown(header: list[str], table: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines) + "\n"


def write_results(rows: dict[str, dict[str, float]], results_dir: Path) -> Path:
    """Write ``metrics.md`` and ``metrics.csv`` into ``results_dir`` and return the markdown path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    header, table = metrics_table(rows)
    markdown = results_dir / "metrics.md"
    markdown.write_text(format_markdown(header, table))
    with (results_dir / "metrics.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(table)
    return markdown


def _scalar_metrics(results: Sequence[dict[str, Any]] | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for result in results or []:
        metrics.update({name: float(value) for name, value in result.items()})
    return metrics


def evaluate_categories(
    engine: Engine,
    model: AnomalibModule,
    test_data: dict[str, Any],
    categories: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Test ``model`` on each category: validate (thresholds) then test, with a fresh datamodule per category.

    Args:
        engine (Engine): anomalib engine.
        model (AnomalibModule): a model whose training is done (zero-shot from here on).
        test_data (dict[str, Any]): ``{"class_path": ..., "init_args": {...}}`` of the test datamodule.
        categories (Sequence[str]): categories to test.

    Returns:
        dict[str, dict[str, float]]: metrics per category.
    """
    datamodule_class = import_class(test_data["class_path"])
    init_args = dict(test_data.get("init_args") or {})
    rows = {}
    for category in categories:
        datamodule = datamodule_class(**{**init_args, "category": category})
        rows[category] = _scalar_metrics(engine.test(model=model, datamodule=datamodule))
        logger.info("%s: %s", category, rows[category])
    return rows


def build_parser() -> ArgumentParser:
    """Arguments of ``anomalib-vlm cross-dataset``."""
    parser = ArgumentParser(prog="anomalib-vlm cross-dataset", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action=ActionConfigFile, help="YAML with the arguments below.")
    parser.add_subclass_arguments(AnomalibModule, "model", required=True, fail_untyped=False)
    parser.add_subclass_arguments(AnomalibDataModule, "train_data", required=True, fail_untyped=False)
    # Not instantiated here: one datamodule per test category is built from this spec.
    parser.add_subclass_arguments(AnomalibDataModule, "test_data", required=True, fail_untyped=False, instantiate=False)
    parser.add_argument("--test_categories", type=list[str] | None, default=None, help="Default: every category found.")
    parser.add_argument("--ckpt_path", type=str | None, default=None, help="Trained checkpoint: skip training.")
    parser.add_argument("--seed", type=int | None, default=None, help="Seed for prompt initialisation and data order.")
    parser.add_argument("--results_dir", type=Path, default=Path("results/cross_dataset"))
    parser.add_argument("--trainer", type=dict, default={}, help="Extra anomalib Engine / Lightning Trainer arguments.")
    parser.add_argument(
        "--parallel", type=int, default=1, help="Test categories in this many processes (one GPU each)."
    )
    return parser


def run(config: Namespace) -> dict[str, dict[str, float]]:
    """Train (unless a checkpoint is given), then test every category; write and return the metrics."""
    if config.seed is not None:
        seed_everything(config.seed, workers=True)
    fit_workers_to_machine(config.train_data)
    fit_workers_to_machine(config.test_data)
    instantiated = build_parser().instantiate_classes(config)
    model: AnomalibModule = instantiated.model
    test_data = {"class_path": config.test_data.class_path, "init_args": dict(vars(config.test_data.init_args))}
    engine = Engine(default_root_dir=config.results_dir, **config.trainer)
    if config.ckpt_path:
        model = model.__class__.load_from_checkpoint(config.ckpt_path)
    else:
        engine.fit(model=model, datamodule=instantiated.train_data)
    categories = config.test_categories
    if not categories:
        source = import_class(test_data["class_path"])
        root = Path((test_data.get("init_args") or {}).get("root", "."))
        categories = find_categories(source, root)
        if not categories:
            msg = f"No test categories found under {root.resolve()} for {source.__name__}: pass --test_categories"
            raise FileNotFoundError(msg)
    if config.parallel > 1:
        from anomalib_vlm.parallel_categories import evaluate_categories_in_parallel

        checkpoint = config.ckpt_path or Path(config.results_dir) / "trained.ckpt"
        if not config.ckpt_path:
            engine.trainer.save_checkpoint(checkpoint)
        model_class = f"{type(model).__module__}.{type(model).__qualname__}"
        rows = evaluate_categories_in_parallel(
            model_class, checkpoint, test_data, categories, config.parallel, config.trainer, config.results_dir
        )
    else:
        rows = evaluate_categories(engine, model, test_data, categories)
    markdown = write_results(rows, Path(config.results_dir))
    print(markdown.read_text())
    print(f"metrics written to {markdown} and {markdown.with_suffix('.csv')}")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``anomalib-vlm cross-dataset``."""
    config = build_parser().parse_args(argv)
    run(config)
    return 0
