# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Offline proof of FodFoM's two uses, with the learned small CLIP and generators that exist offline.

``outliers``: ID classes are four caption-corpus families (``--id-classes``), rendered in random colours; the
captions the corpus writes stand in for BLIP-2's (a caption table). The FodFoM pipeline runs stage by stage on
them (texts "This is a photo of <class> and <caption>", the small CLIP's text embeddings, 20 % boundary,
perturbation, :class:`~anomalib_vlm.fodfom.generators.DescriptionRenderer` as the generator). Supreme's frozen
small CLIP then scores ID test images against a **held-out** OOD split: families the small CLIP never trained on
and the generator never draws (tiled, marbled, hexagon, capsule). Compared, per seed:

* ``smmp``: Supreme's training-free text + image prototypes (no fakes);
* ``K-way``: the outlier-class head trained on the shots only (same adapter, no outlier class);
* ``K+1 official`` / ``K+1 id_classes``: the head trained with the fakes as class K, scored by FodFoM's rule
  (MSP over all K+1) and by the ID classes' share of the K+1 softmax;
* ``Supreme outlier_class (Engine)``: the same K+1 head as a user trains it: ``Supreme(mode="outlier_class")``,
  ``Engine.fit`` on a :class:`~anomalib_vlm.fodfom.FakeOutlierDataModule` (real ID folders plus the fakes), and
  ``Engine.test`` (anomalib's Evaluator: FPR95 and AUROC of the raw OOD scores).

``anomalies``: normal images only (``train/good`` of one synthetic category); fake anomalies painted by
:class:`~anomalib_vlm.fodfom.anomalies.RenderedDefectPainter` (crack, burn, chip, dent, contamination); AnomalyClip
(small CLIP) trained on them; tested on the synthetic dataset's real test split, whose defects (hole, missing,
scratch, stain) come from another generator. Compared with the untrained prompts.

Usage::

    python tools/fodfom_offline_proof.py outliers --seeds 0 1 2 --work /tmp/fodfom_proof
    python tools/fodfom_offline_proof.py anomalies --seeds 0 1 2 --work /tmp/fodfom_proof
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import statistics
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anomalib_vlm.data.generators.corpus import CaptionCorpus
from anomalib_vlm.data.utils import list_images
from anomalib_vlm.fodfom.captioning import CaptionTable
from anomalib_vlm.fodfom.generators import DescriptionRenderer
from anomalib_vlm.fodfom.pipeline import make_fake_outliers, read_rgb, write_rgb
from anomalib_vlm.fodfom.text_embedding import OpenClipText
from anomalib_vlm.metrics.fpr95 import fpr_at_tpr

BACKBONE, PRETRAINED = "anomalib-vlm-small", "anomalib-vlm-synthetic"
ID_CLASSES = ("red striped", "blue circle", "green checkered", "yellow square")
"""ID classes: a colour and a family each (the small CLIP tells colours apart far better than shapes at 64 px)."""
OOD_FAMILIES = ("tiled", "marbled", "hexagon", "capsule")


def write_outlier_dataset(root: Path, id_classes: list[str], seed: int, train: int, test: int, ood: int) -> None:
    """ID train (with a caption table) / test folders and the held-out OOD folder, rendered by the corpus."""
    from anomalib_vlm.data.generators.corpus import COLOURS

    corpus = CaptionCorpus(image_size=64, seed=seed, photos=False)
    colours = list(COLOURS)
    rows = []
    for split, count in (("train", train), ("test", test)):
        for name in id_classes:
            colour, family = name.split(" ", 1)
            for index in range(count):
                rng = np.random.default_rng([seed, 1 + (split == "test"), id_classes.index(name), index])
                sample = corpus.render(family, colour, None, None, rng)
                path = root / split / name.replace(" ", "_") / f"{index:03d}.png"
                write_rgb(path, sample.image)
                if split == "train":
                    rows.append([str(path), sample.caption])
    for family_index, family in enumerate(OOD_FAMILIES):
        for index in range(ood):
            rng = np.random.default_rng([seed, 7, family_index, index])
            colour = colours[int(rng.integers(len(colours)))]
            write_rgb(root / "ood" / family / f"{index:03d}.png", corpus.render(family, colour, None, None, rng).image)
    with (root / "captions.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["image", "caption"], *rows])


def encode_folder(model: torch.nn.Module, folders: list[Path]) -> torch.Tensor:
    """Frozen CLIP image embeddings of every image in ``folders`` (CLIP normalisation at 64 px)."""
    from anomalib_vlm.clip.transforms import clip_preprocessing

    settings = clip_preprocessing(BACKBONE, PRETRAINED)
    mean, std = torch.tensor(settings.mean)[:, None, None], torch.tensor(settings.std)[:, None, None]
    images = [read_rgb(path) for folder in folders for path in list_images(folder)]
    batch = torch.stack([(torch.from_numpy(image).permute(2, 0, 1).float() / 255 - mean) / std for image in images])
    batch = F.interpolate(batch, size=64, mode="bilinear", antialias=True) if batch.shape[-1] != 64 else batch
    with torch.no_grad():
        return model.encode_images(batch)


def outliers_run(seed: int, work: Path, args: argparse.Namespace) -> dict[str, float]:
    """One seed of the outlier experiment: FPR95 (ID positive) and AUROC of each configuration."""
    from torchmetrics.functional.classification import binary_auroc

    from anomalib_vlm.models.supreme.outlier_class import OutlierClassHead
    from anomalib_vlm.models.supreme.torch_model import SupremeModel

    root = work / f"outliers_seed{seed}"
    id_classes = list(args.id_classes)
    if not (root / "captions.csv").is_file():
        write_outlier_dataset(root / "data", id_classes, seed, args.train, args.test, args.ood)
        (root / "data" / "captions.csv").rename(root / "captions.csv")
    embedder = OpenClipText.load(BACKBONE, PRETRAINED)
    generator = DescriptionRenderer(
        embedder, excluded=lambda content: f"{content.colour} {content.family}" in id_classes, top_k=args.top_k
    )
    fakes = make_fake_outliers(
        root / "data" / "train",
        root / "fakes",
        CaptionTable(root / "captions.csv"),
        embedder,
        generator,
        direction=args.direction,
        slide=args.slide,
        add_slide=args.slide,
        seed=seed,
    )
    torch.manual_seed(seed)
    model = SupremeModel(BACKBONE, PRETRAINED, image_size=64, mode="smmp").eval()
    model.set_classes(id_classes)
    folders = [name.replace(" ", "_") for name in id_classes]
    train = [encode_folder(model, [root / "data" / "train" / name]) for name in folders]
    shots = [features[: args.shots] for features in train]
    model.image_prototypes = F.normalize(torch.stack([f.mean(0) for f in shots]), dim=-1)
    shot_features = torch.cat(shots)
    shot_labels = torch.cat([torch.full((len(f),), i) for i, f in enumerate(shots)])
    fake_features = encode_folder(model, sorted((fakes / "outliers").iterdir()))
    id_test = encode_folder(model, [root / "data" / "test" / name for name in folders])
    ood_test = encode_folder(model, sorted((root / "data" / "ood").iterdir()))
    features = torch.cat([id_test, ood_test])
    labels = torch.cat([torch.zeros(len(id_test)), torch.ones(len(ood_test))]).long()

    def metrics(ood_score: torch.Tensor) -> tuple[float, float]:
        return float(fpr_at_tpr(ood_score, labels)), float(binary_auroc(ood_score, labels))

    results = {}
    with torch.no_grad():
        results["smmp"] = metrics(1 - model.score_features(features)[0])
    for name, with_fakes, rule in (
        ("K-way", False, "id_classes"),
        ("K+1 official", True, "official"),
        ("K+1 id_classes", True, "id_classes"),
    ):
        torch.manual_seed(seed)
        head = OutlierClassHead(
            model.image_prototypes,
            fake_features if with_fakes else None,
            temperature=args.temperature,
            score=rule,
            supcon=args.supcon,
        )
        if args.epochs:
            head.fit(shot_features, shot_labels, epochs=args.epochs, seed=seed)
        with torch.no_grad():
            results[name] = metrics(1 - head.id_score(features))
    results["Supreme outlier_class (Engine)"] = supreme_outlier_class_run(
        root / "data", root / "fakes", seed, args.lightning_epochs, work
    )
    results["fakes"] = len(fake_features)
    return results


def quiet_engine(work: Path) -> object:
    """A CPU Engine without logger or progress bar, writing to a fresh folder under ``work``."""
    import tempfile

    from anomalib.engine import Engine

    return Engine(
        default_root_dir=tempfile.mkdtemp(dir=work),
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
    )


def supreme_outlier_class_run(data: Path, fakes: Path, seed: int, epochs: int, work: Path) -> tuple[float, float]:
    """FPR95 and AUROC of ``Supreme(mode="outlier_class")`` trained by ``Engine.fit`` on the real ID data and fakes."""
    from lightning.pytorch import seed_everything

    from anomalib_vlm.fodfom import FakeOutlierDataModule
    from anomalib_vlm.models import Supreme

    seed_everything(seed, workers=True)
    datamodule = FakeOutlierDataModule(
        root=data, fakes_root=fakes, fake_kinds=["outliers"], num_workers=0, train_batch_size=64, seed=seed
    )
    model = Supreme(mode="outlier_class", backbone=BACKBONE, pretrained=PRETRAINED, image_size=64, epochs=epochs)
    engine = quiet_engine(work)
    engine.fit(model=model, datamodule=datamodule)
    results = engine.test(model=model, datamodule=datamodule, verbose=False)
    metrics = {name: float(value) for result in results for name, value in result.items()}
    return metrics["image_FPR95"], metrics["image_AUROC"]


def summarise(runs: list[dict[str, object]]) -> dict[str, str]:
    """``mean ± sd`` of every metric over seeds."""
    table = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        if isinstance(values[0], tuple):
            names = ("image AUROC", "pixel AUROC") if "fake anomalies" in runs[0] else ("FPR95", "AUROC")
            for position, metric in enumerate(names):
                column = [value[position] for value in values]
                spread = statistics.stdev(column) if len(column) > 1 else 0.0
                table[f"{key} {metric}"] = (
                    f"{statistics.mean(column):.3f} ± {spread:.3f}  ({' '.join(f'{v:.3f}' for v in column)})"
                )
        else:
            table[key] = " ".join(str(value) for value in values)
    return table


def train_and_test_anomaly_clip(
    train_data: object, test_root: Path, category: str, seed: int, epochs: int, work: Path
) -> tuple[float, float]:
    """Image and pixel AUROC of AnomalyClip (small CLIP, 64 px) on ``category``'s real test split.

    ``train_data`` ``None`` tests the untrained prompts (the zero-shot starting point).
    """
    from anomalib.data import MVTecAD
    from lightning.pytorch import seed_everything

    from anomalib_vlm.models import AnomalyClip

    seed_everything(seed, workers=True)
    model = AnomalyClip(backbone=BACKBONE, pretrained=PRETRAINED, image_size=64, epochs=epochs)
    engine = quiet_engine(work)
    if train_data is not None:
        engine.fit(model=model, datamodule=train_data)
    results = engine.test(
        model=model, datamodule=MVTecAD(root=test_root, category=category, num_workers=0, seed=seed), verbose=False
    )
    metrics = {name: float(value) for result in results for name, value in result.items()}
    return metrics["image_AUROC"], metrics["pixel_AUROC"]


def anomalies_run(seed: int, work: Path, args: argparse.Namespace) -> dict[str, object]:
    """One seed of the anomaly experiment: AUROCs on real (other-generator) defects."""
    from anomalib.data import MVTecAD

    from anomalib_vlm.data import AuxiliaryData, generate_synthetic_dataset
    from anomalib_vlm.fodfom.anomalies import RenderedDefectPainter
    from anomalib_vlm.fodfom.pipeline import make_fake_anomalies

    root = work / f"anomalies_seed{seed}"
    category = args.category
    generate_synthetic_dataset(
        root / "real",
        categories=[category],
        image_size=64,
        num_train=args.normals,
        num_test_normal=16,
        num_test_per_defect=8,
        seed=seed,
    )
    fakes = make_fake_anomalies(
        root / "real", root / "fakes", RenderedDefectPainter(), categories=[category], seed=seed
    )
    fake_data = AuxiliaryData(
        source="anomalib.data.MVTecAD", root=fakes, categories=[category], split="test", num_workers=0, seed=seed
    )
    normal_only = MVTecAD(root=root / "real", category=category, num_workers=0, train_batch_size=8, seed=seed)
    common = (root / "real", category, seed, args.train_epochs, root)
    return {
        "untrained prompts": train_and_test_anomaly_clip(None, *common),
        "Perlin pasting": train_and_test_anomaly_clip(normal_only, *common),
        "fake anomalies": train_and_test_anomaly_clip(fake_data, *common),
    }


def main(argv: list[str] | None = None) -> int:
    """Run an experiment over seeds and print mean ± sd."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=("outliers", "anomalies"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("/tmp/fodfom_proof"))
    parser.add_argument("--id-classes", nargs="+", default=list(ID_CLASSES))
    parser.add_argument("--train", type=int, default=32, help="ID training images per class (captioned)")
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--ood", type=int, default=40)
    parser.add_argument("--direction", default="official")
    parser.add_argument("--slide", type=float, default=3e-5)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=30, help="head training epochs (0: training-free)")
    parser.add_argument("--supcon", action="store_true")
    parser.add_argument(
        "--lightning-epochs", type=int, default=30, help="Supreme(mode='outlier_class') epochs under Engine.fit"
    )
    parser.add_argument("--category", default="tile", help="anomalies: the synthetic category")
    parser.add_argument("--normals", type=int, default=32, help="anomalies: normal training images")
    parser.add_argument("--train-epochs", type=int, default=5, help="anomalies: AnomalyClip epochs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    run = outliers_run if args.experiment == "outliers" else anomalies_run
    runs = []
    for seed in args.seeds:
        runs.append(run(seed, args.work, args))
        print(f"seed {seed}: {json.dumps(runs[-1])}", flush=True)
    for key, value in summarise(runs).items():
        print(f"{key:28s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
