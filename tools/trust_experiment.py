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
from anomalib_vlm.data.generators.domain_shift import SHIFTS, generate_domain_shift_dataset
from anomalib_vlm.models.trust import Trust

VARIANTS = {
    "source_only": {"source_only": True},
    "trust": {},
    "no_uncertainty": {"use_uncertainty": False},
    "no_contrastive": {"contrastive_weight": 0.0},
}


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


def run(args: argparse.Namespace, seed: int, noise: float) -> dict:
    """One seed and noise level: data, caption classifier, uncertainty weights, then every variant."""
    root = generate_domain_shift_dataset(
        args.data_root / f"{args.shift}_noise{noise}_seed{seed}",
        shift=args.shift,
        caption_noise=noise,
        num_source=args.per_class,
        num_target=args.per_class,
        num_target_test=args.per_class,
        seed=seed,
    )
    datamodule = CaptionedDomainDataModule(root, image_size=64, num_workers=0, eval_batch_size=128)
    datamodule.setup()
    options = {
        "backbone": "anomalib-vlm-small",
        "pretrained": "anomalib-vlm-synthetic",
        "image_size": 64,
        "trainable_blocks": args.trainable_blocks,
        "caption_learning_rate": args.caption_learning_rate,
        "uncertainty_temperature": args.uncertainty_temperature,
        "learning_rate": args.learning_rate,
        "momentum": 0.9,
        "seed": seed,
    }
    reference = Trust(**options)
    reference.model.set_classes(datamodule.class_names)
    torch.manual_seed(seed)
    reference.prepare_adaptation(datamodule)
    truth, caption_correct = _target_truth(datamodule)
    pseudo = reference.pseudo_labels
    result: dict = {"seed": seed, "noise": noise, "pseudo_label_accuracy": float((pseudo == truth).float().mean())}
    # The uncertainty weight's meaning: does it rank right captions above wrong ones? (over random batches of 32)
    generator = torch.Generator().manual_seed(seed)
    from anomalib_vlm.models.trust.loss import caption_uncertainty_weights

    weights = torch.zeros(len(truth))
    counts = torch.zeros(len(truth))
    for _ in range(20):
        rows = torch.randperm(len(truth), generator=generator)[:32]
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

    if not args.variants:  # only the caption side: pseudo-labels and uncertainty weights
        return result
    torch.manual_seed(seed)
    source_dataset, target_dataset = datamodule.domain_dataset("source"), datamodule.domain_dataset("target")
    cached = {
        "source_weak": _prefix(reference, _images(datamodule.domain_dataset("source", strong=False))),
        "target_weak": _prefix(reference, _images(datamodule.domain_dataset("target", strong=False))),
        "source_strong": torch.stack(
            [_prefix(reference, _images(source_dataset, "strong")) for _ in range(args.strong_views)]
        ),
        "target_strong": torch.stack(
            [_prefix(reference, _images(target_dataset, "strong")) for _ in range(args.strong_views)]
        ),
        "test": _prefix(reference, torch.stack([item.image for item in datamodule.test_data])),
    }
    test_classes = torch.stack([item.gt_class for item in datamodule.test_data])
    source_labels = torch.tensor(datamodule.source_labels)
    for variant in args.variants:
        if variant == "source_only" and noise != args.noise[0]:
            continue  # captions play no part: one run per seed
        start = time.time()
        model = Trust(**{**options, **VARIANTS[variant]})
        model.model.set_classes(datamodule.class_names)
        model._cache = reference._cache
        accuracy = train_variant(model, cached, source_labels, test_classes, args, seed)
        result[variant] = accuracy
        print(
            f"seed {seed} noise {noise} {variant}: target accuracy {accuracy:.3f} ({time.time() - start:.0f} s)",
            flush=True,
        )
    return result


def train_variant(
    model: Trust,
    cached: dict[str, torch.Tensor],
    source_labels: torch.Tensor,
    test_classes: torch.Tensor,
    args: argparse.Namespace,
    seed: int,
) -> float:
    """SGD with the model's losses over cached frozen-block tokens; returns target-test accuracy."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.model.learnable_parameters(), lr=args.learning_rate, momentum=0.9)
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
            if model.hparams.source_only:
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
    return float((predictions == test_classes).float().mean())


def summarise(results: list[dict], variants: list[str]) -> list[str]:
    """Markdown table: mean +- standard deviation over seeds per noise level and variant."""
    variants = ["mean_weight_right_caption", "mean_weight_wrong_caption", *variants]
    lines = ["| caption noise | pseudo-label acc. | " + " | ".join(variants) + " |", "|---" * (len(variants) + 2) + "|"]
    for noise in sorted({r["noise"] for r in results}):
        rows = [r for r in results if r["noise"] == noise]
        cells = []
        for name in ["pseudo_label_accuracy", *variants]:
            values = [r[name] for r in rows if r.get(name) is not None]
            if name == "source_only" and not values:
                values = [r[name] for r in results if r.get(name) is not None]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.3f} ± {spread:.3f}" if values else "-")
        lines.append(f"| {noise} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command line: run every seed and noise level, write the JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.4])
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--shift", choices=sorted(SHIFTS), default="night")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--trainable-blocks", type=int, default=2)
    parser.add_argument("--strong-views", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--caption-learning-rate", type=float, default=3e-3)
    parser.add_argument("--uncertainty-temperature", type=float, default=0.54)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-root", type=Path, default=Path("datasets/trust_experiment"))
    parser.add_argument("--output", type=Path, default=Path("results/trust_experiment.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [run(args, seed, noise) for seed in args.seeds for noise in args.noise]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps({"arguments": {k: str(v) for k, v in vars(args).items()}, "runs": results}, indent=2)
    )
    print("\n".join(summarise(results, args.variants)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
