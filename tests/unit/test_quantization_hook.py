# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Every model answers anomalib's INT8_PTQ / INT8_ACQ calls with NNCF's transformer options (the documented hook)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from anomalib.data import ImageBatch
from anomalib.deploy import CompressionType

from anomalib_vlm.models import AnomalyClip, MetaIqa, Supreme

TINY = {"backbone": "anomalib-vlm-tiny", "pretrained": None, "image_size": 32}


class _Exported(torch.nn.Module):
    """A stand-in for an exported model: the outputs anomalib's INT8_ACQ validation reads."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3 * 8 * 8, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score = torch.sigmoid(self.layer(image.flatten(1)))[:, 0]
        return score, score > 0.5


class _Data:
    """Just what anomalib's compression reads from a datamodule: ``setup``, validation and test loaders."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.batches = [
            ImageBatch(image=torch.rand(4, 3, 8, 8, generator=generator), gt_label=torch.tensor([0, 1, 0, 1]))
            for _ in range(3)
        ]
        self.train_batch_size = self.eval_batch_size = 4

    def setup(self, stage: str) -> None:
        del stage

    def val_dataloader(self) -> SimpleNamespace:
        return _Loader(self.batches)

    test_dataloader = val_dataloader


class _Loader(list):
    @property
    def dataset(self) -> list:
        return [None] * 4 * len(self)


def _openvino_model():  # noqa: ANN202
    import openvino

    model = openvino.convert_model(_Exported(), example_input=torch.rand(4, 3, 8, 8))
    for output, name in zip(model.outputs, ("pred_score", "pred_label"), strict=True):
        output.get_tensor().set_names({name})
    return model


@pytest.mark.parametrize("compression", [CompressionType.INT8_PTQ, CompressionType.INT8_ACQ])
@pytest.mark.parametrize("model_class", [AnomalyClip, Supreme, MetaIqa])
def test_anomalib_compression_passes_the_models_nncf_options(
    model_class: type,
    compression: CompressionType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nncf

    extra = {"class_names": ["part"], "mode": "mcm"} if model_class is Supreme else {}
    module = model_class(**TINY, **extra, visualizer=False)
    options = module.nncf_quantization_options()
    assert options["model_type"] == nncf.ModelType.TRANSFORMER
    seen: list[dict] = []
    for name in ("quantize", "quantize_with_accuracy_control"):
        original = getattr(nncf, name)
        monkeypatch.setattr(nncf, name, lambda *a, _f=original, **k: seen.append(k) or _f(*a, **k))
    quantised = module._compress_ov_model(_openvino_model(), compression, _Data())  # anomalib's own entry point
    assert seen[0]["model_type"] == nncf.ModelType.TRANSFORMER
    assert seen[0]["ignored_scope"] is options["ignored_scope"] or seen[0]["ignored_scope"] == options["ignored_scope"]
    import openvino

    compiled = openvino.Core().compile_model(quantised, "CPU")
    scores = compiled(np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32))["pred_score"]
    assert np.isfinite(scores).all()


def test_int8_without_a_datamodule_says_what_to_pass() -> None:
    module = AnomalyClip(**TINY, visualizer=False)
    with pytest.raises(ValueError, match=r"pass a datamodule \(--data\) to calibrate the INT8 model on"):
        module._compress_ov_model(_openvino_model(), CompressionType.INT8_PTQ, None)
