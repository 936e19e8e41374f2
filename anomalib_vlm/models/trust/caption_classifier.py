# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Caption classifiers: trained on the labelled source domain's captions, they pseudo-label the target domain.

Two interchangeable implementations of :class:`CaptionClassifier`:

* :class:`ClipCaptionClassifier` (the default): a copy of the model's own CLIP text tower, fine-tuned with a
  linear head. No second network to download.
* :class:`DistilBertCaptionClassifier`: a DistilBERT sequence classifier fine-tuned end to end, as the official
  TRUST code does (``distilbert-base-uncased``), through ``transformers`` (optional dependency, extra ``trust``).

Both are trained once, before the adaptation, and frozen while it runs: their target pseudo-labels and caption
features are computed once and cached.
"""

from __future__ import annotations

import copy
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anomalib_vlm.clip import tokenize
from anomalib_vlm.clip.prompts import encode_text_embeddings

logger = logging.getLogger(__name__)


def _check_captions(captions: Sequence[str], what: str) -> list[str]:
    captions = [str(caption) for caption in captions]
    if not captions:
        msg = f"{what}: no captions given"
        raise ValueError(msg)
    empty = [index for index, caption in enumerate(captions) if not caption.strip()]
    if empty:
        msg = f"{what}: captions at positions {empty[:10]} are empty; every image needs a caption."
        raise ValueError(msg)
    return captions


def balanced_batches(labels: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of index batches drawn with class-balanced probabilities (with replacement).

    Every class is drawn equally often in expectation, so a rare source class is not drowned by common ones (the
    official caption classifier trains with a class-balanced sampler).
    """
    counts = torch.bincount(labels)
    probabilities = (1.0 / counts.clamp_min(1).float())[labels]
    draws = torch.multinomial(probabilities, len(labels), replacement=True, generator=generator)
    return list(draws.split(batch_size))


def train_classifier(
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    parameters: Sequence[nn.Parameter],
    labels: torch.Tensor,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    gradient_clip_norm: float | None,
    seed: int,
) -> float:
    """Cross-entropy training with AdamW, a per-step cosine schedule without warm-up and class-balanced batches.

    Args:
        logits_of (Callable[[torch.Tensor], torch.Tensor]): index batch -> ``[b, C]`` logits.
        parameters (Sequence[nn.Parameter]): what is trained.
        labels (torch.Tensor): ``[N]`` class indices.
        epochs (int): passes over the data.
        batch_size (int): samples per step.
        learning_rate (float): AdamW's initial learning rate.
        weight_decay (float): AdamW's weight decay.
        gradient_clip_norm (float | None): gradient-norm clipping (``None``: none).
        seed (int): seed of the batches.

    Returns:
        float: the mean loss of the last epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    parameters = list(parameters)
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    total = max(1, epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    last = 0.0
    for _ in range(epochs):
        losses = []
        for indices in balanced_batches(labels.cpu(), batch_size, generator):
            loss = F.cross_entropy(logits_of(indices), labels[indices.to(labels.device)])
            optimizer.zero_grad()
            loss.backward()
            if gradient_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, gradient_clip_norm)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        last = sum(losses) / len(losses)
    return last


class CaptionClassifier(nn.Module, ABC):
    """Maps captions to class logits (pseudo-labels) and to features (the soft-contrastive positives).

    Holds the training options that every classifier shares (the official fine-tuning: AdamW, per-step cosine
    decay, class-balanced batches) and trains with them in :meth:`train_on`.

    Args:
        epochs (int): training epochs over the source captions. Defaults to ``20`` (official).
        batch_size (int): captions per step. Defaults to ``64`` (official).
        learning_rate (float): AdamW learning rate. Defaults to ``5e-5`` (official).
        weight_decay (float): AdamW weight decay. Defaults to ``3e-4`` (official).
        gradient_clip_norm (float | None): gradient-norm clipping. Defaults to ``1.0`` (official).
        seed (int): seed of the head's initialisation and of the batches. Defaults to ``0``.
    """

    num_classes: int

    def __init__(
        self,
        epochs: int = 20,
        batch_size: int = 64,
        learning_rate: float = 5e-5,
        weight_decay: float = 3e-4,
        gradient_clip_norm: float | None = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.epochs, self.batch_size = epochs, batch_size
        self.learning_rate, self.weight_decay = learning_rate, weight_decay
        self.gradient_clip_norm, self.seed = gradient_clip_norm, seed
        self.num_classes = 0

    def train_on(
        self,
        logits_of: Callable[[torch.Tensor], torch.Tensor],
        parameters: Sequence[nn.Parameter],
        labels: torch.Tensor,
    ) -> float:
        """:func:`train_classifier` with this classifier's options; returns the last epoch's mean loss."""
        with torch.enable_grad():
            return train_classifier(
                logits_of,
                parameters,
                labels,
                self.epochs,
                self.batch_size,
                self.learning_rate,
                self.weight_decay,
                self.gradient_clip_norm,
                self.seed,
            )

    @abstractmethod
    def fit(self, captions: Sequence[str], labels: Sequence[int] | torch.Tensor, num_classes: int) -> float:
        """Train on labelled (source) captions; returns the last epoch's mean loss."""

    @abstractmethod
    def logits(self, captions: Sequence[str]) -> torch.Tensor:
        """``[N, C]`` class logits of captions (no gradient)."""

    @abstractmethod
    def features(self, captions: Sequence[str]) -> torch.Tensor:
        """``[N, F]`` L2-normalised caption features (no gradient)."""

    def predict(self, captions: Sequence[str]) -> torch.Tensor:
        """``[N]`` pseudo-labels: the most likely class of each caption."""
        return self.logits(captions).argmax(dim=1)


class _TextTower(nn.Module):
    """A trainable copy of a CLIP model's text tower (what :func:`encode_text_embeddings` reads)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.token_embedding = copy.deepcopy(clip.token_embedding).requires_grad_(True)
        self.positional_embedding = nn.Parameter(clip.positional_embedding.detach().clone())
        self.transformer = copy.deepcopy(clip.transformer).requires_grad_(True)
        self.ln_final = copy.deepcopy(clip.ln_final).requires_grad_(True)
        projection = clip.text_projection
        if isinstance(projection, nn.Module):
            self.text_projection = copy.deepcopy(projection).requires_grad_(True)
        else:
            self.text_projection = nn.Parameter(projection.detach().clone())
        self.register_buffer("attn_mask", None if clip.attn_mask is None else clip.attn_mask.clone(), persistent=False)
        self.text_pool_type = getattr(clip, "text_pool_type", "argmax")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return encode_text_embeddings(self, self.token_embedding(tokens), tokens)


class ClipCaptionClassifier(CaptionClassifier):
    """Our CLIP text tower, fine-tuned with a linear head on the source captions (DistilBERT's role, officially).

    The tower is a copy: the model's own CLIP (whose text tower gives the uncertainty weights) stays frozen. All of
    the copy is fine-tuned, as the official code fine-tunes all of DistilBERT (with the token embedding frozen, the
    small CLIP's pseudo-labels were 0.66 accurate instead of 0.93 on the night shift).

    Args:
        clip (nn.Module): the open_clip model whose text tower is copied.
        backbone (str): its name, for the tokenizer.
        epochs (int): training epochs over the source captions. Defaults to ``20`` (official).
        batch_size (int): captions per step. Defaults to ``64`` (official).
        learning_rate (float): AdamW learning rate. Defaults to ``5e-5`` (official, for a pretrained text
            transformer; the small CLIP's narrow text tower needs ``3e-3``).
        weight_decay (float): AdamW weight decay. Defaults to ``3e-4`` (official).
        gradient_clip_norm (float | None): gradient-norm clipping. Defaults to ``1.0`` (official).
        seed (int): seed of the head's initialisation and of the batches. Defaults to ``0``.
    """

    feature_scale = 10.0
    """Normalised text features are scaled by this before the head, so its logits start in a useful range."""

    def __init__(
        self,
        clip: nn.Module,
        backbone: str,
        epochs: int = 20,
        batch_size: int = 64,
        learning_rate: float = 5e-5,
        weight_decay: float = 3e-4,
        gradient_clip_norm: float | None = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(epochs, batch_size, learning_rate, weight_decay, gradient_clip_norm, seed)
        self._clip = [clip]  # the model's frozen CLIP: copied at fit(), never trained here
        self.backbone = backbone
        self.tower: _TextTower | None = None
        self.head: nn.Linear | None = None

    def _encode(self, captions: Sequence[str]) -> torch.Tensor:
        device = self.head.weight.device
        tokens = tokenize(self.backbone, captions).to(device)
        return F.normalize(self.tower(tokens).float(), dim=-1)

    def fit(self, captions: Sequence[str], labels: Sequence[int] | torch.Tensor, num_classes: int) -> float:
        """Fine-tune a copy of the text tower and a linear head on the captions."""
        captions = _check_captions(captions, "ClipCaptionClassifier")
        clip = self._clip[0]
        device = clip.token_embedding.weight.device
        self.tower = _TextTower(clip).to(device).train()
        embed_dim = int(clip.text_projection.shape[-1])
        self.num_classes = num_classes
        self.head = nn.Linear(embed_dim, num_classes).to(device)
        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=generator) * 0.01)
            self.head.bias.zero_()
        tokens = tokenize(self.backbone, captions).to(device)
        labels = torch.as_tensor(labels, dtype=torch.long, device=device)
        trained = [p for p in self.tower.parameters() if p.requires_grad] + list(self.head.parameters())

        def logits_of(indices: torch.Tensor) -> torch.Tensor:
            features = F.normalize(self.tower(tokens[indices.to(device)]).float(), dim=-1)
            return self.head(self.feature_scale * features)

        loss = self.train_on(logits_of, trained, labels)
        self.tower.eval()
        return loss

    def _check_trained(self) -> None:
        if self.head is None or self.tower is None:
            msg = "ClipCaptionClassifier is not trained: call fit() on the source captions first."
            raise RuntimeError(msg)

    @torch.no_grad()
    def features(self, captions: Sequence[str], chunk: int = 256) -> torch.Tensor:
        """``[N, D]`` normalised embeddings of the captions by the fine-tuned tower."""
        self._check_trained()
        captions = _check_captions(captions, "ClipCaptionClassifier")
        return torch.cat([self._encode(captions[i : i + chunk]) for i in range(0, len(captions), chunk)])

    @torch.no_grad()
    def logits(self, captions: Sequence[str]) -> torch.Tensor:
        """``[N, C]`` logits of the fine-tuned tower and head."""
        return self.head(self.feature_scale * self.features(captions))


class DistilBertCaptionClassifier(CaptionClassifier):
    """DistilBERT fine-tuned on the source captions, as the official TRUST code does.

    Args:
        model (str | Path | Any): a Hugging Face model name or folder (``"distilbert-base-uncased"``), or a
            ``transformers.DistilBertConfig`` for a randomly initialised model (tests).
        tokenizer (str | Path | Any | None): tokenizer name / folder, or a tokenizer object. ``None`` loads it
            from ``model``. Defaults to ``None``.
        max_length (int): tokens kept per caption. Defaults to ``256`` (official).
        epochs (int): fine-tuning epochs. Defaults to ``20`` (official).
        batch_size (int): captions per step. Defaults to ``64`` (official).
        learning_rate (float): AdamW learning rate. Defaults to ``5e-5`` (official).
        weight_decay (float): AdamW weight decay. Defaults to ``3e-4`` (official).
        gradient_clip_norm (float | None): gradient-norm clipping. Defaults to ``1.0`` (official).
        seed (int): seed of the classifier head and of the batches. Defaults to ``0``.

    Raises:
        ImportError: ``transformers`` is not installed (``pip install anomalib-vlm[trust]``).
    """

    def __init__(
        self,
        model: str | Path | Any = "distilbert-base-uncased",
        tokenizer: str | Path | Any | None = None,
        max_length: int = 256,
        epochs: int = 20,
        batch_size: int = 64,
        learning_rate: float = 5e-5,
        weight_decay: float = 3e-4,
        gradient_clip_norm: float | None = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(epochs, batch_size, learning_rate, weight_decay, gradient_clip_norm, seed)
        try:
            import transformers
        except ImportError as error:  # pragma: no cover - the extra is installed in dev
            msg = "DistilBertCaptionClassifier needs transformers: pip install 'anomalib-vlm[trust]'"
            raise ImportError(msg) from error
        self._transformers = transformers
        self.source = model
        self.tokenizer = self._load_tokenizer(tokenizer if tokenizer is not None else model)
        self.max_length = max_length
        self.model: nn.Module | None = None

    def _load_tokenizer(self, source: Any) -> Any:
        if isinstance(source, (str, Path)):
            return self._transformers.AutoTokenizer.from_pretrained(str(source))
        if isinstance(source, self._transformers.PretrainedConfig):
            msg = "A DistilBertConfig builds a random model but no tokenizer: pass tokenizer= as well."
            raise ValueError(msg)
        return source

    def _build(self, num_classes: int) -> nn.Module:
        classifier = self._transformers.DistilBertForSequenceClassification
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            if isinstance(self.source, self._transformers.PretrainedConfig):
                config = self.source.__class__(**{**self.source.to_dict(), "num_labels": num_classes})
                return classifier(config)
            return classifier.from_pretrained(str(self.source), num_labels=num_classes)

    def _tokens(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            list(captions), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def fit(self, captions: Sequence[str], labels: Sequence[int] | torch.Tensor, num_classes: int) -> float:
        """Fine-tune all of DistilBERT on the captions."""
        captions = _check_captions(captions, "DistilBertCaptionClassifier")
        self.num_classes = num_classes
        self.model = self._build(num_classes)
        tokens = self._tokens(captions)
        labels = torch.as_tensor(labels, dtype=torch.long)
        self.model.train()

        def logits_of(indices: torch.Tensor) -> torch.Tensor:
            return self.model(**{key: value[indices] for key, value in tokens.items()}).logits

        # DistilBERT's dropout draws from the global generator: seeded here, so a fit does not depend on what ran
        # before it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            loss = self.train_on(logits_of, list(self.model.parameters()), labels)
        self.model.eval()
        return loss

    def _pooled(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model is None:
            msg = "DistilBertCaptionClassifier is not trained: call fit() on the source captions first."
            raise RuntimeError(msg)
        captions = _check_captions(captions, "DistilBertCaptionClassifier")
        model = self.model.eval()
        pooled_parts, logit_parts = [], []
        for start in range(0, len(captions), 128):
            tokens = self._tokens(captions[start : start + 128])
            hidden = model.distilbert(**tokens).last_hidden_state[:, 0]
            pooled = torch.relu(model.pre_classifier(hidden))  # the feature the official contrast uses
            pooled_parts.append(pooled)
            logit_parts.append(model.classifier(pooled))
        return torch.cat(pooled_parts), torch.cat(logit_parts)

    @torch.no_grad()
    def logits(self, captions: Sequence[str]) -> torch.Tensor:
        """``[N, C]`` logits (eval mode)."""
        return self._pooled(captions)[1]

    @torch.no_grad()
    def features(self, captions: Sequence[str]) -> torch.Tensor:
        """``[N, 768]`` normalised pre-classifier features (after the ReLU), as the official contrast uses."""
        return F.normalize(self._pooled(captions)[0], dim=-1)
