# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Command lines: anomalib's own CLI, ``anomalib-vlm`` with short names, the cross-dataset protocol, the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anomalib_vlm.models import AnomalyClip
from anomalib_vlm.models.components import read_checkpoint
from tests.helpers import (
    BIN,
    IMAGE_SIZE,
    REPO,
    UNSEEN_CATEGORY,
    make_engine,
    printed_metric,
    run_command,
    unseen_datamodule,
)

pytestmark = pytest.mark.slow
TINY_MODEL_ARGS = [
    "--model.backbone",
    "anomalib-vlm-tiny",
    "--model.pretrained",
    "null",
    "--model.image_size",
    str(IMAGE_SIZE),
]


def test_anomalib_cli_trains_anomaly_clip_on_a_folder_dataset(synthetic_root: Path, tmp_path: Path) -> None:
    """``anomalib train --model anomalib_vlm.models.AnomalyClip --data anomalib.data.Folder``, unchanged anomalib."""
    output = run_command(
        BIN / "anomalib", "train",
        "--model", "anomalib_vlm.models.AnomalyClip", *TINY_MODEL_ARGS,
        "--model.epochs", "1", "--model.synthetic_anomaly_probability", "0.5",
        "--data", "anomalib.data.Folder", "--data.name", "wood", "--data.root", synthetic_root / "wood",
        "--data.normal_dir", "train/good", "--data.abnormal_dir", "test/hole", "--data.mask_dir", "ground_truth/hole",
        "--data.num_workers", "0",
        "--default_root_dir", tmp_path, "--trainer.accelerator", "cpu",
    )  # fmt: skip
    assert "pixel_AUROC" in output
    assert list(tmp_path.rglob("model.ckpt"))
    assert list(tmp_path.rglob("images/test/hole/*.png")), "anomalib's visualizer wrote no images"


def test_anomalib_vlm_cli_short_name_train_test_export(synthetic_root: Path, tmp_path: Path) -> None:
    """``anomalib-vlm`` is anomalib's CLI with ``--model AnomalyClip``: train on auxiliary data, test, export.

    After training, the checkpoint alone rebuilds the model (no backbone flags), and testing it on a new category
    calibrates the thresholds there: F1 equals that of ``Engine.test`` in Python, which validates on the new
    category first (anomalib alone would keep the training data's thresholds).
    """
    cli = BIN / "anomalib-vlm"
    run_command(
        cli, "train", "--config", REPO / "configs/anomaly_clip/tiny_synthetic_train.yaml",
        "--data.init_args.root", synthetic_root, "--data.init_args.categories", "[wood, chip]",
        "--model.init_args.epochs", "1", "--default_root_dir", tmp_path / "train",
    )  # fmt: skip
    checkpoint = next((tmp_path / "train").rglob("model.ckpt"))
    trained_threshold = read_checkpoint(checkpoint, AnomalyClip)["state_dict"]["post_processor._image_threshold"]
    capsule = ["--data", "anomalib.data.MVTecAD", "--data.root", synthetic_root, "--data.category", UNSEEN_CATEGORY]
    output = run_command(
        cli, "test", "--model", "AnomalyClip", "--ckpt_path", checkpoint, *capsule,
        "--default_root_dir", tmp_path / "test",
    )  # fmt: skip
    assert "FutureWarning" not in output

    model = AnomalyClip.load_from_checkpoint(checkpoint)
    expected = make_engine(tmp_path / "python").test(model=model, datamodule=unseen_datamodule(synthetic_root))[0]
    assert float(model.post_processor.image_threshold) != pytest.approx(float(trained_threshold), abs=1e-3)
    for name in ("image_F1Score", "pixel_F1Score", "image_AUROC", "pixel_AUROC"):
        assert printed_metric(output, name) == pytest.approx(expected[name], abs=2e-3), name

    run_command(cli, "predict", "--ckpt_path", checkpoint, *capsule, "--default_root_dir", tmp_path / "predict")
    assert list((tmp_path / "predict").rglob("images/**/*.png")), "predict wrote no visualisation"
    output = run_command(
        cli, "export", "--ckpt_path", checkpoint, "--export_type", "openvino",
        "--input_size", f"[{IMAGE_SIZE},{IMAGE_SIZE}]", "--export_root", tmp_path / "export",
    )  # fmt: skip
    assert output.count("\n") < 200, f"export printed {output.count(chr(10))} lines:\n{output[-3000:]}"
    assert (tmp_path / "export" / "weights" / "openvino" / "model.xml").is_file()
    run_command(
        BIN / "anomalib", "export", "--model", "anomalib_vlm.models.AnomalyClip", *TINY_MODEL_ARGS,
        "--ckpt_path", checkpoint, "--export_type", "openvino", "--input_size", f"[{IMAGE_SIZE},{IMAGE_SIZE}]",
        "--export_root", tmp_path / "anomalib_export",
    )  # fmt: skip
    assert (tmp_path / "anomalib_export" / "weights" / "openvino" / "model.xml").is_file()


def test_cross_dataset_command_reports_per_category_and_mean(synthetic_root: Path, tmp_path: Path) -> None:
    from anomalib_vlm.cross_dataset import main

    main([
        "--config", str(REPO / "configs/anomaly_clip/tiny_synthetic.yaml"),
        "--train_data.init_args.root", str(synthetic_root),
        "--train_data.init_args.categories", "[wood, tile, chip]",
        "--model.init_args.epochs", "2",
        "--test_data.init_args.root", str(synthetic_root),
        "--results_dir", str(tmp_path),
        "--trainer", json.dumps({"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False}),
    ])  # fmt: skip
    table = (tmp_path / "metrics.md").read_text().splitlines()
    assert table[0].startswith("| category |")
    for column in ("image_AUROC", "image_AUPR", "pixel_AUROC", "pixel_AUPRO"):
        assert column in table[0]
    rows = [line.split("|")[1].strip() for line in table[2:]]
    assert rows == ["metal_plate", "capsule", "mean"]
    header = [cell.strip() for cell in table[0].split("|")[1:-1]]
    pixel_auroc = [float(line.split("|")[1 + header.index("pixel_AUROC")]) for line in table[2:]]
    assert pixel_auroc[-1] == pytest.approx((pixel_auroc[0] + pixel_auroc[1]) / 2, abs=0.06)
    assert min(pixel_auroc) > 60  # two epochs on three categories already beat chance on both unseen ones
    assert (tmp_path / "metrics.csv").read_text().startswith("category,")


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The README's main job: train, zero-shot test, visualise, export to OpenVINO and run it."""
    from anomalib_vlm.demo import main

    main(["--output", str(tmp_path), "--epochs", "1"])
    output = capsys.readouterr().out
    assert "| capsule |" in output
    # The demo runs on the learned small CLIP: one epoch of prompts on the other categories already detects the
    # unseen category's defects from the paper's global score (the random tiny CLIP's global score is near chance).
    header = next(line for line in output.splitlines() if line.startswith("| category |")).split("|")[1:-1]
    row = next(line for line in output.splitlines() if line.startswith("| capsule |")).split("|")[1:-1]
    metrics = {name.strip(): float(value) for name, value in zip(header[1:], row[1:], strict=True)}
    assert metrics["image_AUROC"] >= 90, metrics
    assert metrics["pixel_AUROC"] >= 90, metrics
    assert "max map difference" in output
    assert list(tmp_path.rglob("images/*/*.png"))
    assert (tmp_path / "export" / "weights" / "openvino" / "model.xml").is_file()
    assert (tmp_path / "metrics" / "metrics.md").is_file()
    for line in output.splitlines():
        if "max map difference" in line:
            assert float(line.rsplit(" ", 1)[-1]) < 1e-4

    # A re-run with other settings in the same folder neither fails on the first run's data nor overwrites it.
    main(["--output", str(tmp_path), "--epochs", "1", "--image-size", "32", "--test-category", "wood"])
    assert "| wood |" in capsys.readouterr().out
    assert sorted(path.name for path in (tmp_path / "datasets").iterdir()) == [
        "synthetic_32px_seed0",
        "synthetic_64px_seed0",
    ]
