# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Auxiliary training data for zero-shot models: several categories of one anomalib dataset, pooled.

AnomalyCLIP learns its prompts once on an auxiliary dataset that has anomalies and masks, which in practice is
the *test* split of all MVTec AD categories (to evaluate on VisA), or of all VisA categories (to evaluate on MVTec
AD). :class:`AuxiliaryData` builds that training set from any anomalib image datamodule class, so the paper's
protocol is one datamodule in a config:

.. code-block:: yaml

    data:
      class_path: anomalib_vlm.data.AuxiliaryData
      init_args:
        source: anomalib.data.MVTecAD
        root: ./datasets/MVTecAD
        split: test

Example:
    >>> from anomalib_vlm.data import AuxiliaryData
    >>> data = AuxiliaryData(source="anomalib.data.MVTecAD", root="./datasets/MVTecAD")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import importlib
import logging
from collections.abc import Sequence
from pathlib import Path

from anomalib.data import AnomalibDataModule
from anomalib.data.utils import TestSplitMode, ValSplitMode

logger = logging.getLogger(__name__)


def import_class(path: str) -> type:
    """Import ``package.module.Class`` from its dotted path.

    Raises:
        ValueError: the path does not name an importable class.
    """
    module_name, _, class_name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        msg = f"Cannot import '{path}': give a dotted class path such as 'anomalib.data.MVTecAD'"
        raise ValueError(msg) from None


def category_folder(source: type, root: Path) -> Path:
    """Folder whose sub-folders are the categories (VisA keeps its split copy under ``visa_pytorch``)."""
    return root / "visa_pytorch" if source.__name__ == "Visa" else root


def find_categories(source: type, root: Path) -> list[str]:
    """Category folders under ``root`` that have a ``test`` split, sorted."""
    folder = category_folder(source, root)
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir() if (path / "test").is_dir())


class AuxiliaryData(AnomalibDataModule):
    """Pools one split of several categories of an anomalib dataset into a training set.

    Validation and test use the same pooled images (as ``MVTecAD`` does with its test split); they only serve
    threshold calibration and a sanity check, since zero-shot evaluation happens on another dataset.

    Args:
        source (str): dotted path of an anomalib image datamodule with ``root`` and ``category`` arguments.
            Defaults to ``"anomalib.data.MVTecAD"``.
        root (str | Path): dataset root, as that datamodule expects it. Defaults to ``"./datasets/MVTecAD"``.
        categories (Sequence[str] | None): categories to pool; ``None`` takes every category folder under
            ``root``. Defaults to ``None``.
        split (str): ``"test"`` (anomalies with masks: the paper's auxiliary data) or ``"train"`` (normal
            images only; pair it with the model's synthetic anomalies). Defaults to ``"test"``.
        train_batch_size (int): training batch size. Defaults to ``8`` (the paper's).
        eval_batch_size (int): evaluation batch size. Defaults to ``8``.
        num_workers (int): data loading workers. Defaults to ``8``.
        seed (int | None): seed for anything random in the split. Defaults to ``None``.

    Raises:
        ValueError: bad ``source`` or ``split``.
        FileNotFoundError: the root or a category has no images (at ``setup``).
    """

    def __init__(
        self,
        source: str = "anomalib.data.MVTecAD",
        root: str | Path = "./datasets/MVTecAD",
        categories: Sequence[str] | None = None,
        split: str = "test",
        train_batch_size: int = 8,
        eval_batch_size: int = 8,
        num_workers: int = 8,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            train_batch_size=train_batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            # FROM_DIR keeps the pooled normal images in test/val (NONE would drop them).
            test_split_mode=TestSplitMode.FROM_DIR,
            val_split_mode=ValSplitMode.SAME_AS_TEST,
            seed=seed,
        )
        if split not in {"test", "train"}:
            msg = f"split must be 'test' or 'train', got {split!r}"
            raise ValueError(msg)
        self.source = import_class(source)
        if not issubclass(self.source, AnomalibDataModule):
            msg = f"source must be an anomalib datamodule class, got {source}"
            raise ValueError(msg)
        self.root = Path(root)
        self.split = split
        self.categories = list(categories) if categories is not None else None
        self.category = "auxiliary"

    @property
    def name(self) -> str:
        """Results are filed under the source dataset's name, e.g. ``MVTecAD``."""
        return f"{self.source.__name__}_auxiliary"

    def resolved_categories(self) -> list[str]:
        """The categories that will be pooled.

        Raises:
            FileNotFoundError: no category folder was found.
        """
        categories = self.categories if self.categories is not None else find_categories(self.source, self.root)
        if not categories:
            msg = (
                f"No categories found for {self.source.__name__} under {self.root.resolve()}: "
                "place the dataset there (anomalib's folder layout) or pass `categories`."
            )
            raise FileNotFoundError(msg)
        return categories

    def _check_masks(self, category: str) -> None:
        """Anomalous test images need masks to train the pixel loss; say which folder is missing."""
        category_dir = category_folder(self.source, self.root) / category
        defects = [path.name for path in (category_dir / "test").glob("*") if path.is_dir() and path.name != "good"]
        missing = [defect for defect in defects if not (category_dir / "ground_truth" / defect).is_dir()]
        if missing:
            msg = (
                f"Category '{category}' has anomalous test images but no mask folder "
                f"{category_dir / 'ground_truth' / missing[0]} (missing for: {', '.join(sorted(missing))}). "
                "Add masks (same file stem, e.g. 000_mask.png) or train on those images through "
                "Engine.fit(train_dataloaders=...), where samples without masks train the image-level prompts only."
            )
            raise FileNotFoundError(msg)

    def _setup(self, _stage: str | None = None) -> None:
        pooled = None
        for category in self.resolved_categories():
            if self.split == "test":
                self._check_masks(category)
            folder = category_folder(self.source, self.root).resolve() / category
            datamodule = self.source(root=self.root, category=category, num_workers=0)
            try:
                datamodule._setup()
            except (RuntimeError, ValueError) as error:  # anomalib's own, e.g. "Found 0 images in ..."
                msg = f"Category '{category}' of {self.source.__name__} could not be read from {folder}: {error}"
                raise FileNotFoundError(msg) from None
            dataset = datamodule.train_data if self.split == "train" else datamodule.test_data
            if len(dataset) == 0:
                msg = f"Category '{category}' of {self.source.__name__} has no {self.split} images under {folder}"
                raise FileNotFoundError(msg)
            pooled = dataset if pooled is None else pooled + dataset
        self.train_data = pooled
        self.test_data = copy.deepcopy(pooled)
        logger.info("Auxiliary training data: %d images from %s", len(pooled), self.resolved_categories())
