# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""``anomalib-vlm fake-outliers`` and ``anomalib-vlm fake-anomalies``.

Real models (BLIP-2, CLIP ViT-L/14, Stable Diffusion, GroundingDINO) come with ``pip install
'anomalib-vlm[fodfom]'``; each loads only when its stage runs, and a missing package or weight is one clear error.
``--generator renderer`` and ``--painter renderer`` run offline with the package's small CLIP and renderers.
Every option may also come from a YAML file (``--config``; keys are the option names with ``_``), the command
line overriding it. Both commands resume: finished files (listed in ``manifest.jsonl``) are skipped.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import yaml

from anomalib_vlm.data.utils import class_folders
from anomalib_vlm.fodfom import anomalies, background, boundary, captioning, generators, text_embedding
from anomalib_vlm.fodfom.errors import default_device
from anomalib_vlm.fodfom.pipeline import make_fake_anomalies, make_fake_outliers

logger = logging.getLogger(__name__)


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse with defaults from ``--config`` (a YAML mapping of option names)."""
    parser.add_argument("--config", type=Path, help="YAML file with option values (command-line options win)")
    known, _ = parser.parse_known_args(argv)
    if known.config is not None:
        if not known.config.is_file():
            parser.error(f"--config {known.config} does not exist")
        values = yaml.safe_load(known.config.read_text(encoding="utf-8")) or {}
        if not isinstance(values, dict):
            parser.error(f"--config {known.config} must hold a mapping of option names to values")
        options = {action.dest for action in parser._actions}
        unknown = sorted(key for key in values if key.replace("-", "_") not in options)
        if unknown:
            parser.error(f"--config {known.config}: unknown option(s) {unknown}")
        parser.set_defaults(**{key.replace("-", "_"): value for key, value in values.items()})
    args = parser.parse_args(argv)
    if getattr(args, "renderer_pretrained", None) == "":
        args.renderer_pretrained = None  # random weights (the tiny test model)
    for required in ("input", "output"):
        if getattr(args, required) is None:
            parser.error(f"--{required} is required (on the command line or in --config)")
    return args


def outliers_parser() -> argparse.ArgumentParser:
    """Options of ``fake-outliers`` (defaults: the official code's)."""
    parser = argparse.ArgumentParser(prog="anomalib-vlm fake-outliers", description=main_outliers.__doc__)
    parser.add_argument("--input", type=Path, help="ID training images, <input>/<class>/*.png")
    parser.add_argument("--output", type=Path, help="output folder (resumable)")
    parser.add_argument("--captions", type=Path, help="CSV with 'image' and 'caption' columns instead of BLIP-2")
    parser.add_argument("--blip2-model", default=captioning.BLIP2_MODEL)
    parser.add_argument("--generator", choices=("stable-diffusion", "renderer", "none"), default="stable-diffusion")
    parser.add_argument("--sd-model", default=generators.STABLE_DIFFUSION_MODEL)
    parser.add_argument(
        "--clip-text-model",
        default=text_embedding.CLIP_TEXT_MODEL,
        help="CLIP text tower with projection: the embedder, and the inverse projection for SD",
    )
    parser.add_argument("--renderer-backbone", default="anomalib-vlm-small")
    parser.add_argument("--renderer-pretrained", default="anomalib-vlm-synthetic")
    parser.add_argument("--renderer-families", nargs="+", help="caption-corpus families the renderer may draw")
    parser.add_argument("--steps", type=int, default=generators.STEPS)
    parser.add_argument("--guidance-scale", type=float, default=generators.GUIDANCE_SCALE)
    parser.add_argument("--image-size", type=int, default=generators.IMAGE_SIZE)
    parser.add_argument("--detector", choices=("grounding-dino", "none"), default="grounding-dino")
    parser.add_argument("--grounding-dino-model", default=background.GROUNDING_DINO_MODEL)
    parser.add_argument("--box-threshold", type=float, default=background.BOX_THRESHOLD)
    parser.add_argument("--text-threshold", type=float, default=background.TEXT_THRESHOLD)
    parser.add_argument("--percentage", type=float, default=boundary.BOUNDARY_PERCENTAGE)
    parser.add_argument("--slide", type=float, default=boundary.SLIDE)
    parser.add_argument("--add-slide", type=float, default=boundary.ADD_SLIDE)
    parser.add_argument("--num-per-sample", type=int, default=boundary.NUM_PER_SAMPLE)
    parser.add_argument("--direction", choices=[d.value for d in boundary.PerturbationDirection], default="official")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    return parser


def main_outliers(argv: Sequence[str] | None = None) -> int:
    """Write FodFoM's fake outliers (perturbed-embedding images and blurred backgrounds) for ID class folders."""
    args = parse_arguments(outliers_parser(), argv)
    device = default_device(args.device)
    captioner = (
        captioning.CaptionTable(args.captions)
        if args.captions
        else captioning.Blip2Captioner.from_pretrained(args.blip2_model, device)
    )
    if args.generator == "stable-diffusion":
        generator = generators.StableDiffusionGenerator.from_pretrained(args.sd_model, args.clip_text_model, device)
        generator.steps, generator.guidance_scale, generator.image_size = (
            args.steps,
            args.guidance_scale,
            args.image_size,
        )
        embedder = generator.conditioning.text  # the embedding must live in SD's own text space
    elif args.generator == "renderer":
        embedder = text_embedding.OpenClipText.load(args.renderer_backbone, args.renderer_pretrained)
        classes = set(class_folders(args.input))
        generator = generators.DescriptionRenderer(
            embedder, excluded=lambda content: content.family in classes, families=args.renderer_families
        )
    else:
        generator, embedder = None, text_embedding.OpenClipText.load(args.renderer_backbone, args.renderer_pretrained)
    detector = None
    if args.detector == "grounding-dino":
        detector = background.GroundingDinoDetector.from_pretrained(args.grounding_dino_model, device)
        detector.box_threshold, detector.text_threshold = args.box_threshold, args.text_threshold
    output = make_fake_outliers(
        args.input,
        args.output,
        captioner,
        embedder,
        generator,
        detector,
        percentage=args.percentage,
        slide=args.slide,
        add_slide=args.add_slide,
        num_per_sample=args.num_per_sample,
        direction=args.direction,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    print(f"Fake outliers in {output} (manifest: {output / 'manifest.jsonl'})")
    return 0


def anomalies_parser() -> argparse.ArgumentParser:
    """Options of ``fake-anomalies``."""
    parser = argparse.ArgumentParser(prog="anomalib-vlm fake-anomalies", description=main_anomalies.__doc__)
    parser.add_argument(
        "--input", type=Path, help="normal images: <input>/<category>/train/good/*.png or <input>/*.png"
    )
    parser.add_argument("--output", type=Path, help="output dataset root (MVTec AD layout, resumable)")
    parser.add_argument("--painter", choices=("stable-diffusion", "renderer"), default="stable-diffusion")
    parser.add_argument("--inpainting-model", default=anomalies.INPAINTING_MODEL)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--defects", nargs="+", help="defect kinds (default: all the painter knows)")
    parser.add_argument("--per-image", type=int, default=1)
    parser.add_argument("--categories", nargs="+")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    return parser


def main_anomalies(argv: Sequence[str] | None = None) -> int:
    """Paint defects into normal images and write them with masks in anomalib's MVTec AD layout."""
    args = parse_arguments(anomalies_parser(), argv)
    if args.painter == "stable-diffusion":
        painter = anomalies.StableDiffusionInpainter.from_pretrained(args.inpainting_model, default_device(args.device))
        painter.steps = args.steps
    else:
        painter = anomalies.RenderedDefectPainter()
    output = make_fake_anomalies(
        args.input, args.output, painter, args.defects, args.per_image, args.categories, seed=args.seed
    )
    print(f"Fake anomalies in {output}: train with e.g. AuxiliaryData(source='anomalib.data.MVTecAD', root='{output}')")
    return 0
