# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Load the official GRMP-IQA checkpoints (``LXDxmu/GRMP-IQA``) into :class:`~anomalib_vlm.models.MetaIqa`.

The official code saves the state dict of its ``CustomCLIP`` (``pretrain.py`` writes ``best_prompt.pt`` from an
``nn.DataParallel``, so keys start with ``module.``; ``finetune.py`` reads ``checkpoint["state_dict"]`` when
present). Keys and where they go (ViT-B/16 shapes):

===============================================  ====================  ===========================================
official key                                     shape                 here
===============================================  ====================  ===========================================
``prompt_learner2.ctx``                          ``[4, 512]``          ``quality_prompts.context[0]``
``image_encoder.prompt_embeddings``              ``[1, 100, 768]``     ``visual_prompts.prompt_embeddings``
``image_encoder.deep_prompt_embeddings``         ``[11, 100, 768]``    ``visual_prompts.deep_prompt_embeddings``
``image_encoder.prompt_proj.{weight,bias}``      ``[768, 768]``        ``visual_prompts.prompt_proj``
``image_encoder.prompt_norm.{weight,bias}``      ``[768]``             ``visual_prompts.prompt_norm``
``image_encoder.<clip vision key>``                                    ``clip.visual.<key>`` (compared, see below)
``text_encoder.<clip text key>``, ``logit_scale``                      ``clip.<key>`` (compared, see below)
``prompt_learner2.token_{prefix,suffix}``                              compared with this model's token embeddings
===============================================  ====================  ===========================================

The file also holds the whole CLIP. Every CLIP tensor is compared with this model's backbone: equal ones are
skipped; the last ``finetune_blocks`` blocks of both towers, ``ln_final`` and ``ln_post`` are loaded when they
differ (a fine-tuned model, then marked ``trained``); any other difference means another backbone and fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from anomalib_vlm.errors import CheckpointMismatchError
from anomalib_vlm.official_checkpoints import read_checkpoint

if TYPE_CHECKING:
    from .lightning_model import MetaIqa
    from .torch_model import MetaIqaModel

_WHAT = "an official GRMP-IQA checkpoint (a CustomCLIP state dict with prompt_learner2.ctx, image_encoder.*)"
_VISUAL_PROMPT_KEYS = (
    "prompt_embeddings",
    "deep_prompt_embeddings",
    "prompt_proj.weight",
    "prompt_proj.bias",
    "prompt_norm.weight",
    "prompt_norm.bias",
)


def official_state(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The ``CustomCLIP`` state dict of an official file, ``state_dict`` wrapper and ``module.`` prefixes removed.

    Raises:
        CheckpointMismatchError: the file is not in the official layout.
    """
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        msg = f"'state_dict' holds a {type(state).__name__}, not {_WHAT}"
        raise CheckpointMismatchError(msg)
    state = {str(key).removeprefix("module."): value for key, value in state.items()}
    required = ["prompt_learner2.ctx", *(f"image_encoder.{key}" for key in _VISUAL_PROMPT_KEYS)]
    missing = [key for key in required if not isinstance(state.get(key), torch.Tensor)]
    if missing:
        msg = f"Not {_WHAT}: missing {missing} (first keys: {sorted(state)[:8]})"
        raise CheckpointMismatchError(msg)
    return state


def _clip_key(key: str) -> str | None:
    """This model's ``clip.`` state key of an official CLIP key, ``None`` for the prompt parts."""
    if key.startswith("image_encoder."):
        name = key.removeprefix("image_encoder.")
        return None if name in _VISUAL_PROMPT_KEYS else f"visual.{name}"
    if key.startswith("text_encoder."):
        return key.removeprefix("text_encoder.")
    if key == "logit_scale":
        return key
    return None


def _check_quality_prompt_texts(model: MetaIqaModel, state: Mapping[str, torch.Tensor]) -> None:
    prompts = model.quality_prompts
    own = prompts.token_embeddings.detach().float().cpu()
    for part, own_part in (("prefix", own[:, :1]), ("suffix", own[:, 1 + prompts.context_length :])):
        saved = state.get(f"prompt_learner2.token_{part}")
        if saved is None:
            continue
        if saved.shape != own_part.shape or not torch.allclose(saved.float(), own_part, rtol=1e-3, atol=1e-5):
            msg = (
                f"The checkpoint's prompt_learner2.token_{part} {list(saved.shape)} differs from this model's "
                f"{list(own_part.shape)}: its quality prompts were built on another text tower or other class words "
                "(the official ones: 'X X X X high quality.' / 'X X X X low quality.' on OpenAI ViT-B/16)"
            )
            raise CheckpointMismatchError(msg)


def load_official_checkpoint(model: MetaIqa | MetaIqaModel, path: str | Path) -> MetaIqa | MetaIqaModel:
    """Load an official GRMP-IQA checkpoint into ``model`` (Lightning or torch).

    Args:
        model (MetaIqa | MetaIqaModel): built with the checkpoint's settings: the released files need the
            defaults (``ViT-B-16`` / ``openai``, 224 px, 4 context words, 100 visual prompt tokens in all blocks).
        path (str | Path): the official file (read with ``torch.load(weights_only=True)``).

    Returns:
        MetaIqa | MetaIqaModel: ``model`` with the text context and visual prompts loaded, the fine-tuned blocks
        too when the file holds a fine-tuned model (then ``trained`` is set), and the text features refreshed.

    Raises:
        FileNotFoundError: no such file.
        CheckpointMismatchError: a file of another layout, prompts of other settings, or another backbone.
    """
    torch_model = getattr(model, "model", model)
    state = official_state(read_checkpoint(path, _WHAT))
    own = torch_model.state_dict()
    ctx = state["prompt_learner2.ctx"]
    updates = {"quality_prompts.context": ctx.reshape(1, *ctx.shape[-2:]) if ctx.ndim == 2 else ctx}
    updates |= {f"visual_prompts.{key}": state[f"image_encoder.{key}"] for key in _VISUAL_PROMPT_KEYS}
    for key, value in updates.items():
        if own[key].shape != value.shape:
            msg = (
                f"The checkpoint's {key.replace('quality_prompts.context', 'text context')} has shape "
                f"{list(value.shape)}, this model {list(own[key].shape)}: build MetaIqa with the official settings "
                "(prompt_context_length=4, visual_prompt_tokens=100, visual_prompt_depth=None, the backbone's width)"
            )
            raise CheckpointMismatchError(msg)
    _check_quality_prompt_texts(torch_model, state)
    finetunable = torch_model.finetuned_state_keys()
    finetuned = False
    for key, value in state.items():
        clip_key = _clip_key(key)
        own_key = None if clip_key is None else f"clip.{clip_key}"
        if own_key not in own:
            continue
        current = own[own_key]
        if current.shape == value.shape and torch.allclose(value.float(), current.float(), rtol=1e-4, atol=1e-6):
            continue
        if own_key not in finetunable or current.shape != value.shape:
            msg = (
                f"The checkpoint's {key} {list(value.shape)} differs from this model's backbone "
                f"({own_key} {list(current.shape)}) and is not one of the fine-tuned blocks: it was made for other "
                "CLIP weights (the released files: MetaIqa(backbone='ViT-B-16', pretrained='openai'))"
            )
            raise CheckpointMismatchError(msg)
        updates[own_key] = value
        finetuned = True
    with torch.no_grad():
        for key, value in updates.items():
            own[key].copy_(value.to(own[key].dtype))
        if finetuned:
            torch_model.trained.fill_(True)
    torch_model.refresh_cached_features()
    return model
