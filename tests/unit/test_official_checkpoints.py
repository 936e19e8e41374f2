# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The papers' released checkpoints load: AnomalyCLIP's ``epoch_15.pth`` and GRMP-IQA's ``CustomCLIP`` state dicts.

The files here are built in the official key layout (the names and shapes of the official modules'
``state_dict()``: AnomalyCLIP's ``{"prompt_learner": AnomalyCLIP_PromptLearner.state_dict()}``; GRMP-IQA's
``nn.DataParallel(CustomCLIP).state_dict()``) around the tiny CLIP, whose weights stand in for OpenAI's. That the
loaded prompts give the official code's outputs was checked side by side on identical random weights (READMEs).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from anomalib import LearningType

from anomalib_vlm import official_checkpoints
from anomalib_vlm.errors import CheckpointMismatchError
from anomalib_vlm.models import AnomalyClip
from anomalib_vlm.models.anomaly_clip.official import load_official_checkpoint as load_anomaly_clip
from anomalib_vlm.models.meta_iqa import MetaIqa
from anomalib_vlm.models.meta_iqa.official import load_official_checkpoint as load_meta_iqa

AC_TINY = {"backbone": "anomalib-vlm-tiny", "pretrained": None, "image_size": 64}
IQA_TINY = {"backbone": "anomalib-vlm-tiny", "pretrained": None, "image_size": 32, "visual_prompt_tokens": 4}


# ----------------------------------------------------------------------------------------------------------------
# AnomalyCLIP
# ----------------------------------------------------------------------------------------------------------------
def _official_anomaly_clip_state(model: AnomalyClip, seed: int = 0) -> dict[str, torch.Tensor]:
    """``AnomalyCLIP_PromptLearner.state_dict()`` for n_ctx 12, depth 9, t_n_ctx 4 on ``model``'s text tower."""
    generator = torch.Generator().manual_seed(seed)
    prompts = model.model.object_agnostic_prompts
    width, length = prompts.context.shape[-1], prompts.context_length
    state: dict[str, torch.Tensor] = {}
    for row, name in enumerate(("pos", "neg")):
        state[f"ctx_{name}"] = torch.randn(1, 1, length, width, generator=generator) * 0.5
        embeddings = prompts.token_embeddings[row].detach().clone()
        state[f"token_prefix_{name}"] = embeddings[:1].reshape(1, 1, 1, width)
        state[f"token_suffix_{name}"] = embeddings[1 + length :].reshape(1, 1, -1, width)
        state[f"tokenized_prompts_{name}"] = prompts.tokens[row].to(torch.int32).reshape(1, 1, -1)
    for index in range(8):
        state[f"compound_prompts_text.{index}"] = torch.randn(4, width, generator=generator) * 0.5
        state[f"compound_prompt_projections.{index}.weight"] = torch.randn(896, width, generator=generator)
        state[f"compound_prompt_projections.{index}.bias"] = torch.zeros(896)
    return state


def test_official_anomaly_clip_prompts_load_and_count_as_trained(tmp_path: Path) -> None:
    """ctx_pos / ctx_neg become the normal / abnormal context; the model becomes zero-shot.

    The deep prompts are rounded to float16, as the official text blocks use them, and the text features are
    refreshed.
    """
    torch.manual_seed(0)
    model = AnomalyClip(**AC_TINY)
    assert model.learning_type == LearningType.ONE_CLASS
    state = _official_anomaly_clip_state(model)
    path = tmp_path / "epoch_15.pth"
    torch.save({"prompt_learner": state}, path)
    assert load_anomaly_clip(model, path) is model
    prompts = model.model.object_agnostic_prompts
    assert torch.equal(prompts.context[0], state["ctx_pos"][0, 0])
    assert torch.equal(prompts.context[1], state["ctx_neg"][0, 0])
    official_deep = torch.stack([state[f"compound_prompts_text.{i}"] for i in range(8)])
    assert torch.equal(prompts.deep_prompts, official_deep.half().float())
    assert not torch.equal(prompts.deep_prompts, official_deep)  # the float16 rounding is really applied
    assert bool(model.model.trained)
    assert model.learning_type == LearningType.ZERO_SHOT
    assert model.trainer_arguments == {}
    with torch.no_grad():
        assert torch.allclose(model.model.text_features, model.model.encode_prompts(), atol=1e-6)
    assert "compound_prompt_projections.0.weight" not in model.state_dict()  # the unused layers are not created


def test_official_anomaly_clip_checkpoint_errors(tmp_path: Path) -> None:
    """Other layouts, other prompt settings, another text tower and pickled objects fail with a clear error."""
    torch.manual_seed(0)
    model = AnomalyClip(**AC_TINY)
    state = _official_anomaly_clip_state(model)
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"model.weight": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointMismatchError, match=r"Not an official AnomalyCLIP checkpoint.*ctx_pos"):
        load_anomaly_clip(model, other)
    short = tmp_path / "short.pth"
    torch.save(
        {"prompt_learner": state | {"ctx_pos": state["ctx_pos"][..., :8, :], "ctx_neg": state["ctx_neg"][..., :8, :]}},
        short,
    )
    with pytest.raises(CheckpointMismatchError, match=r"8 context words.*prompt_context_length=8"):
        load_anomaly_clip(model, short)
    shallow = tmp_path / "shallow.pth"
    torch.save(
        {"prompt_learner": {k: v for k, v in state.items() if not k.startswith("compound_prompts_text.7")}}, shallow
    )
    with pytest.raises(CheckpointMismatchError, match="prompt_depth=8"):
        load_anomaly_clip(model, shallow)
    tower = tmp_path / "tower.pth"
    torch.save({"prompt_learner": state | {"token_suffix_neg": state["token_suffix_neg"] + 0.1}}, tower)
    with pytest.raises(CheckpointMismatchError, match=r"token_suffix_neg.*another text tower"):
        load_anomaly_clip(model, tower)
    pickled = tmp_path / "pickled.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole module: loading it would run pickled code
    with pytest.raises(CheckpointMismatchError, match="weights_only=True"):
        load_anomaly_clip(model, pickled)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_anomaly_clip(model, tmp_path / "missing.pth")
    assert not bool(model.model.trained)  # nothing was loaded by the failures


def test_command_writes_a_checkpoint_that_anomalib_loads(tmp_path: Path) -> None:
    """``anomalib-vlm official-checkpoint anomaly_clip epoch_15.pth --output x.ckpt``, then ``load_from_checkpoint``."""
    torch.manual_seed(0)
    state = _official_anomaly_clip_state(AnomalyClip(**AC_TINY))
    source, output = tmp_path / "epoch_15.pth", tmp_path / "out" / "anomaly_clip.ckpt"
    torch.save({"prompt_learner": state}, source)
    args = ["--backbone", "anomalib-vlm-tiny", "--pretrained", "none", "--image-size", "64"]
    assert official_checkpoints.main(["anomaly_clip", str(source), "--output", str(output), *args]) == 0
    loaded = AnomalyClip.load_from_checkpoint(output)
    assert loaded.learning_type == LearningType.ZERO_SHOT
    assert torch.equal(loaded.model.object_agnostic_prompts.context[1], state["ctx_neg"][0, 0])
    assert not any(key.startswith("model.clip.") for key in torch.load(output, weights_only=False)["state_dict"])


# ----------------------------------------------------------------------------------------------------------------
# GRMP-IQA
# ----------------------------------------------------------------------------------------------------------------
def _official_grmp_state(model: MetaIqa, seed: int = 0) -> dict[str, torch.Tensor]:
    """``nn.DataParallel(CustomCLIP).state_dict()`` of the official pretrain.py around ``model``'s CLIP."""
    generator = torch.Generator().manual_seed(seed)
    torch_model = model.model
    clip_state = torch_model.clip.state_dict()
    prompts = torch_model.quality_prompts
    width = prompts.context.shape[-1]
    state = {
        "prompt_learner2.ctx": torch.randn(prompts.context_length, width, generator=generator) * 0.5,
        "prompt_learner2.token_prefix": prompts.token_embeddings[:, :1].detach().clone(),
        "prompt_learner2.token_suffix": prompts.token_embeddings[:, 1 + prompts.context_length :].detach().clone(),
        "logit_scale": clip_state["logit_scale"].clone(),
    }
    for key, value in torch_model.visual_prompts.state_dict().items():
        if key != "positional_embedding":
            state[f"image_encoder.{key}"] = torch.randn(value.shape, generator=generator) * 0.5
    for key, value in clip_state.items():
        if key.startswith("visual."):
            state[f"image_encoder.{key.removeprefix('visual.')}"] = value.clone()
        elif key != "logit_scale":
            state[f"text_encoder.{key}"] = value.clone()
    return {f"module.{key}": value for key, value in state.items()}


def test_official_grmp_prompts_load_through_meta_prompts(tmp_path: Path) -> None:
    """``best_prompt.pt`` (module.-prefixed CustomCLIP state) loads as ``meta_prompts``; CLIP stays as it was."""
    torch.manual_seed(0)
    state = _official_grmp_state(MetaIqa(**IQA_TINY))
    path = tmp_path / "best_prompt.pt"
    torch.save(state, path)
    torch.manual_seed(1)
    model = MetaIqa(**IQA_TINY, meta_prompts=str(path))
    assert torch.equal(model.model.quality_prompts.context[0], state["module.prompt_learner2.ctx"])
    for key in ("prompt_embeddings", "deep_prompt_embeddings", "prompt_proj.weight", "prompt_norm.bias"):
        assert torch.equal(model.model.visual_prompts.state_dict()[key], state[f"module.image_encoder.{key}"]), key
    assert not bool(model.model.trained)
    fresh = MetaIqa(**IQA_TINY)
    assert all(torch.equal(v, fresh.model.clip.state_dict()[k]) for k, v in model.model.clip.state_dict().items())
    model.model.eval()
    with torch.no_grad():
        assert torch.allclose(model.model.text_features, model.model.encode_quality_prompts(), atol=1e-6)


def test_official_grmp_finetuned_model_loads_its_blocks(tmp_path: Path) -> None:
    """A fine-tuned CustomCLIP ({"state_dict": ...}) brings its last blocks, ln_final and ln_post: marked fine-tuned."""
    torch.manual_seed(0)
    model = MetaIqa(**IQA_TINY)
    state = {key.removeprefix("module."): value for key, value in _official_grmp_state(model).items()}
    last_vision = len(model.model.clip.visual.transformer.resblocks) - 1
    changed = {
        f"image_encoder.transformer.resblocks.{last_vision}.mlp.c_fc.weight": 0.01,
        "text_encoder.transformer.resblocks.11.attn.in_proj_weight": 0.01,
        "text_encoder.ln_final.weight": 0.1,
    }
    for key, delta in changed.items():
        state[key] = state[key] + delta
    path = tmp_path / "clive_50.pt"
    torch.save({"state_dict": state}, path)
    load_meta_iqa(model, path)
    assert bool(model.model.trained)
    own = model.model.clip.state_dict()
    assert torch.equal(own[f"visual.transformer.resblocks.{last_vision}.mlp.c_fc.weight"], state[next(iter(changed))])
    assert torch.equal(own["ln_final.weight"], state["text_encoder.ln_final.weight"])
    assert f"model.clip.visual.transformer.resblocks.{last_vision}.mlp.c_fc.weight" in model.kept_frozen_keys()


def test_official_grmp_checkpoint_errors(tmp_path: Path) -> None:
    """Another layout, another backbone, other prompt settings: one clear error each."""
    torch.manual_seed(0)
    model = MetaIqa(**IQA_TINY)
    state = _official_grmp_state(model)
    other = tmp_path / "other.pt"
    torch.save({"model.weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointMismatchError, match=r"Not an official GRMP-IQA checkpoint.*prompt_learner2.ctx"):
        load_meta_iqa(model, other)
    backbone = tmp_path / "backbone.pt"
    torch.save(state | {"module.image_encoder.conv1.weight": state["module.image_encoder.conv1.weight"] + 1}, backbone)
    with pytest.raises(CheckpointMismatchError, match=r"image_encoder.conv1.weight.*not one of the fine-tuned blocks"):
        load_meta_iqa(model, backbone)
    tokens = tmp_path / "tokens.pt"
    prompts = state["module.image_encoder.prompt_embeddings"]
    torch.save(state | {"module.image_encoder.prompt_embeddings": prompts[:, :2]}, tokens)
    with pytest.raises(CheckpointMismatchError, match="visual_prompt_tokens=100"):
        load_meta_iqa(model, tokens)
    words = tmp_path / "words.pt"
    torch.save(state | {"module.prompt_learner2.token_suffix": state["module.prompt_learner2.token_suffix"] * 2}, words)
    with pytest.raises(CheckpointMismatchError, match=r"token_suffix.*other class words"):
        MetaIqa(**IQA_TINY, meta_prompts=str(words))
    pickled = tmp_path / "pickled.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)  # a whole module: loading it would run pickled code
    with pytest.raises(CheckpointMismatchError, match="weights_only=True"):
        MetaIqa(**IQA_TINY, meta_prompts=str(pickled))


def test_command_imports_a_grmp_checkpoint(tmp_path: Path) -> None:
    """``anomalib-vlm official-checkpoint meta_iqa best_prompt.pt --output x.ckpt`` with extra model arguments."""
    torch.manual_seed(0)
    state = _official_grmp_state(MetaIqa(**IQA_TINY))
    source, output = tmp_path / "best_prompt.pt", tmp_path / "meta_iqa.ckpt"
    torch.save(state, source)
    args = ["--backbone", "anomalib-vlm-tiny", "--pretrained", "none", "--image-size", "32"]
    args += ["--init-arg", "visual_prompt_tokens=4"]
    assert official_checkpoints.main(["meta_iqa", str(source), "--output", str(output), *args]) == 0
    loaded = MetaIqa.load_from_checkpoint(output)
    assert torch.equal(loaded.model.quality_prompts.context[0], state["module.prompt_learner2.ctx"])
    assert torch.equal(
        loaded.model.visual_prompts.deep_prompt_embeddings, state["module.image_encoder.deep_prompt_embeddings"]
    )
    with pytest.raises(ValueError, match="NAME=VALUE"):
        official_checkpoints.main(["meta_iqa", str(source), "--output", str(output), "--init-arg", "oops"])
