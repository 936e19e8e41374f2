# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""TRUST on the small CLIP and the synthetic domain shift: source-only vs TRUST and its ablations, several seeds.

For every seed and caption-noise level it writes the domain-shift dataset, trains the caption classifier once
(:meth:`Trust.prepare_adaptation`), and trains each variant from the same pretrained weights with the model's own
losses (:meth:`Trust.adaptation_losses`), then reports target-test accuracy (mean and spread over seeds).

Speed: only the last ``--trainable-blocks`` image blocks are fine-tuned, so the frozen blocks' output is computed
once per image, for the weak view and for a bank of ``--strong-views`` SimCLR views (the Lightning path draws a
fresh strong view every step instead). Everything else (model, caption classifier, losses, SGD with per-step
cosine decay) is the package's.

    python tools/trust_experiment.py --seeds 0 1 2 --noise 0.0 0.4 --output results/trust_experiment.json

The README's measurements (colour classes under lamp light, 5 seeds, about 10 minutes at one thread):

    python tools/trust_experiment.py --seeds 0 1 2 3 4 --noise 0.0 0.2 0.4 0.6 --class-attribute colour \
        --shift lamplight --batch-size 8 --strong-keep-colour --threads 1 --output results/trust_colour.json
    python tools/trust_experiment.py --summarise results/trust_colour.json   # the tables again
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from anomalib_vlm.data import CaptionedDomainDataModule
from anomalib_vlm.data.generators.domain_shift import CLASS_ATTRIBUTES, SHIFTS, generate_domain_shift_dataset
from anomalib_vlm.models.trust import Trust
from anomalib_vlm.models.trust.loss import caption_uncertainty_weights

VARIANTS = {
    "source_only": {"source_only": True},
    "trust": {},
    "no_uncertainty": {"use_uncertainty": False},
    "no_contrastive": {"contrastive_weight": 0.0},
    "target_oracle": {"source_only": True},
    "no_strong": {"strong_weight": 0.0},
}
"""Model options per variant. ``target_oracle`` trains like ``source_only`` but on the *target's true labels*
(the ceiling of what adaptation could reach with these settings; it reads labels TRUST never sees).
``no_strong`` (a diagnostic, not run by default) keeps the ``w``-weighted pseudo-labels but drops the
``(1 - w)``-weighted strong-view term."""

CAPTION_FREE = ("source_only", "target_oracle")
"""Variants that read no caption: trained once per seed."""


def _images(dataset: torch.utils.data.Dataset, key: str = "image") -> torch.Tensor:
    return torch.stack([dataset[index][key] for index in range(len(dataset))])


@torch.no_grad()
def _prefix(model: Trust, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.model.encode_prefix(model.pre_processor.transform(chunk)) for chunk in images.split(64)])


def _target_truth(datamodule: CaptionedDomainDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    rows = {row["image_path"]: row for row in csv.DictReader((datamodule.root / "target_truth.csv").open())}
    folders, root = datamodule.class_folders, datamodule.root.resolve()
    truth = [rows[path.relative_to(root).as_posix()] for path in datamodule.target_paths]
    return (
        torch.tensor([folders.index(row["class"]) for row in truth]),
        torch.tensor([row["caption_correct"] == "1" for row in truth]),
    )


def run(args: argparse.Namespace, seed: int) -> list[dict]:
    """One seed: for every noise level data, caption classifier and uncertainty weights, then every variant.

    The images of a seed do not depend on the caption noise (only the target captions do), so the frozen-block
    tokens are computed once per seed, and the variants that read no caption (``source_only``, ``target_oracle``)
    train once per seed (reported under the first noise level).
    """
    results, cached = [], None
    for noise in args.noise:
        root = generate_domain_shift_dataset(
            args.data_root / f"{args.class_attribute}_{args.shift}{args.shift_strength}_noise{noise}_seed{seed}",
            classes=args.classes,
            shift=args.shift,
            caption_noise=noise,
            num_source=args.per_class,
            num_target=args.per_class,
            num_target_test=args.per_class,
            seed=seed,
            class_attribute=args.class_attribute,
            shift_strength=args.shift_strength,
        )
        datamodule = CaptionedDomainDataModule(
            root, image_size=64, num_workers=0, eval_batch_size=128, strong_keep_colour=args.strong_keep_colour
        )
        datamodule.setup()
        options = {
            "backbone": "anomalib-vlm-small",
            "pretrained": "anomalib-vlm-synthetic",
            "image_size": 64,
            "prompt_template": args.prompt_template,
            "trainable_blocks": args.trainable_blocks,
            "caption_learning_rate": args.caption_learning_rate,
            "uncertainty_temperature": args.uncertainty_temperature,
            "learning_rate": args.learning_rate,
            "momentum": args.momentum,
            "seed": seed,
        }
        reference = Trust(**options)
        reference.model.set_classes(datamodule.class_names)
        torch.manual_seed(seed)
        reference.prepare_adaptation(datamodule)
        truth, caption_correct = _target_truth(datamodule)
        result = {"seed": seed, "noise": noise, **caption_side(reference, truth, caption_correct, args, seed)}
        results.append(result)
        if not args.variants:  # only the caption side: pseudo-labels and uncertainty weights
            continue
        if cached is None:
            torch.manual_seed(seed)
            cached = cache_tokens(reference, datamodule, args.strong_views)
            cached["target_truth"] = truth
            with torch.no_grad():  # the classifier before any training (class prompts)
                predictions = reference.model.logits(reference.model.encode_from_prefix(cached["test"])).argmax(1)
            result["zero_shot"] = float((predictions == cached["test_classes"]).float().mean())
        elif not torch.equal(cached["target_truth"], truth):
            msg = "the target images changed with the caption noise: the cached tokens do not apply"
            raise RuntimeError(msg)
        for variant in args.variants:
            if variant in CAPTION_FREE and noise != args.noise[0]:
                continue  # captions play no part: one run per seed
            start = time.time()
            model = Trust(**{**options, **VARIANTS[variant]})
            model.model.set_classes(datamodule.class_names)
            model._cache = reference._cache
            accuracy = train_variant(model, cached, args, seed, oracle=variant == "target_oracle")
            result[variant] = accuracy
            print(
                f"seed {seed} noise {noise} {variant}: target accuracy {accuracy:.3f} ({time.time() - start:.0f} s)",
                flush=True,
            )
    return results


def caption_side(
    reference: Trust, truth: torch.Tensor, caption_correct: torch.Tensor, args: argparse.Namespace, seed: int
) -> dict[str, float | None]:
    """Pseudo-label accuracy and the mean uncertainty weight of right and wrong captions (20 training batches)."""
    result: dict[str, float | None] = {
        "pseudo_label_accuracy": float((reference.pseudo_labels == truth).float().mean())
    }
    generator = torch.Generator().manual_seed(seed)
    weights = torch.zeros(len(truth))
    counts = torch.zeros(len(truth))
    for _ in range(max(20, 20 * 32 // args.batch_size)):  # as many draws as 20 batches of 32
        rows = torch.randperm(len(truth), generator=generator)[: args.batch_size]
        weights[rows] += caption_uncertainty_weights(
            reference._cache["target_clip_images"][rows],
            reference._cache["target_clip_captions"][rows],
            reference.model.clip.logit_scale.exp(),
            args.uncertainty_temperature,
        )
        counts[rows] += 1
    weights = weights / counts.clamp_min(1)
    result["mean_weight_right_caption"] = float(weights[caption_correct].mean())
    result["mean_weight_wrong_caption"] = float(weights[~caption_correct].mean()) if (~caption_correct).any() else None
    return result


def cache_tokens(reference: Trust, datamodule: CaptionedDomainDataModule, views: int) -> dict[str, torch.Tensor]:
    """Frozen-block tokens of the weak views, of ``views`` strong views and of the target test, and the labels."""
    source_dataset, target_dataset = datamodule.domain_dataset("source"), datamodule.domain_dataset("target")
    return {
        "source_weak": _prefix(reference, _images(datamodule.domain_dataset("source", strong=False))),
        "target_weak": _prefix(reference, _images(datamodule.domain_dataset("target", strong=False))),
        "source_strong": torch.stack([_prefix(reference, _images(source_dataset, "strong")) for _ in range(views)]),
        "target_strong": torch.stack([_prefix(reference, _images(target_dataset, "strong")) for _ in range(views)]),
        "test": _prefix(reference, torch.stack([item.image for item in datamodule.test_data])),
        "test_classes": torch.stack([item.gt_class for item in datamodule.test_data]),
        "source_labels": torch.tensor(datamodule.source_labels),
    }


def train_variant(
    model: Trust, cached: dict[str, torch.Tensor], args: argparse.Namespace, seed: int, oracle: bool = False
) -> float:
    """SGD with the model's losses over cached frozen-block tokens; returns target-test accuracy.

    ``source_only`` models train the cross-entropy of the source weak view against the source labels, or with
    ``oracle`` of the target weak view against the target's true labels; the others :meth:`Trust.adaptation_losses`.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.model.learnable_parameters(), lr=args.learning_rate, momentum=args.momentum)
    source_labels = cached["source_labels"]
    n_source, n_target = len(source_labels), len(cached["target_weak"])
    steps_per_epoch = math.ceil(max(n_source, n_target) / args.batch_size)
    total = args.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    encode = model.model.encode_from_prefix
    model.model.train()
    for _ in range(args.epochs):
        source_order = torch.randperm(n_source, generator=generator)
        target_order = torch.randperm(n_target, generator=generator)
        for step in range(steps_per_epoch):
            s_rows = source_order[torch.arange(step * args.batch_size, (step + 1) * args.batch_size) % n_source]
            t_rows = target_order[torch.arange(step * args.batch_size, (step + 1) * args.batch_size) % n_target]
            view = int(torch.randint(args.strong_views, (1,), generator=generator))
            if oracle:
                logits = model.model.logits(encode(cached["target_weak"][t_rows]))
                loss = torch.nn.functional.cross_entropy(logits, cached["target_truth"][t_rows])
            elif model.hparams.source_only:
                logits = model.model.logits(encode(cached["source_weak"][s_rows]))
                loss = torch.nn.functional.cross_entropy(logits, source_labels[s_rows])
            else:
                tokens = torch.cat(
                    [
                        cached["source_weak"][s_rows],
                        cached["source_strong"][view][s_rows],
                        cached["target_weak"][t_rows],
                        cached["target_strong"][view][t_rows],
                    ]
                )
                features = encode(tokens).split([len(s_rows)] * 2 + [len(t_rows)] * 2)
                loss = model.adaptation_losses(*features, source_labels[s_rows], s_rows, t_rows)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.model.eval()
    with torch.no_grad():
        predictions = model.model.logits(encode(cached["test"])).argmax(dim=1)
    return float((predictions == cached["test_classes"]).float().mean())


def summarise(results: list[dict], variants: list[str]) -> list[str]:
    """Markdown tables: mean ± standard deviation over seeds per noise level, then every seed's value.

    Caption-free variants (and the zero-shot accuracy) are measured once per seed and repeated on every row.
    """
    names = ["pseudo_label_accuracy", "mean_weight_right_caption", "mean_weight_wrong_caption"]
    names += ["zero_shot", *variants] if variants else []
    seeds = sorted({r["seed"] for r in results})

    def values(noise: float, name: str) -> list[float]:
        rows = [r for r in results if r["noise"] == noise or (name in (*CAPTION_FREE, "zero_shot"))]
        return [r[name] for r in rows if r.get(name) is not None]

    lines = ["| caption noise | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    per_seed = ["| caption noise | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for noise in sorted({r["noise"] for r in results}):
        cells, seed_cells = [], []
        for name in names:
            found = values(noise, name)
            spread = statistics.stdev(found) if len(found) > 1 else 0.0
            cells.append(f"{statistics.mean(found):.3f} ± {spread:.3f}" if found else "-")
            seed_cells.append(" / ".join(f"{value:.3f}" for value in found) if found else "-")
        lines.append(f"| {noise} | " + " | ".join(cells) + " |")
        per_seed.append(f"| {noise} | " + " | ".join(seed_cells) + " |")
    return [*lines, "", f"per seed ({', '.join(map(str, seeds))}):", "", *per_seed, "", *differences(results, variants)]


def differences(results: list[dict], variants: list[str]) -> list[str]:
    """Markdown table of ``trust`` minus every other variant, paired by seed: mean ± sd, and seeds where > 0."""
    others = [name for name in variants if name != "trust"]
    if "trust" not in variants or not others:
        return []
    first = {r["seed"]: r for r in results if r["noise"] == min(q["noise"] for q in results)}
    lines = ["| caption noise | " + " | ".join(f"trust - {name}" for name in others) + " |"]
    lines.append("|---" * (len(others) + 1) + "|")
    for noise in sorted({r["noise"] for r in results}):
        cells = []
        for name in others:
            gaps = [
                r["trust"] - (first[r["seed"]] if name in CAPTION_FREE else r)[name]
                for r in results
                if r["noise"] == noise and "trust" in r and name in (first[r["seed"]] if name in CAPTION_FREE else r)
            ]
            spread = statistics.stdev(gaps) if len(gaps) > 1 else 0.0
            wins = sum(gap > 0 for gap in gaps)
            cells.append(f"{statistics.mean(gaps):+.3f} ± {spread:.3f} ({wins}/{len(gaps)} > 0)" if gaps else "-")
        lines.append(f"| {noise} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command line: run every seed and noise level, write the JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.4])
    parser.add_argument(
        "--variants", nargs="*", choices=list(VARIANTS), default=[name for name in VARIANTS if name != "no_strong"]
    )
    parser.add_argument("--shift", choices=sorted(SHIFTS), default="night")
    parser.add_argument("--shift-strength", type=float, default=1.0)
    parser.add_argument("--class-attribute", choices=CLASS_ATTRIBUTES, default="family")
    parser.add_argument("--classes", nargs="+", default=None, help="default: the generator's for the attribute")
    parser.add_argument("--prompt-template", default=None, help='default: "a photo of a {} texture." for colours')
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--trainable-blocks", type=int, default=2)
    parser.add_argument("--strong-views", type=int, default=4)
    parser.add_argument(
        "--strong-keep-colour", action="store_true", help="strong views without hue/saturation jitter and grayscale"
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--caption-learning-rate", type=float, default=3e-3)
    parser.add_argument("--uncertainty-temperature", type=float, default=0.54)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", type=Path, default=Path("datasets/trust_experiment"))
    parser.add_argument("--output", type=Path, default=Path("results/trust_experiment.json"))
    parser.add_argument("--summarise", type=Path, default=None, help="print the tables of a saved --output only")
    args = parser.parse_args(argv)
    if args.summarise is not None:
        saved = json.loads(args.summarise.read_text())
        variants = [name for name in VARIANTS if any(name in run for run in saved["runs"])]
        print("\n".join(summarise(saved["runs"], variants)))
        return 0
    if args.prompt_template is None:
        args.prompt_template = "a photo of a {} texture." if args.class_attribute == "colour" else "a photo of a {}."
    torch.set_num_threads(args.threads)
    start = time.time()
    results = [result for seed in args.seeds for result in run(args, seed)]
    print(f"{len(args.seeds)} seeds x {len(args.noise)} noise levels in {time.time() - start:.0f} s", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"arguments": {k: str(v) for k, v in vars(args).items()}, "runs": results}, indent=2)
    )
    print("\n".join(summarise(results, args.variants)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
