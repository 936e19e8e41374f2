# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Captioned domain-adaptation data: a labelled source domain, an unlabelled target domain, and captions.

Layout (the folder names are options)::

    root/
      source/<class>/*.png        labelled source images, one folder per class
      target/**/*.png             unlabelled target images (any sub-folders; their names are never read)
      target_test/<class>/*.png   labelled target images, for evaluation only (optional)
      captions.csv                image_path,caption  for every source and target image

``image_path`` is relative to the CSV's folder (or absolute). Captions may be operator notes, file-name metadata,
order texts or a captioning model's output; only the source captions are ever paired with labels.

Training batches are ``{"source": {...}, "target": {...}}`` dictionaries from Lightning's ``CombinedLoader`` in
``max_size_cycle`` mode (the shorter domain restarts, as the official TRUST loop does), each with a weak view
(``image``: resized), a strong view (``strong``: SimCLR augmentations), ``label`` (source class, ``-1`` on the
target) and ``index`` (the sample's row in :attr:`CaptionedDomainDataModule.source_captions` /
:attr:`~CaptionedDomainDataModule.target_captions`). Validation and test batches are
:class:`~anomalib_vlm.data.OODImageBatch` es of ``target_test`` with ``gt_class`` set.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from anomalib.data.datamodules.base.image import AnomalibDataModule
from anomalib.data.datasets.base.image import AnomalibDataset
from anomalib.data.utils import Split, TestSplitMode, ValSplitMode, read_image
from lightning.pytorch.utilities import CombinedLoader
from pandas import DataFrame
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from anomalib_vlm.data.dataclasses import OODImageBatch, OODImageItem
from anomalib_vlm.data.utils import class_folders, class_names_for, list_images

logger = logging.getLogger(__name__)

CAPTION_COLUMNS = ("image_path", "caption")
"""Columns the captions table must have (further columns are ignored)."""


def read_captions_csv(path: str | Path) -> dict[Path, str]:
    """Read a captions table: resolved image path -> caption.

    Raises:
        FileNotFoundError: no such table, or a row names an image that does not exist.
        ValueError: missing columns, an empty caption, or one image captioned twice differently.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"Captions table {path} does not exist (expected a CSV with columns {', '.join(CAPTION_COLUMNS)})"
        raise FileNotFoundError(msg)
    captions: dict[Path, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        missing = [name for name in CAPTION_COLUMNS if name not in columns]
        if missing:
            msg = (
                f"Captions table {path} lacks the columns {missing}: expected {list(CAPTION_COLUMNS)}, "
                f"found {reader.fieldnames}"
            )
            raise ValueError(msg)
        for row_number, row in enumerate(reader, start=2):  # line 1 is the header
            image = Path(str(row[columns["image_path"]] or "").strip())
            caption = " ".join(str(row[columns["caption"]] or "").split())
            if not str(image) or str(image) == ".":
                msg = f"Captions table {path}, line {row_number}: empty image_path"
                raise ValueError(msg)
            resolved = (image if image.is_absolute() else path.parent / image).resolve()
            if not resolved.is_file():
                msg = f"Captions table {path}, line {row_number}: image {image} does not exist (looked for {resolved})"
                raise FileNotFoundError(msg)
            if not caption:
                msg = (
                    f"Captions table {path}, line {row_number}: the caption of {image} is empty; every image needs one"
                )
                raise ValueError(msg)
            if resolved in captions and captions[resolved] != caption:
                msg = f"Captions table {path}, line {row_number}: {image} is captioned twice, differently"
                raise ValueError(msg)
            captions[resolved] = caption
    return captions


def _images_under(folder: Path) -> list[Path]:
    return [path.resolve() for path in list_images(folder, recursive=True)]


def strong_augmentation(image_size: int, keep_colour: bool = False) -> v2.Transform:
    """SimCLR's strong view, as the official TRUST code uses on the target (on ``[0, 1]`` float tensors).

    Args:
        image_size (int): output side.
        keep_colour (bool): leave hue and saturation alone (no hue / saturation jitter, no grayscale; brightness
            and contrast jitter stay), for tasks whose classes are colours, where SimCLR's colour jitter would
            change the class of the view. Defaults to ``False`` (SimCLR's recipe).

    Returns:
        v2.Transform: the random transform.
    """
    jitter = v2.ColorJitter(0.4, 0.4, 0.0, 0.0) if keep_colour else v2.ColorJitter(0.4, 0.4, 0.4, 0.1)
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=(0.2, 1.0), antialias=True),
            v2.RandomApply([jitter], p=0.8),
            *([] if keep_colour else [v2.RandomGrayscale(p=0.2)]),
            v2.RandomApply([v2.GaussianBlur(kernel_size=2 * (image_size // 20) + 1, sigma=(0.1, 2.0))], p=0.5),
            v2.RandomHorizontalFlip(),
        ]
    )


class _DomainTrainDataset(Dataset):
    """One domain's training images: weak view, strong view, label and row index."""

    def __init__(
        self, paths: Sequence[Path], labels: Sequence[int], image_size: int, strong: bool, keep_colour: bool = False
    ) -> None:
        self.paths, self.labels = list(paths), list(labels)
        self.weak = v2.Resize((image_size, image_size), antialias=True)
        self.strong = strong_augmentation(image_size, keep_colour) if strong else self.weak

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = read_image(str(self.paths[index]), as_tensor=True)
        return {
            "image": self.weak(image),
            "strong": self.strong(image),
            "label": torch.tensor(self.labels[index]),
            "index": torch.tensor(index),
        }


class _TargetTestDataset(AnomalibDataset):
    """Labelled target images as :class:`OODImageItem` s (``gt_label = 0``, ``gt_class`` = the class index)."""

    def __init__(self, paths: Sequence[Path], classes: Sequence[int], image_size: int) -> None:
        super().__init__(augmentations=None)
        self.resize = v2.Resize((image_size, image_size), antialias=True)
        samples = DataFrame(
            {"image_path": [str(p) for p in paths], "label_index": 0, "class_index": list(classes), "mask_path": ""}
        )
        samples["split"] = Split.TEST.value
        samples.attrs["task"] = "classification"
        self.samples = samples

    @property
    def collate_fn(self) -> Any:
        """Collate into :class:`OODImageBatch`."""
        return OODImageBatch.collate

    def __getitem__(self, index: int) -> OODImageItem:
        row = self.samples.iloc[index]
        return OODImageItem(
            image=self.resize(read_image(row.image_path, as_tensor=True)),
            gt_label=torch.tensor(0),
            image_path=row.image_path,
            gt_class=torch.tensor(int(row.class_index)),
        )


class CaptionedDomainDataModule(AnomalibDataModule):
    """Labelled source, unlabelled captioned target, labelled target test: the data of caption-guided adaptation.

    Args:
        root (str | Path): dataset root (layout in the module docstring).
        captions_csv (str | Path): the captions table, relative to ``root`` or absolute. Defaults to
            ``"captions.csv"``.
        source_dir, target_dir, target_test_dir (str): the three folders under ``root``. A missing
            ``target_test_dir`` leaves the data without validation and test splits.
        class_names (Sequence[str] | None): readable class names in the sorted order of the source class folders;
            ``None`` uses the folder names with ``_`` as spaces.
        image_size (int): side the views are resized to (the model's input). Defaults to ``224``.
        strong_augmentation (bool): SimCLR-style strong views; off, the strong view is the weak one.
            Defaults to ``True``.
        strong_keep_colour (bool): strong views without hue / saturation jitter and grayscale
            (:func:`strong_augmentation`), for tasks whose classes are colours. Defaults to ``False`` (SimCLR's).
        train_batch_size (int): images per domain per step. Defaults to ``32`` (official).
        eval_batch_size, num_workers, seed: as anomalib's datamodules.

    Raises:
        FileNotFoundError: a missing folder, table or image; a source class folder without images.
        ValueError: an image without caption, an empty caption, a target-test class that is no source class, or
            class names that do not match the class folders.
    """

    def __init__(
        self,
        root: str | Path,
        captions_csv: str | Path = "captions.csv",
        source_dir: str = "source",
        target_dir: str = "target",
        target_test_dir: str = "target_test",
        class_names: Sequence[str] | None = None,
        image_size: int = 224,
        strong_augmentation: bool = True,
        strong_keep_colour: bool = False,
        train_batch_size: int = 32,
        eval_batch_size: int = 32,
        num_workers: int = 8,
        seed: int | None = 0,
    ) -> None:
        super().__init__(
            train_batch_size=train_batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            test_split_mode=TestSplitMode.FROM_DIR,
            val_split_mode=ValSplitMode.SAME_AS_TEST,
            seed=seed,
        )
        self.root = Path(root)
        self.captions_csv = Path(captions_csv) if Path(captions_csv).is_absolute() else self.root / captions_csv
        self.source_dir, self.target_dir, self.target_test_dir = source_dir, target_dir, target_test_dir
        self._given_class_names = None if class_names is None else list(class_names)
        self.image_size = image_size
        self.strong_augmentation = strong_augmentation
        self.strong_keep_colour = strong_keep_colour
        self.source_paths: list[Path] = []
        self.source_labels: list[int] = []
        self.source_captions: list[str] = []
        self.target_paths: list[Path] = []
        self.target_captions: list[str] = []
        self._indexed = False

    @property
    def name(self) -> str:
        """Dataset name: the root folder's name."""
        return self.root.name or "captioned"

    @property
    def class_folders(self) -> list[str]:
        """Sorted source class folder names (the label order)."""
        return class_folders(self.root / self.source_dir)

    @property
    def class_names(self) -> list[str]:
        """Readable class names in label order (the folder names, or the ``class_names`` given, one per folder)."""
        return class_names_for(self.class_folders, self._given_class_names, self.root / self.source_dir, "source")

    def index(self) -> None:
        """Read the folders and the captions table once (every check of the class docstring happens here)."""
        if self._indexed:
            return
        source_root, target_root = self.root / self.source_dir, self.root / self.target_dir
        for folder, what in ((source_root, "source"), (target_root, "target")):
            if not folder.is_dir():
                msg = f"The {what} folder {folder} does not exist (expected the layout of {__name__})"
                raise FileNotFoundError(msg)
        folders = self.class_folders
        if not folders:
            msg = f"No class folders under {source_root}: expected {source_root}/<class>/*.png"
            raise FileNotFoundError(msg)
        _ = self.class_names  # checks given names against the folders
        captions = read_captions_csv(self.captions_csv)
        source_paths, source_labels = [], []
        for label, folder in enumerate(folders):
            images = _images_under(source_root / folder)
            if not images:
                msg = f"Source class '{folder}' has no images in {source_root / folder}"
                raise FileNotFoundError(msg)
            source_paths += images
            source_labels += [label] * len(images)
        target_paths = _images_under(target_root)
        if not target_paths:
            msg = f"No target images under {target_root}"
            raise FileNotFoundError(msg)
        for paths, what in ((source_paths, "source"), (target_paths, "target")):
            uncaptioned = [p for p in paths if p not in captions]
            if uncaptioned:
                shown = ", ".join(str(p) for p in uncaptioned[:3])
                msg = f"{len(uncaptioned)} {what} images have no caption in {self.captions_csv}, e.g. {shown}"
                raise ValueError(msg)
        self.source_paths, self.source_labels = source_paths, source_labels
        self.source_captions = [captions[p] for p in source_paths]
        self.target_paths = target_paths
        self.target_captions = [captions[p] for p in target_paths]
        self._indexed = True

    def _target_test(self) -> tuple[list[Path], list[int]]:
        test_root = self.root / self.target_test_dir
        folders = self.class_folders
        unknown = [name for name in class_folders(test_root) if name not in folders]
        if unknown:
            msg = f"Target-test classes {unknown} under {test_root} are not source classes ({folders})"
            raise ValueError(msg)
        paths, classes = [], []
        for label, folder in enumerate(folders):
            if (test_root / folder).is_dir():
                images = _images_under(test_root / folder)
                paths += images
                classes += [label] * len(images)
        return paths, classes

    def _setup(self, _stage: str | None = None) -> None:
        self.index()
        self.train_data = _DomainTrainDataset(self.source_paths, self.source_labels, self.image_size, False)
        if (self.root / self.target_test_dir).is_dir():
            paths, classes = self._target_test()
            self.test_data = _TargetTestDataset(paths, classes, self.image_size)
        else:
            logger.warning("No %s folder: the adapted model can be trained but not evaluated.", self.target_test_dir)
            self.test_data = _TargetTestDataset([], [], self.image_size)

    def domain_dataset(self, domain: str, strong: bool | None = None) -> _DomainTrainDataset:
        """The training images of ``"source"`` or ``"target"`` (target labels are ``-1``)."""
        self.index()
        strong = self.strong_augmentation if strong is None else strong
        if domain == "source":
            return _DomainTrainDataset(
                self.source_paths, self.source_labels, self.image_size, strong, self.strong_keep_colour
            )
        if domain == "target":
            labels = [-1] * len(self.target_paths)
            return _DomainTrainDataset(self.target_paths, labels, self.image_size, strong, self.strong_keep_colour)
        msg = f"domain must be 'source' or 'target', got {domain!r}"
        raise ValueError(msg)

    def train_dataloader(self) -> CombinedLoader:
        """Shuffled source and target loaders side by side; the shorter one restarts (``max_size_cycle``)."""
        generator = torch.Generator().manual_seed(0 if self.seed is None else int(self.seed))
        loaders = {
            domain: DataLoader(
                self.domain_dataset(domain),
                batch_size=self.train_batch_size,
                shuffle=True,
                num_workers=self.num_workers,
                generator=generator,
                drop_last=False,
            )
            for domain in ("source", "target")
        }
        return CombinedLoader(loaders, mode="max_size_cycle")

    def ordered_dataloader(self, domain: str) -> DataLoader:
        """Weak views of one domain in row order (to encode them once, e.g. for the uncertainty weights)."""
        return DataLoader(
            self.domain_dataset(domain, strong=False),
            batch_size=self.eval_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )
