# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The CLIP layer: loading (and its errors), dense features with DPAM, prompts."""

from __future__ import annotations

import re
import time
import urllib.error

import pytest
import torch
import torch.nn.functional as F

from anomalib_vlm.clip import (
    TINY_MODEL_NAME,
    DualPathVisionEncoder,
    PromptLearner,
    backbone_fingerprint,
    encode_fixed_texts,
    load_clip_model,
    tokenize,
)
from anomalib_vlm.errors import WeightsUnavailableError
from tests.helpers import set_network


@pytest.fixture(scope="module")
def clip() -> torch.nn.Module:
    return load_clip_model(TINY_MODEL_NAME, pretrained=None)


class TestLoading:
    @staticmethod
    def test_tiny_model_is_seeded_frozen_and_in_eval_mode(clip: torch.nn.Module) -> None:
        again = load_clip_model(TINY_MODEL_NAME, pretrained=None)
        for (name, first), (_, second) in zip(clip.state_dict().items(), again.state_dict().items(), strict=True):
            assert torch.equal(first, second), name
        assert backbone_fingerprint(clip) == backbone_fingerprint(again)
        assert not any(parameter.requires_grad for parameter in clip.parameters())
        assert not clip.training

    @staticmethod
    def test_loading_does_not_disturb_the_callers_random_state() -> None:
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        load_clip_model(TINY_MODEL_NAME, pretrained=None)
        assert torch.equal(torch.rand(3), expected)

    @staticmethod
    def test_local_checkpoint_file_loads_its_weights(clip: torch.nn.Module, tmp_path) -> None:  # noqa: ANN001
        changed = {name: value + 0.5 for name, value in clip.state_dict().items()}
        path = tmp_path / "tiny.pt"
        torch.save(changed, path)
        loaded = load_clip_model(TINY_MODEL_NAME, pretrained=str(path))
        assert torch.equal(loaded.token_embedding.weight, changed["token_embedding.weight"])
        assert backbone_fingerprint(loaded) != backbone_fingerprint(clip)

    @staticmethod
    def test_unknown_backbone_and_tag_name_the_problem() -> None:
        with pytest.raises(ValueError, match="Unknown CLIP backbone 'ViT-Z-99'"):
            load_clip_model("ViT-Z-99", pretrained=None)
        with pytest.raises(ValueError, match=r"Unknown pretrained tag 'nope' for CLIP model 'ViT-B-16'.*openai"):
            load_clip_model("ViT-B-16", pretrained="nope")

    @staticmethod
    def test_missing_or_wrong_checkpoint_file(tmp_path) -> None:  # noqa: ANN001
        with pytest.raises(FileNotFoundError, match=re.escape("missing.pt")):
            load_clip_model(TINY_MODEL_NAME, pretrained=str(tmp_path / "missing.pt"))
        wrong = tmp_path / "wrong.pt"
        torch.save({"token_embedding.weight": torch.zeros(3, 3)}, wrong)
        with pytest.raises(ValueError, match="does not fit CLIP model"):
            load_clip_model(TINY_MODEL_NAME, pretrained=str(wrong))

    @staticmethod
    @pytest.mark.parametrize(
        ("tag", "downloader"),
        [("openai", "download_pretrained_from_url"), ("laion2b_s34b_b88k", "download_pretrained_from_hf")],
    )
    def test_unreachable_weights_fail_fast_with_one_clear_message(
        monkeypatch: pytest.MonkeyPatch,
        tag: str,
        downloader: str,
    ) -> None:
        """No network: one message naming model and tag and how to supply weights, no urllib traceback."""
        import open_clip.pretrained

        def offline(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

        # The host answers, but the download itself fails (a proxy refusing it, say).
        set_network(monkeypatch, reachable=True)
        monkeypatch.setattr(open_clip.pretrained, downloader, offline)
        if downloader == "download_pretrained_from_hf":
            import open_clip.factory

            monkeypatch.setattr(open_clip.factory, "download_pretrained_from_hf", offline)
        # Make sure nothing was cached on this machine, which would load instead of failing.
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        started = time.perf_counter()
        with pytest.raises(WeightsUnavailableError) as error:
            load_clip_model("ViT-B-16", pretrained=tag, cache_dir="/nonexistent-cache")
        assert time.perf_counter() - started < 60
        message = str(error.value)
        assert "'ViT-B-16'" in message
        assert f"'{tag}'" in message
        assert "pretrained='/path/to/ViT-B-16.pt'" in message
        assert "cache" in message
        assert error.value.__cause__ is None
        assert error.value.__suppress_context__

    @staticmethod
    def test_unreachable_host_fails_before_any_download(monkeypatch: pytest.MonkeyPatch) -> None:
        import open_clip.pretrained

        def must_not_run(*args, **kwargs) -> None:  # noqa: ANN002, ANN003
            raise AssertionError("a download was attempted")

        set_network(monkeypatch, reachable=False)
        monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_url", must_not_run)
        with pytest.raises(WeightsUnavailableError, match="'openai' for CLIP model 'ViT-B-32'"):
            load_clip_model("ViT-B-32", pretrained="openai", cache_dir="/nonexistent-cache")


class TestDualPathVisionEncoder:
    @staticmethod
    @pytest.mark.parametrize(
        ("feature_layers", "dpam_layers"),
        [((24,), 19), ((), 0), ((24,), 0), ((12,), 0)],
        ids=["dpam-last-block-class-token-only", "global-only", "original-last-block-kept", "original-middle"],
    )
    def test_global_feature_matches_open_clip(
        clip: torch.nn.Module,
        feature_layers: tuple[int, ...],
        dpam_layers: int,
    ) -> None:
        """Whether or not the last block runs for the class token alone, the global feature is CLIP's."""
        images = torch.randn(2, 3, 128, 128)
        encoder = DualPathVisionEncoder(clip.visual, 128, feature_layers, dpam_layers, global_ln_post=True)
        with torch.no_grad():
            assert torch.allclose(encoder(images).global_feature, clip.encode_image(images), atol=1e-5)

    @staticmethod
    def test_dpam_patch_tokens_follow_the_vv_surgery_path(clip: torch.nn.Module) -> None:
        """Surgery tokens = first DPAM block's input + sum of V-V attention outputs on the original stream."""
        images = torch.randn(1, 3, 128, 128)
        dpam_layers = 3
        encoder = DualPathVisionEncoder(clip.visual, 128, feature_layers=(24,), dpam_layers=dpam_layers)
        visual = clip.visual
        with torch.no_grad():
            tokens = visual.conv1(images).flatten(2).transpose(1, 2)
            tokens = torch.cat([visual.class_embedding.expand(1, 1, -1), tokens], dim=1) + visual.positional_embedding
            x = visual.ln_pre(tokens)[0]  # [L, W]
            surgery = None
            for index, block in enumerate(visual.transformer.resblocks):
                if index == 24 - dpam_layers:
                    surgery = x.clone()
                normed = block.ln_1(x)
                if surgery is not None:
                    _, _, v = F.linear(normed, block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, dim=-1)
                    heads = block.attn.num_heads
                    outputs = []
                    for head_v in v.split(v.shape[-1] // heads, dim=-1):
                        weights = (head_v @ head_v.T / head_v.shape[-1] ** 0.5).softmax(dim=-1)
                        outputs.append(weights @ head_v)
                    surgery = surgery + block.attn.out_proj(torch.cat(outputs, dim=-1))
                attended = block.attn(normed[:, None], normed[:, None], normed[:, None], need_weights=False)[0][:, 0]
                x = x + attended
                x = x + block.mlp(block.ln_2(x))
            expected = visual.ln_post(surgery[1:]) @ visual.proj
            actual = encoder(images).patch_features[0][0]
        assert torch.allclose(actual, expected, atol=1e-4)

    @staticmethod
    def test_multi_level_features_are_four_different_layers(clip: torch.nn.Module) -> None:
        """The official code's missing .clone() made all levels equal; ours must really differ."""
        encoder = DualPathVisionEncoder(clip.visual, 128, feature_layers=(6, 12, 18, 24), dpam_layers=19)
        with torch.no_grad():
            features = encoder(torch.randn(1, 3, 128, 128)).patch_features
        assert len(features) == 4
        for first in range(4):
            for second in range(first + 1, 4):
                assert not torch.allclose(features[first], features[second], atol=1e-3)

    @staticmethod
    def test_any_input_size_resizes_the_positional_embedding(clip: torch.nn.Module) -> None:
        encoder = DualPathVisionEncoder(clip.visual, 96, feature_layers=(24,), dpam_layers=19)
        assert encoder.grid_size == (12, 12)
        assert encoder.positional_embedding.shape == (1 + 144, 64)
        with torch.no_grad():
            features = encoder(torch.randn(1, 3, 96, 96))
            other_size = encoder(torch.randn(1, 3, 160, 160))  # interpolated on the fly
        assert features.patch_features[0].shape == (1, 144, 64)
        assert other_size.grid_size == (20, 20)

    @staticmethod
    def test_bad_layer_settings_are_rejected(clip: torch.nn.Module) -> None:
        assert DualPathVisionEncoder(clip.visual, 128, feature_layers=(-1, -24)).feature_layers == (24, 1)
        with pytest.raises(ValueError, match=r"feature_layers must be 1-indexed blocks in \[1, 24\]"):
            DualPathVisionEncoder(clip.visual, 128, feature_layers=(0,))
        with pytest.raises(ValueError, match="dpam_layers must be in"):
            DualPathVisionEncoder(clip.visual, 128, dpam_layers=24)


class TestPrompts:
    @staticmethod
    def test_fixed_texts_match_open_clip(clip: torch.nn.Module) -> None:
        texts = ["a photo of a damaged bottle", "a photo of a bottle"]
        with torch.no_grad():
            expected = clip.encode_text(tokenize(TINY_MODEL_NAME, texts))
        # The tower stops at the last end token; dropping the masked padding keys only reorders float sums, so
        # the features agree to float32 rounding (about 1e-6 on values near 3).
        torch.testing.assert_close(encode_fixed_texts(clip, TINY_MODEL_NAME, texts), expected)

    @staticmethod
    def test_only_context_and_deep_prompts_are_learned(clip: torch.nn.Module) -> None:
        prompts = PromptLearner(clip, TINY_MODEL_NAME, ["object", "damaged object"], context_length=12, deep_depth=9)
        width = 64
        # 2 prompts x 12 words + 8 deep prompts x 4 tokens; for ViT-L's width 768 this is 43,008.
        assert sum(p.numel() for p in prompts.parameters()) == (2 * 12 + 8 * 4) * width
        assert set(prompts.state_dict()) == {"context", "deep_prompts"}

    @staticmethod
    def test_gradients_reach_context_and_deep_prompts(clip: torch.nn.Module) -> None:
        prompts = PromptLearner(clip, TINY_MODEL_NAME, ["object", "damaged object"])
        features = prompts()
        assert features.shape == (2, 64)
        features[0].sum().backward()
        assert prompts.context.grad.abs().sum() > 0
        assert prompts.deep_prompts.grad.abs().sum() > 0
        assert all(parameter.grad is None for parameter in clip.parameters())

    @staticmethod
    def test_deep_prompts_change_the_text_features(clip: torch.nn.Module) -> None:
        prompts = PromptLearner(clip, TINY_MODEL_NAME, ["object"])
        with torch.no_grad():
            before = prompts()
            prompts.deep_prompts.add_(torch.randn_like(prompts.deep_prompts))  # not a constant: LayerNorm removes those
            after = prompts()
        assert not torch.allclose(before, after, atol=1e-4)

    @staticmethod
    def test_bad_prompt_settings_are_rejected(clip: torch.nn.Module) -> None:
        with pytest.raises(ValueError, match="at least one text"):
            PromptLearner(clip, TINY_MODEL_NAME, [])
        with pytest.raises(ValueError, match="deep_length must be in"):
            PromptLearner(clip, TINY_MODEL_NAME, ["object"], context_length=2, deep_length=4)
        with pytest.raises(ValueError, match="deep_depth must be in"):
            PromptLearner(clip, TINY_MODEL_NAME, ["object"], deep_depth=13)
