# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""INT8 through anomalib's own CLI: ``anomalib export --compression_type INT8_PTQ --data ...``, unchanged.

anomalib's NNCF call passes no ``model_type``; our models add NNCF's transformer scheme and keep the CLIP head in
floating point through ``nncf_quantization_options`` (``anomalib_vlm/models/quantization.py``). Without the head
kept in floating point the INT8 anomaly map collapses (max difference 1.0, pixel AUROC 0.5 on the synthetic
split); with it the map stays within a few hundredths of eager float32. What INT8 costs in AUROC per model is
measured by ``anomalib-vlm benchmark speed`` (``tests/integration/test_benchmark.py``, ``docs/benchmarks.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anomalib_vlm.deploy import compile_openvino

pytestmark = pytest.mark.slow
IMAGE_SIZE = 64
TINY = {"backbone": "anomalib-vlm-tiny", "pretrained": None, "image_size": IMAGE_SIZE}


def test_anomalib_cli_int8_ptq_export_keeps_the_anomaly_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nncf
    from anomalib.cli import AnomalibCLI
    from anomalib.data import MVTecAD

    from anomalib_vlm.data import generate_synthetic_dataset
    from anomalib_vlm.models import AnomalyClip
    from tests.helpers import make_engine

    root = generate_synthetic_dataset(tmp_path / "synthetic", ["capsule"], image_size=IMAGE_SIZE, seed=0)
    datamodule = MVTecAD(root=root, category="capsule", num_workers=0, eval_batch_size=8, seed=0)
    torch.manual_seed(0)
    model = AnomalyClip(**TINY, visualizer=False)
    engine = make_engine(tmp_path / "run")
    engine.validate(model=model, datamodule=datamodule)  # thresholds and normalisation, as after training
    checkpoint = tmp_path / "calibrated.ckpt"
    engine.trainer.save_checkpoint(checkpoint)

    calls: list[dict] = []
    quantize = nncf.quantize

    def recording_quantize(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(kwargs)
        return quantize(*args, **kwargs)

    monkeypatch.setattr(nncf, "quantize", recording_quantize)
    AnomalibCLI(args=[
        "export", "--model", "anomalib_vlm.models.AnomalyClip", "--model.backbone", "anomalib-vlm-tiny",
        "--model.pretrained", "null", "--model.image_size", str(IMAGE_SIZE), "--ckpt_path", str(checkpoint),
        "--export_type", "openvino", "--compression_type", "INT8_PTQ", "--input_size", f"[{IMAGE_SIZE},{IMAGE_SIZE}]",
        "--data", "anomalib.data.MVTecAD", "--data.root", str(root), "--data.category", "capsule",
        "--data.num_workers", "0", "--export_root", str(tmp_path / "export"),
    ])  # fmt: skip
    assert [call["model_type"] for call in calls] == [nncf.ModelType.TRANSFORMER]
    xml = tmp_path / "export" / "weights" / "openvino" / "model.xml"
    assert xml.read_text().count('type="FakeQuantize"') > 10  # the backbone's matrix products run in INT8

    datamodule.setup("test")
    batch = next(iter(datamodule.test_dataloader()))
    outputs = compile_openvino(xml)(batch.image.numpy())
    with torch.inference_mode():
        eager = model.eval()(batch.image)
    int8_map = outputs["anomaly_map"].reshape(eager.anomaly_map.shape)
    assert np.abs(int8_map - eager.anomaly_map.numpy()).max() < 0.1
    assert np.abs(outputs["pred_score"].reshape(-1) - eager.pred_score.numpy()).max() < 0.1
