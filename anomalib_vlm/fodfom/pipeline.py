# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The two FodFoM pipelines, stage by stage, writing resumable output with a manifest.

:func:`make_fake_outliers` (FodFoM's two fake types) reads ID class folders ``<input>/<class>/*.png`` and writes::

    <output>/captions.csv                     image, class, caption (stage 1, reused on resume)
    <output>/outliers/<class>/<name>.png      type 1: images of perturbed boundary embeddings
    <output>/background/<class>/<name>.png    type 2: the ID object blurred away
    <output>/manifest.jsonl                   one line per written file: what made it

:func:`make_fake_anomalies` reads normal images ``<input>/<category>/train/good/*.png`` (anomalib's MVTec AD
layout) or ``<input>/*.png`` and writes anomalib's MVTec AD layout (``train/good``, ``test/good``,
``test/<defect>``, ``ground_truth/<defect>/*_mask.png``) plus ``manifest.jsonl``.

Every file is a function of the run's seed and its own name, and is written under a temporary name then renamed,
so an interrupted run resumes where it stopped: files listed in the manifest and present on disk are skipped.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from anomalib_vlm.data.utils import class_folders, list_images, readable_name
from anomalib_vlm.fodfom.anomalies import DefectPainter, defect_kinds, defect_region
from anomalib_vlm.fodfom.background import ObjectDetector, blur_objects
from anomalib_vlm.fodfom.boundary import (
    ADD_SLIDE,
    BOUNDARY_PERCENTAGE,
    NUM_PER_SAMPLE,
    SLIDE,
    PerturbationDirection,
    perturb,
    select_boundary,
)
from anomalib_vlm.fodfom.captioning import Captioner, caption_text
from anomalib_vlm.fodfom.generators import OutlierGenerator
from anomalib_vlm.fodfom.text_embedding import TextEmbedder

logger = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"


def file_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed that depends only on the run's seed and a file's identity."""
    return zlib.crc32(json.dumps([seed, *map(str, parts)]).encode()) & 0x7FFFFFFF


def read_rgb(path: Path) -> np.ndarray:
    """``uint8 (H, W, 3)`` RGB pixels of an image file; a clear error naming an unreadable file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        msg = f"Cannot read image {path}"
        raise ValueError(msg)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_rgb(path: Path, image: np.ndarray) -> None:
    """Write atomically (temporary name, then rename), so a killed run leaves no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    array = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(temporary), array):
        msg = f"Cannot write image {path}"
        raise OSError(msg)
    os.replace(temporary, path)


class Manifest:
    """``manifest.jsonl``: one JSON record per finished file (``file`` relative to the output root)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / MANIFEST
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.records[record["file"]] = record

    def done(self, file: str) -> bool:
        """Whether ``file`` was finished before (listed and present)."""
        return file in self.records and (self.root / file).is_file()

    def add(self, record: dict[str, Any]) -> None:
        """Append a finished file's record."""
        self.records[record["file"]] = record
        self.root.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def _class_folders(root: Path) -> list[Path]:
    folders = [root / name for name in class_folders(root)]
    if not folders:
        msg = f"No ID class folders in {root}: expected <input>/<class>/*.png"
        raise FileNotFoundError(msg)
    return folders


def _captions(
    root: Path, folders: list[Path], captioner: Captioner, output: Path, batch_size: int
) -> dict[str, list[tuple[Path, str]]]:
    """Stage 1 for every image, cached in ``captions.csv`` (only missing captions are computed)."""
    table = output / "captions.csv"
    known: dict[str, str] = {}
    if table.is_file():
        with table.open(newline="", encoding="utf-8") as handle:
            known = {row["image"]: row["caption"] for row in csv.DictReader(handle)}
    result: dict[str, list[tuple[Path, str]]] = {}
    todo = [
        (folder.name, path)
        for folder in folders
        for path in list_images(folder)
        if str(path.relative_to(root)) not in known
    ]
    for start in tqdm(range(0, len(todo), batch_size), desc="captions", disable=not todo):
        chunk = todo[start : start + batch_size]
        captions = captioner([read_rgb(path) for _, path in chunk], [path for _, path in chunk])
        for (_, path), caption in zip(chunk, captions, strict=True):
            known[str(path.relative_to(root))] = caption
    output.mkdir(parents=True, exist_ok=True)
    with table.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "class", "caption"])
        for folder in folders:
            for path in list_images(folder):
                writer.writerow([str(path.relative_to(root)), folder.name, known[str(path.relative_to(root))]])
                result.setdefault(folder.name, []).append((path, known[str(path.relative_to(root))]))
    return result


def make_fake_outliers(
    input_root: str | Path,
    output_root: str | Path,
    captioner: Captioner,
    embedder: TextEmbedder,
    generator: OutlierGenerator | None,
    detector: ObjectDetector | None = None,
    class_names: dict[str, str] | None = None,
    percentage: float = BOUNDARY_PERCENTAGE,
    slide: float = SLIDE,
    add_slide: float = ADD_SLIDE,
    num_per_sample: int = NUM_PER_SAMPLE,
    direction: PerturbationDirection | str = PerturbationDirection.OFFICIAL,
    seed: int = 42,
    batch_size: int = 4,
) -> Path:
    """Write FodFoM's fake outliers for the ID class folders under ``input_root``.

    Args:
        input_root: ``<input>/<class>/*`` ID training images.
        output_root: where the fakes go (layout in the module docstring).
        captioner: stage 1 (BLIP-2 or a caption table).
        embedder: stage 2 (the generator's own text encoder for Stable Diffusion).
        generator: stage 5 (with the conditioning map of stage 4 inside); ``None`` skips type 1.
        detector: stage 6; ``None`` skips the background fakes.
        class_names: folder name to class name in the texts; defaults to the folder name with ``_`` as spaces.
        percentage: stage 3, boundary share in percent (see :mod:`~anomalib_vlm.fodfom.boundary`).
        slide: stage 3, first perturbation step.
        add_slide: stage 3, increment per further step.
        num_per_sample: stage 3, fakes per boundary embedding.
        direction: stage 3, ``official`` (scalar offset) or ``outward``.
        seed: run seed (each file's seed derives from it and the file's identity).
        batch_size: images per captioning / generation call.

    Returns:
        Path: ``output_root``.
    """
    input_root, output_root = Path(input_root), Path(output_root)
    folders = _class_folders(input_root)
    manifest = Manifest(output_root)
    names = {folder.name: (class_names or {}).get(folder.name, readable_name(folder.name)) for folder in folders}
    per_class = _captions(input_root, folders, captioner, output_root, batch_size)
    settings = {
        "percentage": percentage,
        "slide": slide,
        "add_slide": add_slide,
        "num_per_sample": num_per_sample,
        "direction": PerturbationDirection(direction).value,
        "seed": seed,
    }
    if generator is not None:
        for folder in tqdm(folders, desc="fake outliers (classes)"):
            items = per_class[folder.name]
            texts = [caption_text(names[folder.name], caption) for _, caption in items]
            embeddings = embedder.embed(texts)
            edges, mean = select_boundary(embeddings, percentage)
            fakes = perturb(embeddings[edges], mean, slide, add_slide, num_per_sample, direction)
            jobs = []
            for row, edge in enumerate(edges.tolist()):
                for step in range(num_per_sample):
                    name = f"outliers/{folder.name}/{items[edge][0].stem}_{step}.png"
                    if not manifest.done(name):
                        jobs.append((name, row * num_per_sample + step, edge, step))
            for start in tqdm(range(0, len(jobs), batch_size), desc=f"  {folder.name}", leave=False, disable=not jobs):
                chunk = jobs[start : start + batch_size]
                seeds = [file_seed(seed, name) for name, *_ in chunk]
                images = generator.generate(fakes[[index for _, index, _, _ in chunk]], seeds)
                for (name, _, edge, step), image, image_seed in zip(chunk, images, seeds, strict=True):
                    write_rgb(output_root / name, image)
                    manifest.add(
                        {
                            "file": name,
                            "kind": "outlier",
                            "class": folder.name,
                            "label": "outlier",
                            "source_image": str(items[edge][0].relative_to(input_root)),
                            "text": texts[edge],
                            "step": step,
                            "seed": image_seed,
                            "generator": type(generator).__name__,
                            "embedder": type(embedder).__name__,
                            **settings,
                        }
                    )
    if detector is not None:
        for folder in tqdm(folders, desc="background fakes (classes)"):
            for path, _ in tqdm(per_class[folder.name], desc=f"  {folder.name}", leave=False):
                name = f"background/{folder.name}/{path.stem}.png"
                if name in manifest.records:  # written, or dropped by the box rule before
                    continue
                boxes = detector.detect(read_rgb(path), names[folder.name])
                blurred = blur_objects(read_rgb(path), boxes)
                record = {
                    "file": name,
                    "kind": "background",
                    "class": folder.name,
                    "label": "outlier",
                    "source_image": str(path.relative_to(input_root)),
                    "boxes": np.round(boxes, 2).tolist(),
                    "detector": type(detector).__name__,
                    "dropped": blurred is None,
                }
                if blurred is not None:
                    write_rgb(output_root / name, blurred)
                manifest.add(record)
    return output_root


def _normal_sources(input_root: Path, categories: Sequence[str] | None) -> dict[str, list[Path]]:
    """Normal images per category: MVTec AD layout (``<category>/train/good``) or one flat folder."""
    if list_images(input_root) if input_root.is_dir() else False:
        return {input_root.name: list_images(input_root)}
    found = (
        {
            folder.name: list_images(folder / "train" / "good")
            for folder in sorted(input_root.iterdir())
            if (folder / "train" / "good").is_dir()
        }
        if input_root.is_dir()
        else {}
    )
    if categories is not None:
        missing = [name for name in categories if name not in found]
        if missing:
            msg = f"Categories {missing} have no folder {input_root}/<category>/train/good"
            raise FileNotFoundError(msg)
        found = {name: found[name] for name in categories}
    if not any(found.values()):
        msg = f"No normal images in {input_root}: expected <input>/<category>/train/good/*.png or <input>/*.png"
        raise FileNotFoundError(msg)
    return found


def make_fake_anomalies(
    input_root: str | Path,
    output_root: str | Path,
    painter: DefectPainter,
    defects: Sequence[str] | None = None,
    per_image: int = 1,
    categories: Sequence[str] | None = None,
    object_names: dict[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Paint defects into normal images and write anomalib's MVTec AD layout with masks.

    Args:
        input_root: normal images (``<input>/<category>/train/good`` or a flat folder).
        output_root: the new dataset root.
        painter: the defect painter (SD in-painting or the offline renderer).
        defects: defect kinds (cycled over the images); ``None``: all the painter knows.
        per_image: fake anomalies per normal image. Defaults to ``1``.
        categories: categories to use; ``None``: all found.
        object_names: category to the object word of the in-painting prompt.
        seed: run seed.

    Returns:
        Path: ``output_root``.
    """
    input_root, output_root = Path(input_root), Path(output_root)
    sources = _normal_sources(input_root, categories)
    kinds = defect_kinds(painter, defects)
    manifest = Manifest(output_root)
    for category, paths in tqdm(sources.items(), desc="fake anomalies (categories)"):
        for index, path in enumerate(tqdm(paths, desc=f"  {category}", leave=False)):
            for split in ("train", "test"):
                name = f"{category}/{split}/good/{path.stem}.png"
                if not manifest.done(name):
                    write_rgb(output_root / name, read_rgb(path))
                    manifest.add({"file": name, "kind": "normal", "source_image": str(path)})
            for copy in range(per_image):
                defect = kinds[(index * per_image + copy) % len(kinds)]
                stem = f"{path.stem}_{copy}"
                name = f"{category}/test/{defect}/{stem}.png"
                if manifest.done(name):
                    continue
                image_seed = file_seed(seed, name)
                rng = np.random.default_rng(image_seed)
                image = read_rgb(path)
                region = (
                    defect_region(image.shape[0], rng)
                    if image.shape[0] == image.shape[1]
                    else cv2.resize(
                        defect_region(max(image.shape[:2]), rng).astype(np.uint8), image.shape[1::-1]
                    ).astype(bool)
                )
                painted, mask = painter.paint(image, region, defect, (object_names or {}).get(category, category), rng)
                mask_name = f"{category}/ground_truth/{defect}/{stem}_mask.png"
                write_rgb(output_root / mask_name, mask.astype(np.uint8) * 255)
                write_rgb(output_root / name, painted)
                manifest.add(
                    {
                        "file": name,
                        "kind": "anomaly",
                        "defect": defect,
                        "mask": mask_name,
                        "source_image": str(path),
                        "seed": image_seed,
                        "painter": type(painter).__name__,
                        "mask_share": round(float(mask.mean()), 4),
                    }
                )
    return output_root


__all__ = ["Manifest", "make_fake_anomalies", "make_fake_outliers"]
