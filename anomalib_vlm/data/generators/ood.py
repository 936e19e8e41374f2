# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""A seeded synthetic OOD dataset in :class:`~anomalib_vlm.data.OODDataModule`'s folder layout, for tests and demos.

The ID classes are normal images of :mod:`~anomalib_vlm.data.generators.synthetic`'s texture categories; the OOD
kinds are other categories, other colourways, damaged ID images or colour noise (:data:`SYNTHETIC_OOD_KINDS`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from anomalib_vlm.data.generators.synthetic import CATEGORIES, DEFECT_TYPES, render_sample
from anomalib_vlm.data.utils import check_count, generation_state, record_generation, seeded_rng, write_png

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
        check_count(name, value, 1)


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
    counts = {"num_train": num_train, "num_test": num_test, "num_ood": num_ood}
    _check_synthetic_ood_arguments(id_classes, ood_kinds, counts)
    objects = [name for name in _OBJECT_CATEGORIES if name not in id_classes]

    root = Path(root)
    settings = {
        "id_classes": id_classes,
        "ood_kinds": sorted(ood_kinds),
        "image_size": image_size,
        **counts,
        "seed": seed,
        "colour_coded": colour_coded,
        "version": 1,
    }
    if generation_state(root, settings)[0] == "complete":
        return root
    record_generation(root, __name__, settings, complete=False)
    tints = {name: _CLASS_TINTS[index] if colour_coded else None for index, name in enumerate(id_classes)}
    # The index enters the seed as text, as it always has, so the images stay the same.
    for split, count in (("train", num_train), ("test", num_test)):
        for name in id_classes:
            for index in range(count):
                image, _ = render_sample(name, None, image_size, seeded_rng(seed, split, name, str(index)))
                write_png(root / split / name / f"{index:03d}.png", _tint(image, tints[name]))
    for kind in sorted(ood_kinds):
        for index in range(num_ood):
            rng = seeded_rng(seed, "ood", kind, str(index))
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
            write_png(root / "ood" / kind / f"{index:03d}.png", image)
    record_generation(root, __name__, settings, complete=True)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Write the synthetic OOD dataset: ``python -m anomalib_vlm.data.generators.ood --root DIR``."""
    parser = argparse.ArgumentParser(prog="python -m anomalib_vlm.data.generators.ood", description=main.__doc__)
    parser.add_argument("--root", type=Path, default=Path("datasets/synthetic_ood"))
    parser.add_argument("--id-classes", nargs="+", default=list(SYNTHETIC_ID_CLASSES))
    parser.add_argument("--ood-kinds", nargs="+", choices=SYNTHETIC_OOD_KINDS, default=[*SYNTHETIC_DEFAULT_OOD_KINDS])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--num-train", type=int, default=16)
    parser.add_argument("--num-test", type=int, default=24)
    parser.add_argument("--num-ood", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = generate_synthetic_ood_dataset(**vars(args))  # the options are named as its arguments
    print(f"synthetic OOD dataset (ID classes {args.id_classes}, OOD kinds {args.ood_kinds}) under {root.resolve()}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
