# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Pre-train the package's small CLIP contrastively on the captioned corpus (``anomalib-vlm pretrain-clip``).

The recipe behind the shipped ``anomalib-vlm-small`` / ``anomalib-vlm-synthetic`` weights: CLIP's symmetric
contrastive loss on :class:`~anomalib_vlm.data.generators.corpus.CaptionCorpus`'s training split (held-out families and
combinations are never drawn), AdamW with a linear warm-up and cosine decay, from the seeded random
initialisation of :func:`~anomalib_vlm.clip.backbone.load_clip_model`. Batch ``b`` of step ``s`` is corpus samples
``s * b ... s * b + b - 1`` whatever the number of data workers, so a run is a function of its arguments (on CPU,
for a given number of torch threads). Captions that say the same thing in other words are positives of each
other (soft targets).

The output is a half-precision safetensors state dict that ``load_clip_model(backbone, "/path/file.safetensors")``
reads; the recipe's arguments are stored in the file's metadata.

Usage::

    anomalib-vlm pretrain-clip --output small.safetensors --steps 1000      # or
    python -m anomalib_vlm.clip.pretrain --output small.safetensors --steps 1000
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from anomalib_vlm.clip.backbone import SMALL_MODEL_NAME, load_clip_model, open_clip_module
from anomalib_vlm.clip.prompts import _uses_batch_first
from anomalib_vlm.data.generators.corpus import CaptionCorpus

TRAIN_TEXT_LENGTH = 40
"""Token positions the text tower runs on during training (captions are shorter; CLIP's causal mask makes the
first positions' outputs independent of the rest, so this equals encoding at the full context length)."""

CLIP_MEAN = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(3, 1, 1)
CLIP_STD = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(3, 1, 1)


class CorpusBatches(Dataset):
    """Batch ``i`` of the corpus's training split: normalised images, caption tokens and content keys."""

    def __init__(self, corpus: CaptionCorpus, batch_size: int, backbone: str, split: str = "train") -> None:
        self.corpus, self.batch_size, self.backbone, self.split = corpus, batch_size, backbone, split

    def __len__(self) -> int:
        """Unbounded: the recipe stops after ``--steps`` batches."""
        return 2**31 - 1

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised images ``[b, 3, h, w]``, caption tokens ``[b, TRAIN_TEXT_LENGTH]`` and content keys ``[b]``."""
        samples = [self.corpus.sample(step * self.batch_size + i, self.split) for i in range(self.batch_size)]
        images = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2).float() / 255
        tokens = open_clip_module().get_tokenizer(self.backbone)([s.caption for s in samples])[:, :TRAIN_TEXT_LENGTH]
        keys = {key: i for i, key in enumerate(dict.fromkeys(s.key for s in samples))}
        return (images - CLIP_MEAN) / CLIP_STD, tokens, torch.tensor([keys[s.key] for s in samples])


def encode_text_prefix(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ``encode_text`` on the first ``tokens.shape[1]`` positions only (same result, less compute)."""
    from open_clip.transformer import text_global_pool

    length = tokens.shape[1]
    x = model.token_embedding(tokens) + model.positional_embedding[:length]
    if _uses_batch_first(model):
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    else:
        x = model.transformer(x.permute(1, 0, 2), attn_mask=model.attn_mask[:length, :length]).permute(1, 0, 2)
    x, _ = text_global_pool(model.ln_final(x), tokens, model.text_pool_type)
    return x @ model.text_projection


def contrastive_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, keys: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric cross-entropy with soft targets: samples with equal content keys are all positives."""
    logits = logit_scale.exp() * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    same = (keys[:, None] == keys[None, :]).float()
    targets = same / same.sum(1, keepdim=True)
    image_to_text = -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    text_to_image = -(targets * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (image_to_text + text_to_image) / 2


def _learning_rate(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        small = parameter.ndim < 2 or "embedding" in name or "logit_scale" in name or name.endswith("class_embedding")
        (no_decay if small else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def retrieval_accuracy(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], device: torch.device) -> float:
    """Image-to-caption top-1 accuracy within one batch (a caption with the same content counts as right)."""
    images, tokens, keys = (t.to(device) for t in batch)
    image_features = F.normalize(model.encode_image(images), dim=-1)
    text_features = F.normalize(encode_text_prefix(model, tokens), dim=-1)
    predicted = (image_features @ text_features.T).argmax(1)
    return float((keys[predicted] == keys).float().mean())


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Write the model's state dict in half precision as safetensors."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)


def pretrain(args: argparse.Namespace) -> dict[str, float]:
    """Run the recipe; returns the final loss and held-out in-batch retrieval accuracies."""
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    if args.threads:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)  # before the data workers fork
    device = torch.device(
        "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device.replace("auto", "cpu")
    )
    model = load_clip_model(args.backbone, None, image_size=args.image_size).to(device)
    model.train()
    model.requires_grad_(True)
    corpus = CaptionCorpus(image_size=args.image_size or model.visual.image_size[0], seed=args.corpus_seed)
    if not any(family.startswith("photo:") for family in corpus.families()):
        msg = "The corpus's photographs need scikit-image: pip install scikit-image (or anomalib-vlm[iqa])"
        raise ImportError(msg)
    loader = DataLoader(
        CorpusBatches(corpus, args.batch_size, args.backbone),
        batch_size=None,
        num_workers=args.workers,
        prefetch_factor=4 if args.workers else None,
    )
    splits = ("heldout_family", "heldout_combination") if args.eval_every else ()
    held_out = {split: CorpusBatches(corpus, 128, args.backbone, split)[10_000] for split in splits}
    optimizer = torch.optim.AdamW(_param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    start = time.monotonic()
    progress = tqdm(total=args.steps, desc="pretrain-clip", unit="step", disable=args.quiet)
    loss_value, scores = float("nan"), {}
    for step, batch in enumerate(loader):
        if step >= args.steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, args.steps, args.lr, args.warmup)
        images, tokens, keys = (tensor.to(device) for tensor in batch)
        loss = contrastive_loss(model.encode_image(images), encode_text_prefix(model, tokens), keys, model.logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        loss_value = loss.item()
        progress.set_postfix(loss=f"{loss_value:.3f}")
        progress.update()
        if args.eval_every and ((step + 1) % args.eval_every == 0 or step + 1 == args.steps):
            model.eval()
            scores = {name: round(retrieval_accuracy(model, batch, device), 3) for name, batch in held_out.items()}
            model.train()
            progress.write(
                f"step {step + 1} loss {loss_value:.3f} held-out in-batch retrieval {scores} "
                f"{time.monotonic() - start:.0f} s"
            )
    progress.close()
    seconds = time.monotonic() - start
    metadata = {
        "backbone": args.backbone,
        "recipe": "anomalib-vlm pretrain-clip " + " ".join(args.argv),
        "arguments": json.dumps({k: v for k, v in vars(args).items() if k != "argv"}, default=str),
        "train_seconds": f"{seconds:.0f}",
        "device": str(device),
    }
    save_weights(model, Path(args.output), metadata)
    print(f"wrote {args.output} after {args.steps} steps in {seconds:.0f} s on {device}; final loss {loss_value:.3f}")
    return {"loss": loss_value, **scores}


def build_parser() -> argparse.ArgumentParser:
    """The recipe's arguments; the defaults are those of the shipped weights."""
    parser = argparse.ArgumentParser(prog="anomalib-vlm pretrain-clip", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="the .safetensors file to write")
    parser.add_argument("--backbone", default=SMALL_MODEL_NAME)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, default=None, help="defaults to the config's")
    parser.add_argument("--seed", type=int, default=0, help="torch seed (data order and dropout-free init)")
    parser.add_argument("--corpus-seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--workers", type=int, default=1, help="data-generating processes (0: in the main one)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``anomalib-vlm pretrain-clip``."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    pretrain(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
