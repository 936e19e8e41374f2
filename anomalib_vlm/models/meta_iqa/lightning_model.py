# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""GRMP-IQA: few-shot image quality assessment with meta-learned CLIP prompts (Li et al., arXiv 2409.05381).

Two phases:

1. :meth:`MetaIqa.meta_pretrain` learns the text context and the deep visual prompts over many small tasks, one
   per distortion type (first-order, Reptile-like: per task the prompts restart from the meta weights, adapt with
   Adam on the task's images, one support step and one query step in turn as the official code does, and the meta
   weights move a step toward the mean adapted weights). The best meta weights are selected on validation data,
   never on the test set.
2. ``Engine.fit`` fine-tunes the text context and the last blocks of both CLIP towers on a few MOS-labelled
   images (50 by default), with the quality gradient regularised against a semantic anchor (KL to a frozen
   zero-shot CLIP over nine scene prompts), so that the few images teach quality rather than content.

How it fits anomalib:
    The prediction is a quality score in ``[0, 1]`` (higher = better). anomalib's convention is "higher = more
    anomalous", so ``pred_score = 1 - quality`` and ``pred_label = quality < quality_threshold`` (a rejected
    capture); :class:`~anomalib_vlm.data.IqaBatch` exposes the quality as ``pred_quality``. Scores are not
    min-max normalised (they are calibrated probabilities already), and the threshold is fixed, so the model
    needs no validation pass: it reports :attr:`~anomalib.LearningType.ONE_CLASS` and ``Engine.fit`` fine-tunes,
    while ``Engine.test`` / ``predict`` score directly.

Example:
    >>> from anomalib_vlm.models.meta_iqa import MetaIqa
    >>> model = MetaIqa(backbone="anomalib-vlm-tiny", pretrained=None, image_size=64, visual_prompt_tokens=4)
    >>> model.learning_type
    <LearningType.ONE_CLASS: 'one_class'>
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch.utilities.types import STEP_OUTPUT
from scipy.stats import spearmanr
from torch.utils.data import DataLoader, Dataset

from anomalib_vlm.clip.backbone import describe_loaded
from anomalib_vlm.data import IqaBatch, IqaDataset, quality_from_score
from anomalib_vlm.errors import CheckpointMismatchError
from anomalib_vlm.metrics import RawScoreEvaluator, RawScorePostProcessor, raw_field
from anomalib_vlm.metrics.srcc_plcc import PLCC, SRCC
from anomalib_vlm.models.components import CHECKPOINT_KEY, ClipBackboneModule
from anomalib_vlm.official_checkpoints import read_checkpoint

from .loss import GradientRule, quality_loss, regularize_gradients, semantic_loss
from .torch_model import MetaIqaModel
from .visualizer import QualityVisualizer

logger = logging.getLogger(__name__)

_PROMPT_FILE_KEY = "meta_iqa_prompts"
META_INNER_ORDERS = ("interleaved", "support_then_query")
"""Orders of the inner Adam steps of a meta-training task (see ``meta_inner_order``)."""


class MetaIqa(ClipBackboneModule, AnomalibModule):
    """GRMP-IQA as an anomalib model: quality score in ``[0, 1]``, ``pred_score = 1 - quality``.

    Args:
        backbone (str): open_clip model name. Defaults to ``"ViT-B-16"``.
        pretrained (str | None): open_clip tag, local checkpoint file, or ``None`` (seeded random weights).
            Defaults to ``"openai"``.
        image_size (int): square model input. Defaults to ``224``.
        prompt_context_length (int): learnable context words shared by the two quality prompts. Defaults to ``4``.
        visual_prompt_tokens (int): VPT-deep prompt tokens per vision block. Defaults to ``100``.
        visual_prompt_depth (int | None): vision blocks with prompts; ``None`` = all (12 for ViT-B). Defaults to
            ``None``.
        visual_prompt_dropout (float): dropout on the projected visual prompts. Defaults to ``0.1``.
        visual_prompt_dropout_per_sample (bool): one dropout mask per image (the official code); ``False`` shares
            one mask across the batch. Defaults to ``True``.
        meta_prompts (str | None): file written by :meth:`save_prompts` (meta-pre-trained prompts), or an official
            GRMP-IQA checkpoint (``best_prompt.pt``), to start from. Defaults to ``None`` (random prompts).
        finetune_blocks (int): last blocks of each tower trained in fine-tuning. Defaults to ``4``.
        gradient_rule (str): ``"grmp"`` (official), ``"prograd"`` or ``"none"`` (see ``loss.py``). Defaults to
            ``"grmp"``.
        gradient_lambda (float): λ of the gradient regularisation. Defaults to ``5.0``.
        kl_temperature (float): temperature of the scene KL. Defaults to ``1.0``.
        scene_classes (list[str] | None): the semantic anchor's scenes ("a photo of a {scene}"), at least two;
            ``None`` = the nine words of the official code (``indoor``, ``night``, ``still_life``, ...);
            ``torch_model.SPELLED_OUT_SCENE_CLASSES`` spells three out as LIQE's paper does. Set them to your
            content, e.g. the parts your line inspects. Defaults to ``None``.
        learning_rate (float): SGD learning rate of fine-tuning. Defaults to ``1e-3``.
        weight_decay (float): SGD weight decay. Defaults to ``1e-4``.
        momentum (float): SGD momentum (the official code uses plain SGD). Defaults to ``0.0``.
        epochs (int): fine-tuning epochs (passed to the trainer as ``max_epochs``; the official code runs up to
            2000 with a test-set-driven stop we do not copy). Defaults to ``2000``.
        meta_epochs (int): meta-pre-training epochs. Defaults to ``50``.
        meta_inner_lr (float): Adam learning rate of the per-task adaptation. Defaults to ``1e-4``.
        meta_outer_lr (float): step of the meta weights toward the mean adapted weights. Defaults to ``0.01``.
        meta_support_ratio (float): share of a task's images used as support (the rest is query). Defaults to ``0.8``.
        meta_support_batch_size (int): Defaults to ``75``.
        meta_query_batch_size (int): Defaults to ``50``.
        meta_inner_order (str): order of a task's inner Adam steps. ``"interleaved"`` (the official code): after
            each support batch one query batch, the query batches cycling, so a task takes twice as many steps as
            it has support batches. ``"support_then_query"``: every support batch, then every query batch once.
            Defaults to ``"interleaved"``.
        quality_threshold (float): captures with quality below it get ``pred_label = True`` (rejected).
            Defaults to ``0.5``.
        seed (int): seed of the meta-training task order and splits. Defaults to ``0``.
        cache_dir (str | None): open_clip weight cache. Defaults to open_clip's own.
        pre_processor (PreProcessor | bool): Defaults to ``True`` (resize to ``image_size``, the normalisation of
            the backbone's weights; see :meth:`configure_pre_processor`).
        post_processor (PostProcessor | bool): Defaults to ``True`` (no normalisation, fixed quality threshold).
        evaluator (Evaluator | bool): Defaults to ``True`` (SRCC and PLCC on validation and test).
        visualizer (Visualizer | bool): Defaults to ``True`` (each tested image saved with its quality caption).
    """

    # The whole capture is judged: squash resize. The official code normalises with ImageNet statistics on 224 crops
    # of 244-pixel images; the statistics the weights were trained with are used instead (README, "Choices").
    resize_mode = "squash"

    def __init__(
        self,
        backbone: str = "ViT-B-16",
        pretrained: str | None = "openai",
        image_size: int = 224,
        prompt_context_length: int = 4,
        visual_prompt_tokens: int = 100,
        visual_prompt_depth: int | None = None,
        visual_prompt_dropout: float = 0.1,
        visual_prompt_dropout_per_sample: bool = True,
        meta_prompts: str | None = None,
        finetune_blocks: int = 4,
        gradient_rule: str = "grmp",
        gradient_lambda: float = 5.0,
        kl_temperature: float = 1.0,
        scene_classes: list[str] | None = None,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.0,
        epochs: int = 2000,
        meta_epochs: int = 50,
        meta_inner_lr: float = 1e-4,
        meta_outer_lr: float = 0.01,
        meta_support_ratio: float = 0.8,
        meta_support_batch_size: int = 75,
        meta_query_batch_size: int = 50,
        meta_inner_order: str = "interleaved",
        quality_threshold: float = 0.5,
        seed: int = 0,
        cache_dir: str | None = None,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        gradient_rule = GradientRule(gradient_rule).value  # plain string in the saved hyper-parameters
        if not 0.0 <= quality_threshold <= 1.0:
            msg = f"quality_threshold must be in [0, 1], got {quality_threshold}"
            raise ValueError(msg)
        if epochs < 1 or meta_epochs < 0:
            msg = f"epochs must be >= 1 and meta_epochs >= 0, got {epochs} and {meta_epochs}"
            raise ValueError(msg)
        if meta_inner_order not in META_INNER_ORDERS:
            msg = f"meta_inner_order must be one of {list(META_INNER_ORDERS)}, got {meta_inner_order!r}"
            raise ValueError(msg)
        if not 0.0 < meta_support_ratio < 1.0:
            msg = f"meta_support_ratio must be in (0, 1), got {meta_support_ratio}"
            raise ValueError(msg)
        if post_processor is True:
            post_processor = self.configure_post_processor(quality_threshold)
        super().__init__(backbone, pretrained, image_size, pre_processor, post_processor, evaluator, visualizer)
        self.model = MetaIqaModel(
            backbone=backbone,
            pretrained=pretrained,
            image_size=image_size,
            prompt_context_length=prompt_context_length,
            visual_prompt_tokens=visual_prompt_tokens,
            visual_prompt_depth=visual_prompt_depth,
            visual_prompt_dropout=visual_prompt_dropout,
            visual_prompt_dropout_per_sample=visual_prompt_dropout_per_sample,
            finetune_blocks=finetune_blocks,
            scene_classes=scene_classes,
            cache_dir=cache_dir,
        )
        # Two gradients per step are combined by hand, so Lightning must not call backward itself.
        self.automatic_optimization = False
        if meta_prompts:
            self.load_prompts(meta_prompts)

    # ------------------------------------------------------------------ anomalib configuration
    @staticmethod
    def configure_post_processor(quality_threshold: float = 0.5) -> PostProcessor:
        """No min-max normalisation; ``pred_label = pred_score > 1 - quality_threshold`` (quality below it).

        The quality as the model computed it is kept as ``raw_pred_quality`` for SRCC / PLCC, so the metrics stay
        on the model's own scores if normalisation is switched on.

        Args:
            quality_threshold (float): quality under which a capture is rejected. Defaults to ``0.5``.
        """
        return RawScorePostProcessor(
            raw_fields=("pred_score", "pred_quality"),
            enable_normalization=False,
            image_sensitivity=quality_threshold,
        )

    @staticmethod
    def configure_evaluator() -> Evaluator:
        """SRCC and PLCC between the model's own predicted quality (``raw_pred_quality``) and MOS, val and test."""
        fields = [raw_field("pred_quality"), "gt_quality"]
        return RawScoreEvaluator(
            val_metrics=[SRCC(fields=fields, prefix="val_"), PLCC(fields=fields, prefix="val_")],
            test_metrics=[SRCC(fields=fields, prefix="test_"), PLCC(fields=fields, prefix="test_")],
        )

    @staticmethod
    def configure_visualizer() -> QualityVisualizer:
        """Anomalib's image visualizer, one panel per image captioned with its quality (no anomaly map to draw)."""
        return QualityVisualizer()

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """``epochs`` epochs, one validation at the end (metrics only, nothing is selected on it)."""
        epochs = self.hparams.epochs
        return {"max_epochs": epochs, "check_val_every_n_epoch": epochs, "num_sanity_val_steps": 0}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD over the text context and the last blocks of both towers (the official fine-tuning set)."""
        return torch.optim.SGD(
            self.model.set_trainable("finetune"),
            lr=self.hparams.learning_rate,
            weight_decay=self.hparams.weight_decay,
            momentum=self.hparams.momentum,
        )

    # ------------------------------------------------------------------ fine-tuning
    def finetune_gradients(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
        """Losses and regularised gradients of one fine-tuning step (no parameter is changed).

        Args:
            images (torch.Tensor): ``[B, 3, H, W]`` pre-processed images.
            targets (torch.Tensor): ``[B]`` quality in ``[0, 1]``.

        Returns:
            dict[str, Any]: ``params`` (the fine-tuned parameters), ``grads`` (one per parameter),
            ``quality_loss`` and ``semantic_loss`` (detached; the latter ``nan`` when the rule is ``"none"``).
        """
        params = [p for p in self.model.finetune_parameters() if p.requires_grad] or self.model.set_trainable(
            "finetune"
        )
        features = self.model.image_features(images)
        loss_q = quality_loss(self.model.quality_logits(features), targets)
        rule = GradientRule(self.hparams.gradient_rule)
        if rule == GradientRule.NONE:
            grads = list(torch.autograd.grad(loss_q, params, allow_unused=True))
            return {
                "params": params,
                "grads": grads,
                "quality_loss": loss_q.detach(),
                "semantic_loss": torch.tensor(math.nan),
            }
        teacher = self.model.teacher_scene_logits(images)
        loss_s = semantic_loss(self.model.scene_logits(features), teacher, self.hparams.kl_temperature)
        # Explicit per-parameter gradients: each tensor is paired with its own g_q and g_s (the official code's
        # zero_grad/None pairing bug cannot happen).
        grads_q = torch.autograd.grad(loss_q, params, retain_graph=True, allow_unused=True)
        grads_s = torch.autograd.grad(loss_s, params, allow_unused=True)
        grads = regularize_gradients(grads_q, grads_s, rule, self.hparams.gradient_lambda)
        return {"params": params, "grads": grads, "quality_loss": loss_q.detach(), "semantic_loss": loss_s.detach()}

    def training_step(self, batch: IqaBatch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """One regularised SGD step on a batch of MOS-labelled images (``gt_quality``)."""
        del args, kwargs  # These variables are not used.
        if getattr(batch, "gt_quality", None) is None:
            msg = "MetaIqa fine-tunes on MOS-labelled images: the batch has no gt_quality (use IqaDataModule)."
            raise ValueError(msg)
        optimizer = self.optimizers()
        step = self.finetune_gradients(batch.image, batch.gt_quality)
        optimizer.zero_grad()
        for param, grad in zip(step["params"], step["grads"], strict=True):
            param.grad = torch.zeros_like(param) if grad is None else grad
        optimizer.step()
        self.log_dict(
            {"train_quality_loss": step["quality_loss"], "train_semantic_loss": step["semantic_loss"]},
            prog_bar=True,
            batch_size=len(batch.image),
        )
        return step["quality_loss"]

    def on_train_end(self) -> None:
        """Freeze everything again and cache the fine-tuned text features."""
        self.model.set_trainable("none")
        self.model.refresh_cached_features()

    # ------------------------------------------------------------------ meta-pre-training
    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """The pre-processor's transform, as the Lightning hooks apply it, for loops outside Lightning."""
        return self.pre_processor.transform(images.to(self.device))

    @torch.no_grad()
    def predict_quality(self, dataset: Dataset, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """Predicted and true quality of every image of an :class:`~anomalib_vlm.data.IqaDataset`.

        Returns:
            tuple[np.ndarray, np.ndarray]: ``(pred_quality, gt_quality)``, in dataset order.
        """
        was_training = self.model.training
        self.model.eval()
        predicted, truth = [], []
        for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=IqaBatch.collate):
            predicted.append(quality_from_score(self.model(self._prepare(batch.image)).pred_score.cpu()))
            truth.append(batch.gt_quality)
        self.model.train(was_training)
        return torch.cat(predicted).numpy(), torch.cat(truth).numpy()

    def evaluate_srcc(self, dataset: Dataset) -> float:
        """SRCC of the model's quality on a labelled dataset (``nan`` when undefined)."""
        predicted, truth = self.predict_quality(dataset)
        value = spearmanr(predicted, truth).statistic
        return float(value) if np.isfinite(value) else math.nan

    def adapt_to_task(self, params: list[torch.nn.Parameter], task: IqaDataset, generator: torch.Generator) -> None:
        """Inner loop: Adam on the task's support and query images, in ``meta_inner_order``.

        ``"interleaved"`` is the official order: each support batch is followed by one query batch, the query
        loader starting again (reshuffled) when it runs out. ``"support_then_query"`` runs every support batch,
        then every query batch once.
        """
        order = torch.randperm(len(task), generator=generator).tolist()
        cut = min(len(order) - 1, max(1, round(len(order) * self.hparams.meta_support_ratio)))
        optimizer = torch.optim.Adam(params, lr=self.hparams.meta_inner_lr)

        def loader(indices: list[int], size: int) -> DataLoader:
            return DataLoader(
                torch.utils.data.Subset(task, indices),
                batch_size=size,
                shuffle=True,
                generator=generator,
                collate_fn=IqaBatch.collate,
            )

        support = loader(order[:cut], self.hparams.meta_support_batch_size)
        query = loader(order[cut:], self.hparams.meta_query_batch_size)
        if self.hparams.get("meta_inner_order", "interleaved") == "support_then_query":
            for batch in (*support, *query):
                self._inner_step(batch, optimizer)
            return
        query_batches = iter(query)
        for batch in support:
            self._inner_step(batch, optimizer)
            query_batch = next(query_batches, None)
            if query_batch is None:  # the query loader ran out: start it again, as the official loop does
                query_batches = iter(query)
                query_batch = next(query_batches)
            self._inner_step(query_batch, optimizer)

    def _inner_step(self, batch: IqaBatch, optimizer: torch.optim.Optimizer) -> None:
        """One Adam step of the quality loss on a batch."""
        logits = self.model.quality_logits(self.model.image_features(self._prepare(batch.image)))
        loss = quality_loss(logits, batch.gt_quality.to(self.device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def meta_pretrain(
        self,
        tasks: Mapping[str, IqaDataset],
        val_data: IqaDataset | Mapping[str, IqaDataset] | None = None,
        epochs: int | None = None,
    ) -> list[dict[str, float]]:
        """Meta-learn the prompts over tasks (one per distortion type), first-order and Reptile-like.

        Each epoch, for every task the prompt parameters restart from the meta weights (unlike the official code,
        which never resets them), adapt on the task, and their change is stored; the meta weights then move
        ``meta_outer_lr`` times the mean change. With ``val_data`` the epoch with the best validation SRCC is kept
        (the official code selects on the test set); without it, the last.

        Args:
            tasks (Mapping[str, IqaDataset]): task name (distortion type) to its labelled images.
            val_data (IqaDataset | Mapping[str, IqaDataset] | None): validation images for the selection: one
                dataset (SRCC over all of it), or validation tasks by name (mean of the per-task SRCC, so a type
                that is easy to rank cannot hide one that is not). Defaults to ``None``.
            epochs (int | None): overrides ``meta_epochs``. Defaults to ``None``.

        Returns:
            list[dict[str, float]]: per epoch, ``epoch`` and (with ``val_data``) ``val_srcc`` (with validation
            tasks also ``val_srcc/<task>``).

        Raises:
            ValueError: no task, or a task with fewer than two images.
        """
        if not tasks:
            msg = "meta_pretrain needs at least one task"
            raise ValueError(msg)
        small = [name for name, task in tasks.items() if len(task) < 2]
        if small:
            msg = f"Every meta-training task needs at least 2 images (support and query); too small: {small}"
            raise ValueError(msg)
        epochs = self.hparams.meta_epochs if epochs is None else epochs
        generator = torch.Generator().manual_seed(self.hparams.seed)
        params = self.model.set_trainable("meta")
        self.model.train()
        meta = [p.detach().clone() for p in params]
        best_state, best_srcc, history = [m.clone() for m in meta], -math.inf, []
        names = sorted(tasks)
        for epoch in range(epochs):
            deltas = [torch.zeros_like(m) for m in meta]
            for index in torch.randperm(len(names), generator=generator).tolist():
                with torch.no_grad():
                    for param, value in zip(params, meta, strict=True):
                        param.copy_(value)  # reset per task: every task adapts from the meta weights
                self.adapt_to_task(params, tasks[names[index]], generator)
                with torch.no_grad():
                    for delta, param, value in zip(deltas, params, meta, strict=True):
                        delta.add_(param - value)
            with torch.no_grad():
                for value, delta in zip(meta, deltas, strict=True):
                    value.add_(delta, alpha=self.hparams.meta_outer_lr / len(names))
                for param, value in zip(params, meta, strict=True):
                    param.copy_(value)
            record = {"epoch": float(epoch)}
            if isinstance(val_data, Mapping):
                per_task = {f"val_srcc/{name}": self.evaluate_srcc(task) for name, task in sorted(val_data.items())}
                record["val_srcc"] = float(np.nanmean(list(per_task.values())))
                record.update(per_task)
            elif val_data is not None:
                record["val_srcc"] = self.evaluate_srcc(val_data)
            # Without validation data keep the last epoch; an undefined SRCC (constant scores) never wins.
            score = record.get("val_srcc", math.nan)
            score = score if math.isfinite(score) else -math.inf
            if val_data is None or epoch == 0 or score > best_srcc:
                best_srcc, best_state = score, [m.clone() for m in meta]
            history.append(record)
            logger.info("meta-pretraining epoch %d: %s", epoch, record)
        with torch.no_grad():
            for param, value in zip(params, best_state, strict=True):
                param.copy_(value)
        self.model.set_trainable("none")
        self.model.eval()
        return history

    # ------------------------------------------------------------------ prompts files
    def prompt_state(self) -> dict[str, torch.Tensor]:
        """The meta-learned prompts (text context and visual prompts) as a state dict."""
        prefixes = ("quality_prompts.", "visual_prompts.")
        return {k: v.detach().clone() for k, v in self.model.state_dict().items() if k.startswith(prefixes)}

    def save_prompts(self, path: str | Path) -> Path:
        """Write the meta-pre-trained prompts (for ``meta_prompts=``) with the backbone's identity."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({_PROMPT_FILE_KEY: self.prompt_state(), CHECKPOINT_KEY: self.backbone_identity()}, path)
        return path

    def load_prompts(self, path: str | Path) -> None:
        """Load prompts written by :meth:`save_prompts`, or an official GRMP-IQA checkpoint.

        An official file (``best_prompt.pt`` of the official ``pretrain.py``, or a fine-tuned ``CustomCLIP`` state
        dict) goes through :func:`~anomalib_vlm.models.meta_iqa.official.load_official_checkpoint`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is no meta-prompt file that can be read safely.
            CheckpointMismatchError: the prompts were learned on another backbone or with another prompt layout.
        """
        path = Path(path)
        if not path.is_file():
            msg = f"Meta-prompt file not found: {path}"
            raise FileNotFoundError(msg)
        saved = read_checkpoint(path, f"{type(self).__name__} meta-prompt file or official GRMP-IQA checkpoint")
        if _PROMPT_FILE_KEY not in saved:
            from .official import load_official_checkpoint

            try:
                load_official_checkpoint(self, path)
            except CheckpointMismatchError as error:
                msg = (
                    f"{path} is not a meta-prompt file (see save_prompts) nor an official GRMP-IQA checkpoint: "
                    f"found {describe_loaded(saved)}. {error}"
                )
                raise CheckpointMismatchError(msg) from None
            return
        if not isinstance(saved.get(_PROMPT_FILE_KEY), Mapping):
            msg = f"{path} is not a meta-prompt file (see save_prompts): found {describe_loaded(saved)}"
            raise ValueError(msg)
        self.check_backbone_identity(saved.get(CHECKPOINT_KEY))
        own = self.model.state_dict()
        for key, value in saved[_PROMPT_FILE_KEY].items():
            if key not in own or own[key].shape != value.shape:
                msg = f"Prompt tensor '{key}' in {path} does not fit this model (prompt settings differ)"
                raise CheckpointMismatchError(msg)
        self.model.load_state_dict(saved[_PROMPT_FILE_KEY], strict=False)
        self.model.refresh_cached_features()

    # ------------------------------------------------------------------ checkpoints (see ClipBackboneModule)
    def kept_frozen_keys(self) -> set[str]:
        """The fine-tuned CLIP blocks belong in the checkpoint once fine-tuning changed them."""
        return {f"model.{key}" for key in self.model.finetuned_state_keys()} if bool(self.model.trained) else set()

    def copy(self) -> MetaIqa:
        """A deep copy (same backbone object semantics, independent prompts and blocks), e.g. to compare runs."""
        return copy.deepcopy(self)
