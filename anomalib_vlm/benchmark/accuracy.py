# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""``anomalib-vlm benchmark accuracy``: the paper protocols through anomalib's Engine, beside the paper's numbers.

``--protocol mvtec_to_visa`` / ``visa_to_mvtec`` run the AnomalyCLIP cross-dataset protocol from its config with
the real weights and datasets; it stops at once, naming what is missing, when a dataset folder or the weights are
not there. ``--protocol synthetic`` runs the same protocol on the tiny model and the generated categories (no
downloads). Either way it writes the per-category and mean metrics as markdown and CSV and a bar chart (PNG) of
the mean next to the paper's published numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from anomalib_vlm.benchmark.report import append_docs_section

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "anomaly_clip"
PROTOCOLS = {
    "mvtec_to_visa": "mvtec_to_visa.yaml",
    "visa_to_mvtec": "visa_to_mvtec.yaml",
    "synthetic": "tiny_synthetic.yaml",
}
# AnomalyCLIP paper, Table 1 (zero-shot), in percent.
PAPER = {
    "mvtec_to_visa": {"image_AUROC": 82.1, "image_AUPR": 85.4, "pixel_AUROC": 95.5, "pixel_AUPRO": 87.0},
    "visa_to_mvtec": {"image_AUROC": 91.5, "image_AUPR": 96.2, "pixel_AUROC": 91.1, "pixel_AUPRO": 81.4},
}
PLOTTED = ("image_AUROC", "image_AUPR", "pixel_AUROC", "pixel_AUPRO")


def check_inputs(config: argparse.Namespace) -> None:
    """Fail before any work when a dataset folder or the weights are missing, naming which.

    Raises:
        FileNotFoundError: a dataset root is missing.
        WeightsUnavailableError: the CLIP weights cannot be loaded.
    """
    from anomalib_vlm.clip import load_clip_model

    for key in ("train_data", "test_data"):
        root = Path(config[key].init_args.root)
        if not root.is_dir():
            msg = (
                f"{key}: dataset folder {root.resolve()} does not exist. Download the dataset there "
                f"({config[key].class_path}) or pass --root-override TRAIN_ROOT TEST_ROOT."
            )
            raise FileNotFoundError(msg)
    init_args = config.model.init_args
    load_clip_model(init_args.backbone, init_args.pretrained)  # raises WeightsUnavailableError with the remedy


def plot_means(rows: dict[str, dict[str, float]], paper: dict[str, float] | None, path: Path, title: str) -> Path:
    """Bar chart of our mean metrics, with the paper's beside them when known."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    means = {name: 100 * sum(r[name] for r in rows.values() if name in r) / len(rows) for name in PLOTTED}
    positions = range(len(PLOTTED))
    figure, axis = plt.subplots(figsize=(7, 3.5))
    width = 0.38 if paper else 0.6
    axis.bar(
        [p - (width / 2 if paper else 0) for p in positions], [means[n] for n in PLOTTED], width, label="anomalib-vlm"
    )
    if paper:
        axis.bar([p + width / 2 for p in positions], [paper[n] for n in PLOTTED], width, label="paper")
    axis.set_xticks(list(positions), PLOTTED)
    axis.set_ylim(0, 100)
    axis.set_ylabel("%")
    axis.set_title(title)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def main(argv: Sequence[str]) -> int:
    """Run one protocol; write table, CSV and chart; optionally append them to the docs page."""
    from anomalib_vlm.cross_dataset import build_parser, format_markdown, metrics_table, run

    parser = argparse.ArgumentParser(prog="anomalib-vlm benchmark accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="synthetic")
    parser.add_argument("--root-override", nargs=2, metavar=("TRAIN_ROOT", "TEST_ROOT"), default=None,
                        help="dataset roots instead of the config's")  # fmt: skip
    parser.add_argument("--output", type=Path, default=None, help="default: results/benchmark/accuracy/<protocol>")
    parser.add_argument("--docs", type=Path, default=None, help="also append a dated section to this page")
    args, extra = parser.parse_known_args(argv)
    output = args.output or Path("results/benchmark/accuracy") / args.protocol
    overrides = ["--config", str(CONFIGS / PROTOCOLS[args.protocol]), "--results_dir", str(output), *extra]
    if args.root_override:
        overrides += [
            "--train_data.init_args.root",
            args.root_override[0],
            "--test_data.init_args.root",
            args.root_override[1],
        ]
    config = build_parser().parse_args(overrides)
    if args.protocol == "synthetic":
        from anomalib_vlm.data import generate_synthetic_dataset

        generate_synthetic_dataset(config.train_data.init_args.root)
    else:
        check_inputs(config)
    rows = run(config)
    chart = plot_means(rows, PAPER.get(args.protocol), output / "metrics.png", f"AnomalyClip, {args.protocol}")
    print(f"chart: {chart}")
    if args.docs:
        header, table = metrics_table(rows)
        paper = PAPER.get(args.protocol)
        if paper:
            table.append(["paper (mean)", *[f"{paper[name]:.1f}" if name in paper else "" for name in header[1:]]])
        machine = {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }
        command = "anomalib-vlm benchmark accuracy " + " ".join(argv)
        append_docs_section(args.docs, f"Accuracy: AnomalyClip {args.protocol}", command.strip(), machine,
                            format_markdown(header, table) + f"\nBar chart: `{chart}` (not committed).\n")  # fmt: skip
    return 0
