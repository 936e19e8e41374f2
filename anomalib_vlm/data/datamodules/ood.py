# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Multi-class out-of-distribution (OOD) data: ID class folders plus OOD folders, as an anomalib datamodule.

Folder layout (names of the three top folders are options)::

    root/
      train/<class>/*.png     ID training images, one folder per ID class (the few shots are drawn from here)
      test/<class>/*.png      ID test images, same class folders
      ood/<kind>/*.png        OOD test images, one folder per OOD kind (or OOD dataset)

The paper protocol (ImageNet-1k as ID; iNaturalist, SUN, Places and Textures as OOD) fits it directly:
``train/`` and ``test/`` are ImageNet's ``train/<wnid>`` and (class-sorted) ``val/<wnid>`` folders, ``ood/`` holds
the four OOD sets, and ``class_names_file`` maps the wnid folders to readable class names for the prompts.

Batches are anomalib :class:`~anomalib.data.ImageBatch` es (so anomalib's Evaluator, PostProcessor and
visualizer work unchanged) with ``gt_label = 1`` for OOD and two extra fields: ``gt_class`` (the ID class index,
``-1`` for OOD images) and ``pred_class`` (filled by models that predict ID classes, e.g. Supreme).

:func:`generate_synthetic_ood_dataset` writes a small seeded dataset in this layout from the procedural categories
of :mod:`anomalib_vlm.data.generators.synthetic`, for tests and demos.

Example:
    >>> from anomalib_vlm.data.datamodules.ood import OODDataModule, generate_synthetic_ood_dataset
    >>> root = generate_synthetic_ood_dataset("./datasets/synthetic_ood")  # doctest: +SKIP
    >>> datamodule = OODDataModule(root=root, shots_per_class=4, num_workers=0)  # doctest: +SKIP
    >>> datamodule.setup(); datamodule.class_names  # doctest: +SKIP
    ['leather', 'tile', 'weave', 'wood']
"""

from __future__ import annotations

import argparse
import json
import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import torch
from anomalib.data import ImageBatch, ImageItem
from anomalib.data.dataclasses.numpy import NumpyImageBatch, NumpyImageItem
from anomalib.data.datamodules.base.image import AnomalibDataModule
from anomalib.data.datasets.base.image import AnomalibDataset
from anomalib.data.utils import Split, TestSplitMode, ValSplitMode, read_image
from pandas import DataFrame
from torchvision.transforms.v2 import Transform

from anomalib_vlm.data.generators.synthetic import CATEGORIES, DEFECT_TYPES, render_sample

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".JPEG")
OOD_CLASS_INDEX = -1
"""``gt_class`` of OOD images."""


# ----------------------------------------------------------------------------------------------------------------
# batch types: anomalib's image item / batch plus the ID class fields
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class NumpyOODImageItem(NumpyImageItem):
    """:class:`NumpyImageItem` with ``gt_class`` and ``pred_class``."""

    gt_class: np.ndarray | None = None
    pred_class: np.ndarray | None = None


@dataclass
class NumpyOODImageBatch(NumpyImageBatch):
    """:class:`NumpyImageBatch` with ``gt_class`` and ``pred_class``."""

    item_class: ClassVar[Callable] = NumpyOODImageItem
    gt_class: np.ndarray | None = None
    pred_class: np.ndarray | None = None


@dataclass
class OODImageItem(ImageItem):
    """:class:`~anomalib.data.ImageItem` with ``gt_class`` (ID class index, -1 for OOD) and ``pred_class``."""

    numpy_class: ClassVar[Callable] = NumpyOODImageItem
    gt_class: torch.Tensor | None = None
    pred_class: torch.Tensor | None = None


@dataclass
class OODImageBatch(ImageBatch):
    """:class:`~anomalib.data.ImageBatch` with ``gt_class`` ``[B]`` and ``pred_class`` ``[B]``."""

    item_class: ClassVar[Callable] = OODImageItem
    numpy_class: ClassVar[Callable] = NumpyOODImageBatch
    gt_class: torch.Tensor | None = None
    pred_class: torch.Tensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# dataset and datamodule
# ----------------------------------------------------------------------------------------------------------------
def _images_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix in IMAGE_EXTENSIONS)


def _class_folders(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []


def _id_rows(folder: Path, index: int, name: str) -> list[dict]:
    return [{"image_path": str(p), "label_index": 0, "class_index": index, "kind": name} for p in _images_in(folder)]


def _training_rows(train_root: Path, classes: list[str]) -> list[dict]:
    """One row per training image of every ID class; a class folder without images is an error."""
    rows: list[dict] = []
    for index, name in enumerate(classes):
        class_rows = _id_rows(train_root / name, index, name)
        if not class_rows:
            msg = f"ID class '{name}' has no training images in {train_root / name}"
            raise FileNotFoundError(msg)
        rows += class_rows
    return rows


def _test_rows(
    root: Path,
    classes: list[str],
    train_dir: str,
    test_dir: str,
    ood_dir: str,
    ood_kinds: Sequence[str] | None,
) -> list[dict]:
    """ID test images of the known classes, then the images of every (selected) OOD kind."""
    unknown = sorted(set(_class_folders(root / test_dir)) - set(classes))
    if unknown:
        msg = f"Test class folders {unknown} under {root / test_dir} have no training folder in {root / train_dir}"
        raise FileNotFoundError(msg)
    rows: list[dict] = []
    for index, name in enumerate(classes):
        if (root / test_dir / name).is_dir():
            rows += _id_rows(root / test_dir / name, index, name)
    kinds = _class_folders(root / ood_dir)
    if ood_kinds is not None:
        missing = sorted(set(ood_kinds) - set(kinds))
        if missing:
            msg = f"OOD kinds {missing} not found under {root / ood_dir}; available: {kinds}"
            raise FileNotFoundError(msg)
        kinds = [kind for kind in kinds if kind in set(ood_kinds)]
    for kind in kinds:
        images = _images_in(root / ood_dir / kind)
        if not images:
            msg = f"OOD folder {root / ood_dir / kind} has no images"
            raise FileNotFoundError(msg)
        rows += [{"image_path": str(p), "label_index": 1, "class_index": OOD_CLASS_INDEX, "kind": kind} for p in images]
    if not rows:
        msg = f"No test images under {root / test_dir} or {root / ood_dir}"
        raise FileNotFoundError(msg)
    return rows


def make_ood_samples(
    root: Path,
    split: Split,
    train_dir: str = "train",
    test_dir: str = "test",
    ood_dir: str = "ood",
    ood_kinds: Sequence[str] | None = None,
) -> tuple[DataFrame, list[str]]:
    """Index the folder tree into anomalib's samples table.

    Returns:
        tuple[DataFrame, list[str]]: the samples (``image_path``, ``label_index`` 0 = ID / 1 = OOD, ``split``,
        ``mask_path``, ``class_index``, ``kind``) and the sorted ID class folder names.

    Raises:
        FileNotFoundError: missing folders, or an ID class / OOD kind without images.
    """
    root = Path(root)
    classes = _class_folders(root / train_dir)
    if not classes:
        msg = f"No ID class folders under {root / train_dir}: expected {root}/{train_dir}/<class>/*.png"
        raise FileNotFoundError(msg)
    if split == Split.TRAIN:
        rows = _training_rows(root / train_dir, classes)
    else:
        rows = _test_rows(root, classes, train_dir, test_dir, ood_dir, ood_kinds)
    samples = DataFrame(rows)
    samples["split"] = str(split.value)
    samples["mask_path"] = ""
    samples.attrs["task"] = "classification"
    return samples, classes


class OODDataset(AnomalibDataset):
    """ID and OOD images of one split; items are :class:`OODImageItem` with ``gt_class``.

    Args:
        root (str | Path): dataset root (see the module docstring for the layout).
        split (Split | str): ``train`` (ID images only) or ``test`` (ID test images and OOD images).
        train_dir, test_dir, ood_dir (str): names of the three top folders.
        ood_kinds (Sequence[str] | None): OOD folders to use; ``None`` uses all.
        shots_per_class (int | None): keep only this many training images per class (seeded random choice),
            the few-shot setting; ``None`` keeps all. Only for the train split.
        seed (int): seed of the shot selection. Defaults to ``0``.
        augmentations (Transform | None): anomalib augmentations.
    """

    def __init__(
        self,
        root: str | Path,
        split: Split | str,
        train_dir: str = "train",
        test_dir: str = "test",
        ood_dir: str = "ood",
        ood_kinds: Sequence[str] | None = None,
        shots_per_class: int | None = None,
        seed: int = 0,
        augmentations: Transform | None = None,
    ) -> None:
        super().__init__(augmentations=augmentations)
        self.root = Path(root)
        self.split = Split(split)
        samples, self.class_folders = make_ood_samples(self.root, self.split, train_dir, test_dir, ood_dir, ood_kinds)
        if shots_per_class is not None and self.split == Split.TRAIN:
            if shots_per_class < 1:
                msg = f"shots_per_class must be >= 1, got {shots_per_class}"
                raise ValueError(msg)
            rng = np.random.default_rng(seed)
            keep = []
            for _, group in samples.groupby("class_index", sort=True):
                if len(group) < shots_per_class:
                    msg = (
                        f"ID class '{group.kind.iloc[0]}' has {len(group)} training images, fewer than "
                        f"shots_per_class={shots_per_class}"
                    )
                    raise ValueError(msg)
                keep += sorted(rng.choice(group.index.to_numpy(), size=shots_per_class, replace=False).tolist())
            samples = samples.loc[keep].reset_index(drop=True)
        self.samples = samples

    @property
    def collate_fn(self) -> Callable:
        """Collate into :class:`OODImageBatch`."""
        return OODImageBatch.collate

    def __getitem__(self, index: int) -> OODImageItem:
        """Read one image with its OOD label and ID class index."""
        row = self.samples.iloc[index]
        image = read_image(row.image_path, as_tensor=True)
        if self.augmentations:
            image = self.augmentations(image)
        return OODImageItem(
            image=image,
            gt_label=torch.tensor(int(row.label_index)),
            image_path=row.image_path,
            gt_class=torch.tensor(int(row.class_index)),
        )


class OODDataModule(AnomalibDataModule):
    """Multi-class OOD datamodule: ID classes from class folders, OOD images from OOD folders.

    Args:
        root (str | Path): dataset root (layout in the module docstring).
        train_dir, test_dir, ood_dir (str): the three top folders. Defaults to ``"train"``, ``"test"``, ``"ood"``.
        ood_kinds (Sequence[str] | None): OOD folders to evaluate on (e.g. ``["iNaturalist"]`` for one row of the
            paper's table); ``None`` uses all of them.
        shots_per_class (int | None): training images kept per ID class (the k shots); ``None`` keeps all.
        class_names (Sequence[str] | None): readable class names, in the sorted order of the class folders
            (the prompts use them); ``None`` uses the folder names with ``_`` as spaces.
        class_names_file (str | Path | None): a text file with one class name per line, same order (e.g. the
            1000 ImageNet names for the wnid folders). Ignored if ``class_names`` is given.
        train_batch_size, eval_batch_size, num_workers: as anomalib's datamodules.
        train_augmentations, val_augmentations, test_augmentations, augmentations: as anomalib's datamodules.
        val_split_mode (ValSplitMode | str): where the validation set (thresholds) comes from. Defaults to
            ``same_as_test``, as anomalib's MVTecAD.
        val_split_ratio (float): share of test images moved to validation for ``from_test``. Defaults to ``0.5``.
        seed (int | None): seed of the shot selection and of the splits. Defaults to ``0``.
    """

    def __init__(
        self,
        root: str | Path,
        train_dir: str = "train",
        test_dir: str = "test",
        ood_dir: str = "ood",
        ood_kinds: Sequence[str] | None = None,
        shots_per_class: int | None = None,
        class_names: Sequence[str] | None = None,
        class_names_file: str | Path | None = None,
        train_batch_size: int = 32,
        eval_batch_size: int = 32,
        num_workers: int = 8,
        train_augmentations: Transform | None = None,
        val_augmentations: Transform | None = None,
        test_augmentations: Transform | None = None,
        augmentations: Transform | None = None,
        val_split_mode: ValSplitMode | str = ValSplitMode.SAME_AS_TEST,
        val_split_ratio: float = 0.5,
        seed: int | None = 0,
    ) -> None:
        super().__init__(
            train_batch_size=train_batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            train_augmentations=train_augmentations,
            val_augmentations=val_augmentations,
            test_augmentations=test_augmentations,
            augmentations=augmentations,
            test_split_mode=TestSplitMode.FROM_DIR,
            val_split_mode=ValSplitMode(val_split_mode),
            val_split_ratio=val_split_ratio,
            seed=seed,
        )
        self.root = Path(root)
        self.train_dir, self.test_dir, self.ood_dir = train_dir, test_dir, ood_dir
        self.ood_kinds = None if ood_kinds is None else list(ood_kinds)
        self.shots_per_class = shots_per_class
        self._given_class_names = None if class_names is None else list(class_names)
        self.class_names_file = class_names_file

    @property
    def name(self) -> str:
        """Dataset name: the root folder's name."""
        return self.root.name or "ood"

    @property
    def class_folders(self) -> list[str]:
        """Sorted ID class folder names (the class index order)."""
        return _class_folders(self.root / self.train_dir)

    @property
    def class_names(self) -> list[str]:
        """Readable ID class names in class-index order, used by models to build text prompts.

        Raises:
            ValueError: the number of given names differs from the number of class folders.
        """
        folders = self.class_folders
        names = self._given_class_names
        if names is None and self.class_names_file is not None:
            lines = Path(self.class_names_file).read_text(encoding="utf-8").splitlines()
            names = [line.strip() for line in lines if line.strip()]
        if names is None:
            return [folder.replace("_", " ") for folder in folders]
        if len(names) != len(folders):
            folder = self.root / self.train_dir
            msg = f"{len(names)} class names given for {len(folders)} ID class folders under {folder}"
            raise ValueError(msg)
        return list(names)

    def _setup(self, _stage: str | None = None) -> None:
        common = {
            "root": self.root,
            "train_dir": self.train_dir,
            "test_dir": self.test_dir,
            "ood_dir": self.ood_dir,
            "ood_kinds": self.ood_kinds,
        }
        self.train_data = OODDataset(
            split=Split.TRAIN,
            shots_per_class=self.shots_per_class,
            seed=0 if self.seed is None else self.seed,
            **common,
        )
        self.test_data = OODDataset(split=Split.TEST, **common)


# ----------------------------------------------------------------------------------------------------------------
# synthetic OOD dataset
# ----------------------------------------------------------------------------------------------------------------
SYNTHETIC_ID_CLASSES: tuple[str, ...] = ("leather", "tile", "weave", "wood")
"""Default ID classes of the synthetic OOD dataset (normal images of these texture categories)."""
SYNTHETIC_OOD_KINDS: tuple[str, ...] = ("defects", "noise", "objects", "recoloured")
"""OOD kinds: ``objects`` (normal images of the object categories: semantic shift, far OOD), ``recoloured``
(ID categories in colourways no ID class has: near OOD), ``defects`` (damaged images of the ID classes: near OOD
that a global image embedding hardly sees) and ``noise`` (smooth colour noise: far OOD, no structure)."""
SYNTHETIC_DEFAULT_OOD_KINDS: tuple[str, ...] = ("noise", "objects", "recoloured")
"""OOD kinds written by default."""
_OBJECT_CATEGORIES = ("bottle_cap", "capsule", "chip")
# Colour coding of the ID classes (RGB gains): a random-weight test backbone separates colour reliably but not
# texture, so each ID class is one category in its own colourway; OOD images are not colour-coded.
_CLASS_TINTS = ((1.0, 0.35, 0.35), (0.35, 1.0, 0.35), (0.35, 0.35, 1.0), (1.0, 1.0, 0.3))
_OOD_TINTS = ((1.0, 0.35, 1.0), (0.35, 1.0, 1.0), (1.0, 0.65, 0.2), (0.6, 0.6, 0.6))  # magenta, cyan, orange, grey


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    entropy = [int(seed)] + [zlib.crc32(str(part).encode("utf-8")) for part in parts]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _noise_image(size: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random colour field: no texture, no object."""
    cells = int(rng.integers(2, 8))
    coarse = rng.uniform(0.0, 1.0, (cells, cells, 3)).astype(np.float32)
    image = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    image += rng.normal(0.0, 0.03, image.shape).astype(np.float32)
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _tint(image: np.ndarray, gains: Sequence[float] | None) -> np.ndarray:
    if gains is None:
        return image
    return np.clip(image.astype(np.float32) * np.asarray(gains, np.float32), 0, 255).astype(np.uint8)


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        msg = f"Could not write image {path}."
        raise OSError(msg)


def _check_synthetic_ood_arguments(id_classes: list[str], ood_kinds: Sequence[str], counts: dict[str, int]) -> None:
    """Raise ``ValueError`` naming the first bad argument of :func:`generate_synthetic_ood_dataset`."""
    unknown = [name for name in id_classes if name not in CATEGORIES]
    if unknown or not id_classes or len(set(id_classes)) != len(id_classes) or len(id_classes) > len(_CLASS_TINTS):
        msg = (
            f"id_classes must be 1 to {len(_CLASS_TINTS)} distinct synthetic categories ({', '.join(CATEGORIES)}), "
            f"got {id_classes}"
        )
        raise ValueError(msg)
    bad_kinds = [kind for kind in ood_kinds if kind not in SYNTHETIC_OOD_KINDS]
    if bad_kinds or not ood_kinds:
        msg = f"ood_kinds must be a non-empty subset of {SYNTHETIC_OOD_KINDS}, got {list(ood_kinds)}"
        raise ValueError(msg)
    if "objects" in ood_kinds and all(name in id_classes for name in _OBJECT_CATEGORIES):
        msg = f"'objects' OOD needs an object category not among the ID classes {id_classes}"
        raise ValueError(msg)
    for name, value in counts.items():
        if value < 1:
            msg = f"{name} must be >= 1, got {value}"
            raise ValueError(msg)


def generate_synthetic_ood_dataset(
    root: str | Path,
    id_classes: Sequence[str] = SYNTHETIC_ID_CLASSES,
    ood_kinds: Sequence[str] = SYNTHETIC_DEFAULT_OOD_KINDS,
    image_size: int = 128,
    num_train: int = 8,
    num_test: int = 12,
    num_ood: int = 16,
    seed: int = 0,
    colour_coded: bool = True,
) -> Path:
    """Write a seeded synthetic OOD dataset in the :class:`OODDataModule` layout.

    Every image has its own generator seeded from ``seed``, its folder and its index, so the data are identical
    across runs and machines. A folder generated before with the same settings is reused.

    Args:
        root (str | Path): dataset root.
        id_classes (Sequence[str]): synthetic categories whose normal images are the ID classes.
        ood_kinds (Sequence[str]): subset of :data:`SYNTHETIC_OOD_KINDS`.
        image_size (int): image side in pixels. Defaults to ``128``.
        num_train (int): ID training images per class. Defaults to ``8``.
        num_test (int): ID test images per class. Defaults to ``12``.
        num_ood (int): images per OOD kind. Defaults to ``16``.
        seed (int): dataset seed. Defaults to ``0``.
        colour_coded (bool): give every ID class its own colourway (red, green, blue, yellow, magenta, cyan
            gains on the rendered category). The random-weight test backbone separates colour but hardly texture,
            so this keeps the ID classes separable for image prototypes; OOD images keep their natural colours
            (defect images keep their class's colourway). Defaults to ``True``.

    Returns:
        Path: ``root``.

    Raises:
        ValueError: unknown category or OOD kind, an ID class that is also an object OOD category, or counts < 1.
    """
    id_classes = list(id_classes)
    _check_synthetic_ood_arguments(
        id_classes, ood_kinds, {"num_train": num_train, "num_test": num_test, "num_ood": num_ood}
    )
    objects = [name for name in _OBJECT_CATEGORIES if name not in id_classes]

    root = Path(root)
    settings = {
        "id_classes": id_classes,
        "ood_kinds": sorted(ood_kinds),
        "image_size": image_size,
        "num_train": num_train,
        "num_test": num_test,
        "num_ood": num_ood,
        "seed": seed,
        "colour_coded": colour_coded,
        "version": 1,
    }
    metadata = root / "generation.json"
    if metadata.is_file() and json.loads(metadata.read_text(encoding="utf-8")) == settings:
        return root
    tints = {name: _CLASS_TINTS[index] if colour_coded else None for index, name in enumerate(id_classes)}
    for split, count in (("train", num_train), ("test", num_test)):
        for name in id_classes:
            for index in range(count):
                image, _ = render_sample(name, None, image_size, _rng(seed, split, name, index))
                _write(root / split / name / f"{index:03d}.png", _tint(image, tints[name]))
    for kind in sorted(ood_kinds):
        for index in range(num_ood):
            rng = _rng(seed, "ood", kind, index)
            if kind == "objects":
                image, _ = render_sample(objects[index % len(objects)], None, image_size, rng)
            elif kind == "defects":
                category = id_classes[index % len(id_classes)]
                defect = DEFECT_TYPES[(index // len(id_classes)) % len(DEFECT_TYPES)]
                image, _ = render_sample(category, defect, image_size, rng)
                image = _tint(image, tints[category])
            elif kind == "recoloured":
                category = id_classes[index % len(id_classes)]
                image, _ = render_sample(category, None, image_size, rng)
                image = _tint(image, _OOD_TINTS[(index // len(id_classes)) % len(_OOD_TINTS)])
            else:
                image = _noise_image(image_size, rng)
            _write(root / "ood" / kind / f"{index:03d}.png", image)
    metadata.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Write the synthetic OOD dataset: ``python -m anomalib_vlm.data.datamodules.ood --root datasets/synthetic_ood``."""
    parser = argparse.ArgumentParser(prog="python -m anomalib_vlm.data.datamodules.ood", description=main.__doc__)
    parser.add_argument("--root", type=Path, default=Path("datasets/synthetic_ood"))
    parser.add_argument("--id-classes", nargs="+", default=list(SYNTHETIC_ID_CLASSES))
    kinds = list(SYNTHETIC_DEFAULT_OOD_KINDS)
    parser.add_argument("--ood-kinds", nargs="+", choices=SYNTHETIC_OOD_KINDS, default=kinds)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-train", type=int, default=16)
    parser.add_argument("--num-test", type=int, default=24)
    parser.add_argument("--num-ood", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = generate_synthetic_ood_dataset(
        args.root,
        id_classes=args.id_classes,
        ood_kinds=args.ood_kinds,
        image_size=args.image_size,
        num_train=args.num_train,
        num_test=args.num_test,
        num_ood=args.num_ood,
        seed=args.seed,
    )
    print(f"synthetic OOD dataset (ID classes {args.id_classes}, OOD kinds {args.ood_kinds}) under {root.resolve()}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
