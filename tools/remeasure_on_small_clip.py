# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Re-measure the open claims on the learned small CLIP, over many seeds, with 95 % confidence intervals.

Two studies (issue 12, point 6), each a paired comparison: every seed runs every configuration on the same data,
shots and initialisation, so the per-seed *differences* carry the claim and their confidence interval is tight
where the seeds' own spread is wide.

``supreme``: Supreme's BPG and ITC against SMMP (training-free) and plain tuning (neither module), on the
package's synthetic OOD data (4 ID texture classes, 3 OOD kinds; `tools/supreme_ablation.py`'s
sizes), FPR95 / AUROC of the OOD images against the ID test images (the held-out split: no shot is a test image).
The seed sets the shots drawn per class, the prompt initialisation, the shot order and the bias samples.

``meta-iqa``: MetaIqa's gradient rule (official GRMP, lambda 5: project the quality gradient when it agrees with
the scene gradient; ProGrad's rule: project it when it conflicts) against no rule. scikit-image's 20 photographs,
distorted at 5 levels; the seed draws which photographs give shots and which are held out; shots come from the
"seen" distortions, test SRCC on the held-out photographs under the seen distortions and under distortions held
out of both the shots and the CLIP's pre-training (motion blur, impulse and speckle noise).

Every run appends a JSON line to ``--log`` (so an interrupted study keeps its runs); ``--summary`` prints the
table of a finished log. Usage (one thread, low priority, about 40 minutes for both on one shared core)::

    nice -n 10 python tools/remeasure_on_small_clip.py supreme --seeds 0-9 --log /tmp/supreme.jsonl
    nice -n 10 python tools/remeasure_on_small_clip.py meta-iqa --seeds 0-9 --log /tmp/meta_iqa.jsonl
    python tools/remeasure_on_small_clip.py summary --log /tmp/supreme.jsonl /tmp/meta_iqa.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from anomalib_vlm.clip.backbone import SMALL_MODEL_NAME, SMALL_PRETRAINED_TAG

SMALL = {"backbone": SMALL_MODEL_NAME, "pretrained": SMALL_PRETRAINED_TAG, "image_size": 64}

# --------------------------------------------------------------------------------------------------- Supreme
SUPREME_CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "mcm": {"mode": "mcm"},
    "smmp": {"mode": "smmp"},
    "supreme": {"mode": "supreme"},
    "without BPG": {"mode": "supreme", "use_bpg": False},
    "without ITC": {"mode": "supreme", "use_itc": False},
    "plain tuning": {"mode": "supreme", "use_bpg": False, "use_itc": False},
}
"""Compared configurations; the tuned ones take the ablation module's tuning settings on top."""


def run_supreme(seed: int, name: str, root: Path, work: Path, settings: dict[str, Any]) -> dict[str, float]:
    """One Supreme configuration at one seed, through anomalib's Engine (tuning, calibration, test)."""
    from anomalib import LearningType
    from lightning.pytorch import seed_everything
    from supreme_ablation import TUNING_SETTINGS, quiet_engine  # tools/supreme_ablation.py, next to this script

    from anomalib_vlm.data import OODDataModule
    from anomalib_vlm.models.supreme import Supreme

    options = SUPREME_CONFIGURATIONS[name]
    if options["mode"] == "supreme":
        options = TUNING_SETTINGS | options | {"epochs": settings["epochs"]}
    seed_everything(seed, workers=True)
    model = Supreme(**({k: v for k, v in settings.items() if k != "epochs"} | options), visualizer=False)

    def datamodule() -> OODDataModule:
        # The seed draws the shots too, so SMMP varies across seeds and each seed is one few-shot draw.
        shots = settings["shots"]
        return OODDataModule(
            root, shots_per_class=shots, num_workers=0, train_batch_size=shots, eval_batch_size=96, seed=seed
        )

    engine = quiet_engine(work)
    if model.learning_type == LearningType.ONE_CLASS:
        engine.fit(model=model, datamodule=datamodule())
    metrics = engine.test(model=model, datamodule=datamodule(), verbose=False)[0]
    return {key: float(value) for key, value in metrics.items()}


def supreme_study(args: argparse.Namespace) -> None:
    """Every configuration at every seed, one JSON line per run."""
    from supreme_ablation import SYNTHETIC_DATA

    from anomalib_vlm.data import generate_synthetic_ood_dataset

    settings = SMALL | {"shots": args.shots, "temperature": args.temperature, "epochs": args.epochs}
    with tempfile.TemporaryDirectory() as temporary:
        root = generate_synthetic_ood_dataset(Path(temporary) / "ood", **SYNTHETIC_DATA)
        for seed in args.seeds:
            for name in args.configurations:
                started = time.perf_counter()
                work = Path(temporary) / "work" / f"{name.replace(' ', '_')}_seed{seed}"
                metrics = run_supreme(seed, name, root, work, settings)
                _log(
                    args.log,
                    study="supreme",
                    seed=seed,
                    configuration=name,
                    seconds=time.perf_counter() - started,
                    settings={k: v for k, v in settings.items() if k != "pretrained"},
                    **metrics,
                )


# --------------------------------------------------------------------------------------------------- MetaIqa
SEEN_DISTORTIONS = ("gaussian_blur", "gaussian_noise", "jpeg", "underexposure")
"""Shot distortions: kinds the small CLIP's captions name (blur, noise, JPEG blocking, darkness)."""
HELD_OUT_DISTORTIONS = ("motion_blur", "impulse_noise", "speckle_noise")
"""Held out of the shots and of the small CLIP's pre-training."""
RULES = ("none", "grmp", "prograd")


def _iqa_tables(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    from anomalib_vlm.data import generate_iqa_dataset, read_mos_csv

    seen = read_mos_csv(generate_iqa_dataset(folder / "seen", "skimage", SEEN_DISTORTIONS, image_size=64, seed=1))
    held = read_mos_csv(generate_iqa_dataset(folder / "held", "skimage", HELD_OUT_DISTORTIONS, image_size=64, seed=1))
    return seen, held


def run_meta_iqa(
    seed: int, rule: str, seen: pd.DataFrame, held: pd.DataFrame, args: argparse.Namespace
) -> dict[str, float]:
    """Fine-tune with one gradient rule on one seed's shots; SRCC on the held-out photographs."""
    from anomalib_vlm.data import IqaDataset
    from anomalib_vlm.models.meta_iqa import MetaIqa

    references = sorted(seen.reference.unique())
    order = np.random.default_rng(seed).permutation(references)
    train_refs, test_refs = set(order[: args.train_photos]), set(order[args.train_photos :])
    pool = seen[seen.reference.isin(train_refs)]
    shots = pool.iloc[np.sort(np.random.default_rng(seed).permutation(len(pool))[: args.shots])]
    quality_range = (seen.mos.min(), seen.mos.max())
    train = IqaDataset(shots, quality_range=quality_range, split="train")
    test_seen = IqaDataset(seen[seen.reference.isin(test_refs)], quality_range=quality_range)
    test_held = IqaDataset(held[held.reference.isin(test_refs)], quality_range=quality_range)

    torch.manual_seed(seed)
    model = MetaIqa(
        **SMALL,
        visual_prompt_tokens=4,
        visual_prompt_dropout=0.0,
        learning_rate=args.lr,
        gradient_rule=rule,
        gradient_lambda=5.0,
    )
    # The start is the same for every rule at one seed: its zero-shot SRCC is measured once, with rule "none".
    zero_shot = (_srcc(model, test_seen), _srcc(model, test_held)) if rule == "none" else (float("nan"),) * 2
    optimizer = model.configure_optimizers()
    images = model._prepare(torch.stack([train[index].image for index in range(len(train))]))
    targets = torch.tensor(train.qualities, dtype=torch.float32)
    model.model.train()
    for _ in range(args.steps):  # full-batch regularised SGD, as MetaIqa.training_step takes each step
        step = model.finetune_gradients(images, targets)
        optimizer.zero_grad()
        for param, grad in zip(step["params"], step["grads"], strict=True):
            param.grad = torch.zeros_like(param) if grad is None else grad
        optimizer.step()
    model.on_train_end()
    model.model.eval()
    return {
        "train_SRCC": _srcc(model, train),
        "test_seen_SRCC": _srcc(model, test_seen),
        "test_held_out_SRCC": _srcc(model, test_held),
        "zero_shot_seen_SRCC": zero_shot[0],
        "zero_shot_held_out_SRCC": zero_shot[1],
    }


def _srcc(model: Any, dataset: Any) -> float:
    predicted, target = model.predict_quality(dataset)
    return float(stats.spearmanr(predicted, target).statistic)


def meta_iqa_study(args: argparse.Namespace) -> None:
    """Every rule at every seed, one JSON line per run."""
    with tempfile.TemporaryDirectory() as temporary:
        seen, held = _iqa_tables(Path(temporary))
        for seed in args.seeds:
            for rule in args.rules:
                started = time.perf_counter()
                metrics = run_meta_iqa(seed, rule, seen, held, args)
                _log(
                    args.log,
                    study="meta_iqa",
                    seed=seed,
                    configuration=rule,
                    seconds=time.perf_counter() - started,
                    settings={
                        "shots": args.shots,
                        "steps": args.steps,
                        "lr": args.lr,
                        "train_photos": args.train_photos,
                    },
                    **metrics,
                )


# --------------------------------------------------------------------------------------------------- summary
def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean()), float(half)


STUDY_METRICS = {
    "supreme": (("image_FPR95", "FPR95"), ("image_AUROC", "AUROC")),
    "meta_iqa": (
        ("test_seen_SRCC", "SRCC held-out photos"),
        ("test_held_out_SRCC", "SRCC held-out distortions"),
        ("train_SRCC", "SRCC shots"),
        ("zero_shot_seen_SRCC", "zero-shot SRCC held-out photos"),
        ("zero_shot_held_out_SRCC", "zero-shot SRCC held-out distortions"),
    ),
}
BASELINES = {"supreme": ("smmp", "plain tuning"), "meta_iqa": ("none",)}
CONTRASTS = {
    "supreme": {
        "BPG, with ITC (supreme - without BPG)": ("supreme", "without BPG"),
        "BPG, without ITC (without ITC - plain tuning)": ("without ITC", "plain tuning"),
        "ITC, with BPG (supreme - without ITC)": ("supreme", "without ITC"),
        "ITC, without BPG (without BPG - plain tuning)": ("without BPG", "plain tuning"),
    },
}
"""Each module's effect, switched on against off with the other module held fixed (paired by seed)."""


def summary(paths: Sequence[Path]) -> None:
    """Markdown tables: mean ± 95 % CI per configuration, and paired differences to the baselines."""
    rows = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.strip()]
    for study in dict.fromkeys(row["study"] for row in rows):
        runs = pd.DataFrame([row for row in rows if row["study"] == study])
        metrics = STUDY_METRICS[study]
        seeds = sorted(runs.seed.unique())
        print(f"\n{study}: {len(seeds)} seeds ({seeds[0]}-{seeds[-1]}); mean ± 95 % CI (Student t)\n")
        print(f"| configuration | {' | '.join(label for _, label in metrics)} | seconds per run |")
        print(f"|---|{'---|' * len(metrics)}---|")
        for name, group in runs.groupby("configuration", sort=False):
            cells = [_format(*mean_ci(group[key])) for key, _ in metrics]
            print(f"| {name} | {' | '.join(cells)} | {group.seconds.mean():.0f} |")
        for baseline in BASELINES[study]:
            base = runs[runs.configuration == baseline].set_index("seed")
            if base.empty:
                continue
            metrics = [metric for metric in metrics if not metric[0].startswith("zero_shot")]
            print(f"\npaired difference to '{baseline}' (configuration minus {baseline}; wins = seeds where better)\n")
            print(f"| configuration | {' | '.join(label for _, label in metrics)} |")
            print(f"|---|{'---|' * len(metrics)}")
            for name, group in runs.groupby("configuration", sort=False):
                if name == baseline:
                    continue
                by_seed = group.set_index("seed")
                common = by_seed.index.intersection(base.index)
                cells = []
                for key, _ in metrics:
                    difference = by_seed.loc[common, key] - base.loc[common, key]
                    lower_is_better = "FPR95" in key
                    wins = int(((difference < 0) if lower_is_better else (difference > 0)).sum())
                    cells.append(f"{_format(*mean_ci(difference), signed=True)} ({wins}/{len(common)})")
                print(f"| {name} | {' | '.join(cells)} |")
        _contrasts(study, runs, metrics)


def _contrasts(study: str, runs: pd.DataFrame, metrics: Sequence[tuple[str, str]]) -> None:
    """Each module's paired effect (:data:`CONTRASTS`)."""
    if study not in CONTRASTS:
        return
    print("\neach module's effect (on minus off, paired by seed; wins = seeds where on is better)\n")
    print(f"| effect | {' | '.join(label for _, label in metrics)} |")
    print(f"|---|{'---|' * len(metrics)}")
    by_name = {name: group.set_index("seed") for name, group in runs.groupby("configuration")}
    for label, (on, off) in CONTRASTS[study].items():
        if on not in by_name or off not in by_name:
            continue
        common = by_name[on].index.intersection(by_name[off].index)
        cells = []
        for key, _ in metrics:
            difference = by_name[on].loc[common, key] - by_name[off].loc[common, key]
            wins = int(((difference < 0) if "FPR95" in key else (difference > 0)).sum())
            cells.append(f"{_format(*mean_ci(difference), signed=True)} ({wins}/{len(common)})")
        print(f"| {label} | {' | '.join(cells)} |")


def _format(mean: float, half: float, signed: bool = False) -> str:
    return f"{mean:+.3f} ± {half:.3f}" if signed else f"{mean:.3f} ± {half:.3f}"


def _log(path: Path, **record: Any) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    with Path(path).open("a") as handle:
        handle.write(line + "\n")


def _seeds(text: str) -> list[int]:
    """``"0-9"`` or ``"3"``."""
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    supreme = commands.add_parser("supreme", help="BPG and ITC against SMMP and plain tuning")
    supreme.add_argument(
        "--configurations", nargs="+", choices=list(SUPREME_CONFIGURATIONS), default=list(SUPREME_CONFIGURATIONS)
    )
    supreme.add_argument("--shots", type=int, default=4)
    supreme.add_argument("--temperature", type=float, default=0.1)
    supreme.add_argument("--epochs", type=int, default=20, help="tuning epochs over the shots")
    iqa = commands.add_parser("meta-iqa", help="GRMP and ProGrad against no gradient rule")
    iqa.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    iqa.add_argument("--shots", type=int, default=24)
    iqa.add_argument("--train-photos", type=int, default=10, help="photographs that give shots; the rest test")
    iqa.add_argument("--steps", type=int, default=30, help="full-batch SGD steps")
    iqa.add_argument("--lr", type=float, default=0.5, help="SGD; enough to fit the shots in --steps")
    for sub in (supreme, iqa):
        sub.add_argument("--seeds", type=_seeds, default=_seeds("0-9"), help="e.g. 0-9")
        sub.add_argument("--log", type=Path, required=True, help="JSON lines, appended")
        sub.add_argument("--threads", type=int, default=1)
    report = commands.add_parser("summary", help="tables of finished logs")
    report.add_argument("--log", type=Path, nargs="+", required=True)
    args = parser.parse_args(argv)
    if args.command == "summary":
        summary(args.log)
        return 0
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.WARNING)
    logging.getLogger("anomalib").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    (supreme_study if args.command == "supreme" else meta_iqa_study)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
