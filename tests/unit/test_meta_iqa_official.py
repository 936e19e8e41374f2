# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""MetaIqa's defaults are the official GRMP-IQA code's, the earlier behaviours options.

The official code's scene words, a prompt-dropout mask per image, and inner meta-training steps alternating one
support batch and one query batch.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from anomalib_vlm.clip import normalization_of
from anomalib_vlm.data import IqaItem
from anomalib_vlm.models.meta_iqa import MetaIqa, MetaIqaModel
from anomalib_vlm.models.meta_iqa.torch_model import SCENE_CLASSES, SPELLED_OUT_SCENE_CLASSES

TINY = {"backbone": "anomalib-vlm-tiny", "pretrained": None, "image_size": 32, "visual_prompt_tokens": 4}
OFFICIAL_SCENES = ("animal", "cityscape", "human", "indoor", "landscape", "night", "plant", "still_life", "others")


def test_default_scene_words_are_the_official_ones() -> None:
    """finetune.py prompts "a photo of a {scene}" with these nine words, underscore included, in this order."""
    assert SCENE_CLASSES == OFFICIAL_SCENES
    model = MetaIqaModel(**TINY)
    assert model.scene_classes == OFFICIAL_SCENES
    assert model.scene_texts[3] == "a photo of a indoor"
    assert model.scene_texts[7] == "a photo of a still_life"
    assert MetaIqa(**TINY).model.scene_classes == OFFICIAL_SCENES
    spelled_out = MetaIqaModel(**TINY, scene_classes=SPELLED_OUT_SCENE_CLASSES)
    assert [spelled_out.scene_classes[i] for i in (3, 5, 7)] == ["indoor scene", "night scene", "still life"]


@pytest.mark.parametrize("per_sample", [True, False])
def test_visual_prompt_dropout_draws_one_mask_per_image_by_default(per_sample: bool) -> None:
    """Identical images in one batch get different features in training only when each image has its own mask."""
    torch.manual_seed(0)
    kwargs = {} if per_sample else {"visual_prompt_dropout_per_sample": False}
    model = MetaIqaModel(**(TINY | {"visual_prompt_dropout": 0.5}), **kwargs)
    images = torch.randn(1, 3, 32, 32).expand(4, -1, -1, -1)
    model.train()
    with torch.no_grad():
        features = model.image_features(images)
    differs = [not torch.allclose(features[0], features[i]) for i in range(1, 4)]
    assert all(differs) if per_sample else not any(differs)
    model.eval()
    with torch.no_grad():
        features = model.image_features(images)
    assert torch.allclose(features[0], features[1:], atol=1e-6)  # no dropout at inference either way


class _TaggedImages(Dataset):
    """Image ``i`` is filled with ``i``, so the inner loop's batches tell which images they hold."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> IqaItem:
        return IqaItem(
            image=torch.full((3, 32, 32), float(index)),
            gt_quality=torch.tensor(index / self.size),
            mos=torch.tensor(float(index)),
        )


def _record_inner_steps(order: str | None) -> tuple[list[list[int]], set[int], set[int]]:
    """Run one task's inner loop; return the image indices of every step and the support and query sets."""
    settings = {"meta_support_batch_size": 3, "meta_query_batch_size": 1, "meta_support_ratio": 0.8}
    model = MetaIqa(**TINY, **settings, **({} if order is None else {"meta_inner_order": order}))
    steps: list[list[int]] = []
    mean, std = normalization_of(model.pre_processor.transform)

    def record(_: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:  # the images the encoder sees
        steps.append(sorted(round(float(image[0, 0, 0]) * std[0] + mean[0]) for image in inputs[0]))

    model.model.visual_prompts.register_forward_pre_hook(record)
    params = model.model.set_trainable("meta")
    generator = torch.Generator().manual_seed(0)
    model.adapt_to_task(params, _TaggedImages(10), generator)
    order_seen = torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
    return steps, set(order_seen[:8]), set(order_seen[8:])


def test_meta_inner_loop_alternates_support_and_query_steps_by_default() -> None:
    """Official pretrain.py: a step on each support batch, then a step on the next query batch (cycling)."""
    steps, support, query = _record_inner_steps(None)
    # 8 support images in batches of 3 (3, 3, 2), 2 query images in batches of 1: S Q S Q S Q.
    assert [len(step) for step in steps] == [3, 1, 3, 1, 2, 1]
    assert all(set(step) <= support for step in steps[0::2])
    assert all(set(step) <= query for step in steps[1::2])
    assert set(steps[1]) | set(steps[3]) == query  # both query batches, then the loader starts again
    assert sorted(i for step in steps[0::2] for i in step) == sorted(support)


def test_meta_inner_loop_support_then_query_is_an_option() -> None:
    """The earlier order: every support batch, then every query batch once."""
    steps, support, query = _record_inner_steps("support_then_query")
    assert [len(step) for step in steps] == [3, 3, 2, 1, 1]
    assert set().union(*map(set, steps[:3])) == support
    assert set().union(*map(set, steps[3:])) == query
    with pytest.raises(ValueError, match="meta_inner_order must be one of"):
        MetaIqa(**TINY, meta_inner_order="random")
