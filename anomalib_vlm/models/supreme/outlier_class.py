# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Supreme with fake outliers (FodFoM's use of fakes): one extra "outlier" class, K+1 logits.

FodFoM's training script (``train_diffusion_fake_ood_supcon.py``) gives every fake outlier (both types) the label
``K`` and trains a ``K+1``-way classifier with cross-entropy, plus supervised contrastive learning (SupCon,
temperature 0.1) on a 128-d projection head over two augmented views; its evaluation
(``Detection/OOD_score_method/eval_for_ood.py``) scores with **all** ``K+1`` logits (MSP = max of the ``K+1``
softmax, Energy = logsumexp of the ``K+1`` logits).

On a frozen CLIP the trainable part is small: :class:`OutlierClassHead` is a cosine classifier with the K ID image
prototypes (Supreme's shots) and an outlier class made of the fake embeddings, with a residual linear adapter,
trained on the cached embeddings of the shots and the fakes. ``Supreme(mode="outlier_class")`` puts it on Supreme's
frozen image encoder and trains it with ``Engine.fit`` on a
:class:`~anomalib_vlm.fodfom.datamodule.FakeOutlierDataModule`; :meth:`OutlierClassHead.fit` trains it directly on
cached embeddings (experiments).

Scoring (``score``): ``"official"`` is FodFoM's MSP over all ``K+1`` classes; ``"id_classes"`` is the largest ID
class probability of the ``K+1`` softmax (the outlier class takes its probability mass away from the ID classes;
the official evaluation has this family of variants commented out). Both are reported in the FodFoM README.
"""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F
from anomalib.models.components.base import DynamicBufferMixin
from torch import nn

SUPCON_TEMPERATURE = 0.1
"""SupCon temperature of the official training script."""


class OutlierScore(str, Enum):
    """How the K+1 probabilities become an ID score."""

    OFFICIAL = "official"
    ID_CLASSES = "id_classes"


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = SUPCON_TEMPERATURE) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) of normalised ``[N, E]`` features: same label = positive."""
    features = F.normalize(features, dim=-1)
    logits = features @ features.T / temperature
    self_mask = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = (labels[:, None] == labels[None]) & ~self_mask
    log_probability = logits.log_softmax(dim=-1).masked_fill(self_mask, 0.0)
    counts = positives.sum(1)
    keep = counts > 0
    per_anchor = -(log_probability * positives).sum(1)[keep] / counts[keep]
    return per_anchor.mean() if keep.any() else logits.new_zeros(())


class OutlierClassHead(DynamicBufferMixin, nn.Module):
    """``K+1`` cosine classifier on frozen CLIP image embeddings: K ID prototypes and one outlier class.

    The outlier class is the set of fake-outlier embeddings (a bank): its logit is
    ``log sum_m exp(cos(x, fake_m) / T)``. Fakes are many and varied (every boundary of every class), so one
    prototype (their mean) would sit near the middle of the ID classes; the bank keeps every fake's place. A
    residual linear adapter (zero at the start, so the untrained head is already the training-free ``K+1``
    classifier) and the ID prototypes are trained with cross-entropy over ``K+1`` classes (a fake is not its own
    neighbour in the bank while training), plus SupCon on a 128-d projection head when enabled.

    The fake bank is a buffer that a checkpoint resizes on loading (``DynamicBufferMixin``), so a head built for
    the classes alone loads a trained one.

    Args:
        id_prototypes (torch.Tensor): ``[K, D]`` ID class prototypes (e.g. Supreme's image prototypes).
        fake_features (torch.Tensor | None): ``[M, D]`` fake-outlier embeddings; ``None`` builds the same head
            without the outlier class (K-way: the no-fakes baseline).
        temperature (float): cosine-logit temperature (Supreme's ``0.01``). Defaults to ``0.01``.
        supcon (bool): add SupCon on a 128-d projection head (official training). Defaults to ``False``.
        score (OutlierScore | str): ``official`` or ``id_classes``. Defaults to ``official``.
    """

    def __init__(
        self,
        id_prototypes: torch.Tensor,
        fake_features: torch.Tensor | None,
        temperature: float = 0.01,
        supcon: bool = False,
        score: OutlierScore | str = OutlierScore.OFFICIAL,
    ) -> None:
        super().__init__()
        dim = id_prototypes.shape[-1]
        self.num_id_classes = len(id_prototypes)
        self.prototypes = nn.Parameter(F.normalize(id_prototypes.float(), dim=-1).clone())
        bank = torch.zeros(0, dim) if fake_features is None else F.normalize(fake_features.float(), dim=-1)
        self.register_buffer("fake_bank", bank.clone())
        self.adapter = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.adapter.weight)
        self.temperature = temperature
        self.projection = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 128)) if supcon else None
        self.score_rule = OutlierScore(score)

    @property
    def has_outlier_class(self) -> bool:
        """Whether the head has the ``K+1``-th class (a non-empty fake bank)."""
        return len(self.fake_bank) > 0

    def adapted(self, features: torch.Tensor) -> torch.Tensor:
        """Normalised adapted embeddings."""
        features = F.normalize(features.float(), dim=-1)
        return F.normalize(features + self.adapter(features), dim=-1)

    def logits(self, features: torch.Tensor, bank_index: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, K+1]`` logits (``[B, K]`` without fakes); ``bank_index`` ``[B]`` (-1: none) leaves a fake out."""
        adapted = self.adapted(features)
        logits = adapted @ F.normalize(self.prototypes, dim=-1).T / self.temperature
        if not self.has_outlier_class:
            return logits
        similarity = adapted @ self.adapted(self.fake_bank).T / self.temperature
        if bank_index is not None:
            rows = torch.nonzero(bank_index >= 0).flatten()
            similarity[rows, bank_index[rows]] = float("-inf")
        return torch.cat([logits, similarity.logsumexp(dim=-1, keepdim=True)], dim=-1)

    def set_fakes(self, fake_features: torch.Tensor) -> None:
        """Replace the outlier class's bank with ``[M, D]`` fake-outlier embeddings (normalised here)."""
        bank = F.normalize(fake_features.detach().float(), dim=-1).to(self.fake_bank.device)
        self.fake_bank = bank.clone()

    def training_set(
        self, id_features: torch.Tensor, id_labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, labels and bank indices of one training epoch: the ID shots, then the bank's fakes (label K)."""
        device = self.fake_bank.device
        fakes = len(self.fake_bank)
        features = torch.cat([id_features.float().to(device), self.fake_bank])
        labels = torch.cat([id_labels.long().to(device), torch.full((fakes,), self.num_id_classes, device=device)])
        bank_index = torch.cat([torch.full((len(id_labels),), -1, device=device), torch.arange(fakes, device=device)])
        return features, labels, bank_index

    def loss(self, features: torch.Tensor, labels: torch.Tensor, bank_index: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the ``K+1`` classes (a fake left out of its own bank), plus SupCon when enabled."""
        loss = F.cross_entropy(self.logits(features, bank_index), labels)
        if self.projection is not None:
            loss = loss + supcon_loss(self.projection(self.adapted(features)), labels)
        return loss

    def fit(
        self,
        id_features: torch.Tensor,
        id_labels: torch.Tensor,
        epochs: int = 30,
        learning_rate: float = 1e-3,
        batch_size: int = 64,
        seed: int = 0,
    ) -> OutlierClassHead:
        """Train on cached embeddings: the ID shots with their classes and the bank's fakes with the label ``K``."""
        features, labels, bank_index = self.training_set(id_features, id_labels)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(self.parameters(), lr=learning_rate, weight_decay=1e-4)
        self.train()
        for _ in range(epochs):
            for chunk in torch.randperm(len(labels), generator=generator).split(batch_size):
                loss = self.loss(features[chunk], labels[chunk], bank_index[chunk])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return self.eval()

    def id_score(self, features: torch.Tensor) -> torch.Tensor:
        """``[B]`` ID score (higher = more ID) by the chosen rule."""
        return self.score_and_class_probabilities(features)[0]

    def score_and_class_probabilities(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B]`` ID score by the chosen rule and ``[B, K]`` ID class probabilities (their share of the softmax)."""
        probabilities = self.logits(features).softmax(dim=-1)
        id_probabilities = probabilities[:, : self.num_id_classes]
        if self.score_rule == OutlierScore.OFFICIAL:
            return probabilities.max(dim=-1).values, id_probabilities
        return id_probabilities.max(dim=-1).values, id_probabilities
