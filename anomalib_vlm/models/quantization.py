# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

r"""INT8 export of a CLIP transformer through anomalib's own ``compression_type`` (``INT8_PTQ``, ``INT8_ACQ``).

anomalib 2.7's ``ExportMixin.to_openvino`` hands the converted OpenVINO model to NNCF with default parameters:
``nncf.quantize(model, dataset)`` and ``nncf.quantize_with_accuracy_control(...)`` without ``model_type``. For a
vision transformer that default quantises the inputs of LayerNorm, Softmax and the residual additions, which NNCF's
transformer scheme (``model_type=nncf.ModelType.TRANSFORMER``) keeps in floating point. Our models answer the same
two anomalib calls with :meth:`TransformerQuantization.nncf_quantization_options` added, so

.. code-block:: bash

    anomalib export --model anomalib_vlm.models.AnomalyClip --ckpt_path model.ckpt --export_type openvino \\
        --compression_type INT8_PTQ --data anomalib.data.MVTecAD --data.root ... --data.category ...

works unchanged and gives a transformer-aware INT8 IR. The hook is the one public method
:meth:`~TransformerQuantization.nncf_quantization_options`: a model (or a user's subclass) overrides it to pass
other NNCF options (``ignored_scope``, ``subset_size``, ``advanced_parameters`` with a SmoothQuant alpha, ...).

What differs from anomalib's own two methods, besides the options: the calibration set is the validation split
(as in anomalib), images are read as ``batch.image``; the accuracy-control validation resets its metric before
each evaluation (anomalib's accumulates across NNCF's evaluations of the original and the quantised model) and
fails with a message naming the missing output when the IR lacks ``pred_score``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch

logger = logging.getLogger(__name__)

RECOMMENDED_CALIBRATION_IMAGES = 300
"""NNCF's default calibration subset size: fewer images still quantise, with a warning."""


FLOAT_HEAD_PATTERNS = (r"^node_matmul(_\d+)?$",)
"""Names torch's dynamo ONNX exporter gives ``torch.matmul`` / ``@`` (``nn.Linear`` becomes ``node_MatMul_<n>``)."""
FLOAT_HEAD_TYPES = ("Convolution",)
"""OpenVINO op types kept in floating point: the smoothing of the map (and the patch embedding, one layer)."""


def _batch_images(batch: Any) -> Any:
    """The image tensor of a datamodule batch (an anomalib ``Batch`` or a mapping), as NumPy for OpenVINO."""
    image = batch.image if hasattr(batch, "image") else batch["image"]
    return image.numpy() if isinstance(image, torch.Tensor) else image


class TransformerQuantization:
    """Mixin for an ``AnomalibModule`` on a ViT: anomalib's ``INT8_PTQ`` / ``INT8_ACQ`` export with NNCF's options.

    Mix it in before ``AnomalibModule`` (our models get it through ``ClipBackboneModule``). anomalib calls
    ``self._post_training_quantization_ov`` and ``self._accuracy_control_quantization_ov`` from
    ``to_openvino``; this class provides both with :meth:`nncf_quantization_options` passed to NNCF.
    """

    def nncf_quantization_options(self) -> dict[str, Any]:
        """Keyword arguments added to ``nncf.quantize`` / ``nncf.quantize_with_accuracy_control`` on INT8 export.

        Returns:
            NNCF's scheme for transformers (``model_type=TRANSFORMER``: LayerNorm, Softmax and residual additions
            stay in floating point) and an ``ignored_scope`` that keeps the head in floating point: the
            image-text similarities (``torch.matmul`` / ``@`` in the exported graph, whose 8-bit inputs would
            move cosine similarities by about 1e-2, a logit by 1 after CLIP's scale of 100) and the map's
            smoothing convolutions (8 bits would quantise the anomaly map itself). The backbone's linear
            layers and attention products, nearly all of the work, are quantised. Override to change them.
        """
        import nncf

        head = nncf.IgnoredScope(patterns=list(FLOAT_HEAD_PATTERNS), types=list(FLOAT_HEAD_TYPES), validate=False)
        return {"model_type": nncf.ModelType.TRANSFORMER, "ignored_scope": head}

    @staticmethod
    def _calibration_loader(model: Any, datamodule: Any) -> Any:
        """The validation loader NNCF calibrates on (anomalib's choice), checked and sized to a static batch."""
        if datamodule is None:
            msg = "compression_type INT8_PTQ / INT8_ACQ: pass a datamodule (--data) to calibrate the INT8 model on"
            raise ValueError(msg)
        datamodule.setup("fit")
        model_input = model.input(0)
        if model_input.partial_shape[0].is_static:  # an IR exported for a fixed batch takes only that batch size
            datamodule.train_batch_size = datamodule.eval_batch_size = model_input.shape[0]
        loader = datamodule.val_dataloader()
        if len(loader.dataset) < RECOMMENDED_CALIBRATION_IMAGES:
            logger.warning(
                "INT8 calibration on %d validation images; NNCF recommends %d or more",
                len(loader.dataset),
                RECOMMENDED_CALIBRATION_IMAGES,
            )
        return loader

    def _post_training_quantization_ov(self, model: Any, datamodule: Any = None) -> Any:
        """Anomalib's ``INT8_PTQ``: ``nncf.quantize`` on the validation images, with our options.

        Raises:
            ValueError: no datamodule was given.
        """
        import nncf

        loader = self._calibration_loader(model, datamodule)
        return nncf.quantize(model, nncf.Dataset(loader, _batch_images), **self.nncf_quantization_options())

    def _accuracy_control_quantization_ov(
        self,
        model: Any,
        datamodule: Any = None,
        metric: Any = None,
        task: Any = None,
        max_drop: float = 0.01,
    ) -> Any:
        """Anomalib's ``INT8_ACQ``: quantise, then restore layers to floating point while ``metric`` drops too much.

        NNCF compares ``metric`` on the test split before and after; layers go back to floating point until the
        drop is at most ``max_drop``.

        Args:
            model: the OpenVINO model.
            datamodule: calibration (validation split) and validation (test split) data.
            metric: an anomalib metric on the model's outputs; default image F1 (anomalib's default).
            task: unused (kept for anomalib's signature).
            max_drop: largest accepted absolute drop of ``metric``, between 0 and 1.

        Raises:
            ValueError: no datamodule, or ``max_drop`` outside [0, 1].
        """
        del task  # the metric decides what is compared
        import nncf
        from anomalib.data import ImageBatch
        from anomalib.metrics import F1Score

        if not 0 <= max_drop <= 1:
            msg = f"max_drop must be between 0 and 1, got {max_drop}"
            raise ValueError(msg)
        loader = self._calibration_loader(model, datamodule)
        metric = metric if metric is not None else F1Score(fields=["pred_label", "gt_label"])

        def validate(compiled: Any, batches: Iterable) -> float:
            metric.reset()  # NNCF evaluates several models in turn; each gets its own score
            for batch in batches:
                outputs = compiled(_batch_images(batch))
                names = {port.get_any_name(): port for port in compiled.outputs}
                if "pred_score" not in names:
                    msg = f"INT8_ACQ: the exported model has no 'pred_score' output (outputs: {sorted(names)})"
                    raise ValueError(msg)
                fields = {name: torch.from_numpy(outputs[port]) for name, port in names.items()}
                metric.update(
                    ImageBatch(
                        image=batch.image,
                        gt_label=batch.gt_label,
                        gt_mask=getattr(batch, "gt_mask", None),
                        pred_score=fields["pred_score"].reshape(-1),
                        pred_label=fields["pred_label"].reshape(-1) if "pred_label" in fields else None,
                        anomaly_map=fields.get("anomaly_map"),
                        pred_mask=fields.get("pred_mask"),
                    ),
                )
            return float(metric.compute())

        return nncf.quantize_with_accuracy_control(
            model,
            nncf.Dataset(loader, _batch_images),
            nncf.Dataset(datamodule.test_dataloader()),
            validate,
            max_drop=max_drop,
            **self.nncf_quantization_options(),
        )
