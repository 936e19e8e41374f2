# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Procedurally generated industrial anomaly datasets in the MVTec AD folder layout.

Tests, demos and notebooks need anomaly-detection data without downloads. This module renders small,
realistic-looking images of several texture and object categories and damages some of them with
synthetic defects, then writes them in the folder layout that anomalib's ``MVTecAD`` and ``Folder``
datamodules read.

The categories are designed for zero-shot experiments (train on the test split of some categories,
evaluate on another one):

* **Normal appearance differs per category** but is always "calm": muted / pastel colours, smooth or
  regular textures of low-to-mid contrast, and mild per-image variation (colour jitter, small shifts and
  rotations, mild sensor noise).
* **Defects share one visual signature across categories** and are distinct from every category's normal
  appearance: near-black holes with a lit rim, thin high-contrast scratches, saturated coloured stains and
  cut-out ("missing") regions showing a dark or checker-patterned interior. Each defect covers roughly
  1 %-8 % of the image and lies inside the object (or texture) region.

Example:
    >>> import numpy as np
    >>> from anomalib_vlm.data.generators.synthetic import render_sample
    >>> image, mask = render_sample("wood", "hole", 128, np.random.default_rng(0))
    >>> image.shape, image.dtype, mask.shape, mask.dtype
    ((128, 128, 3), dtype('uint8'), (128, 128), dtype('bool'))

    Write a dataset and read it with anomalib:

    >>> from anomalib.data import MVTecAD
    >>> from anomalib_vlm.data.generators.synthetic import generate_synthetic_dataset
    >>> root = generate_synthetic_dataset("./datasets/synthetic", categories=["wood", "chip"])  # doctest: +SKIP
    >>> datamodule = MVTecAD(root=root, category="chip", num_workers=0)  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from anomalib_vlm.data.utils import check_count, generation_state, record_generation, seeded_rng, write_png

CATEGORIES: tuple[str, ...] = (
    "weave",
    "wood",
    "tile",
    "metal_plate",
    "leather",
    "bottle_cap",
    "chip",
    "capsule",
)
"""Available categories: five textures followed by three objects."""

TEXTURE_CATEGORIES: tuple[str, ...] = ("weave", "wood", "tile", "metal_plate", "leather")
"""Categories whose whole image is the (defect-bearing) texture."""

DEFECT_TYPES: tuple[str, ...] = ("hole", "missing", "scratch", "stain")
"""Available defect types (alphabetical, as anomalib sorts the folders)."""

MIN_IMAGE_SIZE = 32
"""Smallest supported image side in pixels."""

FORMAT_VERSION = 1
"""Version of the rendering code, stored in ``generation.json``; bump it whenever the images change."""

_MIN_DEFECT_FRACTION = 0.01
_MAX_DEFECT_FRACTION = 0.08

_Image = np.ndarray  # float32 (H, W, 3) in [0, 1] while rendering
_Grid = tuple[np.ndarray, np.ndarray]

# Saturated stain colours (red, orange, green, blue): far from every category's muted palette.
_STAIN_COLOURS = np.array(
    [[0.82, 0.08, 0.06], [0.95, 0.48, 0.02], [0.12, 0.66, 0.16], [0.08, 0.26, 0.88]],
    dtype=np.float32,
)


# small helpers
def _rgb(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def _pick(rng: np.random.Generator, palette: Sequence[np.ndarray], jitter: float = 0.035) -> np.ndarray:
    """Pick a palette colour and jitter its brightness and channels slightly."""
    colour = palette[int(rng.integers(len(palette)))]
    colour = colour * np.float32(1.0 + rng.normal(0.0, jitter)) + rng.normal(0.0, jitter / 2.5, 3)
    return np.clip(colour, 0.0, 1.0).astype(np.float32)


def _grid(size: int) -> _Grid:
    """Pixel-centre coordinates ``(x, y)``, each (H, W) float32."""
    coords = np.arange(size, dtype=np.float32) + np.float32(0.5)
    return np.meshgrid(coords, coords)


def _rotate(grid: _Grid, cx: float, cy: float, angle: float) -> _Grid:
    """Coordinates ``(u, v)`` of every pixel in a frame centred on ``(cx, cy)`` and rotated by ``angle``."""
    x, y = grid
    dx, dy = x - np.float32(cx), y - np.float32(cy)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return dx * c + dy * s, -dx * s + dy * c


def _noise(rng: np.random.Generator, size: int, cells: float, cells_x: float | None = None) -> np.ndarray:
    """Smooth zero-mean, unit-variance noise with about ``cells`` features per side (bicubic upsampling)."""
    rows = max(2, round(cells)) + 1
    cols = max(2, round(cells if cells_x is None else cells_x)) + 1
    coarse = rng.standard_normal((rows, cols)).astype(np.float32)
    out = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    out -= out.mean()
    out /= out.std() + np.float32(1e-6)
    return out


def _fbm(rng: np.random.Generator, size: int, cells: float, octaves: int = 3, gain: float = 0.5) -> np.ndarray:
    """Fractal sum of :func:`_noise` octaves, normalised to zero mean and unit variance."""
    out = np.zeros((size, size), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        out += np.float32(amplitude) * _noise(rng, size, min(cells * 2**octave, size / 2))
        amplitude *= gain
    out -= out.mean()
    out /= out.std() + np.float32(1e-6)
    return out


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel linear interpolation; ``t`` is (H, W)."""
    return a + (b - a) * t[..., None]


def _soft_shape(sdf: np.ndarray, softness: float = 1.0) -> np.ndarray:
    """Anti-aliased coverage of a shape given its signed distance field (negative inside) in pixels."""
    return np.clip(0.5 - sdf / np.float32(softness), 0.0, 1.0)


def _luminance(image: np.ndarray) -> np.ndarray:
    return image @ np.asarray([0.299, 0.587, 0.114], np.float32)


# normal appearance: each renderer returns a float image in [0, 1] and the region defects may occupy
def _render_weave(size: int, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """Carpet-like plain weave of two slightly different thread colours."""
    palette = [_rgb(0.56, 0.61, 0.68), _rgb(0.74, 0.67, 0.56), _rgb(0.62, 0.67, 0.58), _rgb(0.71, 0.61, 0.63)]
    warp = _pick(rng, palette)
    weft = np.clip(warp * np.float32(rng.uniform(0.88, 0.95)) + rng.normal(0.0, 0.02, 3), 0, 1).astype(np.float32)
    period = size / rng.uniform(10.0, 13.0)
    u, v = _rotate(_grid(size), size / 2, size / 2, rng.uniform(-0.06, 0.06))
    fu = (u + np.float32(rng.uniform(0, 2 * period))) / np.float32(period)
    fv = (v + np.float32(rng.uniform(0, 2 * period))) / np.float32(period)
    iu, iv = np.floor(fu), np.floor(fv)
    tu, tv = fu - iu, fv - iv
    over = ((iu + iv) % 2) == 0  # warp thread on top
    pi = np.float32(np.pi)
    across = np.where(over, np.sin(pi * tv), np.sin(pi * tu)) ** np.float32(0.6)
    along = np.where(over, np.sin(pi * tu), np.sin(pi * tv))
    shade = across * (np.float32(0.8) + np.float32(0.2) * along)
    fibres = _noise(rng, size, size / 3)
    image = np.where(over[..., None], warp, weft) * (np.float32(0.8) + np.float32(0.2) * shade)[..., None]
    image *= (np.float32(1.0) + np.float32(0.025) * fibres + np.float32(0.03) * _noise(rng, size, 3))[..., None]
    return image, np.ones((size, size), bool)


def _render_wood(size: int, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """Planed wood with warped growth rings and fine fibres."""
    palette = [_rgb(0.76, 0.61, 0.45), _rgb(0.82, 0.72, 0.56), _rgb(0.68, 0.63, 0.56), _rgb(0.72, 0.56, 0.46)]
    early = _pick(rng, palette)
    late = early * _rgb(0.8, 0.74, 0.7)
    period = size / rng.uniform(6.0, 10.0)
    u, v = _rotate(_grid(size), size / 2, size / 2, rng.uniform(-0.12, 0.12))
    warp = _fbm(rng, size, 2.5, octaves=2) * np.float32(size * 0.05) + u * np.float32(rng.uniform(-0.08, 0.08))
    phase = (v + warp) / np.float32(period) + np.float32(rng.uniform(0, 1))
    rings = (np.float32(0.5) + np.float32(0.5) * np.sin(np.float32(2 * np.pi) * phase)) ** 3
    fibres = _noise(rng, size, size / 2.5, cells_x=4)
    image = _lerp(np.broadcast_to(early, (size, size, 3)), np.broadcast_to(late, (size, size, 3)), rings * 0.85)
    image *= (np.float32(1.0) + np.float32(0.03) * fibres)[..., None]
    return image, np.ones((size, size), bool)


def _render_tile(size: int, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """Square ceramic tiles with grout lines, per-tile shade and speckle."""
    palette = [_rgb(0.79, 0.79, 0.77), _rgb(0.83, 0.79, 0.69), _rgb(0.63, 0.75, 0.75), _rgb(0.77, 0.62, 0.54)]
    tile = _pick(rng, palette)
    grout = np.clip(tile * np.float32(rng.uniform(0.72, 0.82)) + np.float32(0.03), 0, 1).astype(np.float32)
    period = size / rng.uniform(3.0, 4.2)
    u, v = _rotate(_grid(size), size / 2, size / 2, rng.uniform(-0.03, 0.03))
    fu = (u + np.float32(rng.uniform(0, period))) / np.float32(period)
    fv = (v + np.float32(rng.uniform(0, period))) / np.float32(period)
    iu, iv = np.floor(fu), np.floor(fv)
    tu, tv = (fu - iu) * np.float32(period), (fv - iv) * np.float32(period)
    edge = np.minimum(np.minimum(tu, np.float32(period) - tu), np.minimum(tv, np.float32(period) - tv))
    half_grout = np.float32(max(1.0, size / 64 * rng.uniform(0.8, 1.2)))
    grout_alpha = np.clip(half_grout + np.float32(0.5) - edge, 0.0, 1.0)
    bevel = np.clip(np.float32(1.0) - (edge - half_grout) / np.float32(3.0), 0.0, 1.0)
    shades = rng.normal(0.0, 0.025, (16, 16)).astype(np.float32)
    shade = shades[iu.astype(np.int64) % 16, iv.astype(np.int64) % 16]
    mottle = _fbm(rng, size, 5, octaves=2)
    speckle = _noise(rng, size, size / 2)
    tiles = tile * (np.float32(1.0) + shade + np.float32(0.02) * mottle - np.float32(0.05) * bevel)[..., None]
    grouts = grout * (np.float32(1.0) + np.float32(0.04) * speckle)[..., None]
    return _lerp(tiles, grouts, grout_alpha), np.ones((size, size), bool)


def _render_metal_plate(size: int, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """Brushed metal: streaky anisotropic noise under a soft lighting gradient."""
    palette = [_rgb(0.63, 0.65, 0.67), _rgb(0.58, 0.62, 0.68), _rgb(0.68, 0.66, 0.62)]
    base = _pick(rng, palette, jitter=0.03)
    streaks = cv2.resize(
        rng.standard_normal((size, max(2, size // 16))).astype(np.float32),
        (size, size),
        interpolation=cv2.INTER_LINEAR,
    )
    angle = rng.uniform(-4.0, 4.0)
    rotation = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    streaks = cv2.warpAffine(streaks, rotation, (size, size), borderMode=cv2.BORDER_REFLECT)
    streaks = (streaks - streaks.mean()) / (streaks.std() + np.float32(1e-6))
    u, v = _rotate(_grid(size), size / 2, size / 2, rng.uniform(0, 2 * np.pi))
    gradient = np.float32(rng.uniform(0.04, 0.08)) * u / np.float32(size / 2)
    band = np.float32(0.05) * np.exp(-(((v - np.float32(rng.uniform(-0.3, 0.3) * size)) / np.float32(0.3 * size)) ** 2))
    fine = _noise(rng, size, size / 2)
    shade = np.float32(1.0) + np.float32(0.045) * streaks + gradient + band + np.float32(0.01) * fine
    return base * shade[..., None], np.ones((size, size), bool)


def _render_leather(size: int, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """Grained leather: a network of soft creases with pores and slow mottling."""
    palette = [_rgb(0.6, 0.5, 0.42), _rgb(0.56, 0.56, 0.57), _rgb(0.45, 0.49, 0.58), _rgb(0.56, 0.56, 0.45)]
    base = _pick(rng, palette)
    crease_field = _fbm(rng, size, size / 11, octaves=2)
    creases = np.exp(-((crease_field / np.float32(0.28)) ** 2))
    pores = _noise(rng, size, size / 2.5)
    mottle = _fbm(rng, size, 3, octaves=2)
    shade = np.float32(1.0) - np.float32(0.12) * creases + np.float32(0.03) * pores + np.float32(0.035) * mottle
    return base * shade[..., None], np.ones((size, size), bool)


def _drop_shadow(background: _Image, sdf: np.ndarray, size: int, strength: float) -> _Image:
    shadow = np.float32(1.0) / (np.float32(1.0) + np.exp(sdf / np.float32(size * 0.02)))
    return background * (np.float32(1.0) - np.float32(strength) * shadow)[..., None]


def _render_bottle_cap(size: int, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """Top view of a crimped metal cap on a neutral surface."""
    backgrounds = [_rgb(0.52, 0.54, 0.56), _rgb(0.6, 0.57, 0.52), _rgb(0.5, 0.55, 0.6)]
    caps = [_rgb(0.82, 0.75, 0.55), _rgb(0.76, 0.77, 0.79), _rgb(0.62, 0.71, 0.8), _rgb(0.66, 0.78, 0.7)]
    grid = _grid(size)
    background = _pick(rng, backgrounds) * (np.float32(1.0) + np.float32(0.03) * _fbm(rng, size, 3, 2))[..., None]
    cx, cy = size * (0.5 + rng.uniform(-0.04, 0.04, 2))
    radius = size * rng.uniform(0.36, 0.4)
    offset = size * 0.03
    shadow_sdf = np.hypot(grid[0] - np.float32(cx + offset), grid[1] - np.float32(cy + offset)) - np.float32(radius)
    background = _drop_shadow(background, shadow_sdf, size, 0.3)

    dx, dy = grid[0] - np.float32(cx), grid[1] - np.float32(cy)
    r = np.hypot(dx, dy)
    rn = r / np.float32(radius)
    theta = np.arctan2(dy, dx) + np.float32(rng.uniform(0, 2 * np.pi))
    light = np.float32(rng.uniform(0, 2 * np.pi))
    directional = -(dx * np.cos(light) + dy * np.sin(light)) / np.float32(radius)
    shade = np.float32(1.0) + np.float32(0.1) * directional
    flutes = np.float32(0.5) + np.float32(0.5) * np.cos(theta * np.float32(rng.integers(21, 33)))
    rim = np.clip((rn - np.float32(0.84)) / np.float32(0.04), 0.0, 1.0)
    shade *= np.float32(1.0) - rim * (np.float32(0.06) + np.float32(0.14) * flutes)
    groove_r = np.float32(rng.uniform(0.6, 0.68))
    shade *= np.float32(1.0) - np.float32(0.12) * np.exp(-(((rn - groove_r) / np.float32(0.02)) ** 2))
    lip = rn - groove_r - np.float32(0.035)
    shade *= np.float32(1.0) + np.float32(0.07) * np.exp(-((lip / np.float32(0.02)) ** 2))
    shade *= np.float32(1.0) + np.float32(0.015) * _noise(rng, size, size / 4)
    cap = _pick(rng, caps) * shade[..., None]
    coverage = _soft_shape(r - np.float32(radius))
    return _lerp(background, cap, coverage), rn < 0.8


def _render_chip(size: int, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """A grey IC package with two rows of pins on a muted green circuit board."""
    boards = [_rgb(0.42, 0.55, 0.45), _rgb(0.45, 0.56, 0.52), _rgb(0.5, 0.58, 0.46)]
    bodies = [_rgb(0.4, 0.41, 0.43), _rgb(0.44, 0.43, 0.42), _rgb(0.38, 0.4, 0.44)]
    board = _pick(rng, boards, jitter=0.03)
    background = board * (np.float32(1.0) + np.float32(0.03) * _fbm(rng, size, 4, 2))[..., None]
    traces = np.zeros((size, size), np.uint8)
    thickness = max(1, round(size / 64))
    for _ in range(int(rng.integers(4, 8))):
        position = int(rng.integers(size // 10, size - size // 10))
        if rng.random() < 0.5:
            cv2.line(traces, (0, position), (size - 1, position), 255, thickness)
        else:
            cv2.line(traces, (position, 0), (position, size - 1), 255, thickness)
    background = _lerp(background, background * np.float32(1.12), traces.astype(np.float32) / np.float32(255))

    cx, cy = size * (0.5 + rng.uniform(-0.05, 0.05, 2))
    width, height = size * rng.uniform(0.5, 0.6), size * rng.uniform(0.32, 0.4)
    angle = rng.uniform(-0.1, 0.1)
    grid = _grid(size)
    u, v = _rotate(grid, cx, cy, angle)
    su, sv = _rotate(grid, cx + size * 0.02, cy + size * 0.025, angle)
    shadow_sdf = np.maximum(np.abs(su) - np.float32(width / 2), np.abs(sv) - np.float32(height / 2))
    background = _drop_shadow(background, shadow_sdf, size, 0.35)

    # pins on the long sides
    pins = int(rng.integers(5, 9))
    pitch = np.float32(width / pins)
    pin_width = np.float32(pitch * rng.uniform(0.4, 0.55))
    pin_length = np.float32(size * rng.uniform(0.06, 0.08))
    k = (u + np.float32(width / 2)) / pitch
    pin_x = (np.abs(k - np.floor(k) - np.float32(0.5)) * pitch - pin_width / 2) * np.float32(2.0)
    pin_sdf = np.maximum(pin_x, np.abs(u) - np.float32(width / 2))
    pin_sdf = np.maximum(pin_sdf, np.abs(v) - np.float32(height / 2) - pin_length)
    pin_shade = np.float32(0.9) + np.float32(0.12) * np.clip(np.abs(v) / np.float32(height / 2 + pin_length), 0, 1)
    pin_colour = _rgb(0.74, 0.74, 0.72) * pin_shade[..., None]
    image = _lerp(background, pin_colour, _soft_shape(pin_sdf))

    body_sdf = np.maximum(np.abs(u) - np.float32(width / 2), np.abs(v) - np.float32(height / 2))
    body = _pick(rng, bodies, jitter=0.03)
    bevel = np.clip(np.float32(1.0) + body_sdf / np.float32(2.0), 0.0, 1.0)  # 1 on the outer 2 px
    body_shade = np.float32(1.0) + np.float32(0.02) * _noise(rng, size, size / 4) + np.float32(0.12) * bevel
    marker_u = -width / 2 + size * 0.07
    marker_v = -height / 2 + size * 0.07
    marker = _soft_shape(np.hypot(u - np.float32(marker_u), v - np.float32(marker_v)) - np.float32(size * 0.025))
    body_shade += np.float32(0.1) * marker
    image = _lerp(image, body * body_shade[..., None], _soft_shape(body_sdf))
    return image, body_sdf < -max(2.0, size / 48)


def _render_capsule(size: int, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """A glossy two-tone pill on a light surface."""
    backgrounds = [_rgb(0.84, 0.84, 0.82), _rgb(0.86, 0.83, 0.77), _rgb(0.8, 0.83, 0.85)]
    halves = [
        (_rgb(0.86, 0.7, 0.55), _rgb(0.9, 0.88, 0.83)),
        (_rgb(0.62, 0.72, 0.86), _rgb(0.88, 0.89, 0.9)),
        (_rgb(0.76, 0.66, 0.8), _rgb(0.87, 0.85, 0.8)),
        (_rgb(0.68, 0.8, 0.68), _rgb(0.9, 0.88, 0.8)),
    ]
    grid = _grid(size)
    background = _pick(rng, backgrounds, jitter=0.02)
    background = background * (np.float32(1.0) + np.float32(0.02) * _fbm(rng, size, 3, 2))[..., None]
    cx, cy = size * (0.5 + rng.uniform(-0.04, 0.04, 2))
    length, width = size * rng.uniform(0.7, 0.8), size * rng.uniform(0.28, 0.33)
    angle = rng.uniform(-0.15, 0.15) + (np.pi if rng.random() < 0.5 else 0.0)
    radius = np.float32(width / 2)
    straight = np.float32(length / 2 - width / 2)

    def stadium(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.hypot(np.maximum(np.abs(u) - straight, 0.0), v) - radius

    su, sv = _rotate(grid, cx + size * 0.025, cy + size * 0.03, angle)
    background = _drop_shadow(background, stadium(su, sv), size, 0.25)
    u, v = _rotate(grid, cx, cy, angle)
    sdf = stadium(u, v)
    depth = np.clip((sdf + radius) / radius, 0.0, 1.0)  # 0 on the axis, 1 on the outline
    shade = np.float32(0.74) + np.float32(0.26) * np.sqrt(np.float32(1.0) - depth**2)
    seam = np.float32(length * rng.uniform(-0.1, 0.1))
    colour_a, colour_b = halves[int(rng.integers(len(halves)))]
    jitter = np.float32(1.0 + rng.normal(0.0, 0.03))
    body = np.where((u < seam)[..., None], colour_a * jitter, colour_b * jitter) * shade[..., None]
    body *= (np.float32(1.0) - np.float32(0.12) * np.exp(-(((u - seam) / np.float32(0.9)) ** 2)))[..., None]
    highlight = np.exp(-(((v + np.float32(0.45) * radius) / (np.float32(0.13) * radius)) ** 2))
    highlight *= np.clip((straight + radius * np.float32(0.5) - np.abs(u)) / radius, 0.0, 1.0)
    body = body + (np.float32(0.16) * highlight)[..., None]
    return _lerp(background, body, _soft_shape(sdf)), sdf < -max(2.0, size / 48)


_RENDERERS: dict[str, Callable[[int, np.random.Generator], tuple[_Image, np.ndarray]]] = {
    "weave": _render_weave,
    "wood": _render_wood,
    "tile": _render_tile,
    "metal_plate": _render_metal_plate,
    "leather": _render_leather,
    "bottle_cap": _render_bottle_cap,
    "chip": _render_chip,
    "capsule": _render_capsule,
}


# defects: each draws into ``image`` in place and returns the defect's coverage alpha (H, W) in [0, 1]
def _pick_centre(distance: np.ndarray, clearance: float, rng: np.random.Generator) -> tuple[float, float]:
    """A random pixel centre at least ``clearance`` px inside the region (or as deep as the region allows)."""
    needed = min(clearance, 0.8 * float(distance.max()))
    candidates = np.flatnonzero(distance >= needed)
    index = int(candidates[rng.integers(len(candidates))])
    y, x = divmod(index, distance.shape[1])
    return x + 0.5, y + 0.5


def _scratch(image: _Image, distance: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A thin polyline (optionally branching) that is near-white on dark and near-black on light surfaces."""
    size = image.shape[0]
    length = size * rng.uniform(0.45, 0.7) * scale
    cx, cy = _pick_centre(distance, length * 0.3, rng)
    heading = rng.uniform(0, 2 * np.pi)
    segments = int(rng.integers(4, 7))
    step = length / segments
    x, y = cx - np.cos(heading) * length / 2, cy - np.sin(heading) * length / 2
    points = [(x, y)]
    for _ in range(segments):
        heading += rng.uniform(-0.35, 0.35)
        x, y = x + np.cos(heading) * step, y + np.sin(heading) * step
        points.append((x, y))
    lines = [np.asarray(points)]
    if rng.random() < 0.5:  # a branch from one of the middle vertices
        bx, by = points[int(rng.integers(1, segments))]
        branch_heading = heading + rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.1)
        branch = [(bx, by)]
        for _ in range(2):
            branch_heading += rng.uniform(-0.3, 0.3)
            bx, by = bx + np.cos(branch_heading) * step * 0.8, by + np.sin(branch_heading) * step * 0.8
            branch.append((bx, by))
        lines.append(np.asarray(branch))
    canvas = np.zeros((size, size), np.uint8)
    thickness = max(2, round(size / 44))
    shift = 4  # sub-pixel vertex precision
    polylines = [np.round(line * 2**shift).astype(np.int32) for line in lines]
    cv2.polylines(canvas, polylines, isClosed=False, color=255, thickness=thickness, lineType=cv2.LINE_AA, shift=shift)
    alpha = canvas.astype(np.float32) / np.float32(255)
    covered = alpha > 0.5
    alpha *= np.float32(0.85) + np.float32(0.15) * np.tanh(_noise(rng, size, size / 12))  # uneven depth
    surface = float(_luminance(image)[covered].mean()) if covered.any() else 0.5
    bright = surface < 0.5 or (surface <= 0.62 and rng.random() < 0.5)
    level = rng.uniform(0.92, 1.0) if bright else rng.uniform(0.03, 0.1)
    colour = np.full(3, level, np.float32) + rng.normal(0.0, 0.02, 3).astype(np.float32)
    image[:] = _lerp(image, np.broadcast_to(np.clip(colour, 0, 1), image.shape), alpha)
    return alpha


def _hole(image: _Image, distance: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A ragged near-black hole with a lit, torn rim."""
    size = image.shape[0]
    radius = size * rng.uniform(0.06, 0.1) * scale
    rim = max(1.5, radius * 0.28)
    cx, cy = _pick_centre(distance, radius + rim, rng)
    u, v = _rotate(_grid(size), cx, cy, rng.uniform(0, np.pi))
    v = v / np.float32(rng.uniform(0.75, 1.0))  # slightly elliptic
    r = np.hypot(u, v)
    theta = np.arctan2(v, u)
    ragged = np.ones_like(r)
    for harmonic in (2, 3, 5):
        amplitude, phase = np.float32(rng.uniform(0.03, 0.09)), np.float32(rng.uniform(0, 2 * np.pi))
        ragged += amplitude * np.cos(np.float32(harmonic) * theta + phase)
    sdf = r - np.float32(radius) * ragged
    inside = _soft_shape(sdf)
    rim_alpha = np.clip(np.float32(1.0) - sdf / np.float32(rim), 0.0, 1.0) * (sdf > -1.0)
    light = rng.uniform(0, 2 * np.pi)
    lit = np.float32(0.5) + np.float32(0.5) * np.cos(theta - np.float32(light))
    rim_colour = np.clip(image * np.float32(1.25) + (np.float32(0.12) + np.float32(0.12) * lit)[..., None], 0, 1)
    image[:] = _lerp(image, rim_colour, np.clip(rim_alpha, 0, 1))
    depth = np.clip(r / (np.float32(radius) * ragged), 0.0, 1.0)
    interior = image * np.float32(0.06) + (np.float32(0.015) + np.float32(0.05) * depth**2)[..., None]
    image[:] = _lerp(image, interior, inside)
    return np.maximum(inside, rim_alpha * np.float32(0.75))


def _stain(image: _Image, distance: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A soft-edged blob of saturated red, orange, green or blue with a darker drying ring."""
    size = image.shape[0]
    radius = size * rng.uniform(0.075, 0.13) * scale
    cx, cy = _pick_centre(distance, radius, rng)
    u, v = _rotate(_grid(size), cx, cy, rng.uniform(0, np.pi))
    v = v / np.float32(rng.uniform(0.65, 1.0))
    wobble = _noise(rng, size, max(2.0, size / (radius * 0.9)))
    field = np.float32(1.0) - np.hypot(u, v) / (np.float32(radius) * (np.float32(1.0) + np.float32(0.22) * wobble))
    edge = np.float32(max(1.0, radius * 0.25))
    alpha = np.clip(field * np.float32(radius) / edge, 0.0, 1.0)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=max(0.8, radius * 0.08))
    alpha = np.clip((alpha - np.float32(0.05)) / np.float32(0.95), 0.0, 1.0)  # no faint halo beyond the mask
    ring = np.exp(-(((field * np.float32(radius)) / edge - np.float32(0.6)) ** 2) * np.float32(2.0))
    colour = _STAIN_COLOURS[int(rng.integers(len(_STAIN_COLOURS)))] * np.float32(rng.uniform(0.9, 1.05))
    texture = (np.float32(0.8) + np.float32(0.35) * _luminance(image))[..., None]
    stained = np.clip(colour * texture * (np.float32(1.0) - np.float32(0.25) * ring)[..., None], 0, 1)
    opacity = np.float32(rng.uniform(0.8, 0.95))
    image[:] = _lerp(image, stained, alpha * opacity)
    return alpha


def _missing(image: _Image, distance: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A cut-out polygon showing a dark backing or a checker-patterned interior, with a dark outline."""
    size = image.shape[0]
    radius = size * rng.uniform(0.085, 0.13) * scale
    cx, cy = _pick_centre(distance, radius, rng)
    corners = int(rng.integers(4, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners) + np.arange(corners) * 2 * np.pi / corners) % (2 * np.pi)
    angles = np.sort(angles)
    radii = radius * rng.uniform(0.75, 1.25, corners)
    polygon = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
    canvas = np.zeros((size, size), np.uint8)
    shift = 4
    cv2.fillPoly(canvas, [np.round(polygon * 2**shift).astype(np.int32)], 255, cv2.LINE_AA, shift)
    alpha = canvas.astype(np.float32) / np.float32(255)
    x, y = _grid(size)
    if rng.random() < 0.5:
        cell = np.float32(max(2.0, size / 32))
        checker = ((np.floor(x / cell) + np.floor(y / cell)) % 2).astype(np.float32)
        low, high = rng.uniform(0.08, 0.15), rng.uniform(0.7, 0.85)
        interior = np.broadcast_to((np.float32(low) + np.float32(high - low) * checker)[..., None], image.shape)
    else:
        level = np.float32(rng.uniform(0.06, 0.13))
        interior = np.broadcast_to(level + np.float32(0.02) * _noise(rng, size, size / 6)[..., None], image.shape)
    interior = interior + rng.normal(0.0, 0.015, 3).astype(np.float32)
    outline = np.zeros((size, size), np.uint8)
    vertices = [np.round(polygon * 2**shift).astype(np.int32)]
    cv2.polylines(outline, vertices, True, 255, max(1, round(size / 96)), cv2.LINE_AA, shift)
    outline_alpha = outline.astype(np.float32) / np.float32(255)
    image[:] = _lerp(image, np.clip(interior, 0, 1), alpha)
    image[:] = _lerp(image, np.full(image.shape, 0.04, np.float32), outline_alpha * np.float32(0.8))
    return np.maximum(alpha, outline_alpha)


_DEFECTS: dict[str, Callable[[_Image, np.ndarray, np.random.Generator, float], np.ndarray]] = {
    "hole": _hole,
    "missing": _missing,
    "scratch": _scratch,
    "stain": _stain,
}


def _inner_distance(region: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the edge of ``region`` or of the image, whichever is nearer."""
    padded = region.astype(np.uint8)
    padded[[0, -1], :] = 0
    padded[:, [0, -1]] = 0
    return cv2.distanceTransform(padded, cv2.DIST_L2, 3)


def _add_defect(image: _Image, region: np.ndarray, defect: str, rng: np.random.Generator) -> tuple[_Image, np.ndarray]:
    """Draw ``defect`` inside ``region``, retrying until it covers 1 %-8 % of the image."""
    size = image.shape[0]
    distance = _inner_distance(region)
    region_alpha = cv2.GaussianBlur(region.astype(np.float32), (3, 3), 0.7)
    scale = 1.0
    best: tuple[float, _Image, np.ndarray] | None = None
    for _ in range(40):
        candidate = image.copy()
        alpha = _DEFECTS[defect](candidate, distance, rng, scale) * region_alpha
        mask = (alpha > 0.3) & region
        fraction = float(mask.mean())
        # restore the surroundings outside the region (defects stay on the object)
        candidate = _lerp(image, candidate, np.clip(region_alpha, 0, 1))
        if _MIN_DEFECT_FRACTION <= fraction <= _MAX_DEFECT_FRACTION:
            return candidate, mask
        error = max(_MIN_DEFECT_FRACTION - fraction, fraction - _MAX_DEFECT_FRACTION)
        if best is None or error < best[0]:
            best = (error, candidate, mask)
        scale *= 1.12 if fraction < _MIN_DEFECT_FRACTION else 0.88
        scale = float(np.clip(scale, 0.4, 2.5))
    if best is None or not best[2].any():  # pragma: no cover - the retries above always find some defect
        msg = f"Could not place a '{defect}' defect on a {size}x{size} image."
        raise RuntimeError(msg)
    return best[1], best[2]


# public rendering API
def render_sample(
    category: str,
    defect: str | None,
    image_size: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one image of ``category``, optionally with a defect, and its ground-truth mask.

    The normal appearance is drawn from ``rng`` before the defect, and the final lighting / sensor noise
    comes from a generator seeded before both, so two calls with identically seeded generators that differ
    only in ``defect`` give the same underlying normal image.

    Args:
        category: One of :data:`CATEGORIES`.
        defect: One of :data:`DEFECT_TYPES`, or ``None`` for a normal (defect-free) image.
        image_size: Side of the square image in pixels (at least 32).
        rng: Random generator; the output is a deterministic function of its state.

    Returns:
        The RGB image, ``uint8`` of shape ``(image_size, image_size, 3)``, and the defect mask, ``bool``
        of shape ``(image_size, image_size)`` (all ``False`` when ``defect`` is ``None``).

    Raises:
        ValueError: If ``category`` or ``defect`` is unknown or ``image_size`` is below 32.

    Example:
        >>> import numpy as np
        >>> image, mask = render_sample("capsule", "stain", 64, np.random.default_rng(1))
        >>> bool(mask.any()), image.shape
        (True, (64, 64, 3))
    """
    _check_names("categories", [category], CATEGORIES)
    if defect is not None:
        _check_names("defect types", [defect], DEFECT_TYPES)
    size = check_count("image_size", image_size, MIN_IMAGE_SIZE)
    finish_rng = np.random.default_rng(int(rng.integers(2**63)))
    image, region = _RENDERERS[category](size, rng)
    mask = np.zeros((size, size), bool)
    if defect is not None:
        image, mask = _add_defect(image, region, defect, rng)
    # mild optics and sensor: exposure jitter, slight blur, noise
    image = image * np.float32(finish_rng.uniform(0.96, 1.04))
    image = cv2.GaussianBlur(np.ascontiguousarray(image, dtype=np.float32), (3, 3), 0.55)
    sigma = finish_rng.uniform(0.006, 0.014)
    image = image + finish_rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mask


def render_normal(category: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Render one defect-free image of ``category``.

    Args:
        category: One of :data:`CATEGORIES`.
        image_size: Side of the square image in pixels (at least 32).
        rng: Random generator; the output is a deterministic function of its state.

    Returns:
        The RGB image, ``uint8`` of shape ``(image_size, image_size, 3)``.

    Raises:
        ValueError: If ``category`` is unknown or ``image_size`` is below 32.
    """
    return render_sample(category, None, image_size, rng)[0]


# dataset writer
def _stems(count: int) -> list[str]:
    width = max(3, len(str(max(count - 1, 0))))
    return [f"{index:0{width}d}" for index in range(count)]


def _expected_files(settings: dict[str, Any]) -> list[str]:
    files = [f"train/good/{stem}.png" for stem in _stems(settings["num_train"])]
    files += [f"test/good/{stem}.png" for stem in _stems(settings["num_test_normal"])]
    for defect in settings["defect_types"]:
        for stem in _stems(settings["num_test_per_defect"]):
            files += [f"test/{defect}/{stem}.png", f"ground_truth/{defect}/{stem}_mask.png"]
    return files


def _write_category(folder: Path, category: str, settings: dict[str, Any]) -> None:
    for name in ("train", "test", "ground_truth"):
        if (folder / name).exists():
            shutil.rmtree(folder / name)
    record_generation(folder, __name__, settings, complete=False)
    seed, size = settings["seed"], settings["image_size"]
    folders: list[tuple[str, str | None, int]] = [
        ("train", None, settings["num_train"]),
        ("test", None, settings["num_test_normal"]),
    ]
    folders += [("test", defect, settings["num_test_per_defect"]) for defect in settings["defect_types"]]
    for split, defect, count in folders:
        label = defect or "good"
        # Folders exist even when empty (a count of 0), as anomalib's MVTec AD layout has them.
        (folder / split / label).mkdir(parents=True, exist_ok=True)
        if defect is not None:
            (folder / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
        for index, stem in enumerate(_stems(count)):
            image, mask = render_sample(category, defect, size, seeded_rng(seed, category, f"{split}/{label}", index))
            write_png(folder / split / label / f"{stem}.png", image)
            if defect is not None:
                write_png(folder / "ground_truth" / defect / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
    record_generation(folder, __name__, settings, complete=True)


def _check_names(kind: str, names: str | Sequence[str] | None, valid: tuple[str, ...]) -> list[str]:
    """Validate requested category / defect names; ``None`` means all. Returns them without duplicates."""
    if names is None:
        return list(valid)
    chosen = list(dict.fromkeys([names] if isinstance(names, str) else names))
    unknown = [name for name in chosen if name not in valid]
    if unknown or not chosen:
        problem = f"Unknown {kind} {unknown}" if unknown else f"{kind.capitalize()} must not be empty"
        msg = f"{problem}; valid {kind}: {', '.join(valid)}."
        raise ValueError(msg)
    return chosen


def generate_synthetic_dataset(
    root: str | Path,
    categories: Sequence[str] | None = None,
    image_size: int = 128,
    num_train: int = 16,
    num_test_normal: int = 8,
    num_test_per_defect: int = 6,
    defect_types: Sequence[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic anomaly dataset in the MVTec AD folder layout.

    For every category the layout is::

        root/<category>/train/good/000.png
        root/<category>/test/good/000.png
        root/<category>/test/<defect>/000.png
        root/<category>/ground_truth/<defect>/000_mask.png   # single channel, 0 or 255
        root/<category>/generation.json                       # the settings, to detect stale data

    which anomalib's ``MVTecAD`` datamodule reads directly (``MVTecAD(root=root, category=...)``), as does
    ``Folder`` with ``normal_dir="train/good"``, ``abnormal_dir="test/<defect>"`` and
    ``mask_dir="ground_truth/<defect>"``.

    The output is deterministic for a given ``seed``: every image has its own generator seeded from the
    seed, the category name (CRC-32), its folder and its index, so a category's images do not depend on
    which other categories are generated. A category folder that is already complete with the same
    settings is left untouched.

    Args:
        root: Dataset root directory (created if needed).
        categories: Categories to write; ``None`` writes all of :data:`CATEGORIES`.
        image_size: Side of the square images in pixels (at least 32).
        num_train: Number of normal training images per category (at least 1).
        num_test_normal: Number of normal test images per category.
        num_test_per_defect: Number of test images per defect type and category.
        defect_types: Defect types to write; ``None`` writes all of :data:`DEFECT_TYPES`.
        seed: Non-negative random seed.
        overwrite: Regenerate category folders even if they exist (with the same or other settings).

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: If a category or defect type is unknown, ``image_size`` is below 32, a count or the seed
            is invalid, or (with ``overwrite=False``) an existing category folder was generated with other
            settings or not by this function.

    Example:
        >>> root = generate_synthetic_dataset("/tmp/synthetic", categories=["tile"], num_train=4)  # doctest: +SKIP
        >>> sorted(path.name for path in (root / "tile" / "test").iterdir())  # doctest: +SKIP
        ['good', 'hole', 'missing', 'scratch', 'stain']
    """
    chosen = _check_names("categories", categories, CATEGORIES)
    requested = _check_names("defect types", defect_types, DEFECT_TYPES)
    base_settings: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "image_size": check_count("image_size", image_size, MIN_IMAGE_SIZE),
        "num_train": check_count("num_train", num_train, 1),
        "num_test_normal": check_count("num_test_normal", num_test_normal, 0),
        "num_test_per_defect": check_count("num_test_per_defect", num_test_per_defect, 0),
        "defect_types": [name for name in DEFECT_TYPES if name in requested],  # order does not change the data
        "seed": check_count("seed", seed, 0),
    }

    root = Path(root)
    if root.exists() and not root.is_dir():
        msg = f"Dataset root {root} exists and is not a directory."
        raise ValueError(msg)
    plan: list[tuple[str, dict[str, Any], str]] = []
    conflicts: list[str] = []
    for category in chosen:
        settings = {"category": category, **base_settings}
        folder = root / category
        if folder.exists() and not folder.is_dir():
            conflicts.append(f"{folder} exists and is not a directory")
            continue
        state, differences = generation_state(folder, settings, _expected_files(settings))
        if state == "different" and not overwrite:
            conflicts.append(f"{folder}: {'; '.join(differences)}")
        plan.append((category, settings, state))
    if conflicts:
        msg = (
            "Existing synthetic dataset folders differ from the requested settings (pass overwrite=True to "
            "regenerate them): " + " | ".join(conflicts)
        )
        raise ValueError(msg)

    for category, settings, state in plan:
        if state == "complete" and not overwrite:
            continue
        _write_category(root / category, category, settings)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``anomalib-vlm synthetic-data``: write the synthetic categories to a folder."""
    import argparse

    parser = argparse.ArgumentParser(prog="anomalib-vlm synthetic-data", description=main.__doc__)
    parser.add_argument("--root", type=Path, default=Path("datasets/synthetic"))
    parser.add_argument("--categories", nargs="+", choices=CATEGORIES, default=None)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    root = generate_synthetic_dataset(**vars(parser.parse_args(argv)))  # the options are named as its arguments
    print(f"synthetic categories in MVTec AD layout under {root.resolve()}")
    return 0
