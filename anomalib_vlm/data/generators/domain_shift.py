# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""A synthetic domain shift with captions: the offline stand-in for DomainNet / GeoNet in caption-guided adaptation.

The source domain is the small CLIP's caption corpus (:mod:`anomalib_vlm.data.generators.corpus`): textures of several
material families in random colours, captioned "a photo of a red striped texture.". The target domain shows the
same classes rendered differently (:data:`SHIFTS`: night-time lighting with camera noise, a pencil-sketch style,
a cluttered background, a cheap camera) and is captioned in its own words ("a dark night-time photo of a red
striped surface."). ``caption_noise`` is the knob of the text's reliability: that share of the target captions is
replaced by the caption of a *different* class (another colour too), as mislabelled metadata would be.

``class_attribute`` chooses what the classes are: ``"family"`` (default) the material family, whatever its colour;
``"colour"`` the colour, whatever the family (each image draws one of :data:`DEFAULT_CLASSES`). Colours are what
the small CLIP's image tower tells apart best at 64 px, and the ``lamplight`` shift (warm, tinted light) changes
them: pixels mislead there while the captions still name the true colour, which is the premise of caption-guided
adaptation. ``shift_strength`` blends the shifted rendering with the unshifted one (``1``: fully shifted).

Writes the :class:`~anomalib_vlm.data.CaptionedDomainDataModule` layout, plus ``target_truth.csv`` (the
target images' true classes and whether their caption is right), which only evaluation scripts read.

Example:
    >>> from anomalib_vlm.data.generators.domain_shift import generate_domain_shift_dataset
    >>> root = generate_domain_shift_dataset("datasets/shift", shift="night", caption_noise=0.3)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import csv
import json
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from anomalib_vlm.data.generators import synthetic
from anomalib_vlm.data.generators.corpus import COLOURS, MATERIALS, CaptionCorpus

DEFAULT_CLASSES: tuple[str, ...] = ("striped", "dotted", "checkered", "woven", "wooden", "leather")
"""Material families the small CLIP was pre-trained on: the classes of the default task."""

DEFAULT_COLOUR_CLASSES: tuple[str, ...] = ("white", "yellow", "grey", "brown", "pink", "purple")
"""Colours of :data:`~anomalib_vlm.data.generators.corpus.COLOURS`: the classes with ``class_attribute="colour"``."""

CLASS_ATTRIBUTES: tuple[str, ...] = ("family", "colour")
"""What a class is: the material family (colour random) or the colour (family random)."""

_Image = np.ndarray  # float32 (H, W, 3) in [0, 1]


def _night(image: _Image, rng: np.random.Generator) -> _Image:
    """Dim, blue-cast light with a vignette and sensor noise."""
    size = image.shape[0]
    x, y = synthetic._grid(size)
    vignette = 1 - 0.5 * (((x - size / 2) ** 2 + (y - size / 2) ** 2) / (size / 2) ** 2)
    cast = np.asarray([0.7, 0.8, 1.15], np.float32)
    dark = image * cast * rng.uniform(0.5, 0.7) * np.clip(vignette, 0.3, 1)[..., None]
    return dark + rng.normal(0, rng.uniform(0.03, 0.05), image.shape).astype(np.float32)


def _sketch(image: _Image, rng: np.random.Generator) -> _Image:
    """Dark pencil strokes on light paper, the colour kept as a faint wash."""
    grey = synthetic._luminance(image)
    edges = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    strokes = np.clip(edges / max(float(np.percentile(edges, 98)), 1e-3), 0, 1)
    paper = 0.92 + 0.03 * synthetic._noise(rng, image.shape[0], 4)
    wash = 0.75 + 0.25 * image
    return (paper * (1 - 0.85 * strokes))[..., None] * wash


def _clutter(image: _Image, rng: np.random.Generator) -> _Image:
    """The texture as a patch on a cluttered background of random coloured blobs."""
    size = image.shape[0]
    background = np.full((size, size, 3), rng.uniform(0.2, 0.8, 3), np.float32)
    for _ in range(12):
        colour = np.asarray(list(COLOURS.values())[int(rng.integers(len(COLOURS)))], np.float32)
        centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        cv2.circle(background, centre, int(rng.integers(size // 16, size // 5)), colour.tolist(), -1, cv2.LINE_AA)
    side = int(size * rng.uniform(0.55, 0.7))
    top, left = (int(rng.integers(0, size - side + 1)) for _ in range(2))
    background[top : top + side, left : left + side] = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    return background


def _camera(image: _Image, rng: np.random.Generator) -> _Image:
    """A cheap camera: blur, over-sharpened JPEG blocks and colour noise."""
    size = image.shape[0]
    blurred = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.8, 1.3))
    noisy = np.clip(blurred + rng.normal(0, 0.05, image.shape).astype(np.float32), 0, 1)
    pixels = (noisy * 255 + 0.5).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(8, 20))])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else pixels
    return decoded.astype(np.float32).reshape(size, size, 3) / 255


def _lamplight(image: _Image, rng: np.random.Generator) -> _Image:
    """Warm, tinted lamp light (a wrong white balance) falling off from a lamp beside the frame, mild noise."""
    size = image.shape[0]
    x, y = synthetic._grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    lamp_x, lamp_y = size / 2 + size * np.cos(angle), size / 2 + size * np.sin(angle)
    distance = np.hypot(x - lamp_x, y - lamp_y) / (2 * size)
    falloff = np.clip(1.15 - 0.5 * distance, 0.6, 1.15)
    warmth = rng.uniform(0.75, 1.0)
    cast = (1 + warmth * np.asarray([0.3, -0.05, -0.5])).astype(np.float32)
    lit = image * cast * np.float32(rng.uniform(0.9, 1.05)) * falloff[..., None].astype(np.float32)
    return lit + rng.normal(0, 0.02, image.shape).astype(np.float32)


SHIFTS: dict[str, tuple[Callable[[_Image, np.random.Generator], _Image], tuple[str, ...]]] = {
    "night": (_night, ("a dark night-time photo of", "a dim photo taken at night of", "a low-light photo of")),
    "sketch": (_sketch, ("a pencil sketch of", "a drawing of", "a sketch of")),
    "clutter": (_clutter, ("a photo on a cluttered table of", "a busy scene with", "a snapshot of a messy desk with")),
    "camera": (_camera, ("a grainy phone photo of", "a blurry low-quality snapshot of", "a cheap camera photo of")),
    "lamplight": (
        _lamplight,
        ("a photo under lamp light of", "an indoor snapshot by lamplight of", "a lamp-lit photo of"),
    ),
}
"""Target-domain renderings and the caption openings that describe them."""


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    return np.random.default_rng([int(seed)] + [zlib.crc32(str(part).encode()) for part in parts])


def _write(path: Path, image: _Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    if not cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)):
        msg = f"Could not write image {path}"
        raise OSError(msg)


def _write_table(path: Path, header: list[str], rows: list[tuple]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _content(name: str, class_attribute: str, rng: np.random.Generator) -> tuple[str, str]:
    """``(family, colour)`` of an image of class ``name``: the other attribute is drawn at random."""
    if class_attribute == "colour":
        return DEFAULT_CLASSES[int(rng.integers(len(DEFAULT_CLASSES)))], name
    return name, list(COLOURS)[int(rng.integers(len(COLOURS)))]


def _caption(corpus: CaptionCorpus, family: str, colour: str, rng: np.random.Generator, opening: str | None) -> str:
    caption = corpus.caption(family, colour, family, None, None, rng)
    if opening is None:
        return caption
    body = caption.split(" of ", 1)[1] if " of " in caption else caption  # "a photo of a ..." -> "a ..."
    return f"{opening} {body}"


def _check_arguments(
    classes: list[str],
    shift: str,
    caption_noise: float,
    num_source: int,
    num_target: int,
    num_target_test: int,
    class_attribute: str = "family",
    shift_strength: float = 1.0,
) -> None:
    """Raise ``ValueError`` naming the first bad argument of :func:`generate_domain_shift_dataset`."""
    if class_attribute not in CLASS_ATTRIBUTES:
        msg = f"class_attribute must be one of {CLASS_ATTRIBUTES}, got {class_attribute!r}"
        raise ValueError(msg)
    vocabulary, kind = (MATERIALS, "material families") if class_attribute == "family" else (COLOURS, "colours")
    unknown = [name for name in classes if name not in vocabulary]
    if unknown or len(classes) < 2 or len(set(classes)) != len(classes):
        msg = f"classes must be at least two distinct {kind} of {sorted(vocabulary)}, got {classes}"
        raise ValueError(msg)
    if not 0.0 <= shift_strength <= 1.0:
        msg = f"shift_strength must be in [0, 1], got {shift_strength}"
        raise ValueError(msg)
    if shift not in SHIFTS:
        msg = f"shift must be one of {sorted(SHIFTS)}, got {shift!r}"
        raise ValueError(msg)
    if not 0.0 <= caption_noise <= 1.0:
        msg = f"caption_noise must be in [0, 1], got {caption_noise}"
        raise ValueError(msg)
    for name, value in {"num_source": num_source, "num_target": num_target, "num_target_test": num_target_test}.items():
        if value < 1:
            msg = f"{name} must be >= 1, got {value}"
            raise ValueError(msg)


def generate_domain_shift_dataset(
    root: str | Path,
    classes: Sequence[str] | None = None,
    shift: str = "night",
    caption_noise: float = 0.0,
    num_source: int = 40,
    num_target: int = 40,
    num_target_test: int = 30,
    image_size: int = 64,
    seed: int = 0,
    class_attribute: str = "family",
    shift_strength: float = 1.0,
) -> Path:
    """Write a seeded source / target / target-test dataset with captions (reused if already written alike).

    Args:
        root (str | Path): dataset root.
        classes (Sequence[str] | None): material families of
            :data:`~anomalib_vlm.data.generators.corpus.MATERIALS` (``class_attribute="family"``) or colours of
            :data:`~anomalib_vlm.data.generators.corpus.COLOURS` (``"colour"``); ``None`` = :data:`DEFAULT_CLASSES`
            or :data:`DEFAULT_COLOUR_CLASSES`.
        shift (str): target rendering, a key of :data:`SHIFTS`. Defaults to ``"night"``.
        caption_noise (float): share of target captions that describe another class, in ``[0, 1]``.
        num_source (int): source images per class.
        num_target (int): unlabelled target images per class.
        num_target_test (int): labelled target test images per class.
        image_size (int): image side. Defaults to ``64`` (the small CLIP's).
        seed (int): dataset seed; images and noise draws depend only on it and their position.
        class_attribute (str): ``"family"``: a class is a material family in random colours (default);
            ``"colour"``: a class is a colour, each image one of :data:`DEFAULT_CLASSES` drawn at random.
        shift_strength (float): how far the target is shifted, in ``[0, 1]``: the target image is
            ``(1 - s) * unshifted + s * shifted``. Defaults to ``1.0`` (fully shifted).

    Returns:
        Path: ``root``.

    Raises:
        ValueError: unknown class attribute, classes or shift, fewer than two classes, a noise or shift strength
            outside ``[0, 1]`` or counts < 1.
    """
    if classes is None:
        classes = DEFAULT_COLOUR_CLASSES if class_attribute == "colour" else DEFAULT_CLASSES
    classes = list(classes)
    _check_arguments(
        classes, shift, caption_noise, num_source, num_target, num_target_test, class_attribute, shift_strength
    )
    root = Path(root)
    settings = {
        "classes": classes,
        "shift": shift,
        "caption_noise": caption_noise,
        "num_source": num_source,
        "num_target": num_target,
        "num_target_test": num_target_test,
        "image_size": image_size,
        "seed": seed,
        "version": 1,
    }
    if class_attribute != "family" or shift_strength != 1.0:  # defaults keep the metadata of version 1 unchanged
        settings.update(class_attribute=class_attribute, shift_strength=shift_strength)
    metadata = root / "generation.json"
    if metadata.is_file() and json.loads(metadata.read_text(encoding="utf-8")) == settings:
        return root
    corpus = CaptionCorpus(image_size=image_size, seed=seed, photos=False)
    render, openings = SHIFTS[shift]
    rows, truth = [], []
    for part, count in (("source", num_source), ("target", num_target), ("target_test", num_target_test)):
        for label, name in enumerate(classes):
            for index in range(count):
                rng = _rng(seed, part, name, index)
                family, colour = _content(name, class_attribute, rng)
                image = corpus.render(family, colour, None, None, rng).image.astype(np.float32) / 255
                if part == "source":
                    path = Path(part) / name / f"{index:03d}.png"
                    _write(root / path, image)
                    rows.append((path.as_posix(), _caption(corpus, family, colour, rng, None)))
                    continue
                shifted = render(image, rng)
                if shift_strength != 1.0:
                    shifted = (1 - shift_strength) * image + shift_strength * shifted
                image = np.clip(shifted, 0, 1)
                if part == "target_test":
                    _write(root / part / name / f"{index:03d}.png", image)
                    continue
                path = Path(part) / f"{label * count + index:05d}.png"  # no class in the name: unlabelled
                _write(root / path, image)
                noise_rng = _rng(seed, "noise", name, index)
                correct = bool(noise_rng.random() >= caption_noise)
                said, said_family, said_colour = name, family, colour
                if not correct:
                    said = [other for other in classes if other != name][int(noise_rng.integers(len(classes) - 1))]
                    said_family, said_colour = _content(said, class_attribute, noise_rng)
                opening = openings[int(rng.integers(len(openings)))]
                rows.append((path.as_posix(), _caption(corpus, said_family, said_colour, rng, opening)))
                truth.append((path.as_posix(), name, said, int(correct)))
    _write_table(root / "captions.csv", ["image_path", "caption"], rows)
    _write_table(root / "target_truth.csv", ["image_path", "class", "caption_class", "caption_correct"], truth)
    metadata.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m anomalib_vlm.data.generators.domain_shift --root datasets/shift --shift night``."""
    prog = "python -m anomalib_vlm.data.generators.domain_shift"
    parser = argparse.ArgumentParser(prog=prog, description=main.__doc__)
    parser.add_argument("--root", type=Path, default=Path("datasets/domain_shift"))
    parser.add_argument(
        "--classes", nargs="+", default=None, help="material families, or colours with --class-attribute colour"
    )
    parser.add_argument("--class-attribute", choices=CLASS_ATTRIBUTES, default="family")
    parser.add_argument("--shift", choices=sorted(SHIFTS), default="night")
    parser.add_argument("--shift-strength", type=float, default=1.0)
    parser.add_argument("--caption-noise", type=float, default=0.0)
    parser.add_argument("--num-source", type=int, default=40)
    parser.add_argument("--num-target", type=int, default=40)
    parser.add_argument("--num-target-test", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = generate_domain_shift_dataset(
        args.root,
        classes=args.classes,
        shift=args.shift,
        caption_noise=args.caption_noise,
        num_source=args.num_source,
        num_target=args.num_target,
        num_target_test=args.num_target_test,
        image_size=args.image_size,
        seed=args.seed,
        class_attribute=args.class_attribute,
        shift_strength=args.shift_strength,
    )
    print(f"domain-shift dataset ({args.shift}, caption noise {args.caption_noise}) under {root.resolve()}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
