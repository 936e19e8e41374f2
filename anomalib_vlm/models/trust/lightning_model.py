# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""TRUST: caption-guided unsupervised domain adaptation of a CLIP classifier (Litrico et al., AAAI 2026).

A classifier trained on a labelled *source* domain must serve a *target* domain whose images are unlabelled but
captioned. Language shifts less between domains than pixels do, so a caption classifier trained on the source
captions pseudo-labels the target; each pseudo-label is trusted as much as a frozen CLIP finds the caption fits
its image (:func:`~.loss.caption_uncertainty_weights`), and a soft contrastive loss pulls the image features into
the captions' similarity structure (README, "Method").

The adapted classifier is SUPREME's ID classifier (text prototypes, MCM form) with a fine-tuned image tower; its
``pred_score`` is Supreme's OOD score and ``pred_class`` the class. Build it fresh (prototypes from the class
prompts), from a tuned Supreme model (:meth:`Trust.from_supreme` or ``source_model=<Supreme checkpoint>``), and
train it with :class:`~anomalib_vlm.data.CaptionedDomainDataModule` through anomalib's Engine or CLI.

Example:
    >>> from anomalib_vlm.models.trust import Trust
    >>> model = Trust(class_names=["striped", "dotted"], backbone="anomalib-vlm-tiny", pretrained=None, image_size=64)
    >>> model.learning_type
    <LearningType.ONE_CLASS: 'one_class'>
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from anomalib import LearningType
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch.utilities.types import STEP_OUTPUT

from anomalib_vlm.clip import backbone_fingerprint, clip_pre_processor, encode_fixed_texts
from anomalib_vlm.metrics import IDAccuracy, RawScorePostProcessor
from anomalib_vlm.models.components import ClipBackboneModule
from anomalib_vlm.models.supreme import Supreme
from anomalib_vlm.models.supreme.torch_model import check_class_names

from .caption_classifier import CaptionClassifier, ClipCaptionClassifier, DistilBertCaptionClassifier
from .loss import TrustLoss, caption_uncertainty_weights
from .torch_model import TrustModel

logger = logging.getLogger(__name__)

CAPTION_CLASSIFIERS = ("clip", "distilbert")


class TrustPreProcessor(PreProcessor):
    """anomalib's pre-processor, except on training batches: TRUST normalises its two views itself.

    Training batches are ``{"source": ..., "target": ...}`` dictionaries with a weak and a strong view each, which
    anomalib's hook (``batch.image``) cannot read; validation, test, prediction and export are anomalib's.
    """

    def on_train_batch_start(self, *args: Any, **kwargs: Any) -> None:
        """Leave training batches alone (see the class docstring)."""
        del args, kwargs


class Trust(ClipBackboneModule, AnomalibModule):
    """TRUST adaptation of a CLIP classifier (Supreme's ID classifier) as an anomalib model.

    Args:
        class_names (Sequence[str] | None): class names in label order; ``None`` takes the datamodule's.
        backbone (str): open_clip model name. Defaults to ``"ViT-B-16"``.
        pretrained (str | None): open_clip tag, local file or ``None`` (seeded random weights). Defaults to
            ``"openai"``.
        image_size (int): square input side. Defaults to ``224``.
        temperature (float): tau of the class softmax (Supreme's). Defaults to ``0.01``.
        prompt_template (str): class prompt that initialises the prototypes. Defaults to ``"a photo of a {}."``.
        source_model (str | None): a Supreme checkpoint whose classes and (tuned) text prototypes start the
            classifier; same backbone required. Defaults to ``None``.
        trainable_blocks (int | None): last image-tower blocks fine-tuned; ``None`` = the whole tower (official).
        caption_classifier (str): ``"clip"`` (our CLIP text tower + linear head) or ``"distilbert"`` (official).
            Defaults to ``"clip"``.
        distilbert_model (str): DistilBERT name or folder for ``caption_classifier="distilbert"``. Defaults to
            ``"distilbert-base-uncased"``.
        caption_epochs (int | None): caption-classifier epochs; ``None`` = the official 20. Defaults to ``None``.
        caption_learning_rate (float | None): caption-classifier AdamW learning rate; ``None`` = the official
            5e-5 (the small CLIP's text tower needs 3e-3). Defaults to ``None``.
        uncertainty_temperature (float): divides the CLIP logits in the uncertainty softmax. Defaults to ``3.0``.
        use_uncertainty (bool): weight the target terms by caption uncertainty. Defaults to ``True``.
        source_weight, target_weight, strong_weight (float): loss weights. Default to ``1.0``.
        contrastive_weight (float): weight of the soft contrastive loss (0 = off). Defaults to ``1.0``.
        contrastive_temperature (float): its temperature. Defaults to ``0.07``.
        source_only (bool): train on the source only (``L_s``): the no-adaptation baseline. Defaults to ``False``.
        epochs (int): epochs over the longer domain. Defaults to ``30`` (official).
        learning_rate (float): SGD learning rate, cosine-decayed per step without warm-up. Defaults to ``3e-4``.
        momentum (float): SGD momentum. Defaults to ``0.0`` (official).
        weight_decay (float): SGD weight decay. Defaults to ``0.0`` (official).
        seed (int): seed of the caption classifier. Defaults to ``0``.
        cache_dir (str | None): open_clip weight cache. Defaults to open_clip's own.
        pre_processor, post_processor, evaluator, visualizer: anomalib components or flags. The evaluator
            reports target accuracy (``target_accuracy``).
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        backbone: str = "ViT-B-16",
        pretrained: str | None = "openai",
        image_size: int = 224,
        temperature: float = 0.01,
        prompt_template: str = "a photo of a {}.",
        source_model: str | None = None,
        trainable_blocks: int | None = None,
        caption_classifier: str = "clip",
        distilbert_model: str = "distilbert-base-uncased",
        caption_epochs: int | None = None,
        caption_learning_rate: float | None = None,
        uncertainty_temperature: float = 3.0,
        use_uncertainty: bool = True,
        source_weight: float = 1.0,
        target_weight: float = 1.0,
        strong_weight: float = 1.0,
        contrastive_weight: float = 1.0,
        contrastive_temperature: float = 0.07,
        source_only: bool = False,
        epochs: int = 30,
        learning_rate: float = 3e-4,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        seed: int = 0,
        cache_dir: str | None = None,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = False,
    ) -> None:
        if caption_classifier not in CAPTION_CLASSIFIERS:
            msg = f"caption_classifier must be one of {CAPTION_CLASSIFIERS}, got {caption_classifier!r}"
            raise ValueError(msg)
        if epochs < 1:
            msg = f"epochs must be >= 1, got {epochs}"
            raise ValueError(msg)
        if uncertainty_temperature <= 0:
            msg = f"uncertainty_temperature must be > 0, got {uncertainty_temperature}"
            raise ValueError(msg)
        if class_names is not None:
            class_names = check_class_names(class_names)
        super().__init__(backbone, pretrained, image_size, pre_processor, post_processor, evaluator, visualizer)
        self.model = TrustModel(
            backbone=backbone,
            pretrained=pretrained,
            image_size=image_size,
            temperature=temperature,
            prompt_template=prompt_template,
            trainable_blocks=trainable_blocks,
            cache_dir=cache_dir,
        )
        # The un-adapted weights identify the backbone in checkpoints (fine-tuning changes the tower).
        self._pretrained_fingerprint = backbone_fingerprint(self.model.clip)
        self.loss = TrustLoss(
            source_weight=source_weight,
            target_weight=target_weight,
            strong_weight=strong_weight,
            contrastive_weight=contrastive_weight,
            contrastive_temperature=contrastive_temperature,
            use_uncertainty=use_uncertainty,
        )
        self._cache: dict[str, torch.Tensor] = {}
        self._caption_classifier: list[CaptionClassifier] = []
        if source_model is not None:
            self._start_from_supreme_checkpoint(source_model)
        elif class_names is not None:
            self.model.set_classes(class_names)

    # ------------------------------------------------------------------ wrapping Supreme
    @classmethod
    def from_supreme(cls, supreme: Any, **kwargs: Any) -> Trust:
        """A Trust model that starts from a Supreme model's classes and text prototypes (tuned or not).

        Backbone, weights, input size, temperature and prompt template are the Supreme model's; ``kwargs`` set
        the TRUST options.
        """
        hparams = supreme.hparams
        trust = cls(
            backbone=hparams.backbone,
            pretrained=hparams.pretrained,
            image_size=hparams.image_size,
            temperature=hparams.temperature,
            prompt_template=hparams.prompt_template,
            **kwargs,
        )
        trust.start_from_supreme(supreme)
        return trust

    def start_from_supreme(self, supreme: Any) -> None:
        """Take a Supreme model's ID classes and text prototypes (tuned or not) as the classifier to adapt.

        Raises:
            ValueError: the Supreme model has no classes yet, or its backbone weights are not this model's.
        """
        source = supreme.model
        if not source.class_names:
            msg = "The Supreme model has no classes yet: train or calibrate it (or give it class_names) first."
            raise ValueError(msg)
        if backbone_fingerprint(source.clip) != self._pretrained_fingerprint:
            msg = (
                f"The Supreme model uses backbone '{supreme.hparams.backbone}' with other weights than this Trust "
                f"model ('{self.hparams.backbone}', pretrained={self.hparams.pretrained!r}): its prototypes live in "
                "another embedding space."
            )
            raise ValueError(msg)
        source.refresh_cached_features()
        self.model.set_classes(source.class_names, source.text_prototypes.detach().clone())

    def _start_from_supreme_checkpoint(self, path: str) -> None:
        if not Path(path).is_file():
            msg = f"source_model: Supreme checkpoint {path} does not exist"
            raise FileNotFoundError(msg)
        self.start_from_supreme(Supreme.load_from_checkpoint(path, map_location="cpu"))

    # ------------------------------------------------------------------ anomalib configuration
    @classmethod
    def configure_pre_processor(
        cls,
        image_size: tuple[int, int] | None = None,
        backbone: str = "ViT-B-16",
        pretrained: str | None = "openai",
    ) -> PreProcessor:
        """The backbone's own resize and normalisation (open_clip's declarations), skipping training batches."""
        size = image_size or (224, 224)
        return TrustPreProcessor(
            transform=clip_pre_processor(backbone, pretrained, size, resize_mode="squash").transform
        )

    @staticmethod
    def configure_post_processor() -> PostProcessor:
        """Anomalib's post-processor (thresholds on the OOD score), keeping the raw scores."""
        return RawScorePostProcessor()

    @staticmethod
    def configure_evaluator() -> Evaluator:
        """Target accuracy: ``pred_class`` against the target-test ``gt_class``."""
        return Evaluator(test_metrics=[IDAccuracy(fields=["pred_class", "gt_class"], prefix="target_")])

    @property
    def learning_type(self) -> LearningType:
        """``ONE_CLASS``: Engine.fit runs the training loop (source labels only; the target is unlabelled)."""
        return LearningType.ONE_CLASS

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """``epochs`` epochs, one validation at the end (no model selection on target labels)."""
        epochs = self.hparams.epochs
        return {"max_epochs": epochs, "check_val_every_n_epoch": epochs, "num_sanity_val_steps": 0}

    def configure_optimizers(self) -> Any:
        """SGD over the fine-tuned image tower and the prototypes; cosine decay per step, no warm-up (official)."""
        optimizer = torch.optim.SGD(
            self.model.learnable_parameters(),
            lr=self.hparams.learning_rate,
            momentum=self.hparams.momentum,
            weight_decay=self.hparams.weight_decay,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ set-up: classes, pseudo-labels, weights
    def _datamodule(self) -> Any:
        return getattr(self._trainer, "datamodule", None) if self._trainer is not None else None

    def setup(self, stage: str | None = None) -> None:
        """Take the class names from the datamodule unless given; they must match it."""
        datamodule = self._datamodule()
        names = getattr(datamodule, "class_names", None)
        if not self.model.class_names:
            if not names:
                msg = "Trust needs class names: pass class_names=[...] or use CaptionedDomainDataModule."
                raise ValueError(msg)
            self.model.set_classes(names)
        elif names and [n.lower() for n in names] != [n.lower() for n in self.model.class_names]:
            msg = (
                f"The model's classes {self.model.class_names} are not the datamodule's {list(names)} (same names, "
                "same order): the source labels would train the wrong prototypes."
            )
            raise ValueError(msg)

    @property
    def caption_classifier(self) -> CaptionClassifier | None:
        """The caption classifier trained by :meth:`prepare_adaptation` (``None`` before)."""
        return self._caption_classifier[0] if self._caption_classifier else None

    def build_caption_classifier(self) -> CaptionClassifier:
        """The caption classifier the options name (untrained)."""
        options = {}
        if self.hparams.caption_epochs is not None:
            options["epochs"] = self.hparams.caption_epochs
        if self.hparams.caption_learning_rate is not None:
            options["learning_rate"] = self.hparams.caption_learning_rate
        if self.hparams.caption_classifier == "distilbert":
            return DistilBertCaptionClassifier(self.hparams.distilbert_model, seed=self.hparams.seed, **options)
        return ClipCaptionClassifier(self.model.clip, self.hparams.backbone, seed=self.hparams.seed, **options)

    @property
    def pseudo_labels(self) -> torch.Tensor | None:
        """The caption classifier's ``[N_target]`` class indices for the target images, in the datamodule's order.

        What the adaptation trains towards; ``None`` before :meth:`prepare_adaptation`.
        """
        return self._cache.get("pseudo_labels")

    @torch.no_grad()
    def prepare_adaptation(self, datamodule: Any, caption_classifier: CaptionClassifier | None = None) -> None:
        """Train the caption classifier, pseudo-label the target, and cache what the losses need.

        Cached per sample: target pseudo-labels, caption features of source and target (contrastive positives),
        and frozen-CLIP image and caption embeddings of the target (uncertainty weights), computed with the image
        tower as it is now, before adaptation.

        Raises:
            TypeError: the datamodule is no :class:`~anomalib_vlm.data.CaptionedDomainDataModule`.
        """
        if not hasattr(datamodule, "target_captions") or not hasattr(datamodule, "ordered_dataloader"):
            msg = (
                f"Trust trains on a labelled source and a captioned target: use "
                f"anomalib_vlm.data.CaptionedDomainDataModule, got {type(datamodule).__name__}."
            )
            raise TypeError(msg)
        datamodule.index()
        classifier = caption_classifier or self.build_caption_classifier()
        loss = classifier.fit(datamodule.source_captions, datamodule.source_labels, self.model.num_classes)
        device = self.device
        pseudo_logits = classifier.logits(datamodule.target_captions).to(device)
        cache = {
            "pseudo_labels": pseudo_logits.argmax(dim=1),
            "source_caption_features": classifier.features(datamodule.source_captions).to(device),
            "target_caption_features": classifier.features(datamodule.target_captions).to(device),
        }
        was_training = self.model.training
        self.model.eval()
        embeddings = []
        for batch in datamodule.ordered_dataloader("target"):
            images = self.pre_processor.transform(batch["image"].to(device))
            embeddings.append(self.model.encode(images))
        self.model.train(was_training)
        cache["target_clip_images"] = torch.cat(embeddings)
        clip_captions = encode_fixed_texts(self.model.clip, self.hparams.backbone, datamodule.target_captions)
        cache["target_clip_captions"] = F.normalize(clip_captions.float(), dim=-1).to(device)
        self._cache = cache
        self._caption_classifier = [classifier]  # training-time only: kept out of the module tree and checkpoints
        logger.info("Caption classifier trained (last loss %.3f); %d target pseudo-labels.", loss, len(pseudo_logits))

    def on_fit_start(self) -> None:
        """Prepare the pseudo-labels and caches once the model sits on its device."""
        if not self.hparams.source_only:
            self.prepare_adaptation(self._datamodule())

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Mapping[str, Mapping[str, torch.Tensor]], *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """One source batch and one target batch: ``L_s + L_t + L_t_strong + L_ctr``."""
        del args, kwargs  # These variables are not used.
        source, target = batch["source"], batch["target"]
        normalise = self.pre_processor.transform
        if self.hparams.source_only:
            logits = self.model.logits(self.model.encode(normalise(source["image"])))
            loss = F.cross_entropy(logits, source["label"])
            self.log("train_source_loss", loss.detach(), prog_bar=True)
            return {"loss": loss}
        views = [source["image"], source["strong"], target["image"], target["strong"]]
        features = self.model.encode(normalise(torch.cat(views))).split([len(view) for view in views])
        losses = self.adaptation_losses(*features, source["label"], source["index"], target["index"])
        self.log_dict({f"train_{name}": value for name, value in losses.items() if name != "loss"}, prog_bar=False)
        self.log("train_loss", losses["loss"].detach(), prog_bar=True)
        return {"loss": losses["loss"]}

    def adaptation_losses(
        self,
        source_weak: torch.Tensor,
        source_strong: torch.Tensor,
        target_weak: torch.Tensor,
        target_strong: torch.Tensor,
        source_labels: torch.Tensor,
        source_rows: torch.Tensor,
        target_rows: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """TRUST's losses from the normalised image features of both views of a source and a target batch.

        Args:
            source_weak (torch.Tensor): ``[Bs, D]`` features of the source weak view.
            source_strong (torch.Tensor): ``[Bs, D]`` features of the source strong view.
            target_weak (torch.Tensor): ``[Bt, D]`` features of the target weak view.
            target_strong (torch.Tensor): ``[Bt, D]`` features of the target strong view.
            source_labels (torch.Tensor): ``[Bs]`` source classes.
            source_rows (torch.Tensor): ``[Bs]`` the source samples' rows in the datamodule.
            target_rows (torch.Tensor): ``[Bt]`` the target samples' rows (for the cached pseudo-labels, caption
                features and uncertainty embeddings).

        Raises:
            RuntimeError: :meth:`prepare_adaptation` has not run.
        """
        if not self._cache:
            msg = "Trust.prepare_adaptation() must run before training (Engine.fit does it in on_fit_start)."
            raise RuntimeError(msg)
        source_logits = self.model.logits(source_weak)
        target_logits, target_strong_logits = self.model.logits(torch.cat([target_weak, target_strong])).chunk(2)
        weights = caption_uncertainty_weights(
            self._cache["target_clip_images"][target_rows],
            self._cache["target_clip_captions"][target_rows],
            self.model.clip.logit_scale.exp(),
            self.hparams.uncertainty_temperature,
        )
        captions = torch.cat(
            [self._cache["source_caption_features"][source_rows], self._cache["target_caption_features"][target_rows]]
        )
        contrastive_features = torch.stack(
            [torch.cat([source_weak, target_weak]), torch.cat([source_strong, target_strong])], dim=1
        )
        return self.loss(
            source_logits,
            source_labels,
            target_logits,
            target_strong_logits,
            self._cache["pseudo_labels"][target_rows],
            weights,
            contrastive_features,
            captions @ captions.T,
        )

    # ------------------------------------------------------------------ checkpoints (see ClipBackboneModule)
    def backbone_identity(self) -> dict[str, Any]:
        """Identity of the un-adapted backbone, plus the class names."""
        identity = super().backbone_identity()
        identity["fingerprint"] = self._pretrained_fingerprint
        return {**identity, "class_names": list(self.model.class_names)}

    def check_backbone_identity(self, saved: Mapping[str, Any] | None) -> None:
        """Compare with the un-adapted weights' fingerprint (the model may already be adapted)."""
        if saved is None:
            return
        tolerance = 1e-6 * max(1.0, abs(self._pretrained_fingerprint))
        if (
            saved["backbone"] != self.hparams.backbone
            or abs(saved["fingerprint"] - self._pretrained_fingerprint) > tolerance
        ):
            from anomalib_vlm.errors import CheckpointMismatchError

            raise CheckpointMismatchError(self.mismatch_message(saved, self.hparams.backbone, self.hparams.pretrained))

    def restore_from_identity(self, saved: Mapping[str, Any]) -> None:
        """Size the prototypes for the checkpoint's classes before its state loads."""
        if saved.get("class_names"):
            self.model.set_classes(saved["class_names"])

    def kept_frozen_keys(self) -> set[str]:
        """The fine-tuned image-tower weights belong in the checkpoint."""
        return {f"model.clip.visual.{name}" for name in self.model.trainable_visual_names()}
