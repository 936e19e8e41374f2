# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""What the generators and folder readers share: image files, seeding, checked PNG writing, the generation record.

A generated folder carries ``generation.json`` (the generator, its settings and whether it finished), so a second
call with the same settings reuses it and a call with other settings can say what differs.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")
"""Suffixes read as images (in any letter case)."""

GENERATION_FILE = "generation.json"
"""The record a generator leaves in every folder it writes."""


def readable_name(folder: str) -> str:
    """A class or category folder name as words for a prompt or a caption: ``metal_plate`` -> ``metal plate``."""
    return folder.replace("_", " ")


def class_folders(folder: Path) -> list[str]:
    """Sorted names of the sub-folders of ``folder`` (a class index order); none when it does not exist."""
    return sorted(path.name for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []


def class_names_for(folders: Sequence[str], given: Sequence[str] | None, where: Path, role: str) -> list[str]:
    """Readable class names in folder order: the folder names as words, or ``given`` when it has one per folder.

    Raises:
        ValueError: ``given`` has another length than ``folders`` (the message names the ``role`` of the classes,
            e.g. "ID", and their folder ``where``).
    """
    if given is None:
        return [readable_name(folder) for folder in folders]
    if len(given) != len(folders):
        msg = f"{len(given)} class names given for {len(folders)} {role} class folders under {where}: {list(folders)}"
        raise ValueError(msg)
    return list(given)


def check_count(name: str, value: int, minimum: int) -> int:
    """``value`` as an ``int`` when it is an integer of at least ``minimum``; else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        msg = f"{name} must be an integer >= {minimum}, got {value!r}."
        raise ValueError(msg)
    return int(value)


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files in ``folder`` (and below it with ``recursive``), sorted."""
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(path for path in paths if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS)


def stable_hash(text: str) -> int:
    """CRC-32 of ``text``: unlike :func:`hash`, the same in every process."""
    return zlib.crc32(text.encode("utf-8"))


def seeded_rng(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator of its own for one sample, from the dataset seed and the sample's key.

    Strings enter through :func:`stable_hash` and integers as they are, so a sample does not depend on which other
    samples (categories, splits) are generated.
    """
    entropy = [int(seed)] + [stable_hash(part) if isinstance(part, str) else int(part) for part in parts]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def write_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB ``(H, W, 3)`` or single-channel ``uint8`` image as PNG, creating its folder.

    Raises:
        OSError: OpenCV could not write the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image):
        msg = f"Could not write image {path}."
        raise OSError(msg)


def square_image(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` (RGB ``uint8``; grey, RGBA and float images are converted)."""
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


def skimage_photos(names: Iterable[str], size: int) -> dict[str, np.ndarray]:
    """scikit-image's bundled photographs (no download) of these names, square at ``size``, in ``names`` order.

    A name this scikit-image lacks, or whose file it would have to download, is left out.

    Raises:
        ImportError: scikit-image is not installed.
    """
    from skimage import data as skdata

    photos = {}
    for name in names:
        loader = getattr(skdata, name, None)
        if loader is None:
            continue
        try:
            photos[name] = square_image(np.asarray(loader()), size)
        except Exception:
            logger.debug("scikit-image sample '%s' is not available offline", name)
    return photos


def record_generation(folder: Path, generator: str, settings: dict[str, Any], complete: bool) -> None:
    """Write ``folder``'s generation record: before generating (``complete=False``) and after."""
    folder.mkdir(parents=True, exist_ok=True)
    record = {"generator": generator, "settings": settings, "complete": complete}
    (folder / GENERATION_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def generation_state(folder: Path, settings: dict[str, Any], files: list[str] | None = None) -> tuple[str, list[str]]:
    """Compare a folder with the settings a generator is asked for (and ``files``, relative to it, it must hold).

    Returns:
        tuple[str, list[str]]: ``"absent"`` (missing or empty), ``"complete"``, ``"incomplete"`` (same settings,
        interrupted or files missing) or ``"different"``, and for ``"different"`` what differs.
    """
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return "absent", []
    try:
        record = json.loads((folder / GENERATION_FILE).read_text(encoding="utf-8"))
        stored = record["settings"]
        complete = bool(record.get("complete", False))
    except (OSError, ValueError, KeyError, TypeError):
        return "different", [f"{GENERATION_FILE} (missing or unreadable; not generated by this module)"]
    if not isinstance(stored, dict):
        return "different", [f"{GENERATION_FILE} (malformed)"]
    differences = [
        f"{key} (found {stored.get(key)!r}, requested {settings[key]!r})"
        for key in settings
        if stored.get(key) != settings[key]
    ]
    if differences:
        return "different", differences
    if complete and all((folder / name).is_file() for name in files or ()):
        return "complete", []
    return "incomplete", []
