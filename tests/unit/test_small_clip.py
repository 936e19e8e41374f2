# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The small CLIP that ships with the package: its asset, its tag, what it knows, and the corpus it learned from."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from anomalib_vlm.clip import CLIP_MEAN, CLIP_STD, list_backbones, load_clip_model
from anomalib_vlm.clip.backbone import (
    PACKAGE_WEIGHTS,
    SMALL_MODEL_NAME,
    SMALL_PRETRAINED_TAG,
    SMALL_WEIGHTS_SHA256,
    open_clip_module,
)
from anomalib_vlm.clip.pretrain import build_parser, encode_text_prefix, pretrain
from anomalib_vlm.data.generators.corpus import COLOURS, HELD_OUT_FAMILIES, CaptionCorpus

ASSET = PACKAGE_WEIGHTS[SMALL_MODEL_NAME, SMALL_PRETRAINED_TAG]
README = Path(__file__).resolve().parents[2] / "anomalib_vlm" / "clip" / "README.md"


@pytest.fixture(scope="module")
def small() -> torch.nn.Module:
    return load_clip_model(SMALL_MODEL_NAME, SMALL_PRETRAINED_TAG)


@pytest.fixture(scope="module")
def corpus() -> CaptionCorpus:
    return CaptionCorpus(image_size=64, seed=0)


def _image_features(model: torch.nn.Module, images: list[np.ndarray]) -> torch.Tensor:
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    pixels = (pixels - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    with torch.no_grad():
        return F.normalize(model.encode_image(pixels), dim=-1)


def _text_features(model: torch.nn.Module, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(model.encode_text(open_clip_module().get_tokenizer(SMALL_MODEL_NAME)(texts)), dim=-1)


class TestAsset:
    @staticmethod
    def test_asset_is_small_and_its_sha256_is_the_documented_one() -> None:
        data = ASSET.read_bytes()
        assert len(data) <= 10 * 1024 * 1024
        digest = hashlib.sha256(data).hexdigest()
        assert digest == SMALL_WEIGHTS_SHA256
        assert digest in README.read_text()

    @staticmethod
    def test_asset_is_package_data() -> None:
        tomllib = pytest.importorskip("tomllib")
        project = tomllib.loads((README.parents[2] / "pyproject.toml").read_text())
        assert "assets/*.safetensors" in project["tool"]["setuptools"]["package-data"]["anomalib_vlm.clip"]

    @staticmethod
    def test_loads_by_tag_like_any_pretrained_tag(small: torch.nn.Module) -> None:
        assert SMALL_MODEL_NAME in list_backbones()
        assert SMALL_PRETRAINED_TAG in open_clip_module().list_pretrained_tags_by_model(SMALL_MODEL_NAME)
        assert not small.training
        assert not any(parameter.requires_grad for parameter in small.parameters())
        assert len(small.visual.transformer.resblocks) == 24
        assert len(small.transformer.resblocks) == 12
        larger = load_clip_model(SMALL_MODEL_NAME, SMALL_PRETRAINED_TAG, image_size=128)
        assert larger.visual.positional_embedding.shape[0] == 1 + 16 * 16
        assert torch.equal(larger.token_embedding.weight, small.token_embedding.weight)

    @staticmethod
    def test_prefix_text_encoding_equals_the_full_context(small: torch.nn.Module) -> None:
        tokens = open_clip_module().get_tokenizer(SMALL_MODEL_NAME)(
            ["a photo of a red star.", "a blurry cat with a dent."]
        )
        with torch.no_grad():
            assert torch.allclose(small.encode_text(tokens), encode_text_prefix(small, tokens[:, :40]), atol=1e-5)


class TestKnowledge:
    """Zero-shot on what the model never saw in pre-training (chance: 1/11 colours, 1/64 retrieval)."""

    @staticmethod
    @pytest.mark.parametrize("split", ["heldout_family", "heldout_combination"])
    def test_names_colours_of_unseen_families_and_combinations(
        small: torch.nn.Module, corpus: CaptionCorpus, split: str
    ) -> None:
        samples = [corpus.sample(50_000 + i, split) for i in range(90)]
        samples = [s for s in samples if s.colour is not None][:40]
        texts = _text_features(small, [f"a photo of a {colour} object." for colour in COLOURS])
        predicted = (_image_features(small, [s.image for s in samples]) @ texts.T).argmax(1)
        truth = torch.tensor([list(COLOURS).index(s.colour) for s in samples])
        assert (predicted == truth).float().mean() > COLOUR_ACCURACY_FLOOR

    @staticmethod
    def test_retrieves_captions_of_unseen_combinations(small: torch.nn.Module, corpus: CaptionCorpus) -> None:
        samples = [corpus.sample(60_000 + i, "heldout_combination") for i in range(64)]
        similarity = (
            _image_features(small, [s.image for s in samples]) @ _text_features(small, [s.caption for s in samples]).T
        )
        hits = [samples[j].key == samples[i].key for i, j in enumerate(similarity.argmax(1).tolist())]
        assert np.mean(hits) > RETRIEVAL_FLOOR


# Measured on these exact samples (see the README for larger held-out measurements); the floors leave a margin.
COLOUR_ACCURACY_FLOOR = 0.6
RETRIEVAL_FLOOR = 0.3


class TestCorpus:
    @staticmethod
    def test_samples_are_a_function_of_seed_split_and_index(corpus: CaptionCorpus) -> None:
        again = CaptionCorpus(image_size=64, seed=0)
        for index in (0, 7):
            first, second = corpus.sample(index), again.sample(index)
            assert np.array_equal(first.image, second.image)
            assert np.array_equal(first.mask, second.mask)
            assert first.caption == second.caption
        assert not np.array_equal(corpus.sample(0).image, CaptionCorpus(image_size=64, seed=1).sample(0).image)

    @staticmethod
    def test_training_never_draws_held_out_families_or_combinations(corpus: CaptionCorpus) -> None:
        families = set()
        for index in range(300):
            sample = corpus.sample(index)
            families.add(sample.family)
            assert sample.family not in HELD_OUT_FAMILIES
            assert corpus.is_training_combination(sample.family, sample.colour, sample.defect)
            assert sample.defect is None or sample.mask.any()
        assert len(families) > 20
        for index in range(40):
            assert corpus.sample(index, "heldout_family").family in HELD_OUT_FAMILIES
            combination = corpus.sample(index, "heldout_combination")
            assert not corpus.is_training_combination(combination.family, combination.colour, combination.defect)


def test_recipe_is_deterministic(tmp_path: Path) -> None:
    """Two runs of the recipe with the same arguments write the same weights."""
    outputs = []
    for run in range(2):
        output = tmp_path / f"run{run}.safetensors"
        argv = ["--output", str(output), "--steps", "1", "--batch-size", "4", "--workers", "0", "--eval-every", "0"]
        args = build_parser().parse_args([*argv, "--quiet"])
        args.argv = argv
        pretrain(args)
        outputs.append(load_file(str(output)))
    assert outputs[0].keys() == outputs[1].keys()
    assert all(torch.equal(outputs[0][key], outputs[1][key]) for key in outputs[0])
