# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The main job, end to end on one CPU in a few minutes, with no downloads.

1. Generate synthetic industrial categories (anomalib's MVTec AD folder layout).
2. Train AnomalyClip's prompts on the test splits of all but one category (the auxiliary data), through
   anomalib's ``Engine.fit``, on the small CLIP that this package pre-trained on captioned synthetic images and
   ships (``anomalib-vlm-small`` / ``anomalib-vlm-synthetic``, 64 px; ``anomalib_vlm/clip/README.md``).
3. Test zero-shot on the held-out category with anomalib's Evaluator; print the metrics table and write
   anomalib's visualisations (image, heat map, predicted mask).
4. Export to OpenVINO, run it with anomalib's ``OpenVINOInferencer`` and compare with the eager model.

Run it with ``anomalib-vlm demo`` (``--help`` for options). With real weights and data, the same steps are
``anomalib-vlm cross-dataset --config configs/anomaly_clip/mvtec_to_visa.yaml``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from anomalib.data import MVTecAD
from anomalib.deploy import ExportType, OpenVINOInferencer
from anomalib.engine import Engine
from PIL import Image

from anomalib_vlm.clip import SMALL_MODEL_NAME, SMALL_PRETRAINED_TAG
from anomalib_vlm.cross_dataset import format_markdown, metrics_table, write_results
from anomalib_vlm.data import CATEGORIES, AuxiliaryData, generate_synthetic_dataset
from anomalib_vlm.deploy import OPENVINO_FP32_CONFIG
from anomalib_vlm.models import AnomalyClip

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Options of ``anomalib-vlm demo``."""
    parser = argparse.ArgumentParser(prog="anomalib-vlm demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("demo_output"), help="Folder for data and results.")
    parser.add_argument("--test-category", default=CATEGORIES[-1], choices=CATEGORIES, help="Held-out category.")
    parser.add_argument("--image-size", type=int, default=64, help="The small CLIP was pre-trained at 64 px.")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--backbone", default=SMALL_MODEL_NAME)
    parser.add_argument(
        "--pretrained",
        default=SMALL_PRETRAINED_TAG,
        type=lambda value: None if value.lower() in {"none", "null"} else value,
        help="open_clip tag or checkpoint file; 'none' for seeded random weights.",
    )
    parser.add_argument(
        "--image-score",
        default="global",
        choices=["global", "map_max", "global_plus_map_max"],
        help="'global' is the paper's; random weights need the map maximum ('global_plus_map_max').",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


def _say(message: str) -> None:
    print(f"\n=== {message}", flush=True)


def run(args: argparse.Namespace) -> dict[str, float]:
    """Run the demo; return the zero-shot test metrics."""
    torch.manual_seed(args.seed)
    output = args.output.resolve()
    # One data folder per generator setting, so a re-run with other settings neither fails nor regenerates.
    data_root = output / "datasets" / f"synthetic_{args.image_size}px_seed{args.seed}"
    train_categories = [category for category in CATEGORIES if category != args.test_category]

    _say(f"1/4 synthetic data: {len(CATEGORIES)} categories in MVTec AD layout under {data_root}")
    generate_synthetic_dataset(data_root, image_size=args.image_size, seed=args.seed)

    _say(f"2/4 training object-agnostic prompts on {', '.join(train_categories)} (test splits, with masks)")
    model = AnomalyClip(
        backbone=args.backbone,
        pretrained=args.pretrained,
        image_size=args.image_size,
        epochs=args.epochs,
        image_score=args.image_score,
    )
    engine = Engine(default_root_dir=output / "results", accelerator="cpu", devices=1, logger=False)
    auxiliary = AuxiliaryData(
        source="anomalib.data.MVTecAD",
        root=data_root,
        categories=train_categories,
        num_workers=0,
        seed=args.seed,
    )
    started = time.perf_counter()
    engine.fit(model=model, datamodule=auxiliary)
    print(f"trained in {time.perf_counter() - started:.1f} s; learning type now {model.learning_type.value}")

    _say(f"3/4 zero-shot test on the unseen category '{args.test_category}'")
    target = MVTecAD(root=data_root, category=args.test_category, num_workers=0, seed=args.seed)
    results = engine.test(model=model, datamodule=target)
    metrics = {name: float(value) for result in results for name, value in result.items()}
    header, table = metrics_table({args.test_category: metrics})
    print(format_markdown(header, table))
    write_results({args.test_category: metrics}, output / "metrics")
    images_dir = Path(engine.trainer.default_root_dir) / "images"
    print(f"visualisations (image, heat map, predicted mask): {images_dir}")

    _say("4/4 export to OpenVINO and run it with anomalib's OpenVINOInferencer")
    export_path = engine.export(
        model=model,
        export_type=ExportType.OPENVINO,
        export_root=output / "export",
        input_size=(args.image_size, args.image_size),
    )
    inferencer = _openvino_inferencer(export_path, cache_parent=output)
    sample_paths = sorted((data_root / args.test_category / "test").glob("*/*.png"))[::7][:4]
    model.eval()
    for path in sample_paths:
        image = np.array(
            Image.open(path).convert("RGB").resize((args.image_size, args.image_size))
        )  # writable copy for torch
        openvino_out = inferencer.predict(image)
        with torch.no_grad():
            eager = model(torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255)
        difference = float(
            np.abs(np.asarray(openvino_out.anomaly_map).squeeze() - eager.anomaly_map.numpy().squeeze()).max()
        )
        openvino_score = float(np.asarray(openvino_out.pred_score).squeeze())
        print(
            f"{path.parent.name}/{path.name}: OpenVINO score {openvino_score:.3f} "
            f"label {bool(np.asarray(openvino_out.pred_label).squeeze())}, eager score {float(eager.pred_score):.3f}, "
            f"max map difference {difference:.2e}",
        )
    print(f"OpenVINO model: {export_path}")
    return metrics


def _openvino_inferencer(path: Path, cache_parent: Path) -> OpenVINOInferencer:
    """Anomalib's inferencer, with its compiled-model cache (``./openvino_cache``) under ``cache_parent``."""
    previous = Path.cwd()
    os.chdir(cache_parent)
    try:
        return OpenVINOInferencer(path=Path(path).resolve(), device="CPU", config=OPENVINO_FP32_CONFIG)
    finally:
        os.chdir(previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``anomalib-vlm demo``."""
    logging.basicConfig(level=logging.WARNING)
    run(build_parser().parse_args(argv))
    return 0
