# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""AnomalyCLIP: object-agnostic prompt learning for zero-shot anomaly detection (Zhou et al., ICLR 2024).

Two learnable prompts, one for normality (``[V1 ... V12] object.``) and one for abnormality
(``[W1 ... W12] damaged object.``), are trained once on an auxiliary dataset with masks against a frozen CLIP
whose last vision blocks use DPAM (V-V attention) for local patch features. The trained prompts then detect and
segment anomalies on categories never seen in training.

How it fits anomalib's learning types:
    anomalib's ``Engine.fit`` only validates models whose learning type is zero- or few-shot. AnomalyClip needs
    one training phase, so it reports :attr:`~anomalib.LearningType.ONE_CLASS` while its prompts are untrained
    (``Engine.fit`` / ``anomalib train`` then run Lightning's fit loop on the auxiliary data) and
    :attr:`~anomalib.LearningType.ZERO_SHOT` as soon as they hold trained values, after fitting or when loaded
    from a checkpoint (the shared training state of :class:`~anomalib_vlm.models.components.ClipBackboneModule`).
    From then on ``Engine.test`` / ``Engine.predict`` on a new category only calibrate the thresholds on that
    category's validation split, as for WinClip; ``Engine.fit`` on a trained model does the same and says so in
    the log, and ``model.continue_training()`` makes the next ``Engine.fit`` train further.

Example:
    >>> from anomalib.engine import Engine
    >>> from anomalib_vlm.models import AnomalyClip
    >>> model = AnomalyClip(backbone="anomalib-vlm-tiny", pretrained=None, image_size=128)
    >>> model.learning_type
    <LearningType.ONE_CLASS: 'one_class'>
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from anomalib import LearningType
from anomalib.data import Batch
from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator
from anomalib.metrics import AUPR, AUPRO, AUROC, Evaluator, F1Score
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch.utilities.types import STEP_OUTPUT

from anomalib_vlm.clip import clip_preprocessing, normalization_of
from anomalib_vlm.metrics import RAW_ANOMALY_MAP, RAW_PRED_SCORE, RawScoreEvaluator, RawScorePostProcessor
from anomalib_vlm.models.components import ClipBackboneModule

from .loss import AnomalyClipLoss
from .torch_model import AnomalyClipModel, ImageScore

logger = logging.getLogger(__name__)

NORMAL_ONLY_SYNTHETIC_ANOMALY_PROBABILITY = 0.5
"""``synthetic_anomaly_probability`` used when the training data holds no anomalous image at all."""


class AnomalyClip(ClipBackboneModule, AnomalibModule):
    """AnomalyCLIP as an anomalib model.

    Args:
        backbone (str): open_clip model name. Defaults to ``"ViT-L-14-336"``.
        pretrained (str | None): open_clip pretrained tag, a local checkpoint file, or ``None`` for seeded random
            weights. Defaults to ``"openai"``.
        image_size (int): side of the square model input. Defaults to ``518``.
        feature_layers (Sequence[int]): 1-indexed vision blocks whose patch tokens make the maps. Defaults to
            ``(24,)``, the published behaviour; ``(6, 12, 18, 24)`` uses true multi-level features.
        pixel_loss_weight (float): weight of the focal + dice terms. Defaults to ``4.0``.
        dpam_layers (int): final vision blocks with DPAM surgery; ``0`` disables it. Defaults to ``19``.
        prompt_context_length (int): learnable context words per prompt. Defaults to ``12``.
        prompt_depth (int): text blocks with learnable (deep) prompts. Defaults to ``9``.
        prompt_deep_length (int): tokens per deep prompt. Defaults to ``4``.
        temperature (float): similarity temperature. Defaults to ``0.07``.
        sigma (float): Gaussian smoothing of the anomaly map at inference; ``0`` disables it. Defaults to ``4.0``.
        image_score (str): ``"global"`` (paper), ``"map_max"`` or ``"global_plus_map_max"``.
            Defaults to ``"global"``.
        global_ln_post (bool): apply ``ln_post`` to the global token. Defaults to ``False`` (official code).
        learning_rate (float): Adam learning rate. Defaults to ``1e-3``.
        betas (tuple[float, float]): Adam betas. Defaults to ``(0.5, 0.999)``.
        epochs (int): training epochs on the auxiliary data (passed to the trainer as ``max_epochs``).
            Defaults to ``15``.
        synthetic_anomaly_probability (float): probability that a *normal* training image gets a synthetic
            Perlin-noise anomaly (anomalib's ``PerlinAnomalyGenerator``) and its mask, so normal-only data can
            train the prompts. Defaults to ``0.0`` (off). Training data without a single anomalous image (e.g. an
            anomalib ``Folder`` or ``MVTecAD`` train split) switches it to
            :data:`NORMAL_ONLY_SYNTHETIC_ANOMALY_PROBABILITY` with a warning, since the prompts could learn
            nothing from it; where the data cannot be inspected up front, the first epoch stops with an error.
        cache_dir (str | None): open_clip weight cache folder. Defaults to open_clip's own.
        pre_processor (PreProcessor | bool): pre-processor or flag. Defaults to ``True`` (resize to
            ``image_size`` and the normalisation of the backbone's weights, see :meth:`configure_pre_processor`).
        post_processor (PostProcessor | bool): post-processor or flag. Defaults to ``True``.
        evaluator (Evaluator | bool): evaluator or flag. Defaults to ``True`` (image AUROC/AUPR/F1, pixel
            AUROC/AUPRO/F1).
        visualizer (Visualizer | bool): visualizer or flag. Defaults to ``True``.
    """

    trained_learning_type = LearningType.ZERO_SHOT
    default_backbone, default_image_size = "ViT-L-14-336", 518
    resize_mode = "squash"  # the official code resizes the whole image, so the map covers all of it

    def __init__(
        self,
        backbone: str = "ViT-L-14-336",
        pretrained: str | None = "openai",
        image_size: int = 518,
        feature_layers: Sequence[int] = (24,),
        pixel_loss_weight: float = 4.0,
        dpam_layers: int = 19,
        prompt_context_length: int = 12,
        prompt_depth: int = 9,
        prompt_deep_length: int = 4,
        temperature: float = 0.07,
        sigma: float = 4.0,
        image_score: str = "global",
        global_ln_post: bool = False,
        learning_rate: float = 1e-3,
        betas: tuple[float, float] = (0.5, 0.999),
        epochs: int = 15,
        synthetic_anomaly_probability: float = 0.0,
        cache_dir: str | None = None,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        image_score = ImageScore(image_score).value  # plain string in the saved hyper-parameters
        feature_layers = [int(layer) for layer in feature_layers]
        if not 0.0 <= synthetic_anomaly_probability <= 1.0:
            msg = f"synthetic_anomaly_probability must be in [0, 1], got {synthetic_anomaly_probability}"
            raise ValueError(msg)
        if epochs < 1:
            msg = f"epochs must be >= 1, got {epochs}"
            raise ValueError(msg)
        super().__init__(backbone, pretrained, image_size, pre_processor, post_processor, evaluator, visualizer)
        self.model = AnomalyClipModel(
            backbone=backbone,
            pretrained=pretrained,
            image_size=image_size,
            feature_layers=feature_layers,
            dpam_layers=dpam_layers,
            prompt_context_length=prompt_context_length,
            prompt_depth=prompt_depth,
            prompt_deep_length=prompt_deep_length,
            temperature=temperature,
            sigma=sigma,
            image_score=image_score,
            global_ln_post=global_ln_post,
            cache_dir=cache_dir,
        )
        self.loss = AnomalyClipLoss(pixel_loss_weight=pixel_loss_weight)
        self.synthetic_anomalies = self._synthetic_anomaly_generator(synthetic_anomaly_probability)
        self._anomalous_training_images = 0

    # ------------------------------------------------------------------ anomalib configuration
    @staticmethod
    def configure_post_processor() -> PostProcessor:
        """Anomalib's post-processor (adaptive thresholds, min-max normalisation from validation), keeping raw scores.

        The deployed scores, maps, labels and masks are anomalib's; the model's own image scores and maps stay on
        test batches as ``raw_pred_score`` / ``raw_anomaly_map`` for the ranking metrics.
        """
        return RawScorePostProcessor()

    @staticmethod
    def configure_evaluator() -> Evaluator:
        """The paper's metrics: image AUROC and AP (AUPR), pixel AUROC and AUPRO, plus F1 at the threshold.

        The ranking metrics read the model's own scores and maps (``raw_*``; normalisation clamps to ``[0, 1]``
        and ties what lies beyond half the validation range); F1 reads the deployed labels and masks.
        """
        test_metrics = [
            AUROC(fields=[RAW_PRED_SCORE, "gt_label"], prefix="image_", normalization=None),
            AUPR(fields=[RAW_PRED_SCORE, "gt_label"], prefix="image_", normalization=None),
            F1Score(fields=["pred_label", "gt_label"], prefix="image_"),
            AUROC(fields=[RAW_ANOMALY_MAP, "gt_mask"], prefix="pixel_", strict=False, normalization=None),
            AUPRO(fields=[RAW_ANOMALY_MAP, "gt_mask"], prefix="pixel_", strict=False),
            F1Score(fields=["pred_mask", "gt_mask"], prefix="pixel_", strict=False),
        ]
        return RawScoreEvaluator(test_metrics=test_metrics)

    @classmethod
    def checkpoint_safe_globals(cls) -> Sequence[Any]:
        """Types in the hyper-parameters that ``torch.load(weights_only=True)`` must accept."""
        return (ImageScore,)

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """Training runs ``epochs`` epochs and validates once at the end (thresholds); a trained model needs nothing.

        There are no validation metrics to watch during training, so validating every epoch would only double
        the cost.
        """
        if self.learning_type != LearningType.ONE_CLASS:
            return {}
        epochs = self.hparams.epochs
        return {"max_epochs": epochs, "check_val_every_n_epoch": epochs, "num_sanity_val_steps": 0}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam over the prompts only; the CLIP backbone stays frozen."""
        return torch.optim.Adam(
            self.model.object_agnostic_prompts.parameters(),
            lr=self.hparams.learning_rate,
            betas=tuple(self.hparams.betas),
        )

    # ------------------------------------------------------------------ steps
    @staticmethod
    def _synthetic_anomaly_generator(probability: float) -> PerlinAnomalyGenerator | None:
        return PerlinAnomalyGenerator(probability=probability, blend_factor=(0.5, 1.0)) if probability > 0 else None

    def _training_labels(self) -> torch.Tensor | None:
        """Labels of the whole training set, where the dataset is an anomalib one (``None``: unknown)."""
        dataloader = self.trainer.train_dataloader
        samples = getattr(getattr(dataloader, "dataset", None), "samples", None)
        if samples is None or "label_index" not in getattr(samples, "columns", ()):
            return None
        return torch.as_tensor(samples["label_index"].to_numpy())

    def on_train_start(self) -> None:
        """Normal-only training data gets synthetic anomalies: without an anomaly the prompts learn nothing."""
        self._anomalous_training_images = 0
        labels = self._training_labels()
        if self.synthetic_anomalies is None and labels is not None and not bool((labels == 1).any()):
            probability = NORMAL_ONLY_SYNTHETIC_ANOMALY_PROBABILITY
            logger.warning(
                "AnomalyClip's training data holds no anomalous image (%d normal ones): pasting synthetic Perlin "
                "anomalies into %.0f%% of them (synthetic_anomaly_probability=%s). Set "
                "synthetic_anomaly_probability (CLI: --model.synthetic_anomaly_probability) yourself to choose "
                "another share, or train on data with anomalies and masks (e.g. anomalib_vlm.data.AuxiliaryData).",
                len(labels),
                100 * probability,
                probability,
            )
            self.synthetic_anomalies = self._synthetic_anomaly_generator(probability)
            self.hparams.synthetic_anomaly_probability = probability

    def on_train_epoch_end(self) -> None:
        """Stop after an epoch that saw no anomalous image: the prompts cannot learn from normal images alone.

        Raises:
            ValueError: no anomalous (real or synthetic) training image in the first epoch.
        """
        if self.current_epoch == 0 and self._anomalous_training_images == 0:
            msg = (
                "AnomalyClip saw no anomalous image in its first training epoch, so its prompts cannot learn: "
                "train on data with anomalies and masks (e.g. anomalib_vlm.data.AuxiliaryData), or set "
                "synthetic_anomaly_probability > 0 (CLI: --model.synthetic_anomaly_probability 0.5) to paste "
                "synthetic anomalies into normal images."
            )
            raise ValueError(msg)

    def _add_synthetic_anomalies(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Paste Perlin anomalies into normal images (in pixel space) and derive their masks and labels."""
        images, labels, masks = batch.image, batch.gt_label, batch.gt_mask
        if self.synthetic_anomalies is None:
            return images, labels, masks
        statistics = normalization_of(getattr(self.pre_processor, "transform", None))
        if statistics is None:  # no Normalize in a custom pre-processor: the backbone's own statistics
            settings = clip_preprocessing(self.hparams.backbone, self.hparams.pretrained)
            statistics = settings.mean, settings.std
        mean = torch.tensor(statistics[0], device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(statistics[1], device=images.device).view(1, -1, 1, 1)
        normal = labels == 0
        if not normal.any():
            return images, labels, masks
        pixels = (images[normal] * std + mean).clamp(0, 1)
        augmented, new_masks = self.synthetic_anomalies(pixels)
        images = images.clone()
        images[normal] = (augmented - mean) / std
        masks = torch.zeros(images.shape[0], *images.shape[-2:], device=images.device) if masks is None else masks
        masks = masks.clone().float()
        masks[normal] = new_masks[:, 0].float()
        labels = labels.clone().long()
        labels[normal] = (new_masks.flatten(1).amax(1) > 0).long()
        return images, labels, masks

    def training_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """One prompt update on an anomalib ``ImageBatch`` (``image``, ``gt_label`` and, if present, ``gt_mask``)."""
        del args, kwargs  # These variables are not used.
        if batch.gt_label is None:
            msg = "AnomalyClip trains on labelled images: the training batch has no gt_label."
            raise ValueError(msg)
        images, labels, masks = self._add_synthetic_anomalies(batch)
        self._anomalous_training_images += int((labels == 1).sum())
        outputs = self.model(images)
        losses = self.loss(outputs.image_logits, outputs.layer_probabilities, labels, masks)
        self.log_dict({f"train_{name}": value for name, value in losses.items()}, prog_bar=True, batch_size=len(labels))
        return losses["loss"]
