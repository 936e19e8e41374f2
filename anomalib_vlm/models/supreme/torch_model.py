# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""PyTorch model of SUPREME: CLIP OOD scores from ID text and image prototypes, with optional few-shot tuning.

Three scores (``mode``), all "ID-ness" ``S`` in the paper; ``pred_score = 1 - S`` is the OOD score:

* ``mcm``: ``S_MCM = max_c softmax_c(cos(I, T_c) / tau)`` with fixed-template text prototypes (README Eq. 1);
* ``smmp``: ``S_MMP = (S_MCM(I, P_txt) + S_MCM(I, P_img)) / 2`` with image prototypes = normalised mean of the
  k-shot image embeddings of each class (README Eqs. 2-3);
* ``supreme``: ``S_GMP``, the mean of the four MCM terms of the image embedding and of its ITC projection into
  text space, against the BPG-tuned text prototypes and the image prototypes (README Eqs. 4, 5, 11);
* ``outlier_class``: FodFoM's use of fake outliers, a ``K+1``-way head (the K image prototypes and an outlier class
  made of the fakes' embeddings, :class:`~.outlier_class.OutlierClassHead`) scored from its ``K+1`` softmax.

In train mode, :meth:`SupremeModel.training_outputs` returns what :class:`~.loss.SupremeLoss` needs for a batch
of (cached) shot embeddings. :meth:`SupremeModel.forward` is the one scoring path (test, predict and export): from
buffers only (text prototypes after BPG at the bias mean, image prototypes) plus the ITC map, it returns an
:class:`OODInferenceBatch` with the OOD score and the predicted ID class.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from anomalib.models.components.base import DynamicBufferMixin
from torch import nn

from anomalib_vlm.clip import DualPathVisionEncoder, PromptLearner, encode_fixed_texts
from anomalib_vlm.data.utils import readable_name
from anomalib_vlm.models.components import FrozenClipModel

from .outlier_class import OutlierClassHead, OutlierScore


class SupremeMode(str, Enum):
    """Which OOD score the model computes (and whether it needs tuning).

    Attributes:
        MCM: training-free, ID text prototypes only (the MCM baseline).
        SMMP: training-free, ID text and image prototypes.
        SUPREME: few-shot tuned with BPG and ITC, scored with S_GMP.
        OUTLIER_CLASS: FodFoM's use of fake outliers: a K+1 head (:class:`~.outlier_class.OutlierClassHead`)
            trained over the shots and the fakes.
    """

    MCM = "mcm"
    SMMP = "smmp"
    SUPREME = "supreme"
    OUTLIER_CLASS = "outlier_class"

    @property
    def is_tuned(self) -> bool:
        """Whether the mode has a training phase (``Engine.fit`` runs Lightning's fit loop until it is done)."""
        return self in {SupremeMode.SUPREME, SupremeMode.OUTLIER_CLASS}


class OODInferenceBatch(NamedTuple):
    """anomalib's ``InferenceBatch`` fields plus the predicted ID class: what Supreme's ``forward`` returns.

    anomalib's steps copy the fields a batch has (``pred_class`` on :class:`~anomalib_vlm.data.OODBatch`), its
    exporter names one graph output per field that is not ``None``, and
    :class:`~anomalib_vlm.metrics.raw_scores.RawScorePostProcessor` passes ``pred_class`` through.

    Attributes:
        pred_score: ``[B]`` OOD score ``1 - S`` (higher = more OOD).
        pred_label: ``[B]`` OOD decision (set by the post-processor).
        anomaly_map: unused (``None``).
        pred_mask: unused (``None``).
        pred_class: ``[B]`` index of the most likely ID class (into the model's ``class_names``).
    """

    pred_score: torch.Tensor | None = None
    pred_label: torch.Tensor | None = None
    anomaly_map: torch.Tensor | None = None
    pred_mask: torch.Tensor | None = None
    pred_class: torch.Tensor | None = None


class SupremeTrainingOutput(NamedTuple):
    """What the loss needs for one batch of shot embeddings.

    Attributes:
        image_features: ``[B, D]`` normalised image embeddings ``I``.
        text_prototypes: ``[C, D]`` normalised text prototypes from the biased prompts.
        image_to_text: ``[B, D]`` normalised ``f_i2t(I)`` (``None`` without ITC).
        text_to_image: ``[C, D]`` normalised ``f_t2i(P_txt)`` (``None`` without ITC).
        image_cycle: ``[B, D]`` normalised ``f_t2i(f_i2t(I))`` (``None`` without ITC).
        text_cycle: ``[C, D]`` normalised ``f_i2t(f_t2i(P_txt))`` (``None`` without ITC).
        image_condition: ``[W]`` ``m(I)``, the image-conditioned token shift (``None`` without BPG).
        bias_mean: ``[W]`` the Gaussian bias mean ``mu`` (``None`` without BPG).
        bias_sample: ``[W]`` the sampled bias ``b = mu + sigma * n`` (``None`` without BPG).
    """

    image_features: torch.Tensor
    text_prototypes: torch.Tensor
    image_to_text: torch.Tensor | None
    text_to_image: torch.Tensor | None
    image_cycle: torch.Tensor | None
    text_cycle: torch.Tensor | None
    image_condition: torch.Tensor | None
    bias_mean: torch.Tensor | None
    bias_sample: torch.Tensor | None


def class_name_key(name: str) -> str:
    """What makes two class names the same class: case, spacing and "_" (the prompts read it as a space) aside."""
    return " ".join(readable_name(str(name)).lower().split())


def check_class_names(class_names: Sequence[str]) -> list[str]:
    """Validate ID class names: a non-empty list of distinct, non-blank strings.

    Raises:
        ValueError: the list is empty, a name is blank, or names repeat (case, spacing and "_" ignored).
    """
    if isinstance(class_names, str):
        class_names = [class_names]
    names = [str(name) for name in class_names]
    if not names:
        msg = "Supreme needs at least one ID class name, got an empty list."
        raise ValueError(msg)
    blank = [index for index, name in enumerate(names) if not name.strip()]
    if blank:
        msg = f"ID class names must not be blank; blank names at positions {blank}."
        raise ValueError(msg)
    seen: dict[str, str] = {}
    duplicates = []
    for name in names:
        key = class_name_key(name)
        if key in seen:
            duplicates.append(f"'{name}' (same as '{seen[key]}')")
        seen.setdefault(key, name)
    if duplicates:
        msg = f"Duplicate ID class names: {', '.join(duplicates)}. Each ID class needs a distinct name."
        raise ValueError(msg)
    return names


def mcm_terms(
    features: torch.Tensor,
    prototypes: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MCM of normalised ``features`` [B, D] against normalised ``prototypes`` [C, D].

    Returns:
        tuple[torch.Tensor, torch.Tensor]: the score ``max_c softmax_c(cos / tau)`` ``[B]`` and the class
        probabilities ``[B, C]``. With one class the softmax is constant, so the score falls back to the cosine
        similarity itself (one-class use, e.g. an MVTec AD category; not in the paper).
    """
    similarities = features @ prototypes.T
    if prototypes.shape[0] == 1:
        return similarities[:, 0], torch.ones_like(similarities)
    probabilities = (similarities / temperature).softmax(dim=-1)
    return probabilities.amax(dim=-1), probabilities


class SupremeModel(DynamicBufferMixin, FrozenClipModel):
    """SUPREME / SMMP / MCM on a frozen open_clip CLIP.

    Args:
        backbone (str): open_clip model name. Defaults to ``"ViT-B-16"``.
        pretrained (str | Path | None): open_clip tag, local file, or ``None`` for seeded random weights.
            Defaults to ``"openai"``.
        image_size (int): square input side; the positional embedding is resized to it. Defaults to ``224``.
        mode (SupremeMode | str): ``mcm``, ``smmp``, ``supreme`` or ``outlier_class``. Defaults to ``"supreme"``.
        temperature (float): tau of every MCM softmax and of the training logits. Defaults to ``0.01``.
        prompt_template (str): fixed text prompt of the training-free modes, ``{}`` = class name.
            Defaults to ``"a photo of a {}."``.
        context_length (int): BPG learnable context tokens. Defaults to ``16``.
        context_init (str | None): words initialising the last context tokens. Defaults to ``"a photo of a"``.
        use_bpg (bool): biased prompt generation on (image-conditioned shift + Gaussian bias); off gives plain
            CoOp context. Defaults to ``True``.
        use_itc (bool): image-text consistency maps on (and the two S_GMP terms of the projected image); off
            makes S_GMP equal to S_MMP with tuned prompts. Defaults to ``True``.
        bias_init_std (float): initial spread sigma of the Gaussian image-domain bias (per token dimension).
            Defaults to ``1e-3``.
        outlier_score (OutlierScore | str): ``outlier_class`` mode's ID score: ``id_classes`` (the ID classes'
            share of the K+1 softmax) or ``official`` (FodFoM's MSP over all K+1). Defaults to ``"id_classes"``.
        supcon (bool): ``outlier_class`` mode adds SupCon (temperature 0.1) on a projection head. Defaults to
            ``False``.
        cache_dir (str | Path | None): open_clip weight cache. Defaults to open_clip's own.
    """

    model_name = "Supreme"

    def __init__(
        self,
        backbone: str = "ViT-B-16",
        pretrained: str | Path | None = "openai",
        image_size: int = 224,
        mode: SupremeMode | str = SupremeMode.SUPREME,
        temperature: float = 0.01,
        prompt_template: str = "a photo of a {}.",
        context_length: int = 16,
        context_init: str | None = "a photo of a",
        use_bpg: bool = True,
        use_itc: bool = True,
        bias_init_std: float = 1e-3,
        outlier_score: OutlierScore | str = OutlierScore.ID_CLASSES,
        supcon: bool = False,
        cache_dir: str | Path | None = None,
    ) -> None:
        if temperature <= 0:
            msg = f"temperature must be > 0, got {temperature}"
            raise ValueError(msg)
        if bias_init_std < 0:
            msg = f"bias_init_std must be >= 0, got {bias_init_std}"
            raise ValueError(msg)
        if "{}" not in prompt_template:
            msg = f"prompt_template must contain '{{}}' for the class name, got {prompt_template!r}"
            raise ValueError(msg)
        super().__init__(backbone, pretrained, image_size, cache_dir)
        self.mode = SupremeMode(mode)
        self.temperature = temperature
        self.prompt_template = prompt_template
        self.context_length = context_length
        self.context_init = context_init
        self.use_bpg = use_bpg
        self.use_itc = use_itc
        self.outlier_score = OutlierScore(outlier_score)
        self.supcon = supcon
        self.class_names: list[str] = []
        self.outlier_head: OutlierClassHead | None = None  # outlier_class mode, built once the classes are known

        # The standard CLIP image embedding (class token, ln_post, projection), any input size, SDPA attention
        # (exportable): DualPathVisionEncoder without surgery.
        self.vision = DualPathVisionEncoder(
            self.clip.visual,
            image_size=image_size,
            feature_layers=(),  # the global feature only
            dpam_layers=0,
            global_ln_post=True,
        )
        embed_dim = int(self.clip.text_projection.shape[-1])
        width = int(self.clip.token_embedding.weight.shape[-1])
        self.prompt_learner: PromptLearner | None = None  # built once the class names are known

        # BPG: m(I) (CoCoOp's meta-net shape) and the Gaussian image-domain bias N(mu, diag(sigma^2)) in token space.
        hidden = max(embed_dim // 16, 4)
        self.bias_net = nn.Sequential(nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, width))
        # m starts at zero, so untuned BPG prompts are the initial context (a default-initialised m would add a
        # shift an order of magnitude larger than the token embeddings and drown the prompt).
        nn.init.zeros_(self.bias_net[2].weight)
        nn.init.zeros_(self.bias_net[2].bias)
        self.bias_mean = nn.Parameter(torch.zeros(width))
        # Diagonal spread sigma (b = mu + sigma * n). A full lower-triangular factor (the re-implementation's) is
        # updated from one noise sample per step: its W^2 / 2 entries random-walk, the noise outgrows the context
        # tokens and tuning stalls (measured on the tiny model; README, "Choices"). Small initial spread: a bias
        # sample as large as the token embeddings (~0.02) drowns the context.
        self.bias_std = nn.Parameter(torch.full((width,), float(bias_init_std)))
        # ITC: bias-free maps between the modalities, starting at the identity (untrained ITC = no change).
        self.image_to_text = nn.Linear(embed_dim, embed_dim, bias=False)
        self.text_to_image = nn.Linear(embed_dim, embed_dim, bias=False)
        with torch.no_grad():
            self.image_to_text.weight.copy_(torch.eye(embed_dim))
            self.text_to_image.weight.copy_(torch.eye(embed_dim))

        # Everything inference needs; sized once the classes and shots are known (DynamicBufferMixin resizes
        # them when a checkpoint is loaded).
        self.register_buffer("text_prototypes", torch.zeros(0, embed_dim))
        self.register_buffer("image_prototypes", torch.zeros(0, embed_dim))
        self.register_buffer("image_condition_mean", torch.zeros(embed_dim))  # mean shot embedding, for m(.)
        # The shots' embeddings, for tuning only: not saved.
        self.register_buffer("shot_features", torch.zeros(0, embed_dim), persistent=False)
        self.register_buffer("shot_labels", torch.zeros(0, dtype=torch.long), persistent=False)

    # ------------------------------------------------------------------ setup
    @property
    def num_classes(self) -> int:
        """Number of ID classes (0 before :meth:`set_classes`)."""
        return len(self.class_names)

    @property
    def has_image_prototypes(self) -> bool:
        """Whether shots were given (:meth:`set_shots`)."""
        return self.image_prototypes.shape[0] == self.num_classes > 0

    def set_classes(self, class_names: Sequence[str]) -> None:
        """Set the ID classes: fixed-template text prototypes, and the learnable prompts in ``supreme`` mode.

        Raises:
            ValueError: empty, blank or duplicate class names.
        """
        names = check_class_names(class_names)
        if names == self.class_names:
            return
        self.class_names = names
        device = self.text_prototypes.device
        if self.mode == SupremeMode.SUPREME:
            self.prompt_learner = PromptLearner(
                self.clip,
                self.backbone,
                [readable_name(name) for name in names],
                context_length=self.context_length,
                shared_context=True,
                deep_depth=0,
                context_init=self.context_init,
            ).to(device)
        else:
            self.prompt_learner = None
        if self.mode == SupremeMode.OUTLIER_CLASS:
            embed_dim = self.text_prototypes.shape[-1]
            self.outlier_head = OutlierClassHead(
                torch.zeros(len(names), embed_dim),
                None,
                temperature=self.temperature,
                supcon=self.supcon,
                score=self.outlier_score,
            ).to(device)
        self.image_prototypes = torch.zeros(0, self.text_prototypes.shape[-1], device=device)
        self.refresh_cached_features()

    def _check_shots(self, name: str, images: torch.Tensor) -> None:
        expected = f"[K, {self.input_channels}, {self.image_size}, {self.image_size}]"
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
            shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            msg = f"ID class '{name}' has no shots: expected a tensor {expected} with K >= 1, got {shape}."
            raise ValueError(msg)
        if images.shape[1] != self.input_channels:
            msg = (
                f"Shot images of ID class '{name}' have {images.shape[1]} channels, expected {self.input_channels} "
                f"(shape {list(images.shape)}, expected {expected}); convert them to RGB."
            )
            raise ValueError(msg)
        if tuple(images.shape[-2:]) != (self.image_size, self.image_size):
            msg = (
                f"Shot images of ID class '{name}' are {images.shape[-2]}x{images.shape[-1]}, expected "
                f"{self.image_size}x{self.image_size} (shape {list(images.shape)}, expected {expected}); resize "
                "them with the model's pre-processor."
            )
            raise ValueError(msg)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """``[B, D]`` L2-normalised CLIP image embeddings of pre-processed images."""
        chunks = [self.vision(chunk).global_feature for chunk in images.split(batch_size)]
        return F.normalize(torch.cat(chunks), dim=-1)

    def set_shots(self, shots: Mapping[str, torch.Tensor]) -> None:
        """Encode the k-shot ID images of every class into image prototypes (and cache them for tuning).

        Args:
            shots (Mapping[str, torch.Tensor]): class name to pre-processed images ``[K, 3, H, W]``; every ID
                class needs at least one image and no other class may appear.

        Raises:
            ValueError: unknown or missing classes, classes without shots, images of the wrong shape.
        """
        if not self.class_names:
            self.set_classes(list(shots))
        unknown = [name for name in shots if name not in self.class_names]
        if unknown:
            msg = f"Shots given for unknown classes {unknown}; the ID classes are {self.class_names}."
            raise ValueError(msg)
        missing = [name for name in self.class_names if name not in shots]
        if missing:
            msg = f"ID classes {missing} have no shots: every ID class needs at least one image."
            raise ValueError(msg)
        for name in self.class_names:
            self._check_shots(name, shots[name])
        features, labels = [], []
        for index, name in enumerate(self.class_names):
            features.append(self.encode_images(shots[name].to(self.text_prototypes.device)))
            labels.append(torch.full((len(shots[name]),), index, dtype=torch.long, device=features[-1].device))
        shot_features = torch.cat(features)
        self.store_buffers(
            shot_features=shot_features,
            shot_labels=torch.cat(labels),
            image_prototypes=F.normalize(torch.stack([f.mean(0) for f in features]), dim=-1),
            image_condition_mean=shot_features.mean(0),
        )
        if self.outlier_head is not None:
            with torch.no_grad():
                self.outlier_head.prototypes.copy_(self.image_prototypes)
        self.refresh_cached_features()

    @property
    def has_fakes(self) -> bool:
        """Whether ``outlier_class`` mode's head holds fake outliers (:meth:`set_fakes`)."""
        return self.outlier_head is not None and self.outlier_head.has_outlier_class

    def set_fakes(self, fake_features: torch.Tensor) -> None:
        """Give ``outlier_class`` mode its fake outliers as ``[M, D]`` CLIP image embeddings (:meth:`encode_images`).

        Raises:
            RuntimeError: another mode, or no ID classes yet.
            ValueError: no fakes, or embeddings of the wrong width.
        """
        if self.outlier_head is None:
            msg = "Fake outliers are used by mode='outlier_class' only, after set_classes()."
            raise RuntimeError(msg)
        width = self.text_prototypes.shape[-1]
        if fake_features.ndim != 2 or len(fake_features) == 0 or fake_features.shape[-1] != width:
            msg = f"Fake outliers must be [M, {width}] image embeddings with M >= 1, got {list(fake_features.shape)}."
            raise ValueError(msg)
        self.outlier_head.set_fakes(fake_features)

    # ------------------------------------------------------------------ BPG and text prototypes
    def _bias_shift(self, condition: torch.Tensor, sample: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token shift ``m(I) + b`` with ``b = mu + sigma * n`` (sampled) or ``b = mu`` (inference)."""
        image_condition = self.bias_net(condition)
        bias = self.bias_mean
        if sample:
            bias = self.bias_mean + self.bias_std * torch.randn_like(self.bias_mean)
        return image_condition + bias, image_condition, bias

    def encode_text_prototypes(self, condition: torch.Tensor | None = None, sample: bool = False) -> torch.Tensor:
        """``[C, D]`` normalised text prototypes of the current prompts.

        Args:
            condition (torch.Tensor | None): image embedding ``[D]`` that conditions BPG; ``None`` uses the mean
                shot embedding.
            sample (bool): sample the Gaussian bias (training) instead of using its mean (inference).
        """
        if self.prompt_learner is None:
            texts = [self.prompt_template.format(readable_name(name)) for name in self.class_names]
            return F.normalize(encode_fixed_texts(self.clip, self.backbone, texts), dim=-1)
        shift = None
        if self.use_bpg:
            condition = self.image_condition_mean if condition is None else condition
            shift, _, _ = self._bias_shift(condition, sample)
        return F.normalize(self.prompt_learner(shift), dim=-1)

    def cached_features(self) -> dict[str, torch.Tensor]:
        """The text prototypes (BPG at the bias mean), once the classes are known."""
        return {"text_prototypes": self.encode_text_prototypes()} if self.class_names else {}

    # ------------------------------------------------------------------ training
    def learnable_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The tuned parameters by group: ``prompts`` (context, m), ``bias`` (mu, sigma) and ``itc`` (the two maps).

        ``outlier_class`` mode has one group, ``head`` (its ID prototypes, adapter and SupCon projection).
        """
        if self.outlier_head is not None:
            return {"head": list(self.outlier_head.parameters())}
        if self.prompt_learner is None:
            msg = "Only mode='supreme' and mode='outlier_class' have learnable parameters; call set_classes() first."
            raise RuntimeError(msg)
        groups: dict[str, list[nn.Parameter]] = {"prompts": list(self.prompt_learner.parameters())}
        if self.use_bpg:
            groups["prompts"] += list(self.bias_net.parameters())
            groups["bias"] = [self.bias_mean, self.bias_std]
        if self.use_itc:
            groups["itc"] = [*self.image_to_text.parameters(), *self.text_to_image.parameters()]
        return groups

    def training_outputs(self, image_features: torch.Tensor) -> SupremeTrainingOutput:
        """Everything the loss needs for a batch of normalised shot embeddings ``[B, D]``.

        BPG is conditioned on the batch's mean embedding (one set of C prompts per step instead of one per image,
        as the re-implementation does; marked inferred in the README).
        """
        if self.prompt_learner is None:
            msg = "training_outputs needs mode='supreme' and the ID classes (set_classes)."
            raise RuntimeError(msg)
        image_condition = bias_mean = bias_sample = None
        shift = None
        if self.use_bpg:
            shift, image_condition, bias_sample = self._bias_shift(image_features.mean(0), sample=True)
            bias_mean = self.bias_mean
        text = F.normalize(self.prompt_learner(shift), dim=-1)
        image_to_text = text_to_image = image_cycle = text_cycle = None
        if self.use_itc:
            image_to_text = F.normalize(self.image_to_text(image_features), dim=-1)
            text_to_image = F.normalize(self.text_to_image(text), dim=-1)
            image_cycle = F.normalize(self.text_to_image(image_to_text), dim=-1)
            text_cycle = F.normalize(self.image_to_text(text_to_image), dim=-1)
        return SupremeTrainingOutput(
            image_features,
            text,
            image_to_text,
            text_to_image,
            image_cycle,
            text_cycle,
            image_condition,
            bias_mean,
            bias_sample,
        )

    # ------------------------------------------------------------------ inference
    def check_images(self, images: torch.Tensor) -> None:
        """Raise unless ``images`` can be scored: the right shape, ID classes set, prototypes where needed.

        Raises:
            ValueError: images of the wrong shape.
            RuntimeError: no ID classes yet, or no image prototypes for ``smmp`` / ``supreme``.
        """
        super().check_images(images)
        if not self.class_names:
            msg = "Supreme has no ID classes yet: give class_names, or run it through Engine with a datamodule."
            raise RuntimeError(msg)
        if self.mode != SupremeMode.MCM and not self.has_image_prototypes:
            msg = f"mode='{self.mode.value}' needs image prototypes: give the k-shot ID images first (set_shots)."
            raise RuntimeError(msg)
        if self.mode == SupremeMode.OUTLIER_CLASS and not self.has_fakes:
            msg = "mode='outlier_class' needs fake outliers: train it on a FakeOutlierDataModule or call set_fakes()."
            raise RuntimeError(msg)

    def score_features(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ID score ``S`` ``[B]`` and ID class probabilities ``[B, C]`` of CLIP image embeddings ``[B, D]``.

        The frozen image encoder is the expensive part; scoring cached embeddings lets several configurations
        (or prototypes) be compared on one encoding of a dataset. :meth:`forward` scores images through it.
        """
        features = F.normalize(features, dim=-1)
        if self.outlier_head is not None:
            return self.outlier_head.score_and_class_probabilities(features)
        text_score, text_probabilities = mcm_terms(features, self.text_prototypes, self.temperature)
        if self.mode == SupremeMode.MCM:
            return text_score, text_probabilities
        image_score, image_probabilities = mcm_terms(features, self.image_prototypes, self.temperature)
        scores = [text_score, image_score]
        probabilities = [text_probabilities, image_probabilities]
        if self.mode == SupremeMode.SUPREME and self.use_itc:
            projected = F.normalize(self.image_to_text(features), dim=-1)
            for prototypes in (self.text_prototypes, self.image_prototypes):
                score, probability = mcm_terms(projected, prototypes, self.temperature)
                scores.append(score)
                probabilities.append(probability)
        return torch.stack(scores).mean(0), torch.stack(probabilities).mean(0)

    def forward(self, images: torch.Tensor) -> OODInferenceBatch:
        """Score ``[B, 3, H, W]`` pre-processed images.

        Returns:
            OODInferenceBatch: ``pred_score = 1 - S`` ``[B]`` (higher = more OOD) and ``pred_class`` ``[B]``, the
            most likely ID class.
        """
        self.check_images(images)
        id_score, probabilities = self.score_features(self.vision(images).global_feature)
        return OODInferenceBatch(pred_score=1.0 - id_score, pred_class=probabilities.argmax(dim=-1))
