# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""PyTorch model of AnomalyCLIP: a frozen CLIP, DPAM patch features and two object-agnostic learned prompts.

In training mode :meth:`AnomalyClipModel.forward` returns the logits and maps the loss needs, with the text
features computed from the prompts (so gradients reach them). In eval mode it returns anomalib's
:class:`~anomalib.data.InferenceBatch` from text features cached in a buffer, which is what gets exported: one
image tensor in, ``pred_score`` and ``anomaly_map`` out, no tokenizer or text tower in the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from anomalib.data import InferenceBatch
from torch import nn

from anomalib_vlm.clip import DualPathVisionEncoder, PromptLearner
from anomalib_vlm.models.components import FrozenClipModel

NORMAL_TEXT = "object"
"""Fixed text after the normality context: ``[V1 ... VE] object.``"""
ABNORMAL_TEXT = "damaged object"
"""Fixed text after the abnormality context: ``[W1 ... WE] damaged object.``"""


class ImageScore(str, Enum):
    """How the image-level anomaly score is computed.

    Attributes:
        GLOBAL: probability of "abnormal" from the global image feature (the paper, official ``test.py``).
        MAP_MAX: maximum of the smoothed anomaly map.
        GLOBAL_PLUS_MAP_MAX: mean of the two, a common extension that helps when the global feature is weak.
    """

    GLOBAL = "global"
    MAP_MAX = "map_max"
    GLOBAL_PLUS_MAP_MAX = "global_plus_map_max"


def _pad_symmetric(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Pad ``x`` by ``pad`` on both sides of ``dim`` with half-sample symmetric reflection (``d c b a | a b c d``).

    This is scipy.ndimage's ``mode="reflect"`` (numpy's ``"symmetric"``): the edge sample is repeated. torch's and
    kornia's ``"reflect"`` mirror about the edge sample instead (scipy's ``"mirror"``: ``d c b | a b c d``). Built
    from slices, flips and concatenation only, so it exports to ONNX and OpenVINO. A pad wider than the signal
    reflects again, as scipy does (the extension is periodic with period twice the length).
    """
    while pad > 0:
        step = min(pad, x.shape[dim])
        left = x.narrow(dim, 0, step).flip(dim)
        right = x.narrow(dim, x.shape[dim] - step, step).flip(dim)
        x = torch.cat([left, x, right], dim=dim)
        pad -= step
    return x


class GaussianSmoothing(nn.Module):
    """Separable Gaussian filter with scipy's ``gaussian_filter`` semantics (``mode="reflect"``, ``truncate=4``).

    The official AnomalyCLIP smooths each map with ``scipy.ndimage.gaussian_filter(map, sigma)``: a kernel of
    radius ``int(4 * sigma + 0.5)`` (33 taps for sigma 4), normalised to sum 1, and half-sample symmetric padding.
    This module computes the same (to float32 rounding) inside the graph, as two 1-D convolutions.

    Args:
        sigma (float): standard deviation in pixels, > 0.
        truncate (float): kernel radius in standard deviations. Defaults to ``4.0`` (scipy's default).
    """

    def __init__(self, sigma: float, truncate: float = 4.0) -> None:
        super().__init__()
        if sigma <= 0:
            msg = f"sigma must be > 0, got {sigma}"
            raise ValueError(msg)
        self.radius = int(truncate * float(sigma) + 0.5)
        offsets = torch.arange(-self.radius, self.radius + 1, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (offsets / float(sigma)) ** 2)
        kernel = (kernel / kernel.sum()).to(torch.float32)
        # Not persistent: derived from sigma, so checkpoints keep holding only what was learned.
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Smooth ``[B, C, H, W]`` maps channel by channel; the output has the input's shape."""
        channels = maps.shape[1]
        kernel = self.kernel.to(maps.dtype)
        rows = kernel.reshape(1, 1, -1, 1).repeat(channels, 1, 1, 1)
        cols = kernel.reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1)
        maps = F.conv2d(_pad_symmetric(maps, self.radius, dim=2), rows, groups=channels)
        return F.conv2d(_pad_symmetric(maps, self.radius, dim=3), cols, groups=channels)


class AnomalyClipOutput(NamedTuple):
    """Training-mode outputs of :class:`AnomalyClipModel`.

    Attributes:
        image_logits: ``[B, 2]`` (normal, abnormal) logits of the global feature, divided by the temperature.
        layer_probabilities: per feature layer, ``[B, 2, H, W]`` (normal, abnormal) probabilities upsampled to the
            input size.
    """

    image_logits: torch.Tensor
    layer_probabilities: list[torch.Tensor]


class AnomalyClipModel(FrozenClipModel):
    """AnomalyCLIP: zero-shot anomaly detection and segmentation with object-agnostic prompts.

    Args:
        backbone (str): open_clip model name. Defaults to ``"ViT-L-14-336"``.
        pretrained (str | Path | None): open_clip tag, local checkpoint file, or ``None`` for seeded random
            weights. Defaults to ``"openai"``.
        image_size (int): side of the square input; the positional embedding is resized to it. Defaults to ``518``.
        feature_layers (Sequence[int]): 1-indexed blocks whose patch tokens make the anomaly maps.
            Defaults to ``(24,)`` (the published behaviour; ``(6, 12, 18, 24)`` gives true multi-level maps).
        dpam_layers (int): final vision blocks with DPAM (V-V) surgery; ``0`` disables it. Defaults to ``19``.
        prompt_context_length (int): learnable words per prompt (E). Defaults to ``12``.
        prompt_depth (int): text blocks that see learnable prompts (deep prompts in blocks 2..depth).
            Defaults to ``9``.
        prompt_deep_length (int): tokens of each deep prompt. Defaults to ``4``.
        temperature (float): softmax temperature of the cosine similarities. Defaults to ``0.07``.
        sigma (float): standard deviation of the Gaussian smoothing of the anomaly map at inference; ``0``
            disables it. Defaults to ``4.0``.
        image_score (ImageScore | str): how ``pred_score`` is computed. Defaults to ``"global"``.
        global_ln_post (bool): apply ``ln_post`` to the class token (the official code does not). Defaults to
            ``False``.
        cache_dir (str | Path | None): open_clip weight cache. Defaults to open_clip's own.
    """

    model_name = "AnomalyClip"

    def __init__(
        self,
        backbone: str = "ViT-L-14-336",
        pretrained: str | Path | None = "openai",
        image_size: int = 518,
        feature_layers: Sequence[int] = (24,),
        dpam_layers: int = 19,
        prompt_context_length: int = 12,
        prompt_depth: int = 9,
        prompt_deep_length: int = 4,
        temperature: float = 0.07,
        sigma: float = 4.0,
        image_score: ImageScore | str = ImageScore.GLOBAL,
        global_ln_post: bool = False,
        cache_dir: str | Path | None = None,
    ) -> None:
        if temperature <= 0:
            msg = f"temperature must be > 0, got {temperature}"
            raise ValueError(msg)
        if not feature_layers:
            msg = "feature_layers must name at least one block: the anomaly maps come from its patch tokens"
            raise ValueError(msg)
        if sigma < 0:
            msg = f"sigma must be >= 0, got {sigma}"
            raise ValueError(msg)
        super().__init__(backbone, pretrained, image_size, cache_dir)
        self.image_score = ImageScore(image_score)
        self.temperature = temperature
        self.vision = DualPathVisionEncoder(
            self.clip.visual,
            image_size=image_size,
            feature_layers=feature_layers,
            dpam_layers=dpam_layers,
            global_ln_post=global_ln_post,
        )
        self.object_agnostic_prompts = PromptLearner(
            self.clip,
            backbone,
            [NORMAL_TEXT, ABNORMAL_TEXT],
            context_length=prompt_context_length,
            deep_depth=prompt_depth,
            deep_length=prompt_deep_length,
        )
        # scipy.ndimage.gaussian_filter(sigma) as the official test.py applies it (33 taps for sigma 4, half-sample
        # symmetric borders), as two 1-D passes inside the graph.
        self.gaussian_blur = GaussianSmoothing(sigma) if sigma > 0 else None
        embed_dim = self.clip.text_projection.shape[-1]
        # Normalised [normal, abnormal] text features used in eval mode and baked into exports.
        self.register_buffer("text_features", torch.zeros(2, embed_dim))
        self.refresh_cached_features()

    def encode_prompts(self) -> torch.Tensor:
        """``[2, D]`` L2-normalised (normal, abnormal) text features of the current prompts."""
        return F.normalize(self.object_agnostic_prompts(), dim=-1)

    def cached_features(self) -> dict[str, torch.Tensor]:
        """The text features of the current prompts, which eval mode and exports use."""
        return {"text_features": self.encode_prompts()}

    def compute_outputs(self, images: torch.Tensor, text_features: torch.Tensor) -> AnomalyClipOutput:
        """Image logits and per-layer probability maps for ``images`` against ``text_features``.

        The backbone runs without gradients: only the text features can carry them.
        """
        with torch.no_grad():
            features = self.vision(images)
        global_feature = F.normalize(features.global_feature, dim=-1)
        image_logits = global_feature @ text_features.T / self.temperature
        rows, cols = features.grid_size
        layer_probabilities = []
        for patch_features in features.patch_features:
            patch_logits = F.normalize(patch_features, dim=-1) @ text_features.T / self.temperature
            probabilities = patch_logits.softmax(dim=-1)  # [B, N, 2]
            probabilities = probabilities.transpose(1, 2).reshape(-1, 2, rows, cols)
            probabilities = F.interpolate(probabilities, size=images.shape[-2:], mode="bilinear", align_corners=False)
            layer_probabilities.append(probabilities)
        return AnomalyClipOutput(image_logits, layer_probabilities)

    def forward(self, images: torch.Tensor) -> AnomalyClipOutput | InferenceBatch:
        """Score ``[B, 3, H, W]`` normalised images.

        Returns:
            AnomalyClipOutput | InferenceBatch: training outputs in train mode; ``pred_score`` ``[B]`` and
            ``anomaly_map`` ``[B, 1, H, W]`` in eval mode.
        """
        self.check_images(images)
        if self.training:
            return self.compute_outputs(images, self.encode_prompts())

        outputs = self.compute_outputs(images, self.text_features)
        # (p_abnormal + 1 - p_normal) / 2 per layer, averaged over layers.
        anomaly_map = torch.stack([(p[:, 1] + 1 - p[:, 0]) / 2 for p in outputs.layer_probabilities]).mean(0)
        anomaly_map = anomaly_map.unsqueeze(1)
        if self.gaussian_blur is not None:
            anomaly_map = self.gaussian_blur(anomaly_map)
        global_score = outputs.image_logits.softmax(dim=-1)[:, 1]
        map_max = anomaly_map.flatten(1).amax(dim=1)
        if self.image_score == ImageScore.GLOBAL:
            pred_score = global_score
        elif self.image_score == ImageScore.MAP_MAX:
            pred_score = map_max
        else:
            pred_score = (global_score + map_max) / 2
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)
