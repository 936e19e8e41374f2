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

Batches are :class:`~anomalib_vlm.data.dataclasses.OODImageBatch` es: anomalib's ``ImageBatch`` (so anomalib's
Evaluator, PostProcessor and visualizer work unchanged) with ``gt_label = 1`` for OOD, plus ``gt_class`` and
``pred_class``. :func:`~anomalib_vlm.data.generators.ood.generate_synthetic_ood_dataset` writes a small seeded
dataset in this layout, for tests and demos.

Example:
    >>> from anomalib_vlm.data import OODDataModule, generate_synthetic_ood_dataset
    >>> root = generate_synthetic_ood_dataset("./datasets/synthetic_ood")  # doctest: +SKIP
    >>> datamodule = OODDataModule(root=root, shots_per_class=4, num_workers=0)  # doctest: +SKIP
    >>> datamodule.setup(); datamodule.class_names  # doctest: +SKIP
    ['leather', 'tile', 'weave', 'wood']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from anomalib.data.datamodules.base.image import AnomalibDataModule
from anomalib.data.datasets.base.image import AnomalibDataset
from anomalib.data.utils import Split, TestSplitMode, ValSplitMode, read_image
from pandas import DataFrame
from torchvision.transforms.v2 import Transform

from anomalib_vlm.data.dataclasses import OOD_CLASS_INDEX, OODImageBatch, OODImageItem
from anomalib_vlm.data.utils import class_folders, class_names_for, list_images


def _id_rows(folder: Path, index: int, name: str) -> list[dict]:
    return [{"image_path": str(p), "label_index": 0, "class_index": index, "kind": name} for p in list_images(folder)]


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
    unknown = sorted(set(class_folders(root / test_dir)) - set(classes))
    if unknown:
        msg = f"Test class folders {unknown} under {root / test_dir} have no training folder in {root / train_dir}"
        raise FileNotFoundError(msg)
    rows: list[dict] = []
    for index, name in enumerate(classes):
        if (root / test_dir / name).is_dir():
            rows += _id_rows(root / test_dir / name, index, name)
    kinds = class_folders(root / ood_dir)
    if ood_kinds is not None:
        missing = sorted(set(ood_kinds) - set(kinds))
        if missing:
            msg = f"OOD kinds {missing} not found under {root / ood_dir}; available: {kinds}"
            raise FileNotFoundError(msg)
        kinds = [kind for kind in kinds if kind in set(ood_kinds)]
    for kind in kinds:
        images = list_images(root / ood_dir / kind)
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
    classes = class_folders(root / train_dir)
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
        return class_folders(self.root / self.train_dir)

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
        return class_names_for(folders, names, self.root / self.train_dir, "ID")

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
