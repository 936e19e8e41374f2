# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Tests of the synthetic anomaly dataset generator (:mod:`anomalib_vlm.data.generators.synthetic`)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from anomalib_vlm.data import CATEGORIES, DEFECT_TYPES, generate_synthetic_dataset, render_normal, render_sample

SIZE = 128
SMALL = {"image_size": 64, "num_train": 3, "num_test_normal": 2, "num_test_per_defect": 2}


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _features(image: np.ndarray) -> np.ndarray:
    """Colour and texture statistics of one image."""
    rgb = image.astype(np.float32) / 255
    lum = rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)
    saturation = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32) / 255
    blur3, blur9 = cv2.blur(lum, (3, 3)), cv2.blur(lum, (9, 9))
    return np.array(
        [
            *rgb.mean((0, 1)),
            saturation.mean(),
            lum.std(),
            np.abs(np.diff(lum, axis=1)).mean(),
            np.abs(np.diff(lum, axis=0)).mean(),
            np.abs(lum - blur3).mean(),
            np.abs(blur3 - blur9).mean(),
            blur9.std(),
        ]
    )


# ------------------------------------------------------------------------------------------------ constants
def test_constants() -> None:
    assert len(CATEGORIES) >= 6
    assert len(set(CATEGORIES)) == len(CATEGORIES)
    assert all(name.isidentifier() and name == name.lower() for name in CATEGORIES + DEFECT_TYPES)
    assert {"scratch", "hole", "stain", "missing"} <= set(DEFECT_TYPES)


# ------------------------------------------------------------------------------------------------ rendering
@pytest.mark.parametrize("category", CATEGORIES)
def test_render_shapes_and_mask_coverage(category: str) -> None:
    normal = render_normal(category, SIZE, _rng(0))
    assert normal.shape == (SIZE, SIZE, 3)
    assert normal.dtype == np.uint8
    image, mask = render_sample(category, None, SIZE, _rng(0))
    np.testing.assert_array_equal(image, normal)
    assert mask.shape == (SIZE, SIZE)
    assert mask.dtype == bool
    assert not mask.any()
    for defect, seed in itertools.product(DEFECT_TYPES, range(3)):
        image, mask = render_sample(category, defect, SIZE, _rng(seed))
        assert image.shape == (SIZE, SIZE, 3)
        assert image.dtype == np.uint8
        assert mask.dtype == bool
        assert 0.005 <= mask.mean() <= 0.15, (category, defect, seed, mask.mean())


@pytest.mark.parametrize("size", [32, 48, 200])
def test_render_other_sizes(size: int) -> None:
    for category, defect in zip(CATEGORIES, itertools.cycle(DEFECT_TYPES), strict=False):
        image, mask = render_sample(category, defect, size, _rng(size))
        assert image.shape == (size, size, 3)
        assert 0.005 <= mask.mean() <= 0.15


def test_defects_are_distinct_from_normal_appearance() -> None:
    """A defect changes its pixels far more than normal texture varies, and leaves the rest alone.

    With identically seeded generators, the image with a defect and the normal image share the same
    underlying normal appearance, so the normal image gives the local statistics at the defect.
    """
    for category, defect in itertools.product(CATEGORIES, DEFECT_TYPES):
        for seed in range(2):
            normal = render_sample(category, None, SIZE, _rng(5, seed))[0].astype(np.float32) / 255
            image, mask = render_sample(category, defect, SIZE, _rng(5, seed))
            image = image.astype(np.float32) / 255
            deviation = float(np.abs(image - normal).mean(-1)[mask].mean())
            normal_variation = float(np.abs(normal - cv2.blur(normal, (9, 9))).mean())
            assert deviation > 0.15, (category, defect, seed, deviation)
            assert deviation > 4 * normal_variation, (category, defect, seed, deviation, normal_variation)
            far = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3) > 8
            np.testing.assert_array_equal(image[far], normal[far])


def test_normal_images_vary_mildly() -> None:
    for category in CATEGORIES:
        images = [render_normal(category, SIZE, _rng(9, seed)).astype(np.float32) / 255 for seed in range(4)]
        assert not np.array_equal(images[0], images[1])
        for image in images:
            lum = image @ np.asarray([0.299, 0.587, 0.114], np.float32)
            assert 0.3 < lum.mean() < 0.9, category  # no near-black or blown-out normal images
            assert lum.min() > 0.05, category  # near-black is reserved for defects


def test_categories_differ_in_appearance() -> None:
    """Nearest-centroid classification on simple colour / texture statistics tells the categories apart."""
    features = {
        category: np.stack([_features(render_normal(category, SIZE, _rng(7, seed))) for seed in range(10)])
        for category in CATEGORIES
    }
    stacked = np.concatenate(list(features.values()))
    mean, std = stacked.mean(0), stacked.std(0) + 1e-8
    centroids = {category: ((values[:6] - mean) / std).mean(0) for category, values in features.items()}
    for first, second in itertools.combinations(CATEGORIES, 2):
        assert np.linalg.norm(centroids[first] - centroids[second]) > 1.0, (first, second)
    hits = [
        min(centroids, key=lambda name: np.linalg.norm(vector - centroids[name])) == category
        for category, values in features.items()
        for vector in (values[6:] - mean) / std
    ]
    assert np.mean(hits) >= 0.9


def test_render_errors() -> None:
    with pytest.raises(ValueError, match="valid categories: weave"):
        render_sample("bottle", None, SIZE, _rng(0))
    with pytest.raises(ValueError, match="valid defect types: hole"):
        render_sample("wood", "crack", SIZE, _rng(0))
    with pytest.raises(ValueError, match="image_size"):
        render_normal("wood", 16, _rng(0))


# ------------------------------------------------------------------------------------------------ dataset
def test_layout_read_by_anomalib_mvtec_ad(tmp_path: Path) -> None:
    from anomalib.data import MVTecAD

    root = generate_synthetic_dataset(
        tmp_path,
        categories=["chip", "wood"],
        num_train=4,
        num_test_normal=4,
        num_test_per_defect=2,
    )
    assert root == tmp_path
    expected = {"chip/generation.json"}
    expected |= {f"chip/train/good/{index:03d}.png" for index in range(4)}
    expected |= {f"chip/test/good/{index:03d}.png" for index in range(4)}
    for defect, index in itertools.product(DEFECT_TYPES, range(2)):
        expected |= {f"chip/test/{defect}/{index:03d}.png", f"chip/ground_truth/{defect}/{index:03d}_mask.png"}
    assert {name for name in _files(tmp_path) if name.startswith("chip/")} == expected
    metadata = json.loads((tmp_path / "chip" / "generation.json").read_text())
    assert metadata["complete"] is True
    assert metadata["settings"]["image_size"] == SIZE

    mask_file = cv2.imread(str(tmp_path / "chip/ground_truth/hole/000_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask_file.ndim == 2
    assert set(np.unique(mask_file)) == {0, 255}

    datamodule = MVTecAD(root=tmp_path, category="chip", train_batch_size=4, eval_batch_size=4, num_workers=0)
    datamodule.setup()
    train_batch = next(iter(datamodule.train_dataloader()))
    assert train_batch.image.shape == (4, 3, SIZE, SIZE)
    assert not train_batch.gt_label.any()

    labels, masks = [], []
    for batch in datamodule.test_dataloader():
        assert batch.image.shape[1:] == (3, SIZE, SIZE)
        labels.append(batch.gt_label)
        masks.append(batch.gt_mask.reshape(len(batch.gt_label), SIZE, SIZE))
    label, mask = torch.cat(labels).bool(), torch.cat(masks).bool()
    assert len(label) == 4 + 2 * len(DEFECT_TYPES)
    assert set(label.tolist()) == {False, True}
    assert int(label.sum()) == 2 * len(DEFECT_TYPES)
    has_mask = mask.flatten(1).any(1)
    assert torch.equal(has_mask, label)  # positive pixels exactly in anomalous samples
    coverage = mask[label].flatten(1).float().mean(1)
    assert bool(((coverage >= 0.005) & (coverage <= 0.15)).all())


def test_layout_read_by_anomalib_folder(tmp_path: Path) -> None:
    from anomalib.data import Folder

    generate_synthetic_dataset(tmp_path, categories=["capsule"], defect_types=["stain"], **SMALL)
    datamodule = Folder(
        name="capsule",
        root=tmp_path / "capsule",
        normal_dir="train/good",
        normal_test_dir="test/good",
        abnormal_dir="test/stain",
        mask_dir="ground_truth/stain",
        train_batch_size=4,
        eval_batch_size=4,
        num_workers=0,
    )
    datamodule.setup()
    batch = next(iter(datamodule.test_dataloader()))
    label = batch.gt_label.bool()
    assert set(label.tolist()) == {False, True}
    assert torch.equal(batch.gt_mask.flatten(1).any(1), label)


def test_determinism_and_category_independence(tmp_path: Path) -> None:
    first = generate_synthetic_dataset(tmp_path / "a", categories=["tile", "leather"], seed=3, **SMALL)
    second = generate_synthetic_dataset(tmp_path / "b", categories=["leather"], seed=3, **SMALL)
    other_seed = generate_synthetic_dataset(tmp_path / "c", categories=["leather"], seed=4, **SMALL)
    files_first = {name: data for name, data in _files(first).items() if name.startswith("leather/")}
    assert files_first == _files(second)  # same bytes, whatever else was generated
    files_other = _files(other_seed)
    assert files_first.keys() == files_other.keys()
    images = [name for name in files_first if name.endswith(".png")]
    assert all(files_first[name] != files_other[name] for name in images if "/test/" in name or "/train/" in name)
    # defect types only choose folders: a subset gives identical images
    subset = generate_synthetic_dataset(tmp_path / "d", categories=["leather"], seed=3, defect_types=["hole"], **SMALL)
    files_subset = _files(subset)
    assert all(files_subset[name] == files_first[name] for name in files_subset if name.endswith(".png"))


def test_existing_folders(tmp_path: Path) -> None:
    generate_synthetic_dataset(tmp_path, categories=["weave"], **SMALL)
    image = tmp_path / "weave" / "train" / "good" / "000.png"
    stamp = image.stat().st_mtime_ns
    before = _files(tmp_path)

    # complete with the same settings: skipped (files untouched); defect type order does not matter
    generate_synthetic_dataset(tmp_path, categories=["weave"], defect_types=list(reversed(DEFECT_TYPES)), **SMALL)
    assert image.stat().st_mtime_ns == stamp

    # other settings without overwrite: error naming the folder and the differing fields, nothing written
    with pytest.raises(ValueError, match=r"weave.*num_train.*seed") as error:
        generate_synthetic_dataset(tmp_path, categories=["weave"], seed=1, **{**SMALL, "num_train": 5})
    assert "image_size" not in str(error.value)
    assert _files(tmp_path) == before

    # overwrite regenerates with the new settings, removing stale files
    generate_synthetic_dataset(tmp_path, categories=["weave"], overwrite=True, defect_types=["hole"], **SMALL)
    assert not (tmp_path / "weave" / "test" / "stain").exists()
    assert not (tmp_path / "weave" / "ground_truth" / "stain").exists()
    assert json.loads((tmp_path / "weave" / "generation.json").read_text())["settings"]["defect_types"] == ["hole"]

    # an incomplete folder with the same settings is completed silently
    generate_synthetic_dataset(tmp_path, categories=["weave"], overwrite=True, **SMALL)
    image.unlink()
    generate_synthetic_dataset(tmp_path, categories=["weave"], **SMALL)
    assert _files(tmp_path) == before

    # a folder not made by the generator is never overwritten silently
    foreign = tmp_path / "chip" / "train" / "good"
    foreign.mkdir(parents=True)
    (foreign / "real.png").write_bytes(b"not generated")
    with pytest.raises(ValueError, match=r"chip.*generation\.json"):
        generate_synthetic_dataset(tmp_path, categories=["chip"], **SMALL)


def test_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"bottle.*valid categories: weave, wood"):
        generate_synthetic_dataset(tmp_path, categories=["wood", "bottle"])
    with pytest.raises(ValueError, match=r"crack.*valid defect types: hole, missing"):
        generate_synthetic_dataset(tmp_path, categories=["wood"], defect_types=["crack"])
    with pytest.raises(ValueError, match="image_size"):
        generate_synthetic_dataset(tmp_path, categories=["wood"], image_size=31)
    with pytest.raises(ValueError, match="Categories must not be empty"):
        generate_synthetic_dataset(tmp_path, categories=[])
    with pytest.raises(ValueError, match="Defect types must not be empty"):
        generate_synthetic_dataset(tmp_path, categories=["wood"], defect_types=[])
    with pytest.raises(ValueError, match="num_train"):
        generate_synthetic_dataset(tmp_path, categories=["wood"], num_train=0)
    with pytest.raises(ValueError, match="seed"):
        generate_synthetic_dataset(tmp_path, categories=["wood"], seed=-1)
    assert not any(tmp_path.iterdir())  # nothing written on bad input
