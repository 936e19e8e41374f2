# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Does MetaIqa's gradient regularisation cut overfitting when the shots confound content with quality?

GRMP-IQA's stated reason for its gradient rule is that a few labelled images teach a model the *content* of
the images instead of their quality. This experiment builds that trap on the tiny random CLIP: of the six
reference images in the shots, three appear only at distortion levels 0-1 (good) and three only at levels
4-5 (bad), so content alone ranks the shots. The test images are the other references at every level. Prompts
are meta-pre-trained as in ``tests/integration/test_meta_iqa.py``, then fine-tuned full-batch with each
gradient rule; the script prints train and test SRCC and their gap per split and on average.

Usage (about 4 minutes on 2 CPU cores)::

    python tools/experiments/meta_iqa_confounded_shots.py --distortion impulse_noise --steps 20 --lr 0.05
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from anomalib_vlm.data import IqaDataModule, IqaDataset, generate_iqa_dataset, read_mos_csv, split_by_distortion
from anomalib_vlm.models.meta_iqa import MetaIqa

TINY = {
    "backbone": "anomalib-vlm-tiny",
    "pretrained": None,
    "image_size": 32,
    "visual_prompt_tokens": 4,
    "visual_prompt_dropout": 0.0,
}
META = {"meta_inner_lr": 1e-2, "meta_outer_lr": 1.0, "meta_support_batch_size": 16, "meta_query_batch_size": 16}
META_TYPES = ("gaussian_noise", "speckle_noise", "underexposure")
RULES = ("none", "grmp", "prograd")


def _meta_prompts(folder: Path) -> Path:
    generate_iqa_dataset(folder / "meta", distortions=META_TYPES, image_size=32, num_images=16, seed=0)
    datamodule = IqaDataModule(
        root=folder / "meta", csv="mos.csv", num_shots=None, test_ratio=0.25, split_by_reference=True, num_workers=0
    )
    datamodule.setup()
    torch.manual_seed(0)
    model = MetaIqa(**TINY, **META)
    model.meta_pretrain(
        split_by_distortion(datamodule.train_data), val_data=split_by_distortion(datamodule.test_data), epochs=4
    )
    return model.save_prompts(folder / "meta_prompts.pt")


def _srcc(model: MetaIqa, dataset: IqaDataset) -> float:
    predicted, target = model.predict_quality(dataset)
    return float(spearmanr(predicted, target).statistic)


def _finetune(model: MetaIqa, dataset: IqaDataset, steps: int) -> None:
    """Full-batch regularised SGD steps, as ``MetaIqa.training_step`` takes them."""
    optimizer = model.configure_optimizers()
    images = model._prepare(torch.stack([dataset[index].image for index in range(len(dataset))]))
    targets = torch.tensor(dataset.qualities, dtype=torch.float32)
    model.model.train()
    for _ in range(steps):
        step = model.finetune_gradients(images, targets)
        optimizer.zero_grad()
        for param, grad in zip(step["params"], step["grads"], strict=True):
            param.grad = torch.zeros_like(param) if grad is None else grad
        optimizer.step()
    model.on_train_end()
    model.model.eval()


def main() -> None:
    """Run every split and rule and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distortion", default="impulse_noise", help="held out of meta-training")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--splits", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        prompts = _meta_prompts(folder)
        table = read_mos_csv(
            generate_iqa_dataset(folder / "target", distortions=[args.distortion], image_size=32, num_images=20, seed=1)
        )
        quality_range = (table.mos.min(), table.mos.max())
        references = sorted(table.reference.unique())
        results: dict[str, list[tuple[float, float]]] = {rule: [] for rule in RULES}
        for split in range(args.splits):
            order = np.random.default_rng(split).permutation(references)
            shots = [
                table[(table.reference == reference) & table.level.isin((0, 1) if index < 3 else (4, 5))]
                for index, reference in enumerate(order[:6])
            ]
            train = IqaDataset(pd.concat(shots), quality_range=quality_range, split="train")
            test = IqaDataset(table[table.reference.isin(order[6:])], quality_range=quality_range)
            for rule in RULES:
                torch.manual_seed(split)
                model = MetaIqa(**TINY, learning_rate=args.lr, gradient_rule=rule, meta_prompts=str(prompts))
                _finetune(model, train, args.steps)
                train_srcc, test_srcc = _srcc(model, train), _srcc(model, test)
                results[rule].append((train_srcc, test_srcc))
                gap = train_srcc - test_srcc
                print(f"split {split} {rule:8s} train {train_srcc:.3f} test {test_srcc:.3f} gap {gap:.3f}")
        print(f"\nmean over {args.splits} splits, {len(train)} shots, {args.steps} steps at lr {args.lr}:")
        baseline_gaps = [train_srcc - test_srcc for train_srcc, test_srcc in results["none"]]
        for rule, values in results.items():
            train_mean = statistics.mean(value[0] for value in values)
            test_mean = statistics.mean(value[1] for value in values)
            line = f"{rule:8s} train {train_mean:.3f} test {test_mean:.3f} gap {train_mean - test_mean:.3f}"
            if rule != "none":
                smaller = sum(tr - te < gap for (tr, te), gap in zip(values, baseline_gaps, strict=True))
                better = sum(te > base_te for (_, te), (_, base_te) in zip(values, results["none"], strict=True))
                count = len(values)
                line += f"; gap smaller than 'none' in {smaller}/{count}, test SRCC higher in {better}/{count}"
            print(line)


if __name__ == "__main__":
    main()
