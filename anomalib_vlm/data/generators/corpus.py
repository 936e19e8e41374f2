# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""A captioned image corpus, generated offline, to pre-train the package's small CLIP.

Every sample is an RGB image, its defect mask and a caption that names what the image shows: the *family*
(the generator kind: a material texture, an object shape, an industrial part or a real photograph from
scikit-image), its colour, material, defect and quality degradation. Captions are written from templates with
synonyms, so the same content is described in several wordings.

Families, defect-family and colour-family combinations, and some degradations are **held out**: the training
stream (:meth:`CaptionCorpus.sample` with ``split="train"``) never draws them; the evaluation splits do:

* ``"heldout_family"``: whole generator families never trained on (:data:`HELD_OUT_FAMILIES`), with trained
  colours, defects and degradations, to test whether the words transfer to new kinds of images;
* ``"heldout_combination"``: trained families in colour / defect combinations never trained on.

Samples are a pure function of ``(seed, split, index)``, so a corpus can be streamed in any order, by any number
of workers, and regenerated identically.

Example:
    >>> from anomalib_vlm.data.generators.corpus import CaptionCorpus
    >>> corpus = CaptionCorpus(image_size=64, seed=0, photos=False)
    >>> sample = corpus.sample(0)
    >>> sample.image.shape, sample.image.dtype, sample.family in corpus.families("train")
    ((64, 64, 3), dtype('uint8'), True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

import cv2
import numpy as np

from anomalib_vlm.data.generators import synthetic
from anomalib_vlm.data.generators.iqa import DISTORTIONS
from anomalib_vlm.data.utils import seeded_rng, skimage_photos, stable_hash

__all__ = [
    "COLOURS",
    "DEFECTS",
    "DEGRADATIONS",
    "FAMILIES",
    "HELD_OUT_DEGRADATIONS",
    "HELD_OUT_FAMILIES",
    "CaptionCorpus",
    "CorpusSample",
]

_Image = np.ndarray  # float32 (H, W, 3) in [0, 1]

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.1),
    "orange": (0.95, 0.5, 0.08),
    "yellow": (0.95, 0.85, 0.15),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.12, 0.3, 0.85),
    "purple": (0.5, 0.18, 0.7),
    "pink": (0.95, 0.5, 0.7),
    "brown": (0.5, 0.3, 0.15),
    "grey": (0.52, 0.52, 0.52),
    "white": (0.93, 0.93, 0.9),
    "black": (0.1, 0.1, 0.11),
}
"""Colour words and their RGB values (texture and shape families take one)."""

# material textures: each returns a luminance pattern (H, W) in [0, 1] that a colour is applied to


def _luminance_of(render: Callable[[int, np.random.Generator], tuple[_Image, np.ndarray]]) -> Callable:
    """A pattern from one of :mod:`~anomalib_vlm.data.generators.synthetic`'s renderers, contrast-stretched."""

    def pattern(size: int, rng: np.random.Generator) -> np.ndarray:
        lum = synthetic._luminance(render(size, rng)[0])
        low, high = np.percentile(lum, (2, 98))
        return np.clip((lum - low) / max(high - low, 1e-3), 0, 1).astype(np.float32)

    return pattern


def _frame(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    grid = synthetic._grid(size)
    return synthetic._rotate(grid, size / 2, size / 2, rng.uniform(0, np.pi))


def _striped(size: int, rng: np.random.Generator) -> np.ndarray:
    u, _ = _frame(size, rng)
    period = size / rng.uniform(3, 8)
    return (np.sin(2 * np.pi * u / period) > rng.uniform(-0.4, 0.4)).astype(np.float32)


def _dotted(size: int, rng: np.random.Generator) -> np.ndarray:
    u, v = _frame(size, rng)
    period = size / rng.uniform(4, 8)
    fu, fv = (u / period) % 1 - 0.5, (v / period) % 1 - 0.5
    return 1 - synthetic._soft_shape((np.hypot(fu, fv) - rng.uniform(0.2, 0.35)) * period)


def _checkered(size: int, rng: np.random.Generator) -> np.ndarray:
    u, v = _frame(size, rng)
    period = size / rng.uniform(3, 7)
    return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)


def _granular(size: int, rng: np.random.Generator) -> np.ndarray:
    grains = synthetic._noise(rng, size, size / rng.uniform(2.5, 5))
    specks = rng.random((size, size)) < 0.04
    return np.clip(0.5 + 0.3 * grains - 0.4 * specks, 0, 1).astype(np.float32)


def _marbled(size: int, rng: np.random.Generator) -> np.ndarray:
    u, _ = _frame(size, rng)
    turbulence = synthetic._fbm(rng, size, 3, octaves=3) * rng.uniform(1.5, 3.0)
    veins = np.abs(np.sin(2 * np.pi * u / (size / rng.uniform(1.5, 3)) + turbulence)) ** 0.3
    return veins.astype(np.float32)


def _printed(size: int, rng: np.random.Generator) -> np.ndarray:
    canvas = np.full((size, size), 255, np.uint8)
    scale = size / 160 * rng.uniform(0.8, 1.3)
    step = max(6, round(26 * scale))
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    for row in range(step, size + step, step):
        text = "".join(letters[i] for i in rng.integers(0, len(letters), 12))
        cv2.putText(canvas, text, (-int(rng.integers(0, step)), row), cv2.FONT_HERSHEY_SIMPLEX, scale, 0, 1)
    return canvas.astype(np.float32) / 255


def _cast(size: int, rng: np.random.Generator) -> np.ndarray:
    shade = 0.65 + 0.15 * synthetic._fbm(rng, size, 2.5, octaves=2)
    x, y = synthetic._grid(size)
    for _ in range(int(rng.integers(8, 20))):  # casting pores
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), size * rng.uniform(0.01, 0.025)
        shade -= 0.35 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    return np.clip(shade + 0.03 * rng.standard_normal((size, size)), 0, 1).astype(np.float32)


MATERIALS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "striped": _striped,
    "dotted": _dotted,
    "checkered": _checkered,
    "woven": _luminance_of(synthetic._render_weave),
    "wooden": _luminance_of(synthetic._render_wood),
    "tiled": _luminance_of(synthetic._render_tile),
    "brushed": _luminance_of(synthetic._render_metal_plate),
    "leather": _luminance_of(synthetic._render_leather),
    "granular": _granular,
    "marbled": _marbled,
    "printed": _printed,
    "cast": _cast,
}
"""Material texture families: a luminance pattern generator each."""

_MATERIAL_WORDS: dict[str, tuple[str, ...]] = {
    "striped": ("striped", "stripy", "stripes"),
    "dotted": ("dotted", "polka dot", "spotted"),
    "checkered": ("checkered", "checkerboard", "chequered"),
    "woven": ("woven", "woven fabric", "weave"),
    "wooden": ("wooden", "wood", "wood grain"),
    "tiled": ("tiled", "ceramic tile", "tiles"),
    "brushed": ("brushed metal", "brushed", "metallic"),
    "leather": ("leather", "grained leather", "leathery"),
    "granular": ("granular", "grainy", "sandy"),
    "marbled": ("marbled", "marble", "veined"),
    "printed": ("printed", "printed text", "lettered"),
    "cast": ("cast", "cast metal", "pitted"),
}

# object shapes: each returns a polygon (N, 2) in unit coordinates around the origin


def _regular(corners: int, inner: float = 1.0) -> np.ndarray:
    steps = corners * (2 if inner != 1.0 else 1)
    angles = np.arange(steps) * 2 * np.pi / steps - np.pi / 2
    radii = np.where(np.arange(steps) % 2 == 1, inner, 1.0) if inner != 1.0 else np.ones(steps)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)


def _cross_polygon() -> np.ndarray:
    a, b = 0.35, 1.0
    return np.array(
        [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
    )


SHAPES: dict[str, np.ndarray | None] = {
    "circle": None,  # drawn as an ellipse
    "ring": None,
    "square": _regular(4),
    "triangle": _regular(3),
    "hexagon": _regular(6),
    "star": _regular(5, 0.45),
    "cross": _cross_polygon(),
}
"""Object shape families."""

_SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round object"),
    "ring": ("ring", "washer", "donut shape"),
    "square": ("square", "square plate", "block"),
    "triangle": ("triangle", "triangular plate", "triangular object"),
    "hexagon": ("hexagon", "hexagonal nut", "hexagonal plate"),
    "star": ("star", "star shape", "star-shaped object"),
    "cross": ("cross", "plus sign", "cross-shaped part"),
}

_PARTS: dict[str, tuple[str, ...]] = {
    "bottle_cap": ("bottle cap", "metal cap", "crown cap"),
    "chip": ("microchip", "chip on a circuit board", "integrated circuit"),
    "capsule": ("capsule", "pill", "medicine capsule"),
}
"""Industrial part families: :mod:`~anomalib_vlm.data.generators.synthetic`'s object renderers."""

_PHOTOS: dict[str, tuple[str, ...]] = {
    "astronaut": ("astronaut", "person in a space suit"),
    "camera": ("man with a camera", "photographer"),
    "cat": ("cat", "kitten"),
    "chelsea": ("cat", "tabby cat"),
    "coffee": ("cup of coffee", "coffee cup"),
    "coins": ("pile of coins", "coins"),
    "horse": ("horse silhouette", "horse"),
    "hubble_deep_field": ("starry sky", "galaxies in space"),
    "immunohistochemistry": ("tissue under a microscope", "stained cells"),
    "logo": ("logo", "snake logo"),
    "moon": ("moon surface", "cratered moon"),
    "page": ("page of text", "printed page"),
    "rocket": ("rocket", "space rocket on a launch pad"),
    "text": ("handwritten text", "text on paper"),
    "brick": ("brick wall", "bricks"),
    "grass": ("grass", "lawn"),
    "gravel": ("gravel", "pebbles"),
    "retina": ("retina", "eye fundus"),
    "colorwheel": ("colour wheel", "rainbow colour wheel"),
    "clock": ("clock", "wall clock"),
    "cell": ("cell under a microscope", "microscope image of a cell"),
}
"""Photograph families: scikit-image's bundled photographs (no download), with their subject words."""

FAMILIES: dict[str, str] = {
    **dict.fromkeys(MATERIALS, "material"),
    **dict.fromkeys(SHAPES, "shape"),
    **dict.fromkeys(_PARTS, "part"),
    **{f"photo:{name}": "photo" for name in _PHOTOS},
}
"""Every generator family and its kind (``material``, ``shape``, ``part`` or ``photo``)."""

HELD_OUT_FAMILIES: tuple[str, ...] = ("tiled", "marbled", "hexagon", "capsule", "photo:coffee", "photo:rocket")
"""Families never trained on. ``tiled`` and ``capsule`` are the project's synthetic ``tile`` and ``capsule``
categories, so anomaly detection on them is zero-shot with respect to pre-training."""

# defects: the four of the synthetic generator plus five more, each drawing in place and returning its alpha


def _crack(image: _Image, distance: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A thin dark jagged line with short side branches."""
    size = image.shape[0]
    length = size * rng.uniform(0.4, 0.65) * scale
    cx, cy = synthetic._pick_centre(distance, length * 0.3, rng)
    heading = rng.uniform(0, 2 * np.pi)
    canvas = np.zeros((size, size), np.uint8)
    steps = 14
    x, y = cx - np.cos(heading) * length / 2, cy - np.sin(heading) * length / 2
    points = [(x, y)]
    for _ in range(steps):
        heading += rng.uniform(-0.8, 0.8)
        x, y = x + np.cos(heading) * length / steps, y + np.sin(heading) * length / steps
        points.append((x, y))
        if rng.random() < 0.15:
            side = heading + rng.choice([-1, 1]) * 1.1
            end = (x + np.cos(side) * length / 6, y + np.sin(side) * length / 6)
            cv2.line(canvas, (round(x), round(y)), (round(end[0]), round(end[1])), 255, 1, cv2.LINE_AA)
    cv2.polylines(canvas, [np.round(np.asarray(points)).astype(np.int32)], False, 255, max(1, size // 48), cv2.LINE_AA)
    alpha = canvas.astype(np.float32) / 255
    image[:] = synthetic._lerp(image, image * 0.12, alpha)
    return alpha


def _blob(image: _Image, distance: np.ndarray, rng: np.random.Generator, radius: float) -> tuple[np.ndarray, ...]:
    size = image.shape[0]
    cx, cy = synthetic._pick_centre(distance, radius, rng)
    u, v = synthetic._rotate(synthetic._grid(size), cx, cy, rng.uniform(0, np.pi))
    wobble = 1 + 0.2 * synthetic._noise(rng, size, max(2.0, size / radius))
    r = np.hypot(u, v / rng.uniform(0.7, 1.0)) / (radius * wobble)
    return r, u / radius, v / radius


def _burn(image: _Image, distance: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A charred black centre fading through brown into a scorched halo."""
    r, _, _ = _blob(image, distance, rng, image.shape[0] * rng.uniform(0.07, 0.12) * scale)
    alpha = np.clip(1.3 - r, 0, 1).astype(np.float32)
    char = np.where((r < 0.6)[..., None], np.float32(0.03), np.asarray([0.3, 0.15, 0.05], np.float32))
    image[:] = synthetic._lerp(image, np.broadcast_to(char, image.shape), alpha**0.7)
    return alpha


def _chip(image: _Image, distance: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A flake broken off the surface near an edge, exposing lighter rough material."""
    size = image.shape[0]
    edge = np.flatnonzero((distance > 0) & (distance < max(3.0, size * 0.08)))
    if len(edge) == 0:
        edge = np.flatnonzero(distance > 0)
    cy, cx = divmod(int(edge[rng.integers(len(edge))]), size)
    radius = size * rng.uniform(0.07, 0.11) * scale
    corners = int(rng.integers(3, 6))
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    polygon = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], 1)
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillPoly(canvas, [np.round(polygon).astype(np.int32)], 255, cv2.LINE_AA)
    alpha = canvas.astype(np.float32) / 255
    exposed = np.clip(image * 0.5 + 0.45 + 0.06 * rng.standard_normal((size, size, 1)), 0, 1)
    image[:] = synthetic._lerp(image, exposed.astype(np.float32), alpha)
    return alpha


def _dent(image: _Image, distance: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A smooth depression: a shaded bowl, lit on one side and dark on the other."""
    r, u, v = _blob(image, distance, rng, image.shape[0] * rng.uniform(0.08, 0.13) * scale)
    light = rng.uniform(0, 2 * np.pi)
    bowl = np.exp(-2.5 * r**2) * (np.cos(light) * u + np.sin(light) * v)
    image[:] = np.clip(image * (1 + 1.2 * bowl)[..., None], 0, 1)
    return np.clip(1.5 - 1.5 * r, 0, 1).astype(np.float32)


def _contamination(image: _Image, distance: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A cluster of dark specks, grit and a stray fibre."""
    size = image.shape[0]
    spread = size * rng.uniform(0.08, 0.13) * scale
    cx, cy = synthetic._pick_centre(distance, spread, rng)
    canvas = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(8, 20))):
        x, y = rng.normal(cx, spread / 2), rng.normal(cy, spread / 2)
        cv2.circle(canvas, (round(x), round(y)), max(1, round(rng.uniform(0.5, 1.8) * size / 64)), 255, -1)
    x, y = rng.normal(cx, spread / 3), rng.normal(cy, spread / 3)
    angle = rng.uniform(0, 2 * np.pi)
    end = (round(x + np.cos(angle) * spread), round(y + np.sin(angle) * spread))
    cv2.line(canvas, (round(x), round(y)), end, 255, 1, cv2.LINE_AA)
    alpha = canvas.astype(np.float32) / 255
    dirt = np.asarray([0.12, 0.1, 0.07], np.float32) * rng.uniform(0.5, 1.5)
    image[:] = synthetic._lerp(image, np.broadcast_to(dirt, image.shape), alpha)
    return alpha


_DEFECT_DRAWERS: dict[str, Callable[[_Image, np.ndarray, np.random.Generator, float], np.ndarray]] = {
    **synthetic._DEFECTS,
    "crack": _crack,
    "burn": _burn,
    "chip": _chip,
    "dent": _dent,
    "contamination": _contamination,
}

DEFECTS: dict[str, tuple[str, ...]] = {
    "crack": ("crack", "fracture", "hairline crack"),
    "scratch": ("scratch", "scratch mark", "scrape"),
    "burn": ("burn mark", "scorch mark", "burnt spot"),
    "chip": ("chipped edge", "chip", "broken-off flake"),
    "stain": ("stain", "coloured stain", "spill"),
    "hole": ("hole", "puncture", "perforation"),
    "dent": ("dent", "dented area", "depression"),
    "missing": ("missing part", "missing piece", "cut-out"),
    "contamination": ("contamination", "dirt", "specks of debris"),
}
"""Defect kinds and their words."""

_DAMAGED = ("damaged", "defective", "flawed", "broken")
_INTACT = ("flawless", "intact", "perfect", "undamaged", "clean")

# quality degradations


def _posterise(image: _Image, t: float, rng: np.random.Generator) -> _Image:
    del rng
    levels = max(2, round(8 - 6 * t))
    return np.round(np.clip(image, 0, 1) * (levels - 1)) / (levels - 1)


_DEGRADE: dict[str, Callable[[_Image, float, np.random.Generator], _Image]] = {
    **DISTORTIONS,
    "posterise": _posterise,
}

DEGRADATIONS: dict[str, tuple[str, ...]] = {
    "gaussian_blur": ("blurry", "blurred", "out-of-focus"),
    "gaussian_noise": ("noisy", "grainy noisy", "high-noise"),
    "pixelate": ("pixelated", "low-resolution", "blocky pixelated"),
    "jpeg": ("jpeg-compressed", "compression-artefacted", "blocky jpeg"),
    "underexposure": ("dark", "underexposed", "dim"),
    "overexposure": ("overexposed", "washed-out", "too bright"),
    "posterise": ("posterised", "banded", "colour-banded"),
    "contrast_decrease": ("low-contrast", "faded", "flat low-contrast"),
}
"""Degradations trained on, and their words (:data:`~anomalib_vlm.data.generators.iqa.DISTORTIONS` plus posterise)."""

HELD_OUT_DEGRADATIONS: tuple[str, ...] = ("motion_blur", "impulse_noise", "speckle_noise")
"""Degradations of :data:`~anomalib_vlm.data.generators.iqa.DISTORTIONS` never trained on (for the IQA evaluation)."""

_PREFIXES = (
    "a photo of",
    "an image of",
    "a picture of",
    "a close-up photo of",
    "a photo showing",
    "a product photo of",
)

# corpus


@dataclass(frozen=True)
class CorpusSample:
    """One captioned image: ``image`` (H, W, 3) ``uint8``, ``mask`` (H, W) bool defect mask, and its content."""

    image: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    caption: str
    family: str
    colour: str | None
    material: str | None
    defect: str | None
    degradation: str | None

    @property
    def key(self) -> tuple[str, str | None, str | None, str | None, str | None]:
        """What the caption says, independent of wording: samples with equal keys are positives of each other."""
        return (self.family, self.colour, self.material, self.defect, self.degradation)


@cache
def _photo_bank(size: int) -> dict[str, np.ndarray]:
    """scikit-image's photographs, square, at twice ``size`` (room for random crops); empty without skimage."""
    try:
        return skimage_photos(_PHOTOS, 2 * size)
    except ImportError:
        return {}


class CaptionCorpus:
    """A deterministic stream of captioned images with held-out families and combinations.

    Args:
        image_size (int): side of the square images. Defaults to ``64``.
        seed (int): corpus seed; sample ``i`` of a split depends only on ``(seed, split, i)``. Defaults to ``0``.
        photos (bool): include scikit-image's photographs (needs scikit-image). Defaults to ``True``.
        defect_rate (float): share of samples with a defect. Defaults to ``0.4``.
        degradation_rate (float): share of samples with a quality degradation. Defaults to ``0.2``.
    """

    def __init__(
        self,
        image_size: int = 64,
        seed: int = 0,
        photos: bool = True,
        defect_rate: float = 0.4,
        degradation_rate: float = 0.2,
    ) -> None:
        self.image_size = image_size
        self.seed = seed
        self.defect_rate = defect_rate
        self.degradation_rate = degradation_rate
        bank = _photo_bank(image_size) if photos else {}
        self._families = [f for f in FAMILIES if FAMILIES[f] != "photo" or f.removeprefix("photo:") in bank]
        self._bank = bank

    # ---- splits -------------------------------------------------------------------------------------------
    def families(self, split: str = "train") -> list[str]:
        """Families drawn by ``split``: ``train`` and ``heldout_combination`` share them; ``heldout_family`` not."""
        if split == "heldout_family":
            return [f for f in self._families if f in HELD_OUT_FAMILIES]
        return [f for f in self._families if f not in HELD_OUT_FAMILIES]

    @staticmethod
    def held_out_colour(family: str) -> str | None:
        """The one colour never trained on ``family`` (material and shape families)."""
        if FAMILIES[family] not in {"material", "shape"}:
            return None
        return list(COLOURS)[(stable_hash(family) * 7) % len(COLOURS)]

    @staticmethod
    def held_out_defect(family: str) -> str:
        """The one defect kind never trained on ``family``."""
        return list(DEFECTS)[(stable_hash(family) * 5 + 3) % len(DEFECTS)]

    def is_training_combination(self, family: str, colour: str | None, defect: str | None) -> bool:
        """Whether a training sample may show ``family`` in ``colour`` with ``defect``."""
        if family in HELD_OUT_FAMILIES:
            return False
        if colour is not None and colour == self.held_out_colour(family):
            return False
        return defect is None or defect != self.held_out_defect(family)

    # ---- sampling -----------------------------------------------------------------------------------------
    def sample(self, index: int, split: str = "train") -> CorpusSample:
        """Sample ``index`` of ``split`` (``train``, ``heldout_family`` or ``heldout_combination``)."""
        if split not in {"train", "heldout_family", "heldout_combination"}:
            msg = f"Unknown corpus split '{split}'"
            raise ValueError(msg)
        rng = seeded_rng(self.seed, split, index)
        families = self.families(split)
        family = families[int(rng.integers(len(families)))]
        kind = FAMILIES[family]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))] if kind in {"material", "shape"} else None
        defect = list(DEFECTS)[int(rng.integers(len(DEFECTS)))] if rng.random() < self.defect_rate else None
        if split == "heldout_combination":  # force one held-out aspect
            if colour is not None and (defect is None or rng.random() < 0.5):
                colour = self.held_out_colour(family)
            else:
                defect = self.held_out_defect(family)
        elif split == "train":
            while colour is not None and colour == self.held_out_colour(family):
                colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            while defect is not None and defect == self.held_out_defect(family):
                defect = list(DEFECTS)[int(rng.integers(len(DEFECTS)))]
        degradation = (
            list(DEGRADATIONS)[int(rng.integers(len(DEGRADATIONS)))] if rng.random() < self.degradation_rate else None
        )
        return self.render(family, colour, defect, degradation, rng)

    def render(
        self,
        family: str,
        colour: str | None,
        defect: str | None,
        degradation: str | None,
        rng: np.random.Generator,
        level: float | None = None,
    ) -> CorpusSample:
        """Render one sample of exactly this content (any family, held out or not) and caption it."""
        size = self.image_size
        kind = FAMILIES[family]
        material = None
        if kind == "material":
            material = family
            image = self._material(family, colour, rng)
            region = np.ones((size, size), bool)
        elif kind == "shape":
            trained = [m for m in MATERIALS if m not in HELD_OUT_FAMILIES]
            material = trained[int(rng.integers(len(trained)))] if rng.random() < 0.6 else None
            image, region = self._shape(family, colour, material, rng)
        elif kind == "part":
            image, region = synthetic._RENDERERS[family](size, rng)
        else:
            image, region = self._photo(family.removeprefix("photo:"), rng), np.ones((size, size), bool)
        image = np.ascontiguousarray(image, dtype=np.float32)
        mask = np.zeros((size, size), bool)
        if defect is not None:
            image, mask = place_defect(image, region, defect, rng)
        if degradation is not None:
            t = rng.uniform(0.4, 1.0) if level is None else level
            image = _DEGRADE[degradation](np.clip(image, 0, 1).astype(np.float32), t, rng)
        pixels = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
        caption = self.caption(family, colour, material, defect, degradation, rng)
        return CorpusSample(pixels, mask, caption, family, colour, material, defect, degradation)

    def _material(self, family: str, colour: str | None, rng: np.random.Generator) -> _Image:
        pattern = MATERIALS[family](self.image_size, rng)
        base = np.asarray(COLOURS[colour or "grey"], np.float32) * np.float32(rng.uniform(0.85, 1.1))
        dark = base * np.float32(rng.uniform(0.25, 0.55))
        image = synthetic._lerp(
            np.broadcast_to(dark, (*pattern.shape, 3)), np.broadcast_to(base, (*pattern.shape, 3)), pattern
        )
        light = synthetic._noise(rng, self.image_size, 2)
        return image * (1 + np.float32(rng.uniform(0.03, 0.12)) * light)[..., None]

    def _shape(
        self, family: str, colour: str | None, material: str | None, rng: np.random.Generator
    ) -> tuple[_Image, np.ndarray]:
        size = self.image_size
        if material is None:
            body = np.broadcast_to(np.asarray(COLOURS[colour or "grey"], np.float32), (size, size, 3)).copy()
            body *= (1 + 0.04 * synthetic._noise(rng, size, 3))[..., None]
        else:
            body = self._material(material, colour, rng)
        background_colour = list(COLOURS.values())[int(rng.integers(len(COLOURS)))]
        tone = np.float32(rng.uniform(0.3, 0.6)) * np.asarray(background_colour, np.float32) + np.float32(0.25)
        background = np.broadcast_to(tone, (size, size, 3)) * (1 + 0.05 * synthetic._fbm(rng, size, 3, 2))[..., None]
        cx, cy = size * (0.5 + rng.uniform(-0.08, 0.08, 2))
        radius = size * rng.uniform(0.3, 0.42)
        angle = rng.uniform(0, 2 * np.pi)
        canvas = np.zeros((size, size), np.uint8)
        shift = 4
        if SHAPES[family] is None:
            centre = (round(cx * 16), round(cy * 16))
            axes = (round(radius * 16), round(radius * rng.uniform(0.8, 1.0) * 16))
            cv2.ellipse(canvas, centre, axes, np.degrees(angle), 0, 360, 255, -1, cv2.LINE_AA, shift)
            if family == "ring":
                inner = (round(axes[0] * 0.5), round(axes[1] * 0.5))
                cv2.ellipse(canvas, centre, inner, np.degrees(angle), 0, 360, 0, -1, cv2.LINE_AA, shift)
        else:
            c, s = np.cos(angle), np.sin(angle)
            points = SHAPES[family] @ np.array([[c, s], [-s, c]]) * radius + (cx, cy)
            cv2.fillPoly(canvas, [np.round(points * 16).astype(np.int32)], 255, cv2.LINE_AA, shift)
        coverage = canvas.astype(np.float32) / 255
        shadow = cv2.GaussianBlur(np.roll(coverage, (size // 40 + 1, size // 40 + 1), (0, 1)), (0, 0), size / 40)
        background = background * (1 - 0.35 * shadow)[..., None]
        x, _ = synthetic._rotate(synthetic._grid(size), cx, cy, rng.uniform(0, 2 * np.pi))
        body = body * (1 + 0.15 * x / radius)[..., None]  # directional light across the object
        return synthetic._lerp(background, body, coverage), coverage > 0.99

    def _photo(self, name: str, rng: np.random.Generator) -> _Image:
        photo = self._bank[name]
        full = photo.shape[0]
        side = int(rng.integers(full // 2, full + 1))
        top, left = (int(rng.integers(0, full - side + 1)) for _ in range(2))
        crop = cv2.resize(
            photo[top : top + side, left : left + side], (self.image_size,) * 2, interpolation=cv2.INTER_AREA
        )
        image = crop.astype(np.float32) / 255
        if rng.random() < 0.5:
            image = image[:, ::-1]
        return np.clip(image * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05, 3), 0, 1)

    @staticmethod
    def caption(
        family: str,
        colour: str | None,
        material: str | None,
        defect: str | None,
        degradation: str | None,
        rng: np.random.Generator,
    ) -> str:
        """A caption of this content in a randomly drawn wording."""

        def pick(words: Sequence[str]) -> str:
            return words[int(rng.integers(len(words)))]

        kind = FAMILIES[family]
        if kind == "material":
            noun = pick(("texture", "surface", "pattern", "material"))
            subject = f"{colour} {pick(_MATERIAL_WORDS[family])} {noun}"
        elif kind == "shape":
            texture = f"{pick(_MATERIAL_WORDS[material])} " if material else ""
            subject = f"{colour} {texture}{pick(_SHAPE_WORDS[family])}"
        elif kind == "part":
            subject = pick(_PARTS[family])
        else:
            subject = pick(_PHOTOS[family.removeprefix("photo:")])
        if defect is None:
            state = pick(_INTACT) + " " if rng.random() < 0.3 else ""
            body = f"{state}{subject}"
            tail = ""
        else:
            state = pick(_DAMAGED) + " " if rng.random() < 0.5 else ""
            body = f"{state}{subject}"
            tail = f" {pick(('with a', 'that has a', 'showing a'))} {pick(DEFECTS[defect])}"
        prefix = pick(_PREFIXES)
        if degradation is not None:
            prefix = f"a {pick(DEGRADATIONS[degradation])} {pick(('photo', 'image', 'picture'))} of"
        article = "an" if body[0] in "aeiou" else "a"
        return f"{prefix} {article} {body}{tail}."


def place_defect(image: _Image, region: np.ndarray, defect: str, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """Draw ``defect`` inside ``region``, resized until it covers about 1 %-8 % of the image."""
    distance = synthetic._inner_distance(region)
    scale, best = 1.0, None
    for _ in range(12):
        candidate = image.copy()
        alpha = _DEFECT_DRAWERS[defect](candidate, distance, rng, scale)
        mask = (alpha > 0.3) & region
        candidate = synthetic._lerp(image, candidate, region.astype(np.float32))
        fraction = float(mask.mean())
        error = max(0.01 - fraction, fraction - 0.08, 0.0)
        if best is None or error < best[0]:
            best = (error, candidate, mask)
        if error == 0.0:
            break
        scale = float(np.clip(scale * (1.15 if fraction < 0.01 else 0.85), 0.4, 2.5))
    return best[1], best[2]
