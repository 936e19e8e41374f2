# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Measure what the small CLIP learned, on data it never trained on (the numbers in anomalib_vlm/clip/README.md).

* zero-shot classification with hand-written prompts (colour, defect kind, degradation kind, family) on
  held-out generator families and on held-out colour/defect-family combinations of
  :class:`~anomalib_vlm.data.generators.corpus.CaptionCorpus`;
* image-text retrieval (R@1 both ways, a caption with the same content counts) among held-out samples;
* hand-written-prompt zero-shot anomaly detection, before any prompt training: image AUROC from the global feature
  and pixel AUROC from DPAM patch features, on the project's synthetic ``tile`` and ``capsule`` categories
  (families held out of pre-training) and, for reference, on two trained ones.

Each number is printed for the shipped weights and for the same architecture with random weights (the baseline).

Usage::

    python tools/evaluate_small_clip.py                          # the shipped weights
    python tools/evaluate_small_clip.py --weights run.safetensors
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from anomalib_vlm.clip import CLIP_MEAN, CLIP_STD, DualPathVisionEncoder, load_clip_model
from anomalib_vlm.clip.backbone import SMALL_MODEL_NAME, SMALL_PRETRAINED_TAG, open_clip_module
from anomalib_vlm.data import DEFECT_TYPES, render_sample
from anomalib_vlm.data.generators.corpus import COLOURS, DEFECTS, DEGRADATIONS, FAMILIES, CaptionCorpus, CorpusSample

INTACT_PROMPTS = ("a photo of a flawless object.", "a photo of an intact object.", "a photo of a perfect object.")
DAMAGED_PROMPTS = ("a photo of a damaged object.", "a photo of a defective object.", "a photo of a broken object.")


def _images(model: torch.nn.Module, images: Sequence[np.ndarray]) -> torch.Tensor:
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    pixels = (pixels - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    with torch.no_grad():
        return F.normalize(torch.cat([model.encode_image(chunk) for chunk in pixels.split(128)]), dim=-1)


def _texts(model: torch.nn.Module, texts: Sequence[str]) -> torch.Tensor:
    tokens = open_clip_module().get_tokenizer(SMALL_MODEL_NAME)(list(texts))
    with torch.no_grad():
        return F.normalize(model.encode_text(tokens), dim=-1)


def _classes(model: torch.nn.Module, templates: Sequence[str], words: Sequence[str]) -> torch.Tensor:
    """One prompt-ensemble feature per class word."""
    features = torch.stack([_texts(model, [template.format(word) for word in words]) for template in templates])
    return F.normalize(features.mean(0), dim=-1)


def _accuracy(
    model: torch.nn.Module,
    samples: list[CorpusSample],
    attribute: Callable[[CorpusSample], str | None],
    classes: dict[str, str],
    templates: Sequence[str],
) -> tuple[float, int]:
    chosen = [s for s in samples if attribute(s) is not None]
    if not chosen:
        return float("nan"), 0
    names = list(classes)
    predicted = (
        _images(model, [s.image for s in chosen]) @ _classes(model, templates, list(classes.values())).T
    ).argmax(1)
    truth = torch.tensor([names.index(attribute(s)) for s in chosen])
    return round(float((predicted == truth).float().mean()), 3), len(chosen)


def zero_shot(model: torch.nn.Module, corpus: CaptionCorpus, split: str, count: int) -> dict[str, object]:
    """Hand-written-prompt zero-shot classification of colour, defect, degradation (and family) on ``split``."""
    samples = [corpus.sample(100_000 + i, split) for i in range(count)]
    results: dict[str, object] = {}
    results["colour"] = _accuracy(
        model, samples, lambda s: s.colour, {c: c for c in COLOURS}, ("a photo of a {} object.", "a {} surface.")
    )
    results["defect kind"] = _accuracy(
        model, samples, lambda s: s.defect, {d: w[0] for d, w in DEFECTS.items()},
        ("a photo of an object with a {}.", "a picture of a damaged object that has a {}."),
    )  # fmt: skip
    results["degradation kind"] = _accuracy(
        model,
        samples,
        lambda s: s.degradation,
        {d: w[0] for d, w in DEGRADATIONS.items()},
        ("a {} photo of an object.",),
    )
    images = _images(model, [s.image for s in samples])
    states = torch.stack([_texts(model, INTACT_PROMPTS).mean(0), _texts(model, DAMAGED_PROMPTS).mean(0)])
    scores = (100 * images @ F.normalize(states, dim=-1).T).softmax(1)[:, 1]
    labels = [s.defect is not None for s in samples]
    results["defective vs intact AUROC"] = (round(float(roc_auc_score(labels, scores)), 3), len(samples))
    if split == "heldout_combination":
        from anomalib_vlm.data.generators.corpus import _MATERIAL_WORDS, _SHAPE_WORDS

        trained = [f for f in corpus.families("train") if FAMILIES[f] in {"material", "shape"}]
        words = {f: (_MATERIAL_WORDS.get(f) or _SHAPE_WORDS[f])[0] for f in trained}
        material = {f: w for f, w in words.items() if FAMILIES[f] == "material"}
        shape = {f: w for f, w in words.items() if FAMILIES[f] == "shape"}
        results["material family"] = _accuracy(
            model,
            samples,
            lambda s: s.family if s.family in material else None,
            material,
            ("a photo of a {} texture.",),
        )
        results["shape family"] = _accuracy(
            model, samples, lambda s: s.family if s.family in shape else None, shape, ("a photo of a {}.",)
        )
    return results


def retrieval(model: torch.nn.Module, corpus: CaptionCorpus, split: str, count: int) -> dict[str, float]:
    """R@1 image-to-text and text-to-image among ``count`` samples of ``split`` (same content counts)."""
    samples = [corpus.sample(200_000 + i, split) for i in range(count)]
    similarity = _images(model, [s.image for s in samples]) @ _texts(model, [s.caption for s in samples]).T
    keys = [s.key for s in samples]
    image_to_text = np.mean([keys[j] == keys[i] for i, j in enumerate(similarity.argmax(1).tolist())])
    text_to_image = np.mean([keys[j] == keys[i] for i, j in enumerate(similarity.argmax(0).tolist())])
    return {"image->text R@1": round(float(image_to_text), 3), "text->image R@1": round(float(text_to_image), 3)}


def anomaly_zero_shot(model: torch.nn.Module, category: str, count: int, size: int) -> dict[str, float]:
    """Hand-written prompts, no training: image AUROC (global feature) and pixel AUROC (DPAM patch features)."""
    rng = np.random.default_rng(7)
    images, masks, labels = [], [], []
    for index in range(count):
        defect = None if index % 2 == 0 else DEFECT_TYPES[(index // 2) % len(DEFECT_TYPES)]
        image, mask = render_sample(category, defect, size, rng)
        images.append(image)
        masks.append(mask)
        labels.append(defect is not None)
    states = F.normalize(
        torch.stack([_texts(model, INTACT_PROMPTS).mean(0), _texts(model, DAMAGED_PROMPTS).mean(0)]), dim=-1
    )
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    pixels = (pixels - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    depth = len(model.visual.transformer.resblocks)
    encoder = DualPathVisionEncoder(
        model.visual, image_size=size, feature_layers=(depth,), dpam_layers=round(depth * 19 / 24)
    )
    with torch.no_grad():
        features = encoder(pixels)
    image_scores = (100 * F.normalize(features.global_feature, dim=-1) @ states.T).softmax(1)[:, 1]
    patches = F.normalize(features.patch_features[0], dim=-1)
    patch_scores = (patches @ states.T / 0.07).softmax(-1)[..., 1].reshape(len(images), 1, *features.grid_size)
    maps = F.interpolate(patch_scores, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    truth = np.stack(masks).reshape(-1)
    return {
        "image AUROC": round(float(roc_auc_score(labels, image_scores)), 3),
        "image AUROC (global + map max)": round(
            float(roc_auc_score(labels, image_scores + maps.flatten(1).max(1).values)), 3
        ),
        "pixel AUROC": round(float(roc_auc_score(truth, maps.reshape(-1))), 3),
    }


OOD_ID_FAMILIES = {"woven": "woven texture", "wooden": "wood texture", "brushed": "brushed metal texture",
                   "leather": "leather texture", "bottle_cap": "bottle cap", "chip": "microchip"}  # fmt: skip


def mcm_fpr95(model: torch.nn.Module, corpus: CaptionCorpus, count: int) -> dict[str, float]:
    """MCM (max softmax over in-distribution class prompts) FPR at 95 % TPR; OOD = the held-out families."""
    rng = np.random.default_rng(11)
    in_distribution = [corpus.render(family, None, None, None, rng) for family in list(OOD_ID_FAMILIES) * (count // 12)]
    ood = [corpus.sample(300_000 + i, "heldout_family") for i in range(count // 2)]
    texts = _texts(model, [f"a photo of a {name}." for name in OOD_ID_FAMILIES.values()])
    scores_id = (_images(model, [s.image for s in in_distribution]) @ texts.T / 0.01).softmax(1).max(1).values
    scores_ood = (_images(model, [s.image for s in ood]) @ texts.T / 0.01).softmax(1).max(1).values
    predicted = (_images(model, [s.image for s in in_distribution]) @ texts.T).argmax(1)
    target = torch.tensor([list(OOD_ID_FAMILIES).index(s.family) for s in in_distribution])
    threshold = torch.quantile(scores_id, 0.05)
    return {
        "FPR95": round(float((scores_ood >= threshold).float().mean()), 3),
        "AUROC": round(
            float(roc_auc_score([1] * len(scores_id) + [0] * len(scores_ood), torch.cat([scores_id, scores_ood]))), 3
        ),
        "ID accuracy": round(float((predicted == target).float().mean()), 3),
    }


def iqa_zero_shot(model: torch.nn.Module, corpus: CaptionCorpus) -> dict[str, float]:
    """SRCC between a hand-written good/bad-photo prompt score and the distortion level, on held-out photos."""
    from scipy.stats import spearmanr

    from anomalib_vlm.data import distort

    texts = _texts(model, ["a good, sharp, clean photo.", "a bad, degraded, low-quality photo."])
    results = {}
    photos = [f for f in corpus.families("heldout_family") if f.startswith("photo:")]
    for name, distortions in (
        ("trained distortions", ["gaussian_blur", "gaussian_noise", "jpeg", "pixelate", "contrast_decrease"]),
        ("held-out distortions", ["motion_blur", "impulse_noise", "speckle_noise"]),
    ):
        images, levels = [], []
        for family in photos:
            for crop in range(4):
                clean = corpus.render(family, None, None, None, np.random.default_rng(crop)).image
                for distortion in distortions:
                    for level in range(6):
                        images.append(distort(clean, distortion, level, seed=crop))
                        levels.append(level)
        quality = (100 * _images(model, images) @ texts.T).softmax(1)[:, 0]
        results[f"SRCC, {name}"] = round(float(spearmanr(quality, -np.asarray(levels)).statistic), 3)
    return results


def evaluate(model: torch.nn.Module, count: int) -> dict[str, object]:
    """Every measurement on one model."""
    corpus = CaptionCorpus(image_size=model.visual.image_size[0], seed=0)
    size = model.visual.image_size[0]
    return {
        "zero-shot, held-out families": zero_shot(model, corpus, "heldout_family", count),
        "zero-shot, held-out combinations": zero_shot(model, corpus, "heldout_combination", count),
        "retrieval, held-out families": retrieval(model, corpus, "heldout_family", count // 2),
        "retrieval, held-out combinations": retrieval(model, corpus, "heldout_combination", count // 2),
        **{
            f"anomaly zero-shot, {category} ({'held out' if category in {'tile', 'capsule'} else 'trained'})":
                anomaly_zero_shot(model, category, count // 2, size)
            for category in ("tile", "capsule", "wood", "bottle_cap")
        },
        "MCM OOD (ID: six trained families, OOD: held-out families)": mcm_fpr95(model, corpus, count),
        "zero-shot IQA on held-out photos": iqa_zero_shot(model, corpus),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    """Print the measurements as JSON, for the trained weights and for random ones."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=SMALL_PRETRAINED_TAG, help="pretrained tag or .safetensors file")
    parser.add_argument("--count", type=int, default=400, help="samples per measurement")
    parser.add_argument("--no-baseline", action="store_true", help="skip the random-weights baseline")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.weights.endswith(".safetensors"):
        from pathlib import Path

        from anomalib_vlm.clip.backbone import _load_package_weights

        model = _load_package_weights(open_clip_module(), SMALL_MODEL_NAME, Path(args.weights), None).eval()
    else:
        model = load_clip_model(SMALL_MODEL_NAME, args.weights)
    results = {"trained": evaluate(model, args.count)}
    if not args.no_baseline:
        results["random weights"] = evaluate(load_clip_model(SMALL_MODEL_NAME, None), args.count)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
