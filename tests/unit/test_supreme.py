# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Supreme's parts on their own: FPR95 conventions, class-name and shot checks, scores, the OOD datamodule."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from anomalib.data import ImageBatch
from anomalib.data.transforms.utils import extract_transforms_by_type
from anomalib.pre_processing.utils.transform import get_exportable_transform
from torchvision import tv_tensors
from torchvision.transforms.v2 import CenterCrop, Compose, InterpolationMode, Normalize, Resize

from anomalib_vlm.clip import CLIP_MEAN, CLIP_STD
from anomalib_vlm.clip.transforms import ResizeShorterSideCenterCrop
from anomalib_vlm.data import OODDataModule, OODImageBatch, generate_synthetic_ood_dataset
from anomalib_vlm.metrics import FPR95, IDAccuracy, fpr_at_tpr
from anomalib_vlm.models.supreme import Supreme
from anomalib_vlm.models.supreme.torch_model import SupremeModel, check_class_names, mcm_terms

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE_SIZE = 64  # the tiny backbone accepts any size; small images keep these tests fast
TINY = {"backbone": "anomalib-vlm-tiny", "pretrained": None, "image_size": IMAGE_SIZE, "shots": 2}


@pytest.fixture(scope="module")
def tiny_model() -> SupremeModel:
    torch.manual_seed(0)
    model = SupremeModel("anomalib-vlm-tiny", None, image_size=IMAGE_SIZE, mode="supreme")
    model.set_classes(["red wood", "green tile"])
    return model


@pytest.fixture(scope="module")
def ood_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_ood_dataset(
        tmp_path_factory.mktemp("ood") / "synthetic_ood",
        id_classes=["wood", "tile"],
        image_size=IMAGE_SIZE,
        num_train=3,
        num_test=2,
        num_ood=2,
    )


class TestFPR95:
    @staticmethod
    def test_conventions_differ_as_documented() -> None:
        # ID scores 0..9, OOD scores 5..14 (higher = more OOD): 10 of each.
        scores = torch.cat([torch.arange(10.0), torch.arange(5.0, 15.0)])
        labels = torch.cat([torch.zeros(10), torch.ones(10)])
        # ID-positive (paper): keeping 95 % of ID (10 of 10, threshold at ID score 9) lets OOD 5..9 pass: 5/10.
        assert float(fpr_at_tpr(scores, labels, positive="id")) == pytest.approx(0.5)
        # OOD-positive (OpenOOD): catching 95 % of OOD (threshold at OOD score 5) flags ID 5..9: 5/10 as well here,
        assert float(fpr_at_tpr(scores, labels, positive="ood")) == pytest.approx(0.5)
        # ... but not in general: one OOD-looking ID image drags the ID-positive threshold past every OOD image,
        # while the OOD-positive one still flags the same five ID images.
        scores[9] = 100.0
        assert float(fpr_at_tpr(scores, labels, positive="id")) == pytest.approx(1.0)
        assert float(fpr_at_tpr(scores, labels, positive="ood")) == pytest.approx(0.5)

    @staticmethod
    def test_perfect_and_reversed_detectors() -> None:
        labels = torch.tensor([0, 0, 0, 1, 1, 1])
        assert float(fpr_at_tpr(torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9]), labels)) == 0.0
        assert float(fpr_at_tpr(torch.tensor([0.7, 0.8, 0.9, 0.1, 0.2, 0.3]), labels)) == 1.0
        assert torch.isnan(fpr_at_tpr(torch.rand(3), torch.zeros(3)))

    @staticmethod
    def test_anomalib_metric_names_and_batches() -> None:
        batch = ImageBatch(
            image=torch.rand(4, 3, 8, 8),
            gt_label=torch.tensor([0, 0, 1, 1]),
            pred_score=torch.tensor([0.1, 0.2, 0.15, 0.9]),
        )
        paper, other = FPR95(prefix="image_"), FPR95(prefix="image_", positive="ood")
        for metric in (paper, other):
            metric.update(batch)
        assert (paper.name, other.name) == ("image_FPR95", "image_FPR95_OODpositive")
        assert float(paper.compute()) == pytest.approx(0.5)
        with pytest.raises(ValueError, match="positive must be 'id' or 'ood'"):
            FPR95(positive="anomalous")

    @staticmethod
    def test_id_accuracy_skips_ood_samples_and_plain_batches() -> None:
        metric = IDAccuracy()
        batch = OODImageBatch(
            image=torch.rand(4, 3, 8, 8),
            gt_label=torch.tensor([0, 0, 0, 1]),
            gt_class=torch.tensor([0, 1, 1, -1]),
            pred_class=torch.tensor([0, 1, 0, 1]),
        )
        metric.update(batch)
        metric.update(ImageBatch(image=torch.rand(2, 3, 8, 8), gt_label=torch.tensor([0, 1])))  # no class fields
        assert float(metric.compute()) == pytest.approx(2 / 3)


class TestBadInput:
    @staticmethod
    def test_class_names() -> None:
        with pytest.raises(ValueError, match="at least one ID class name, got an empty list"):
            check_class_names([])
        with pytest.raises(ValueError, match=r"Duplicate ID class names: 'Wood' \(same as 'wood'\)"):
            check_class_names(["wood", "tile", "Wood"])
        with pytest.raises(ValueError, match=r"blank names at positions \[1\]"):
            check_class_names(["wood", "  "])
        with pytest.raises(ValueError, match=r"'metal nut' \(same as 'metal_nut'\)"):
            check_class_names(["metal_nut", "metal nut"])  # the prompts read "_" as a space

    @staticmethod
    def test_shots(tiny_model: SupremeModel) -> None:
        good = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE)
        with pytest.raises(ValueError, match=r"ID classes \['green tile'\] have no shots"):
            tiny_model.set_shots({"red wood": good})
        with pytest.raises(ValueError, match="ID class 'green tile' has no shots"):
            tiny_model.set_shots({"red wood": good, "green tile": good[:0]})
        with pytest.raises(ValueError, match="'green tile' are 32x32, expected 64x64"):
            tiny_model.set_shots({"red wood": good, "green tile": torch.rand(2, 3, 32, 32)})
        with pytest.raises(ValueError, match="'green tile' have 1 channels, expected 3"):
            tiny_model.set_shots({"red wood": good, "green tile": torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE)})
        with pytest.raises(ValueError, match=r"unknown classes \['blue weave'\]"):
            tiny_model.set_shots({"red wood": good, "green tile": good, "blue weave": good})

    @staticmethod
    def test_scoring_before_shots_says_what_is_missing() -> None:
        model = SupremeModel("anomalib-vlm-tiny", None, image_size=IMAGE_SIZE, mode="smmp")
        model.set_classes(["wood", "tile"])
        with pytest.raises(RuntimeError, match="needs image prototypes"):
            model.eval()(torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE))
        with pytest.raises(ValueError, match=r"expects images of shape \[B, 3, H, W\]"):
            model.eval()(torch.rand(1, 4, IMAGE_SIZE, IMAGE_SIZE))


class TestScores:
    @staticmethod
    def test_image_embedding_is_clips_own(tiny_model: SupremeModel) -> None:
        """The encoder reuses DualPathVisionEncoder without surgery: it must give CLIP's encode_image."""
        model = SupremeModel("anomalib-vlm-tiny", None, image_size=128, mode="mcm")
        images = torch.rand(2, 3, 128, 128)
        expected = torch.nn.functional.normalize(model.clip.encode_image(images), dim=-1)
        torch.testing.assert_close(model.encode_images(images), expected, atol=1e-5, rtol=0)

    @staticmethod
    def test_mcm_terms() -> None:
        features = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), dim=-1)
        prototypes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        score, probabilities = mcm_terms(features, prototypes, temperature=0.01)
        assert score[0] == pytest.approx(1.0)  # sure of class 0
        assert score[1] == pytest.approx(0.5)  # between the classes: the MCM score drops
        assert probabilities.shape == (2, 2)
        # One class: the softmax is constant, so the cosine itself is the score.
        score, _ = mcm_terms(features, prototypes[:1], temperature=0.01)
        torch.testing.assert_close(score, torch.tensor([1.0, 0.5**0.5]))

    @staticmethod
    def test_untuned_itc_is_the_identity_so_gmp_equals_mmp(tiny_model: SupremeModel) -> None:
        shots = {name: torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE) for name in tiny_model.class_names}
        tiny_model.set_shots(shots)
        images = torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE)
        tiny_model.eval()
        gmp = 1 - tiny_model(images).pred_score
        tiny_model.use_itc = False
        mmp = 1 - tiny_model(images).pred_score
        tiny_model.use_itc = True
        torch.testing.assert_close(gmp, mmp)

    @staticmethod
    def test_bpg_prototypes_follow_the_bias_and_the_image_condition(tiny_model: SupremeModel) -> None:
        """Text prototypes depend on mu (inference) and on samples of the bias (training), as BPG intends."""
        tiny_model.eval()
        before = tiny_model.encode_text_prototypes()
        # A random direction: a constant shift of every feature would be removed by the text tower's LayerNorms.
        direction = torch.randn(tiny_model.bias_mean.shape, generator=torch.Generator().manual_seed(0)) * 0.05
        with torch.no_grad():
            tiny_model.bias_mean.add_(direction)
        shifted = tiny_model.encode_text_prototypes()
        with torch.no_grad():
            tiny_model.bias_mean.sub_(direction)
        assert (before - shifted).abs().max() > 1e-3
        torch.manual_seed(0)
        sampled = tiny_model.encode_text_prototypes(sample=True)
        assert (sampled - before).abs().max() > 0


class TestOODData:
    @staticmethod
    def test_layout_labels_and_batches(ood_root: Path) -> None:
        datamodule = OODDataModule(ood_root, num_workers=0, eval_batch_size=64, shots_per_class=2)
        datamodule.setup()
        assert datamodule.class_names == ["tile", "wood"]
        assert len(datamodule.train_data) == 4  # 2 shots x 2 classes
        batch = next(iter(datamodule.test_dataloader()))
        assert isinstance(batch, OODImageBatch)
        ood = batch.gt_label.bool()
        assert int((~ood).sum()) == 4 and int(ood.sum()) == 6  # 2 test images x 2 classes; 2 x 3 OOD kinds
        assert (batch.gt_class[ood] == -1).all()
        assert set(batch.gt_class[~ood].tolist()) == {0, 1}
        assert batch.items[0].gt_class is not None  # items (visualizer) keep the class field

    @staticmethod
    def test_generation_is_deterministic(ood_root: Path, tmp_path: Path) -> None:
        again = generate_synthetic_ood_dataset(
            tmp_path / "again",
            id_classes=["wood", "tile"],
            image_size=IMAGE_SIZE,
            num_train=3,
            num_test=2,
            num_ood=2,
        )
        for path in sorted(ood_root.rglob("*.png")):
            assert path.read_bytes() == (again / path.relative_to(ood_root)).read_bytes()

    @staticmethod
    def test_errors_name_the_problem(ood_root: Path, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="No ID class folders"):
            OODDataModule(tmp_path, num_workers=0).setup()
        with pytest.raises(ValueError, match="fewer than shots_per_class=5"):
            OODDataModule(ood_root, shots_per_class=5, num_workers=0).setup()
        with pytest.raises(FileNotFoundError, match=r"OOD kinds \['places'\] not found"):
            OODDataModule(ood_root, ood_kinds=["places"], num_workers=0).setup()
        with pytest.raises(ValueError, match="3 class names given for 2 ID class folders"):
            _ = OODDataModule(ood_root, class_names=["a", "b", "c"]).class_names
        with pytest.raises(ValueError, match="id_classes must be"):
            generate_synthetic_ood_dataset(tmp_path / "x", id_classes=["wood", "wood"])


class TestLightningSetup:
    """What ``Supreme.setup`` checks before any tuning or scoring."""

    @staticmethod
    def test_shot_files_of_any_size_and_an_unreadable_one(tmp_path: Path) -> None:
        for name, shape in (("a", (40, 64)), ("b", (64, 40))):  # non-square, and not the model's size
            (tmp_path / name).mkdir()
            cv2.imwrite(str(tmp_path / name / "0.png"), np.full((*shape, 3), 100, np.uint8))
        model = Supreme(mode="smmp", class_names=["a", "b"], few_shot_source=str(tmp_path), **TINY)
        model.setup("validate")
        assert model.model.image_prototypes.shape == (2, 64)
        (tmp_path / "b" / "1.png").write_bytes(b"not a png")
        model = Supreme(mode="smmp", class_names=["a", "b"], few_shot_source=str(tmp_path), **TINY)
        with pytest.raises(ValueError, match=r"Shot image .*1\.png of ID class 'b' cannot be read"):
            model.setup("validate")
        missing = Supreme(mode="smmp", class_names=["a"], few_shot_source={"a": [tmp_path / "gone.png"]}, **TINY)
        with pytest.raises(FileNotFoundError, match=r"Shot image .*gone\.png of ID class 'a' does not exist"):
            missing.setup("validate")

    @staticmethod
    def test_class_names_must_be_the_datamodules(ood_root: Path) -> None:
        """``gt_class`` indexes the model's classes, so other names or another order would mislabel silently."""
        datamodule = OODDataModule(ood_root, shots_per_class=1, num_workers=0)
        assert datamodule.class_names == ["tile", "wood"]
        model = Supreme(mode="mcm", class_names=["wood", "tile"], **TINY)
        model.trainer = SimpleNamespace(datamodule=datamodule)  # what Engine.fit / test attach
        with pytest.raises(ValueError, match=r"model's ID classes \['wood', 'tile'\] are not the datamodule's"):
            model.setup("test")
        model = Supreme(mode="mcm", class_names=["Tile", "wood"], **TINY)
        model.trainer = SimpleNamespace(datamodule=datamodule)
        model.setup("test")  # same names in the same order, case aside

    @staticmethod
    def test_supreme_mode_refuses_to_tune_a_single_class(tmp_path: Path) -> None:
        (tmp_path / "bottle").mkdir()
        cv2.imwrite(str(tmp_path / "bottle" / "0.png"), np.full((16, 16, 3), 100, np.uint8))
        model = Supreme(mode="supreme", class_names=["bottle"], few_shot_source=str(tmp_path), **TINY)
        with pytest.raises(ValueError, match=r"constant for the single class 'bottle'.*mode='smmp'"):
            model.setup("fit")
        model.setup("test")  # testing (e.g. a checkpoint restored after setup) is not refused

    @staticmethod
    def test_preprocessing_crops_each_image_before_collation() -> None:
        """Anomalib moves the first ``Resize`` into the dataset: it must already give square, centre-cropped images."""
        transform = Supreme.configure_pre_processor((32, 32)).transform
        moved = extract_transforms_by_type(transform, Resize)
        assert len(moved) == 1
        assert isinstance(moved[0], ResizeShorterSideCenterCrop)
        wide = torch.rand(3, 40, 64, generator=torch.Generator().manual_seed(0))
        assert moved[0](wide).shape == (3, 32, 32)
        clip_reference = Compose(
            [
                Resize(32, interpolation=InterpolationMode.BICUBIC, antialias=True),
                CenterCrop(32),
                Normalize(mean=CLIP_MEAN, std=CLIP_STD),
            ]
        )
        torch.testing.assert_close(transform(wide), clip_reference(wide))
        # In a dataset: an (image, mask) pair, cropped alike, keeping their types for later transforms.
        mask = torch.zeros(40, 64, dtype=torch.uint8)
        mask[:, 40:] = 1  # partly inside the centre crop
        image, cropped_mask = moved[0](tv_tensors.Image(wide), tv_tensors.Mask(mask))
        assert isinstance(image, tv_tensors.Image)
        assert isinstance(cropped_mask, tv_tensors.Mask)
        torch.testing.assert_close(cropped_mask, CenterCrop(32)(Resize(32)(tv_tensors.Mask(mask))))
        # anomalib's export switches antialiasing off; the crop stays.
        exportable = get_exportable_transform(transform)
        assert exportable.transforms[0].antialias is False
        export_reference = Compose(
            [
                Resize(32, interpolation=InterpolationMode.BICUBIC, antialias=False),
                CenterCrop(32),
                Normalize(mean=CLIP_MEAN, std=CLIP_STD),
            ]
        )
        torch.testing.assert_close(exportable(wide), export_reference(wide))
        with pytest.raises(ValueError, match=r"square inputs .*\(32, 48\)"):
            Supreme.configure_pre_processor((32, 48))
