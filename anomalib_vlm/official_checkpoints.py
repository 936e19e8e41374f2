# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

r"""Start from the papers' released prompts: import official AnomalyCLIP and GRMP-IQA checkpoints.

* AnomalyCLIP (``zqhang/AnomalyCLIP``): ``checkpoints/9_12_4_multiscale/epoch_15.pth`` (trained on VisA, for
  MVTec AD) and ``checkpoints/9_12_4_multiscale_visa/epoch_15.pth`` (trained on MVTec AD, for VisA and the rest),
  read by :func:`anomalib_vlm.models.anomaly_clip.official.load_official_checkpoint`.
* GRMP-IQA (``LXDxmu/GRMP-IQA``): a state dict of its ``CustomCLIP`` (``best_prompt.pt`` of ``pretrain.py``, or a
  fine-tuned model), read by :func:`anomalib_vlm.models.meta_iqa.official.load_official_checkpoint`.

Both readers use ``torch.load(weights_only=True)``: a file is only ever read as tensors, never run as pickled code.
The command (``anomalib-vlm official-checkpoint``, or ``python -m anomalib_vlm.official_checkpoints``) writes an
anomalib-vlm Lightning checkpoint (prompts and the backbone's identity only), so the rest is anomalib's usual
``--ckpt_path``:

Example:
    Official AnomalyCLIP prompts trained on MVTec AD, tested zero-shot on VisA::

        anomalib-vlm official-checkpoint anomaly_clip epoch_15.pth --output anomaly_clip_mvtec.ckpt
        anomalib-vlm test --model AnomalyClip --data anomalib.data.Visa --data.category pcb1 \
            --ckpt_path anomaly_clip_mvtec.ckpt

    GRMP-IQA's meta-pre-trained prompts (then fine-tune, or score)::

        anomalib-vlm official-checkpoint meta_iqa best_prompt.pt --output meta_iqa.ckpt

In Python::

    from anomalib_vlm.models import AnomalyClip
    from anomalib_vlm.models.anomaly_clip.official import load_official_checkpoint
    model = load_official_checkpoint(AnomalyClip(), "epoch_15.pth")   # ViT-L-14-336 / openai, 518 px
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from anomalib_vlm.clip.backbone import load_weights_only
from anomalib_vlm.errors import CheckpointMismatchError

MODELS = {
    "anomaly_clip": ("anomalib_vlm.models.anomaly_clip", "AnomalyClip"),
    "meta_iqa": ("anomalib_vlm.models.meta_iqa", "MetaIqa"),
}
"""Model name on the command line -> (package with an ``official`` module, Lightning class)."""


def read_checkpoint(path: str | Path, what: str) -> Mapping[str, Any]:
    """Read an official checkpoint as tensors only (``torch.load(weights_only=True)``).

    Args:
        path (str | Path): the file.
        what (str): what the file should be, for the error messages (e.g. ``"an AnomalyCLIP checkpoint"``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointMismatchError: the file is not a dictionary of tensors that loads without running pickled code.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"Official checkpoint not found: {path}"
        raise FileNotFoundError(msg)
    try:
        checkpoint = load_weights_only(path, what)
    except ValueError as error:
        msg = (
            f"{error} (read with torch.load(weights_only=True)). If it holds a pickled model object rather than a "
            "state dict, and you trust the file, convert "
            "it once where the official code is importable: load the full object with torch.load (weights-only "
            "mode off), then torch.save(model.state_dict(), 'state_dict.pt'), and pass that file."
        )
        raise CheckpointMismatchError(msg) from None
    if not isinstance(checkpoint, Mapping):
        msg = f"{path} holds a {type(checkpoint).__name__}, not {what} (a dictionary of tensors)"
        raise CheckpointMismatchError(msg)
    return checkpoint


def save_checkpoint(model: Any, path: str | Path) -> Path:
    """Write ``model`` as a Lightning checkpoint that ``--ckpt_path`` and ``load_from_checkpoint`` accept.

    The model's own ``on_save_checkpoint`` keeps only what was learned plus the backbone's identity.
    """
    from lightning.pytorch import Trainer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anomalib-vlm official-checkpoint",
        description="Import an official AnomalyCLIP or GRMP-IQA checkpoint into an anomalib-vlm Lightning checkpoint.",
    )
    parser.add_argument("model", choices=sorted(MODELS), help="which paper's checkpoint")
    parser.add_argument("checkpoint", help="the official file (epoch_15.pth, best_prompt.pt, ...)")
    parser.add_argument("--output", required=True, help="Lightning checkpoint to write (.ckpt)")
    parser.add_argument("--backbone", default=None, help="open_clip model (default: the paper's)")
    parser.add_argument("--pretrained", default=None, help="open_clip tag or local weights file, 'none' = random")
    parser.add_argument("--image-size", type=int, default=None, help="model input side (default: the paper's)")
    parser.add_argument("--cache-dir", default=None, help="open_clip weight cache folder")
    parser.add_argument(
        "--init-arg",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other model argument, VALUE read as YAML (e.g. visual_prompt_tokens=4); repeatable",
    )
    return parser


def _init_args(pairs: Sequence[str]) -> dict[str, Any]:
    import yaml

    kwargs = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name.strip():
            msg = f"--init-arg takes NAME=VALUE, got {pair!r}"
            raise ValueError(msg)
        kwargs[name.strip()] = yaml.safe_load(value)
    return kwargs


def main(argv: Sequence[str] | None = None) -> int:
    """Build the model, load the official checkpoint into it, and write a Lightning checkpoint."""
    import importlib

    args = _parser().parse_args(argv)
    package, class_name = MODELS[args.model]
    model_class = getattr(importlib.import_module(package), class_name)
    loader = importlib.import_module(f"{package}.official").load_official_checkpoint
    kwargs: dict[str, Any] = _init_args(args.init_arg)
    if args.backbone is not None:
        kwargs["backbone"] = args.backbone
    if args.pretrained is not None:
        kwargs["pretrained"] = None if args.pretrained.lower() == "none" else args.pretrained
    if args.image_size is not None:
        kwargs["image_size"] = args.image_size
    if args.cache_dir is not None:
        kwargs["cache_dir"] = args.cache_dir
    model = loader(model_class(**kwargs), args.checkpoint)
    print(
        f"{class_name} with the official prompts of {args.checkpoint} written to {save_checkpoint(model, args.output)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
