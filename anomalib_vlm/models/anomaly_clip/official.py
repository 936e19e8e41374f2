# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Load the official AnomalyCLIP prompt checkpoints (``zqhang/AnomalyCLIP``, ``epoch_15.pth``).

The official ``train.py`` saves ``{"prompt_learner": AnomalyCLIP_PromptLearner.state_dict()}``. Of its entries
only three kinds are learned and used:

========================================  ==================  ============================================
official key                              shape (ViT-L/14)    here
========================================  ==================  ============================================
``ctx_pos``                               ``[1, 1, 12, 768]`` ``object_agnostic_prompts.context[0]`` (normal)
``ctx_neg``                               ``[1, 1, 12, 768]`` ``object_agnostic_prompts.context[1]`` (abnormal)
``compound_prompts_text.{0..7}``          ``[4, 768]`` each   ``object_agnostic_prompts.deep_prompts[i]``
========================================  ==================  ============================================

``compound_prompt_projections.*`` (eight ``Linear(768, 896)`` the official forward never calls) are ignored.
``token_prefix_*`` / ``token_suffix_*`` (the frozen token embeddings of ``X ... X object.`` and
``X ... X damaged object.``) and ``tokenized_prompts_*`` are compared with this model's own, which checks that the
checkpoint was made for this text tower and these prompt texts.

The official text blocks cast every deep prompt to float16 (``.half()``) before writing it into the sequence, so
what the released prompts do is what their float16 rounding does. The loader stores that rounding once; the
model's forward (which does not cast) then computes what the official code computes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from anomalib_vlm.errors import CheckpointMismatchError
from anomalib_vlm.official_checkpoints import read_checkpoint

if TYPE_CHECKING:
    from .lightning_model import AnomalyClip
    from .torch_model import AnomalyClipModel

_DEEP_KEY = re.compile(r"^compound_prompts_text\.(\d+)$")
_WHAT = "an official AnomalyCLIP checkpoint ({'prompt_learner': state_dict} with ctx_pos, ctx_neg, ...)"


def official_prompt_state(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The prompt learner's state dict inside an official checkpoint (or the state dict itself).

    Raises:
        CheckpointMismatchError: the mapping is not in the official layout.
    """
    state = checkpoint.get("prompt_learner", checkpoint)
    if not isinstance(state, Mapping):
        msg = f"'prompt_learner' holds a {type(state).__name__}, not a state dict: not {_WHAT}"
        raise CheckpointMismatchError(msg)
    missing = [key for key in ("ctx_pos", "ctx_neg") if not isinstance(state.get(key), torch.Tensor)]
    if missing:
        keys = sorted(map(str, state))[:8]
        msg = f"Not {_WHAT}: no {missing} among its keys (first keys: {keys})"
        raise CheckpointMismatchError(msg)
    return dict(state)


def convert_official_prompts(state: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(context [2, E, W], deep_prompts [depth - 1, L, W] or None)`` from an official prompt-learner state.

    The deep prompts come back rounded to float16 precision (as the official forward uses them), in float32.

    Raises:
        CheckpointMismatchError: the context is not one normal and one abnormal prompt of equal shape.
    """
    ctx_pos, ctx_neg = state["ctx_pos"], state["ctx_neg"]
    if ctx_pos.ndim < 2 or ctx_pos.shape != ctx_neg.shape or ctx_pos[..., 0, 0].numel() != 1:
        msg = (
            f"ctx_pos {list(ctx_pos.shape)} and ctx_neg {list(ctx_neg.shape)} must both be [1, 1, E, W] (one "
            "object class, one state each): not the released object-agnostic prompts"
        )
        raise CheckpointMismatchError(msg)
    context = torch.stack([ctx_pos.reshape(ctx_pos.shape[-2:]), ctx_neg.reshape(ctx_neg.shape[-2:])]).float()
    indices = sorted(int(match.group(1)) for key in state if (match := _DEEP_KEY.match(str(key))))
    if indices != list(range(len(indices))):
        msg = f"compound_prompts_text entries {indices} are not numbered 0..n-1"
        raise CheckpointMismatchError(msg)
    if not indices:
        return context, None
    deep = [state[f"compound_prompts_text.{index}"] for index in indices]
    if len({tuple(prompt.shape) for prompt in deep}) != 1 or deep[0].ndim != 2:
        msg = f"compound_prompts_text entries must all be [L, W], got {[list(p.shape) for p in deep]}"
        raise CheckpointMismatchError(msg)
    # The official ResidualAttentionBlock_learnable_token applies .half() to each deep prompt before use.
    return context, torch.stack(deep).half().float()


def _check_prompt_texts(model: AnomalyClipModel, state: Mapping[str, torch.Tensor]) -> None:
    """Compare the official frozen token embeddings and ids of the two prompts with this model's own."""
    prompts = model.object_agnostic_prompts
    length = prompts.context_length
    for row, name in enumerate(("pos", "neg")):
        own_embeddings = prompts.token_embeddings[row].detach().float().cpu()
        for part, own in (("prefix", own_embeddings[:1]), ("suffix", own_embeddings[1 + length :])):
            saved = state.get(f"token_{part}_{name}")
            if saved is None:
                continue
            saved = saved.float().reshape(-1, saved.shape[-1])
            if saved.shape != own.shape or not torch.allclose(saved, own, rtol=1e-3, atol=1e-5):
                msg = (
                    f"The checkpoint's token_{part}_{name} {list(saved.shape)} differs from this model's token "
                    f"embeddings {list(own.shape)}: the prompts were learned on another text tower or prompt text "
                    "(the released ones on OpenAI ViT-L/14@336px: AnomalyClip(backbone='ViT-L-14-336', "
                    "pretrained='openai'))."
                )
                raise CheckpointMismatchError(msg)
        saved_tokens = state.get(f"tokenized_prompts_{name}")
        if saved_tokens is not None:
            saved_tokens = saved_tokens.reshape(-1).long().cpu()
            own_tokens = prompts.tokens[row].long().cpu()
            if saved_tokens.shape != own_tokens.shape or not torch.equal(saved_tokens, own_tokens):
                msg = (
                    f"The checkpoint's {name} prompt has other token ids than '{' '.join(['X'] * length)} "
                    f"{prompts.texts[row]}.': not the object-agnostic prompts this model builds"
                )
                raise CheckpointMismatchError(msg)


def load_official_checkpoint(
    model: AnomalyClip | AnomalyClipModel,
    path: str | Path,
) -> AnomalyClip | AnomalyClipModel:
    """Load official AnomalyCLIP prompts into ``model`` (Lightning or torch); the prompts then count as trained.

    Args:
        model (AnomalyClip | AnomalyClipModel): built with the checkpoint's settings: the released files need the
            defaults (``ViT-L-14-336`` / ``openai``, 12 context words, depth 9, deep length 4).
        path (str | Path): the official ``.pth`` file (read with ``torch.load(weights_only=True)``).

    Returns:
        AnomalyClip | AnomalyClipModel: ``model``, with the prompts loaded, ``trained`` set (an
        :class:`~anomalib_vlm.models.AnomalyClip` is then a zero-shot model) and the text features refreshed.

    Raises:
        FileNotFoundError: no such file.
        CheckpointMismatchError: a file of another layout, or prompts of other settings or another text tower.
    """
    torch_model = getattr(model, "model", model)
    state = official_prompt_state(read_checkpoint(path, _WHAT))
    context, deep = convert_official_prompts(state)
    prompts = torch_model.object_agnostic_prompts
    if context.shape != prompts.context.shape:
        msg = (
            f"The checkpoint's prompts have {context.shape[1]} context words of width {context.shape[2]}; this "
            f"model has {prompts.context.shape[1]} of width {prompts.context.shape[2]}. Build it with "
            f"prompt_context_length={context.shape[1]} on the backbone the prompts were learned on."
        )
        raise CheckpointMismatchError(msg)
    own_deep = prompts.deep_prompts
    deep_shape = None if deep is None else tuple(deep.shape)
    if deep_shape != (None if own_deep is None else tuple(own_deep.shape)):
        depth, length = (1, 0) if deep is None else (deep.shape[0] + 1, deep.shape[1])
        msg = (
            f"The checkpoint has deep prompts {deep_shape} (depth {depth}, length {length}); this model "
            f"{None if own_deep is None else tuple(own_deep.shape)}. Build it with prompt_depth={depth}"
            + (f", prompt_deep_length={length}." if deep is not None else ".")
        )
        raise CheckpointMismatchError(msg)
    _check_prompt_texts(torch_model, state)
    with torch.no_grad():
        prompts.context.copy_(context)
        if deep is not None:
            prompts.deep_prompts.copy_(deep)
        torch_model.trained.fill_(True)
    torch_model.refresh_cached_features()
    return model
