# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""SUPREME: few-shot OOD detection with multi-modal prototypes and image bias estimation (Wang et al., 2025).

CLIP OOD scores that compare an image with ID *text* prototypes only (MCM) suffer from the modality gap: OOD
images can be as close to ID text as ID images are. SUPREME adds ID *image* prototypes from k shots per class
(training-free S_MMP), and a light few-shot tuning (biased prompt generation, BPG, and image-text consistency,
ITC) scored with S_GMP. ``pred_score`` is the OOD score (higher = more OOD); ID class predictions come along.

How it fits anomalib's learning types:
    ``mode="mcm"`` is zero-shot (class names only) and ``mode="smmp"`` few-shot (class names and shots): both
    only calibrate thresholds in ``Engine.fit`` / ``Engine.test``, as WinClip. ``mode="supreme"`` and
    ``mode="outlier_class"`` need a tuning phase, so, like AnomalyClip, they report
    :attr:`~anomalib.LearningType.ONE_CLASS` while untuned (``Engine.fit`` then runs Lightning's fit loop) and
    :attr:`~anomalib.LearningType.FEW_SHOT` once tuned or loaded tuned.

    ``mode="outlier_class"`` is FodFoM's use of fake outliers (``anomalib-vlm fake-outliers``): a
    :class:`~anomalib_vlm.fodfom.FakeOutlierDataModule` puts the fakes into the training split as class ``K``;
    ``setup`` encodes them next to the shots, and the fit loop trains the ``K+1`` head
    (:class:`~anomalib_vlm.models.supreme.outlier_class.OutlierClassHead`) with AdamW.

    The shots (k images per ID class) are taken once, in ``setup``, from the datamodule's train split (or from
    ``few_shot_source``) and encoded with the frozen image encoder. Each Lightning "epoch" of the fit loop is one
    pass over those cached shot embeddings in mini-batches of ``batch_size`` (manual optimisation,
    ``limit_train_batches=1``): the datamodule's own training batches only drive the loop, so ``epochs`` means
    epochs over the k-shot set whatever the size of the train split.

Example:
    >>> from anomalib_vlm.models.supreme import Supreme
    >>> model = Supreme(class_names=["wood", "tile"], mode="mcm", backbone="anomalib-vlm-tiny", pretrained=None,
    ...                 image_size=128)
    >>> model.learning_type
    <LearningType.ZERO_SHOT: 'zero_shot'>
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from anomalib import LearningType
from anomalib.data import Batch
from anomalib.data.utils import read_image
from anomalib.metrics import AUROC, Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch.utilities.types import STEP_OUTPUT

from anomalib_vlm.data.utils import list_images, readable_name
from anomalib_vlm.metrics import FPR95, RAW_PRED_SCORE, IDAccuracy, RawScoreEvaluator, RawScorePostProcessor
from anomalib_vlm.models.components import ClipBackboneModule

from .loss import SupremeLoss
from .torch_model import SupremeMode, SupremeModel, check_class_names, class_name_key
from .visualizer import OODVisualizer

logger = logging.getLogger(__name__)


class Supreme(ClipBackboneModule, AnomalibModule):
    """SUPREME / SMMP / MCM few-shot OOD detection as an anomalib model.

    Args:
        class_names (Sequence[str] | None): ID class names (used in the prompts). ``None`` takes them from the
            datamodule: its ``class_names`` (:class:`~anomalib_vlm.data.OODDataModule`) or its non-empty
            ``category`` (one-class use on MVTec AD and similar). Defaults to ``None``.
        mode (str): ``"mcm"`` (text prototypes only, training-free), ``"smmp"`` (text + image prototypes,
            training-free), ``"supreme"`` (few-shot BPG + ITC tuning, S_GMP score) or ``"outlier_class"``
            (FodFoM: a K+1 head trained on the shots and fake outliers from the datamodule). Defaults to
            ``"supreme"``.
        backbone (str): open_clip model name. Defaults to ``"ViT-B-16"``.
        pretrained (str | None): open_clip tag, local checkpoint file, or ``None`` (seeded random weights).
            Defaults to ``"openai"``.
        image_size (int): square model input side. Defaults to ``224``.
        shots (int): images per ID class for the image prototypes and the tuning. Defaults to ``16``.
        temperature (float): tau of the MCM softmaxes and the training logits. Defaults to ``0.01``.
        prompt_template (str): fixed prompt of ``mcm`` / ``smmp``. Defaults to ``"a photo of a {}."``.
        context_length (int): BPG learnable context tokens. Defaults to ``16``.
        context_init (str | None): words that initialise the last context tokens. Defaults to ``"a photo of a"``.
        use_bpg (bool): biased prompt generation on. Defaults to ``True``.
        use_itc (bool): image-text consistency on. Defaults to ``True``.
        itc_weight (float): alpha, weight of the ITC losses. Defaults to ``0.005``.
        bias_weight (float): beta, weight of the bias loss. Defaults to ``0.1``.
        bias_init_std (float): initial spread sigma of the Gaussian bias (not in the paper). Defaults to ``1e-3``.
        outlier_score (str): ``outlier_class`` mode's ID score: ``"id_classes"`` (the ID classes' share of the K+1
            softmax; the outlier class takes its mass away) or ``"official"`` (FodFoM's MSP over all K+1 classes,
            which fails on a frozen CLIP: see the FodFoM README). Defaults to ``"id_classes"``.
        supcon (bool): ``outlier_class`` mode adds SupCon (temperature 0.1, 128-d projection) as the official
            training does. Defaults to ``False``.
        epochs (int): tuning epochs over the shots (and fakes). Defaults to ``50``.
        batch_size (int): shots per optimisation step. Defaults to ``32``.
        learning_rate (float): SGD learning rate of the prompts, ``m`` and the ITC maps (``outlier_class``: AdamW
            learning rate of the head). Defaults to ``0.002``.
        bias_learning_rate (float): SGD learning rate of the Gaussian bias (mu, sigma). Defaults to ``1e-4``.
        momentum (float): SGD momentum. Defaults to ``0.9``.
        weight_decay (float): SGD (``outlier_class``: AdamW) weight decay. Defaults to ``5e-4``.
        gradient_clip_norm (float | None): clip the gradient norm of every tuning step to this (not in the paper;
            the steps are taken by hand, so the Trainer's ``gradient_clip_val`` cannot apply). ``None`` = no
            clipping. Defaults to ``None``.
        few_shot_source (str | Mapping[str, Sequence[str]] | None): where the shots come from instead of the
            datamodule's train split: a folder with one sub-folder of images per class, or a mapping from class
            name to image files. Defaults to ``None``.
        cache_dir (str | None): open_clip weight cache folder. Defaults to open_clip's own.
        pre_processor, post_processor, evaluator, visualizer: anomalib components or flags. The pre-processor
            resizes (bicubic, shorter side) and centre-crops to ``image_size`` and normalises, as open_clip declares
            for the backbone's weights (:meth:`configure_pre_processor`); the
            evaluator reports image AUROC, FPR95 (ID-positive convention) and ID accuracy; the visualizer writes each
            image with its ID class, OOD score and decision.
    """

    trained_learning_type = LearningType.FEW_SHOT  # mode="supreme": tuned once, then a few-shot model

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        mode: str = "supreme",
        backbone: str = "ViT-B-16",
        pretrained: str | None = "openai",
        image_size: int = 224,
        shots: int = 16,
        temperature: float = 0.01,
        prompt_template: str = "a photo of a {}.",
        context_length: int = 16,
        context_init: str | None = "a photo of a",
        use_bpg: bool = True,
        use_itc: bool = True,
        itc_weight: float = 0.005,
        bias_weight: float = 0.1,
        bias_init_std: float = 1e-3,
        outlier_score: str = "id_classes",
        supcon: bool = False,
        epochs: int = 50,
        batch_size: int = 32,
        learning_rate: float = 0.002,
        bias_learning_rate: float = 1e-4,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        gradient_clip_norm: float | None = None,
        few_shot_source: str | Mapping[str, Sequence[str]] | None = None,
        cache_dir: str | None = None,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        mode = SupremeMode(mode).value  # plain string in the saved hyper-parameters
        if class_names is not None:
            class_names = check_class_names(class_names)
        for name, value in {"shots": shots, "epochs": epochs, "batch_size": batch_size}.items():
            if value < 1:
                msg = f"{name} must be >= 1, got {value}"
                raise ValueError(msg)
        if gradient_clip_norm is not None and gradient_clip_norm <= 0:
            msg = f"gradient_clip_norm must be > 0 (or None), got {gradient_clip_norm}"
            raise ValueError(msg)
        super().__init__(backbone, pretrained, image_size, pre_processor, post_processor, evaluator, visualizer)
        self.model = SupremeModel(
            backbone=backbone,
            pretrained=pretrained,
            image_size=image_size,
            mode=mode,
            temperature=temperature,
            prompt_template=prompt_template,
            context_length=context_length,
            context_init=context_init,
            use_bpg=use_bpg,
            use_itc=use_itc,
            bias_init_std=bias_init_std,
            outlier_score=outlier_score,
            supcon=supcon,
            cache_dir=cache_dir,
        )
        self.loss = SupremeLoss(temperature=temperature, itc_weight=itc_weight, bias_weight=bias_weight)
        # Manual optimisation: one Lightning step runs one epoch over the cached shot embeddings.
        self.automatic_optimization = False
        if class_names is not None:
            self.model.set_classes(class_names)

    # ------------------------------------------------------------------ anomalib configuration
    @staticmethod
    def configure_post_processor() -> PostProcessor:
        """Anomalib's post-processor (adaptive threshold, min-max normalisation from validation), keeping raw scores.

        The deployed ``pred_score`` / ``pred_label`` are anomalib's; the OOD score as the model computed it stays
        on test batches as ``raw_pred_score`` for the ranking metrics.
        """
        return RawScorePostProcessor()

    @staticmethod
    def configure_evaluator() -> Evaluator:
        """The paper's metrics: AUROC and FPR95 (FPR of OOD at 95 % TPR of ID) of the OOD score; ID accuracy.

        AUROC and FPR95 rank the model's own OOD scores (``raw_pred_score``): the normalised ones are clamped to
        ``[0, 1]``, which ties every score beyond half the validation range and distorts both.
        """
        test_metrics = [
            AUROC(fields=[RAW_PRED_SCORE, "gt_label"], prefix="image_", normalization=None),
            FPR95(fields=[RAW_PRED_SCORE, "gt_label"], prefix="image_"),
            IDAccuracy(fields=["pred_class", "gt_class"], prefix="id_"),
        ]
        return RawScoreEvaluator(test_metrics=test_metrics)

    @staticmethod
    def configure_visualizer() -> OODVisualizer:
        """Anomalib's image visualizer, each image captioned with its ID class, OOD score and OOD decision."""
        return OODVisualizer()

    @property
    def learning_type(self) -> LearningType:
        """``ZERO_SHOT`` (mcm), ``FEW_SHOT`` (smmp, tuned modes) or ``ONE_CLASS`` (supreme / outlier_class untuned)."""
        if self.model.mode == SupremeMode.MCM:
            return LearningType.ZERO_SHOT
        if self.model.mode == SupremeMode.SMMP:
            return LearningType.FEW_SHOT
        return super().learning_type

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """While tuning: ``epochs`` epochs of one step each (a full pass over the shots), one final validation."""
        if self.learning_type != LearningType.ONE_CLASS:
            return {}
        epochs = self.hparams.epochs
        return {
            "max_epochs": epochs,
            "limit_train_batches": 1,
            "check_val_every_n_epoch": epochs,
            "num_sanity_val_steps": 0,
        }

    def configure_optimizers(self) -> Any:
        """SGD over the prompt context, ``m`` and the ITC maps (and, slower, the bias); cosine decay per epoch.

        ``outlier_class``: AdamW over the K+1 head (as :meth:`OutlierClassHead.fit`), the same cosine decay.
        """
        if not self.model.mode.is_tuned:
            return None
        groups = self.model.learnable_parameters()
        if "head" in groups:
            optimizer = torch.optim.AdamW(
                groups["head"], lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
            )
        else:
            param_groups = [{"params": groups["prompts"]}]
            if "itc" in groups:
                param_groups.append({"params": groups["itc"]})
            if "bias" in groups:
                param_groups.append({"params": groups["bias"], "lr": self.hparams.bias_learning_rate})
            optimizer = torch.optim.SGD(
                param_groups,
                lr=self.hparams.learning_rate,
                momentum=self.hparams.momentum,
                weight_decay=self.hparams.weight_decay,
            )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.hparams.epochs)
        return [optimizer], [scheduler]

    # ------------------------------------------------------------------ classes and shots
    def _class_names_from(self, datamodule: Any) -> list[str]:
        names = getattr(datamodule, "class_names", None)
        if names:
            return check_class_names(names)
        category = getattr(datamodule, "category", None)
        if isinstance(category, str) and category.strip():
            return [readable_name(category)]
        msg = (
            "Supreme needs the ID class names: pass class_names=[...], or use a datamodule with class folders "
            "(anomalib_vlm.data.OODDataModule) or a category (e.g. MVTecAD(category='bottle'))."
        )
        raise ValueError(msg)

    def _check_datamodule_classes(self, datamodule: Any) -> None:
        """The model's classes must be the datamodule's, in its order: ``gt_class`` indexes them."""
        names = getattr(datamodule, "class_names", None)
        if not names:
            return
        if [class_name_key(name) for name in names] != [class_name_key(name) for name in self.model.class_names]:
            msg = (
                f"The model's ID classes {self.model.class_names} are not the datamodule's {list(names)} (same names, "
                "same order): its gt_class labels would pick the wrong prompts and shots. Leave class_names unset to "
                "take the datamodule's, or list them in its order."
            )
            raise ValueError(msg)

    def _read_shots(self, source: str | Mapping[str, Sequence[str]]) -> dict[str, torch.Tensor]:
        if isinstance(source, (str, Path)):
            folder = Path(source)
            if not folder.is_dir():
                msg = f"few_shot_source folder {folder} does not exist"
                raise FileNotFoundError(msg)
            source = {readable_name(sub.name): list_images(sub) for sub in sorted(folder.iterdir()) if sub.is_dir()}
        shots = {}
        for name, files in source.items():
            paths = list(files)[: self.hparams.shots]
            if not paths:
                msg = f"ID class '{name}' has no shots in few_shot_source: every ID class needs at least one image."
                raise ValueError(msg)
            shots[name] = torch.stack([self.pre_processor.transform(self._read_shot(name, path)) for path in paths])
        return shots

    @staticmethod
    def _read_shot(name: str, path: str | Path) -> torch.Tensor:
        """One shot image as an RGB float tensor; a missing or unreadable file is named in the error."""
        if not Path(path).is_file():
            msg = f"Shot image {path} of ID class '{name}' does not exist"
            raise FileNotFoundError(msg)
        try:
            return read_image(str(path), as_tensor=True)
        except OSError as error:  # PIL's UnidentifiedImageError is an OSError
            msg = f"Shot image {path} of ID class '{name}' cannot be read as an image: {error}"
            raise ValueError(msg) from None

    def _collect_shots(self, dataloader: Any) -> dict[str, torch.Tensor]:
        """Take up to ``shots`` images per class from a loader of anomalib batches (``gt_class`` if present).

        The datamodule applies only the model's resize to training images, not the normalisation, so the full
        pre-processing transform is applied here. In ``outlier_class`` mode the whole loader is read, and every
        image of class ``K`` (the fakes of a :class:`~anomalib_vlm.fodfom.FakeOutlierDataModule`) is encoded into
        the head's outlier class.
        """
        names = self.model.class_names
        wanted = self.hparams.shots
        wants_fakes = self.model.mode == SupremeMode.OUTLIER_CLASS
        fake_features: list[torch.Tensor] = []
        collected: dict[int, list[torch.Tensor]] = {index: [] for index in range(len(names))}
        for batch in dataloader:
            classes = getattr(batch, "gt_class", None)
            if classes is None:
                if len(names) > 1:
                    msg = (
                        f"{len(names)} ID classes but the training batches carry no gt_class: use a datamodule "
                        "with class folders (OODDataModule) or few_shot_source."
                    )
                    raise ValueError(msg)
                classes = torch.zeros(len(batch.image), dtype=torch.long)
            for image, index in zip(batch.image, classes.tolist(), strict=True):
                if 0 <= index < len(names) and len(collected[index]) < wanted:
                    collected[index].append(image)
            if wants_fakes and (fakes := classes == len(names)).any():
                images = self.pre_processor.transform(batch.image[fakes]).to(self.device)
                fake_features.append(self.model.encode_images(images))
            if not wants_fakes and all(len(images) >= wanted for images in collected.values()):
                break
        if wants_fakes:
            if not fake_features:
                msg = (
                    "mode='outlier_class' trains on fake outliers, but the training split holds no image of the "
                    f"outlier class (gt_class {len(names)}): use anomalib_vlm.fodfom.FakeOutlierDataModule with the "
                    "output of `anomalib-vlm fake-outliers`."
                )
                raise ValueError(msg)
            self.model.set_fakes(torch.cat(fake_features))
        shots = {}
        for index, name in enumerate(names):
            if not collected[index]:
                msg = f"ID class '{name}' has no shots: the training split holds no image of it."
                raise ValueError(msg)
            if len(collected[index]) < wanted:
                logger.warning("ID class '%s' has %d shots, fewer than shots=%d.", name, len(collected[index]), wanted)
            shots[name] = self.pre_processor.transform(torch.stack(collected[index]))
        return shots

    def set_shots(self, shots: Mapping[str, torch.Tensor]) -> None:
        """Give the k-shot ID images directly (class name to pre-processed ``[K, 3, H, W]`` tensors)."""
        self.model.set_shots(shots)

    def setup(self, stage: str | None = None) -> None:
        """Resolve the ID classes and, for smmp / supreme, collect and encode the shots (once).

        Raises:
            ValueError: class names that are not the datamodule's, no shots to be had, or tuning (``fit``)
                ``mode="supreme"`` on a single ID class.
        """
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if not self.model.class_names:
            self.model.set_classes(self._class_names_from(datamodule))
        else:
            self._check_datamodule_classes(datamodule)
        tunes = stage == "fit" and self.model.mode == SupremeMode.SUPREME and not bool(self.model.trained)
        if tunes and self.model.num_classes == 1:  # outlier_class has K+1 >= 2 classes
            msg = (
                f"mode='supreme' tunes its prompts with cross-entropy over the ID classes, which is constant for the "
                f"single class '{self.model.class_names[0]}'. For one-class use (e.g. an MVTec AD category) choose "
                "mode='smmp' (training-free text and image prototypes) or mode='mcm'."
            )
            raise ValueError(msg)
        needs_fakes = self.model.mode == SupremeMode.OUTLIER_CLASS and not self.model.has_fakes
        if self.model.mode == SupremeMode.MCM or (self.model.has_image_prototypes and not needs_fakes):
            return
        if self.hparams.few_shot_source is not None:
            shots = self._read_shots(self.hparams.few_shot_source)
        elif datamodule is not None:
            shots = self._collect_shots(datamodule.train_dataloader())
        else:
            mode = self.model.mode.value
            msg = f"mode='{mode}' needs shots: give few_shot_source, call set_shots(), or a datamodule."
            raise ValueError(msg)
        self.model.set_shots(shots)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """One epoch over the cached shot (and fake) embeddings (the datamodule's batch only drives the loop)."""
        del batch, args, kwargs  # These variables are not used.
        optimizer = self.optimizers()
        features, labels = self.model.shot_features, self.model.shot_labels
        head = self.model.outlier_head
        if head is not None:  # outlier_class: the shots, then the fakes as class K
            features, labels, bank_index = head.training_set(features, labels)
        order = torch.randperm(len(labels), device=labels.device)
        totals: dict[str, float] = {}
        for chunk in order.split(self.hparams.batch_size):
            if head is not None:
                losses = {"loss": head.loss(features[chunk], labels[chunk], bank_index[chunk])}
            else:
                losses = self.loss(self.model.training_outputs(features[chunk]), labels[chunk])
            optimizer.zero_grad()
            self.manual_backward(losses["loss"])
            optimizer.step()  # clips in on_before_optimizer_step
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach()) * len(chunk)
        self.log_dict({f"train_{name}": value / len(labels) for name, value in totals.items()}, prog_bar=True)
        return None

    def on_train_epoch_end(self) -> None:
        """Step the cosine schedule once per epoch."""
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip the step's gradient norm (``gradient_clip_norm``).

        Lightning calls this inside ``optimizer.step()``, after mixed precision has unscaled the gradients, so the
        norm is the real one; the Trainer's own ``gradient_clip_val`` does not apply to manual optimisation.
        """
        if self.hparams.gradient_clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.gradient_clip_norm)

    # ------------------------------------------------------------------ checkpoints (see ClipBackboneModule)
    def backbone_identity(self) -> dict[str, Any]:
        """The backbone's identity plus the ID class names, which the text prototypes depend on."""
        return {**super().backbone_identity(), "class_names": list(self.model.class_names)}

    def restore_from_identity(self, saved: Mapping[str, Any]) -> None:
        """Rebuild the class prompts for the checkpoint's classes before its prototypes load.

        ``Engine.test(ckpt_path=...)`` restores after ``setup``, so the classes are checked against the
        datamodule's here as well.
        """
        if saved.get("class_names"):
            self.model.set_classes(saved["class_names"])
            if self._trainer is not None:
                self._check_datamodule_classes(getattr(self._trainer, "datamodule", None))
