# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Feasibility study: can the tiny CLIP learn what captions mean, on synthetic images, in minutes on a CPU?

The tiny random CLIP that the tests use has no semantics: its text prototypes and its zero-shot "scene" anchor
mean nothing, which is why SUPREME's BPG and GRMP-IQA's gradient regularisation cannot show their claims on it
(see the Supreme and MetaIqa READMEs). A tiny CLIP pre-trained contrastively on synthetic image-caption pairs
would carry a little meaning. This script measures whether that is cheap enough to do inside the test suite.

Images are procedural textures, one of 6 colours times 5 patterns, with random frequency, angle, phase,
brightness and noise; the caption is "a photo of a <colour> <pattern> pattern.". Six colour-pattern
combinations are held out of training. Every ``--eval-every`` steps it prints zero-shot accuracy over all 30
captions on new images of the seen and of the held-out combinations (chance: 1/30).

Measured on the 2-core development CPU (2026-11-23, 32 px, batch 64, AdamW 1e-3, 240 s, about 600 steps, two
runs): seen combinations 0.85 and 0.98 at the end, from 0.08 untrained; held-out combinations well above chance
but unstable, between 0.05 and 0.42 from one evaluation to the next (0.25 and 0.27 at the end). So caption
semantics of the trained vocabulary are cheap; composing them into unseen combinations is not yet reliable.

Usage::

    python tools/experiments/tiny_clip_caption_pretraining.py --seconds 240
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from anomalib_vlm.clip import load_clip_model

COLOURS = {
    "red": (1.0, 0.15, 0.15),
    "green": (0.15, 0.9, 0.2),
    "blue": (0.2, 0.3, 1.0),
    "yellow": (1.0, 0.9, 0.1),
    "purple": (0.6, 0.2, 0.9),
    "orange": (1.0, 0.55, 0.1),
}
PATTERNS = ("stripes", "dots", "checkerboard", "waves", "plain")
COMBINATIONS = list(itertools.product(COLOURS, PATTERNS))


def caption(colour: str, pattern: str) -> str:
    """The caption of one colour-pattern combination."""
    return f"a photo of a {colour} {pattern} pattern."


def texture(colour: str, pattern: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``[3, size, size]`` image in ``[0, 1]`` of ``pattern`` in ``colour``, randomly varied."""
    y, x = np.mgrid[0:size, 0:size] / size
    frequency, phase, angle = rng.uniform(3, 6), rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
    along = np.cos(angle) * x + np.sin(angle) * y
    across = np.sin(angle) * x - np.cos(angle) * y
    if pattern == "stripes":
        mask = (np.sin(2 * np.pi * frequency * along + phase) > 0).astype(float)
    elif pattern == "dots":
        mask = (np.sin(2 * np.pi * frequency * x + phase) * np.sin(2 * np.pi * frequency * y + phase) > 0.5).astype(
            float
        )
    elif pattern == "checkerboard":
        mask = ((np.floor(2 * frequency * x + phase) + np.floor(2 * frequency * y + phase)) % 2).astype(float)
    elif pattern == "waves":
        mask = 0.5 + 0.5 * np.sin(2 * np.pi * frequency * (along + 0.1 * np.sin(6 * np.pi * across)))
    else:
        mask = np.full_like(x, 0.8)
    foreground = np.array(COLOURS[colour]) * rng.uniform(0.7, 1.0)
    background = rng.uniform(0.0, 0.25)
    image = background + mask[..., None] * (foreground - background) + rng.normal(0, 0.04, (size, size, 3))
    return np.clip(image, 0, 1).transpose(2, 0, 1)


class CaptionedTextures:
    """Batches of CLIP-normalised textures and their caption tokens."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.tokenizer = open_clip.get_tokenizer("ViT-B-16")
        self.mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(3, 1, 1)

    def images(self, combinations: list[tuple[str, str]], rng: np.random.Generator) -> torch.Tensor:
        """One normalised image per combination."""
        pixels = np.stack([texture(colour, pattern, self.size, rng) for colour, pattern in combinations])
        return (torch.tensor(pixels, dtype=torch.float32) - self.mean) / self.std

    def tokens(self, combinations: list[tuple[str, str]]) -> torch.Tensor:
        """Caption tokens, one row per combination."""
        return self.tokenizer([caption(colour, pattern) for colour, pattern in combinations])


def contrastive_loss(
    model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor, same: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric cross-entropy, with soft targets because a batch repeats captions."""
    image_features = F.normalize(model.encode_image(images), dim=-1)
    text_features = F.normalize(model.encode_text(tokens), dim=-1)
    logits = model.logit_scale.exp() * image_features @ text_features.T
    targets = same / same.sum(1, keepdim=True)
    image_to_text = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    text_to_image = -(targets * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (image_to_text + text_to_image) / 2


@torch.no_grad()
def zero_shot_accuracy(model: torch.nn.Module, data: CaptionedTextures, groups: dict[str, list]) -> dict[str, float]:
    """Accuracy of picking the right caption among all 30, on 10 new images per combination of each group."""
    model.eval()
    text_features = F.normalize(model.encode_text(data.tokens(COMBINATIONS)), dim=-1)
    accuracy = {}
    for name, group in groups.items():
        combinations = [combination for combination in group for _ in range(10)]
        image_features = F.normalize(model.encode_image(data.images(combinations, np.random.default_rng(123))), dim=-1)
        predicted = (image_features @ text_features.T).argmax(1)
        target = torch.tensor([COMBINATIONS.index(combination) for combination in combinations])
        accuracy[name] = round(float((predicted == target).float().mean()), 3)
    model.train()
    return accuracy


def split_combinations(rng: np.random.Generator) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The seen combinations and the six held out of pre-training, drawn with ``rng``."""
    held_out = [COMBINATIONS[index] for index in rng.choice(len(COMBINATIONS), 6, replace=False)]
    return [combination for combination in COMBINATIONS if combination not in held_out], held_out


def trainable_tiny_clip(image_size: int) -> torch.nn.Module:
    """The seeded random tiny CLIP with every weight trainable, in train mode."""
    model = load_clip_model("anomalib-vlm-tiny", None, image_size=image_size)
    model.train()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def pretrain(
    model: torch.nn.Module,
    data: CaptionedTextures,
    seen: list[tuple[str, str]],
    rng: np.random.Generator,
    seconds: float,
    lr: float = 1e-3,
    batch_size: int = 64,
    on_step: Callable[[int, float], None] | None = None,
) -> int:
    """Contrastive AdamW steps on batches of the seen combinations for ``seconds``; returns the step count.

    ``on_step(step, loss)`` is called after every step (e.g. to evaluate now and then).
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    start, step = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        combinations = [seen[index] for index in rng.choice(len(seen), batch_size)]
        same = torch.tensor([[a == b for b in combinations] for a in combinations], dtype=torch.float32)
        loss = contrastive_loss(model, data.images(combinations, rng), data.tokens(combinations), same)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if on_step is not None:
            on_step(step, loss.item())
    return step


def main() -> None:
    """Pre-train for ``--seconds`` and print the accuracies as it goes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    seen, held_out = split_combinations(rng)
    groups = {"seen": seen, "held-out": held_out}
    data = CaptionedTextures(args.image_size)
    model = trainable_tiny_clip(args.image_size)
    print(f"chance {1 / len(COMBINATIONS):.3f}; untrained {zero_shot_accuracy(model, data, groups)}", flush=True)
    start = time.monotonic()

    def report(step: int, loss: float) -> None:
        if step % args.eval_every == 0:
            elapsed = time.monotonic() - start
            print(f"step {step} {elapsed:.0f} s loss {loss:.3f} {zero_shot_accuracy(model, data, groups)}", flush=True)

    steps = pretrain(model, data, seen, rng, args.seconds, args.lr, args.batch_size, on_step=report)
    print(f"final after {steps} steps: {zero_shot_accuracy(model, data, groups)}")


if __name__ == "__main__":
    main()
