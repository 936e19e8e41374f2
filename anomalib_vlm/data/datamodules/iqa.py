# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Image-quality assessment (IQA) data: images with mean opinion scores, split by GRMP-IQA's few-shot protocol.

Batches are :class:`~anomalib_vlm.data.dataclasses.IqaBatch` es; :func:`split_by_distortion` gives the tasks of
meta-learning (one per distortion type).

Example:
    >>> from anomalib_vlm.data import IqaDataModule, generate_iqa_dataset
    >>> csv = generate_iqa_dataset("./datasets/iqa_synthetic", source="synthetic", image_size=64)  # doctest: +SKIP
    >>> datamodule = IqaDataModule(root=csv.parent, csv=csv.name, num_shots=50)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from anomalib import TaskType
from anomalib.data.datamodules.base.image import AnomalibDataModule
from anomalib.data.datasets.base.image import AnomalibDataset
from anomalib.data.utils import LabelName, read_image
from torchvision.transforms.v2 import Transform

from anomalib_vlm.data.dataclasses import REFERENCE_TYPE, IqaBatch, IqaItem
from anomalib_vlm.data.iqa_tables import REFERENCE_COLUMNS, read_mos_csv

logger = logging.getLogger(__name__)

# Named layouts: where the score table lives below ``root`` and which score direction it uses.
LAYOUTS: dict[str, dict[str, Any]] = {
    "koniq10k": {"csv": "koniq10k_scores_and_distributions.csv", "lower_is_better": False},
    "live_challenge": {"csv": "Data/AllMOS_release.mat", "lower_is_better": False},
}
"""Official layouts :class:`IqaDataModule` knows by name (``layout=``)."""


class IqaDataset(AnomalibDataset):
    """Images with opinion scores, yielding :class:`IqaItem`.

    Args:
        table (pd.DataFrame): rows of :func:`read_mos_csv` (``image_path``, ``mos``, ``distortion``).
        quality_range (tuple[float, float] | None): MOS that map to quality 0 and 1 (before the direction flip).
            Defaults to the table's own min and max.
        lower_is_better (bool): the scores are differential (DMOS: LIVE, CSIQ), lower = better. Defaults to ``False``.
        augmentations (Transform | None): torchvision transforms applied to each image. Defaults to ``None``.
        split (str): split name stored in the samples. Defaults to ``"test"``.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        quality_range: tuple[float, float] | None = None,
        lower_is_better: bool = False,
        augmentations: Transform | None = None,
        split: str = "test",
    ) -> None:
        super().__init__(augmentations=augmentations)
        if table.empty:
            msg = "IqaDataset needs at least one image"
            raise ValueError(msg)
        samples = table.copy()
        samples["split"] = split
        samples["label_index"] = int(LabelName.UNKNOWN)
        samples["mask_path"] = ""
        samples.attrs["task"] = TaskType.CLASSIFICATION
        self.samples = samples
        low, high = quality_range if quality_range is not None else (samples.mos.min(), samples.mos.max())
        self.quality_range = (float(low), float(high))
        self.lower_is_better = lower_is_better

    def quality(self, mos: float | np.ndarray) -> float | np.ndarray:
        """MOS rescaled to "higher = better" with :attr:`quality_range` mapped to ``[0, 1]`` (not clipped)."""
        low, high = self.quality_range
        scale = (high - low) or 1.0
        value = (np.asarray(mos, dtype=np.float64) - low) / scale
        return 1 - value if self.lower_is_better else value

    @property
    def qualities(self) -> np.ndarray:
        """``gt_quality`` of every sample, in sample order."""
        return np.asarray(self.quality(self.samples.mos.to_numpy()), dtype=np.float64)

    def __getitem__(self, index: int) -> IqaItem:
        """Read image ``index`` (RGB float in ``[0, 1]``, augmented) with its scores."""
        row = self.samples.iloc[index]
        image = read_image(row.image_path, as_tensor=True)
        if self.augmentations:
            image = self.augmentations(image)
        return IqaItem(
            image=image,
            image_path=row.image_path,
            mos=torch.tensor(float(row.mos), dtype=torch.float32),
            gt_quality=torch.tensor(float(self.quality(row.mos)), dtype=torch.float32),
            distortion=str(row.distortion),
        )

    @property
    def collate_fn(self) -> Callable:
        """Collate into :class:`IqaBatch`."""
        return IqaBatch.collate

    def subset(self, indices: Sequence[int], split: str | None = None) -> IqaDataset:
        """A new dataset over some of this one's samples, with the same quality range and direction."""
        table = self.samples.iloc[list(indices)]
        return IqaDataset(
            table[[c for c in table.columns if c not in {"split", "label_index", "mask_path"}]].reset_index(drop=True),
            quality_range=self.quality_range,
            lower_is_better=self.lower_is_better,
            augmentations=self.augmentations,
            split=split or str(self.samples.split.iloc[0]),
        )


def few_shot_split(
    num_images: int,
    num_shots: int | None,
    test_ratio: float = 0.2,
    num_val: int = 0,
    seed: int = 0,
    source: str = "the data",
    groups: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GRMP-IQA's few-shot protocol: a seeded 80/20 split, then the training shots drawn from the 80 %.

    Shots are the first ``num_shots`` of a seeded permutation of the 80 %, so with one seed the 50 shots are part
    of the 100 and the 100 of the 200. Validation images (``num_val``) come from the rest of the 80 %.

    With ``groups`` (e.g. the reference image of each distorted image), the 80/20 split is over groups, so no
    content is both trained on and tested on (the usual protocol for synthetically distorted datasets); the
    ratio then counts groups.

    Args:
        num_images (int): rows in the table.
        num_shots (int | None): labelled training images; ``None`` uses the whole 80 %.
        test_ratio (float): share of the images held out for testing. Defaults to ``0.2``.
        num_val (int): validation images taken from the training pool, disjoint from the shots. Defaults to ``0``.
        seed (int): seed of the split and of the draw. Defaults to ``0``.
        source (str): name of the data, for error messages.
        groups (Sequence[Any] | None): one group label per row; rows of a group stay on one side of the split.
            Defaults to ``None`` (every row its own group).

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: row indices of the training shots, validation and test images.

    Raises:
        ValueError: more shots (plus validation images) than the training pool holds, or a bad ratio.
    """
    if not 0.0 < test_ratio < 1.0:
        msg = f"test_ratio must be in (0, 1), got {test_ratio}"
        raise ValueError(msg)
    if groups is not None and len(groups) != num_images:
        msg = f"{len(groups)} group labels for {num_images} images"
        raise ValueError(msg)
    # Every row its own group reproduces the plain row split exactly.
    codes = (
        np.arange(num_images) if groups is None else np.unique(np.asarray(groups, dtype=str), return_inverse=True)[1]
    )
    num_groups = int(codes.max()) + 1 if num_images else 0
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_groups)
    num_test_groups = max(1, round(num_groups * test_ratio))
    if num_test_groups >= num_groups:
        msg = (
            f"{source} has {num_groups} groups (reference images): too few to hold out test_ratio={test_ratio} of them"
        )
        raise ValueError(msg)
    held_out = np.isin(codes, order[:num_test_groups])
    if groups is None:
        test, pool = order[:num_test_groups], order[num_test_groups:]
    else:
        test, pool = np.flatnonzero(held_out), np.flatnonzero(~held_out)
    num_test = len(test)
    pool = rng.permutation(pool)
    wanted = (len(pool) if num_shots is None else num_shots) + num_val
    if num_shots is not None and num_shots < 1:
        msg = f"num_shots must be >= 1 (or None for the whole training pool), got {num_shots}"
        raise ValueError(msg)
    if wanted > len(pool):
        msg = (
            f"num_shots={num_shots} (+ num_val={num_val}) is larger than the training pool of {source}: "
            f"{len(pool)} images ({num_images} in all, {num_test} held out for testing with test_ratio={test_ratio})"
        )
        raise ValueError(msg)
    shots = len(pool) - num_val if num_shots is None else num_shots
    return np.sort(pool[:shots]), np.sort(pool[shots : shots + num_val]), np.sort(test)


def split_by_distortion(dataset: IqaDataset, include_references: bool = True) -> dict[str, IqaDataset]:
    """One dataset per distortion type: the meta-learning tasks of GRMP-IQA.

    Args:
        dataset (IqaDataset): data with a ``distortion`` per image.
        include_references (bool): add the clean ``"reference"`` images to every task, so each task spans the
            whole quality range. Defaults to ``True``.

    Returns:
        dict[str, IqaDataset]: distortion type to its images, sorted by name.
    """
    kinds = dataset.samples.distortion
    references = np.flatnonzero(kinds.to_numpy() == REFERENCE_TYPE)
    tasks = {}
    for kind in sorted(set(kinds) - {REFERENCE_TYPE}):
        indices = np.flatnonzero(kinds.to_numpy() == kind)
        if include_references:
            indices = np.concatenate([indices, references])
        tasks[kind] = dataset.subset(indices, split="train")
    return tasks


class IqaDataModule(AnomalibDataModule):
    """Images with mean opinion scores, split by GRMP-IQA's few-shot protocol.

    Args:
        root (str | Path): dataset folder (image paths in the table are relative to it).
        csv (str | Path | None): score table, relative to ``root`` or absolute. Defaults to the layout's table.
        layout (str | None): ``"koniq10k"`` or ``"live_challenge"`` (official releases), or ``None`` for any CSV.
            Defaults to ``None``.
        image_column, score_column, distortion_column (str | None): column names; detected when ``None``.
        lower_is_better (bool | None): scores are DMOS (LIVE, CSIQ in ``iqadataset``: lower = better).
            Defaults to the layout's, else to whether a given ``score_column`` is named like ``dmos``, else
            ``False``. A detected ``dmos`` column is read as higher-is-better (KADID-10k's ``dmos`` is), with a
            warning; iqadataset's LIVE and CSIQ tables call their DMOS ``score``: pass ``True`` for them.
        num_shots (int | None): labelled training images (the paper: 50, 100, 200); ``None`` = the whole 80 %.
            Defaults to ``50``.
        num_val (int): validation images from the training pool, disjoint from the shots; ``0`` validates on the
            test split (anomalib's default for MVTec AD; :class:`~anomalib_vlm.models.meta_iqa.MetaIqa` selects
            nothing on it). Defaults to ``0``.
        test_ratio (float): share held out for testing. Defaults to ``0.2``.
        split_by_reference (bool): split by reference image (needs a ``ref_img_path`` column), so no content is
            in both the training pool and the test split. Defaults to ``False`` (split images, as the paper does
            for in-the-wild datasets).
        train_batch_size (int): Defaults to ``192`` (official fine-tuning batch).
        eval_batch_size (int): Defaults to ``64``.
        num_workers (int): Defaults to ``8``.
        train_augmentations, val_augmentations, test_augmentations, augmentations (Transform | None): as anomalib.
        seed (int): seed of the split and the shot draw (the paper repeats 10 seeds and reports the median).
            Defaults to ``0``.
    """

    def __init__(
        self,
        root: str | Path,
        csv: str | Path | None = None,
        layout: str | None = None,
        image_column: str | None = None,
        score_column: str | None = None,
        distortion_column: str | None = None,
        lower_is_better: bool | None = None,
        num_shots: int | None = 50,
        num_val: int = 0,
        test_ratio: float = 0.2,
        split_by_reference: bool = False,
        train_batch_size: int = 192,
        eval_batch_size: int = 64,
        num_workers: int = 8,
        train_augmentations: Transform | None = None,
        val_augmentations: Transform | None = None,
        test_augmentations: Transform | None = None,
        augmentations: Transform | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            train_batch_size=train_batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            train_augmentations=train_augmentations,
            val_augmentations=val_augmentations,
            test_augmentations=test_augmentations,
            augmentations=augmentations,
            seed=seed,
        )
        if layout is not None and layout not in LAYOUTS:
            msg = f"Unknown IQA layout '{layout}'; known: {sorted(LAYOUTS)} (or None for any CSV)"
            raise ValueError(msg)
        if csv is None and layout is None:
            msg = "IqaDataModule needs the score table: pass csv=... or a known layout=..."
            raise ValueError(msg)
        self.root = Path(root).expanduser()
        table_path = Path(csv) if csv is not None else Path(LAYOUTS[layout]["csv"])
        self.csv = table_path if table_path.is_absolute() else self.root / table_path
        self.layout = layout
        self.image_column, self.score_column, self.distortion_column = image_column, score_column, distortion_column
        if lower_is_better is None and layout is not None:
            lower_is_better = LAYOUTS[layout]["lower_is_better"]
        elif lower_is_better is None and score_column is not None:
            lower_is_better = "dmos" in score_column.lower()
        # None: decided in setup, once the score column is known.
        self.lower_is_better: bool | None = lower_is_better
        self.num_shots, self.num_val, self.test_ratio = num_shots, num_val, test_ratio
        self.split_by_reference = split_by_reference
        self._category = self.csv.stem

    def _setup(self, _stage: str | None = None) -> None:
        columns = {"image_column": self.image_column, "score_column": self.score_column}
        table = read_mos_csv(self.csv, root=self.root, distortion_column=self.distortion_column, **columns)
        if self.lower_is_better is None:
            # A detected column's name does not tell the direction: KADID-10k's `dmos` is higher-is-better (1-5),
            # LIVE's and CSIQ's differential scores are lower-is-better. Assume higher and say so.
            self.lower_is_better = False
            detected = str(table.attrs.get("score_column", ""))
            if "dmos" in detected.lower():
                logger.warning(
                    "Score column '%s' of %s is read as higher-is-better (KADID-10k's convention); pass "
                    "lower_is_better=True for differential scores (LIVE, CSIQ).",
                    detected,
                    self.csv,
                )
        if self.split_by_reference and "reference" not in table.columns:
            msg = (
                f"split_by_reference=True needs the reference image of every row, but {self.csv} has no "
                f"{' / '.join(REFERENCE_COLUMNS)} column"
            )
            raise ValueError(msg)
        train, val, test = few_shot_split(
            len(table),
            self.num_shots,
            test_ratio=self.test_ratio,
            num_val=self.num_val,
            seed=int(self.seed or 0),
            source=str(self.csv),
            groups=table.reference.tolist() if self.split_by_reference else None,
        )
        scores = table.mos.to_numpy()[train]
        # Rescale by the training shots only (official: per training subset), so test labels inform nothing.
        quality_range = (float(scores.min()), float(scores.max()))
        full = IqaDataset(table, quality_range=quality_range, lower_is_better=self.lower_is_better)
        # AnomalibDataset sorts samples by path; map the split's row order onto it through the CSV line numbers.
        position = {line: i for i, line in enumerate(full.samples.line)}
        lines = table.line.to_numpy()
        self.train_data = full.subset([position[line] for line in lines[train]], split="train")
        self.test_data = full.subset([position[line] for line in lines[test]], split="test")
        self.val_data = (
            full.subset([position[line] for line in lines[val]], split="val") if len(val) else self.test_data
        )
