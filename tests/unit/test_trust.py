# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""TRUST: the losses' maths, the caption classifiers, the captioned datamodule's errors, the domain-shift data."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import pytest
import torch
import torch.nn.functional as F

from anomalib_vlm.data import CaptionedDomainDataModule, read_captions_csv
from anomalib_vlm.data.generators.domain_shift import generate_domain_shift_dataset
from anomalib_vlm.models.trust.loss import SoftContrastiveLoss, TrustLoss, caption_uncertainty_weights


# ---------------------------------------------------------------------------------------------- losses
def test_uncertainty_weight_is_the_own_caption_probability_over_the_batch() -> None:
    images = F.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    captions = images.clone()
    captions[3] = -images[3]  # a caption that contradicts its image
    weights = caption_uncertainty_weights(images, captions, logit_scale=100.0, temperature=3.0)
    expected = (100.0 * images @ captions.T / 3.0).softmax(dim=1).diagonal()
    torch.testing.assert_close(weights, expected)
    assert weights[3] < 0.01 < weights[[0, 1, 2, 4]].min()
    with pytest.raises(ValueError, match="temperature"):
        caption_uncertainty_weights(images, captions, 100.0, temperature=0.0)


def test_soft_contrast_prefers_features_that_follow_the_caption_structure() -> None:
    generator = torch.Generator().manual_seed(0)
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    similarity = (groups[:, None] == groups[None]).float() * 0.9 + 0.05
    centres = F.normalize(torch.randn(3, 16, generator=generator), dim=-1)
    aligned = F.normalize(centres[groups][:, None] + 0.05 * torch.randn(6, 2, 16, generator=generator), dim=-1)
    shuffled = aligned[torch.tensor([0, 2, 4, 1, 3, 5])]
    loss = SoftContrastiveLoss(temperature=0.07)
    assert loss(aligned, similarity) < loss(shuffled, similarity)
    features = shuffled.clone().requires_grad_(True)
    loss(features, similarity).backward()  # the official code built these features under no_grad
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_trust_loss_weights_target_terms_by_w_and_one_minus_w() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = [torch.randn(4, 3, generator=generator) for _ in range(3)]
    labels, pseudo = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 2, 1, 0])
    weights = torch.tensor([1.0, 0.0, 0.5, 0.25])
    parts = TrustLoss(contrastive_weight=0.0)(logits[0], labels, logits[1], logits[2], pseudo, weights)
    expected_target = (weights * F.cross_entropy(logits[1], pseudo, reduction="none")).mean()
    self_labels = logits[1].argmax(1)
    expected_strong = ((1 - weights) * F.cross_entropy(logits[2], self_labels, reduction="none")).mean()
    torch.testing.assert_close(parts["target_loss"], expected_target)
    torch.testing.assert_close(parts["strong_loss"], expected_strong)
    plain = TrustLoss(contrastive_weight=0.0, use_uncertainty=False)(
        logits[0], labels, logits[1], logits[2], pseudo, weights
    )
    torch.testing.assert_close(plain["target_loss"], F.cross_entropy(logits[1], pseudo))
    assert float(plain["strong_loss"]) == 0.0


# ---------------------------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def shifted_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_domain_shift_dataset(
        tmp_path_factory.mktemp("shift"),
        shift="night",
        caption_noise=0.5,
        num_source=6,
        num_target=6,
        num_target_test=3,
        seed=3,
    )


def test_domain_shift_data_has_the_layout_and_the_caption_noise_it_was_asked_for(shifted_root: Path) -> None:
    datamodule = CaptionedDomainDataModule(shifted_root, image_size=64, num_workers=0)
    datamodule.index()
    assert len(datamodule.class_names) == 6 and len(datamodule.source_paths) == 36 == len(datamodule.target_paths)
    truth = list(csv.DictReader((shifted_root / "target_truth.csv").open()))
    wrong = sum(row["caption_correct"] == "0" for row in truth) / len(truth)
    assert 0.3 < wrong < 0.7
    assert all(row["caption_class"] != row["class"] for row in truth if row["caption_correct"] == "0")
    batch = next(iter(datamodule.train_dataloader()))[0]
    assert batch["source"]["image"].shape == batch["source"]["strong"].shape == (32, 3, 64, 64)
    assert not torch.equal(batch["target"]["image"], batch["target"]["strong"])
    assert set(batch["target"]["label"].tolist()) == {-1}


def test_colour_classes_are_captioned_by_colour_and_the_shift_strength_blends(tmp_path: Path) -> None:
    from anomalib_vlm.data.generators.domain_shift import DEFAULT_COLOUR_CLASSES

    def generate(name: str, strength: float) -> Path:
        return generate_domain_shift_dataset(
            tmp_path / name,
            class_attribute="colour",
            shift="lamplight",
            shift_strength=strength,
            caption_noise=0.5,
            num_source=2,
            num_target=4,
            num_target_test=1,
            seed=1,
        )

    root = generate("full", 1.0)
    assert sorted(path.name for path in (root / "source").iterdir()) == sorted(DEFAULT_COLOUR_CLASSES)
    captions = read_captions_csv(root / "captions.csv")
    truth = list(csv.DictReader((root / "target_truth.csv").open()))
    for row in truth:  # right captions name the true colour, wrong ones another class's colour
        words = captions[(root / row["image_path"]).resolve()].split()
        assert row["caption_class"] in words and (row["caption_correct"] == "1") == (row["class"] in words)
    assert {row["caption_correct"] for row in truth} == {"0", "1"}
    white = [cv2.imread(str(path / "target_test" / "white" / "000.png")) for path in (root, generate("none", 0.0))]
    blue_to_red = [float(image[..., 0].mean()) / float(image[..., 2].mean()) for image in white]  # BGR
    assert blue_to_red[0] < 0.8 and blue_to_red[1] > 0.9  # lamp light takes blue away; strength 0 leaves white
    with pytest.raises(ValueError, match="class_attribute"):
        generate_domain_shift_dataset(tmp_path / "bad", class_attribute="shape")
    with pytest.raises(ValueError, match="colours"):
        generate_domain_shift_dataset(tmp_path / "bad", class_attribute="colour", classes=["striped", "dotted"])


def _copy_layout(root: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(root, copy)
    return copy


def test_missing_image_in_captions_table_is_named(shifted_root: Path, tmp_path: Path) -> None:
    root = _copy_layout(shifted_root, tmp_path)
    with (root / "captions.csv").open("a") as handle:
        handle.write("target/gone.png,a photo of a red striped texture.\n")
    with pytest.raises(FileNotFoundError, match=r"line \d+: image target/gone.png does not exist"):
        read_captions_csv(root / "captions.csv")


def test_empty_caption_and_uncaptioned_image_are_named(shifted_root: Path, tmp_path: Path) -> None:
    root = _copy_layout(shifted_root, tmp_path)
    lines = (root / "captions.csv").read_text().splitlines()
    (root / "captions.csv").write_text("\n".join([*lines[:2], lines[2].split(",")[0] + ",  ", *lines[3:]]) + "\n")
    with pytest.raises(ValueError, match=r"line 3: the caption of .* is empty"):
        read_captions_csv(root / "captions.csv")
    (root / "captions.csv").write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match="1 source images have no caption"):
        CaptionedDomainDataModule(root, num_workers=0).index()
    (root / "captions.csv").write_text("path,text\n")
    with pytest.raises(ValueError, match=r"lacks the columns \['image_path', 'caption'\]"):
        read_captions_csv(root / "captions.csv")


def test_unknown_target_class_and_wrong_class_names_are_named(shifted_root: Path, tmp_path: Path) -> None:
    root = _copy_layout(shifted_root, tmp_path)
    (root / "target_test" / "zebra").mkdir()
    with pytest.raises(ValueError, match=r"Target-test classes \['zebra'\] .* are not source classes"):
        CaptionedDomainDataModule(root, num_workers=0).setup()
    with pytest.raises(ValueError, match="2 class names given for 6 source class folders"):
        CaptionedDomainDataModule(root, class_names=["a", "b"], num_workers=0).index()


# ---------------------------------------------------------------------------------------------- model
def test_split_image_tower_is_clips_embedding_and_only_the_last_blocks_train() -> None:
    from anomalib_vlm.models.trust import TrustModel

    model = TrustModel("anomalib-vlm-tiny", pretrained=None, image_size=64, trainable_blocks=2).eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = F.normalize(model.vision(images).global_feature, dim=-1)
        torch.testing.assert_close(model.encode(images), expected)
        torch.testing.assert_close(model.encode_from_prefix(model.encode_prefix(images)), expected)
    trained = {name for name, p in model.clip.named_parameters() if p.requires_grad}
    assert trained and all(
        name.startswith(
            ("visual.transformer.resblocks.22", "visual.transformer.resblocks.23", "visual.ln_post", "visual.proj")
        )
        for name in trained
    )
    with pytest.raises(RuntimeError, match="no classes yet"):
        model.logits(expected)


def test_trust_wraps_a_supreme_classifier_and_rejects_another_backbone() -> None:
    from anomalib_vlm.models import Supreme, Trust

    supreme = Supreme(
        class_names=["wood", "tile"], mode="mcm", backbone="anomalib-vlm-tiny", pretrained=None, image_size=64
    )
    trust = Trust.from_supreme(supreme, trainable_blocks=1)
    assert trust.model.class_names == ["wood", "tile"]
    torch.testing.assert_close(F.normalize(trust.model.prototypes, dim=-1), supreme.model.text_prototypes)
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # before adaptation the wrapped classifier scores exactly as Supreme's MCM
        torch.testing.assert_close(trust.model(images).pred_score, supreme.model(images).pred_score)
    other = Trust(backbone="anomalib-vlm-small", pretrained=None, image_size=64)
    with pytest.raises(ValueError, match="other weights"):
        other.start_from_supreme(supreme)
