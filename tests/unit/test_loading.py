# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Loading CLIP weights and checkpoints: OpenAI's file formats, per-backbone preprocessing, safe and clear reads."""

from __future__ import annotations

import copy
import json
import random
import re
import warnings
from pathlib import Path

import pytest
import torch
from anomalib.data import ImageBatch
from torchvision.transforms.v2 import InterpolationMode, Resize

from anomalib_vlm.clip import (
    CLIP_MEAN,
    CLIP_STD,
    QUICK_GELU_SUFFIX,
    TINY_MODEL_NAME,
    clip_preprocessing,
    load_clip_model,
    normalization_of,
    tokenize,
)
from anomalib_vlm.clip.backbone import open_clip_module
from anomalib_vlm.clip.transforms import ResizeShorterSideCenterCrop
from anomalib_vlm.errors import CheckpointMismatchError, WeightsUnavailableError
from anomalib_vlm.models import AnomalyClip, MetaIqa, Supreme
from tests.helpers import set_network, training_inputs

PACKAGE = Path(__file__).parents[2] / "anomalib_vlm"
OPENAI_MARKERS = {"input_resolution": 128, "context_length": 77, "vocab_size": 49408}


def _quick_gelu_source(seed: int = 7, config: str = TINY_MODEL_NAME) -> torch.nn.Module:
    """A random CLIP with QuickGELU activations, as OpenAI's models have."""
    torch.manual_seed(seed)
    return open_clip_module().create_model(config, pretrained=None, force_quick_gelu=True).eval()


def _inputs(image_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, image_size, image_size, generator=generator), torch.randint(
        1, 49407, (2, 77), generator=generator
    )


def _outputs(model: torch.nn.Module, image_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    images, texts = _inputs(image_size)
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(texts)


def _save_openai_state_dict(model: torch.nn.Module, path: Path, dtype: torch.dtype | None = None) -> Path:
    """A state dict in OpenAI's released layout: the weights plus its size entries."""
    state = {key: value if dtype is None else value.to(dtype) for key, value in model.state_dict().items()}
    state.pop("attn_mask", None)
    state |= {key: torch.tensor(value) for key, value in OPENAI_MARKERS.items()}
    torch.save(state, path)
    return path


def _save_torchscript_archive(model: torch.nn.Module, path: Path) -> Path:
    """A TorchScript archive as OpenAI released theirs: a traced CLIP whose state holds the size entries.

    OpenAI traced their own CLIP class; this traces open_clip's (same parameter names) with the three size entries
    as buffers. The loader reads only the archive's state dict, exactly as open_clip's ``load_openai_model`` does.
    """
    traced = copy.deepcopy(model)
    del traced.context_length, traced.vocab_size  # plain ints on open_clip's model, tensors in OpenAI's archives
    for key, value in OPENAI_MARKERS.items():
        traced.register_buffer(key, torch.tensor(value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        archive = torch.jit.trace(traced, _inputs(), check_trace=False)
    archive.save(str(path))
    return path


# ---------------------------------------------------------------------------------------------- 1. OpenAI files
class TestOpenAIWeightFiles:
    @staticmethod
    @pytest.mark.parametrize("save", [_save_openai_state_dict, _save_torchscript_archive], ids=["state-dict", "jit"])
    def test_openai_files_reproduce_the_source_model(tmp_path: Path, save) -> None:  # noqa: ANN001
        """Both of OpenAI's formats load through the file path with QuickGELU: outputs equal the source's."""
        source = _quick_gelu_source()
        path = save(source, tmp_path / "openai.pt")
        loaded = load_clip_model(TINY_MODEL_NAME, pretrained=str(path))
        for expected, actual in zip(_outputs(source), _outputs(loaded), strict=True):
            torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)
        # The check has teeth: the same weights in the config's GELU model answer ~1e-2 apart.
        gelu = open_clip_module().create_model(TINY_MODEL_NAME, pretrained=None).eval()
        gelu.load_state_dict(source.state_dict())
        assert (_outputs(gelu)[0] - _outputs(source)[0]).abs().max() > 1e-4

    @staticmethod
    def test_openai_state_dict_builds_what_open_clips_openai_loader_builds(tmp_path: Path) -> None:
        """Against open_clip's own OpenAI loader (what pretrained='openai' runs), on a config it can infer."""
        config_dir = tmp_path / "configs"
        config_dir.mkdir()
        config = {
            "embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 64, "patch_size": 8},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
        }
        (config_dir / "anomalib-vlm-test-openai-layout.json").write_text(json.dumps(config))
        open_clip = open_clip_module()
        open_clip.add_model_config(config_dir)
        try:
            source = _quick_gelu_source(config="anomalib-vlm-test-openai-layout")
            path = _save_openai_state_dict(source, tmp_path / "openai.pt", dtype=torch.float16)  # as OpenAI ships
            reference = open_clip.load_openai_model(str(path), precision="fp32", device="cpu").eval()
            loaded = load_clip_model("anomalib-vlm-test-openai-layout", pretrained=path)
        finally:  # leave open_clip's registry as it was
            open_clip.factory._MODEL_CONFIG_PATHS.remove(config_dir)
            open_clip.factory._rescan_model_configs()
        for expected, actual in zip(_outputs(reference, 32), _outputs(loaded, 32), strict=True):
            torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)

    @staticmethod
    def test_open_clip_state_dicts_follow_the_backbone_name(tmp_path: Path) -> None:
        """Without OpenAI's markers the file does not say its activation: '-quickgelu' in the name chooses it."""
        source = _quick_gelu_source()
        path = tmp_path / "open_clip.pt"
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
        quick = load_clip_model(TINY_MODEL_NAME + QUICK_GELU_SUFFIX, pretrained=path)
        for expected, actual in zip(_outputs(source), _outputs(quick), strict=True):
            torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)
        plain = load_clip_model(TINY_MODEL_NAME, pretrained=path)
        assert type(plain.visual.transformer.resblocks[0].mlp.gelu) is torch.nn.GELU
        assert tokenize(TINY_MODEL_NAME + QUICK_GELU_SUFFIX, ["a photo"]).shape == (1, 77)

    @staticmethod
    def test_offline_help_describes_openai_files_and_the_quickgelu_name(monkeypatch: pytest.MonkeyPatch) -> None:
        set_network(monkeypatch, reachable=False)
        with pytest.raises(WeightsUnavailableError) as error:
            load_clip_model("ViT-L-14-336", pretrained="openai", cache_dir="/nonexistent-cache")
        message = str(error.value)
        assert "pretrained='/path/to/ViT-L-14-336.pt'" in message
        assert "exactly as pretrained='openai'" in message
        assert "'ViT-L-14-336-quickgelu'" in message
        assert "--model.pretrained /path/to/ViT-L-14-336.pt" in message  # the CLI flag as well as the argument


# ---------------------------------------------------------------------------------------------- 2. preprocessing
@pytest.fixture
def tiny_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A pretrained tag for the tiny model with non-OpenAI preprocessing, its weights already in the cache."""
    import open_clip.pretrained

    url = "https://weights.invalid/anomalib-vlm-tiny-test-tag.pt"
    declared = {"mean": (0.5, 0.4, 0.3), "std": (0.25, 0.2, 0.3), "interpolation": "bilinear", "resize_mode": "squash"}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_MODEL_NAME, {"test_tag": {"url": url, **declared}})
    torch.save(load_clip_model(TINY_MODEL_NAME, None).state_dict(), tmp_path / Path(url).name)
    return {"backbone": TINY_MODEL_NAME, "pretrained": "test_tag", "cache_dir": str(tmp_path), **declared}


class TestPreprocessingPerBackbone:
    @staticmethod
    @pytest.mark.parametrize(
        ("backbone", "tag"),
        [
            ("ViT-L-14", "laion2b_s32b_b82k"),  # LAION: Inception statistics
            ("ViT-L-14-CLIPA", "datacomp1b"),  # CLIPA: ImageNet statistics, bilinear, squash
            ("ViT-H-14-quickgelu", "dfn5b"),  # DFN: squash
            ("ViT-L-14-336", "openai"),
            ("ViT-B-16", "laion2b_s34b_b88k"),
        ],
    )
    def test_statistics_and_resizing_are_what_open_clip_declares(backbone: str, tag: str) -> None:
        declared = open_clip_module().get_pretrained_cfg(backbone, tag)
        settings = clip_preprocessing(backbone, tag)
        assert settings.mean == pytest.approx(declared["mean"])
        assert settings.std == pytest.approx(declared["std"])
        assert settings.interpolation == declared["interpolation"]
        assert settings.resize_mode == declared["resize_mode"]

    @staticmethod
    def test_laion_and_openai_tags_differ_and_files_fall_back_to_openai() -> None:
        assert clip_preprocessing("ViT-L-14", "laion2b_s32b_b82k").mean == pytest.approx((0.5, 0.5, 0.5))
        assert clip_preprocessing("ViT-L-14-CLIPA", "datacomp1b").interpolation == "bilinear"
        for pretrained in ("openai", None, "/weights/ViT-L-14.pt"):
            settings = clip_preprocessing("ViT-L-14", pretrained)
            assert (settings.mean, settings.std) == (pytest.approx(CLIP_MEAN), pytest.approx(CLIP_STD))
            assert (settings.interpolation, settings.resize_mode) == ("bicubic", "shortest")

    @staticmethod
    def test_configure_pre_processor_uses_the_tags_settings() -> None:
        for model in (AnomalyClip, Supreme, MetaIqa):
            transform = model.configure_pre_processor((64, 64), "ViT-L-14", "laion2b_s32b_b82k").transform
            assert normalization_of(transform) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        squash = Supreme.configure_pre_processor((64, 64), "ViT-L-14-CLIPA", "datacomp1b").transform.transforms[0]
        assert type(squash) is Resize
        assert squash.interpolation == InterpolationMode.BILINEAR
        crop = Supreme.configure_pre_processor((64, 64), "ViT-L-14", "openai").transform.transforms[0]
        assert isinstance(crop, ResizeShorterSideCenterCrop)

    @staticmethod
    @pytest.mark.parametrize("model_class", [AnomalyClip, Supreme, MetaIqa])
    def test_each_model_normalises_as_its_weights_were_trained(tiny_tag: dict, model_class: type) -> None:
        settings = {key: tiny_tag[key] for key in ("backbone", "pretrained", "cache_dir")}
        model = model_class(image_size=64, **settings)
        transform = model.pre_processor.transform
        assert normalization_of(transform) == (tiny_tag["mean"], tiny_tag["std"])
        resize = transform.transforms[0]
        assert type(resize) is Resize  # the tag declares 'squash'
        assert resize.interpolation == InterpolationMode.BILINEAR

    @staticmethod
    def test_synthetic_anomalies_are_pasted_with_the_models_statistics(tiny_tag: dict) -> None:
        """Denormalising with other statistics would clip dark and bright pixels outside the pasted anomaly."""
        settings = {key: tiny_tag[key] for key in ("backbone", "pretrained", "cache_dir")}
        model = AnomalyClip(image_size=64, synthetic_anomaly_probability=1.0, **settings)
        torch.manual_seed(0)
        pixels = torch.rand(4, 3, 64, 64)
        mean, std = (torch.tensor(value).view(1, 3, 1, 1) for value in (tiny_tag["mean"], tiny_tag["std"]))
        batch = ImageBatch(image=(pixels - mean) / std, gt_label=torch.zeros(4, dtype=torch.long))
        images, _, masks = training_inputs(model, batch)
        untouched = (masks == 0).unsqueeze(1).expand_as(images)
        assert untouched.any()
        torch.testing.assert_close(images[untouched], batch.image[untouched], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- 8. safe loading
class _RunsOnLoad:
    """Unpickling this calls ``Path.touch`` on a marker file: proof that a load ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return Path.touch, (self.marker,)


class TestSafeLoading:
    @staticmethod
    def test_no_checkpoint_is_read_with_weights_only_off() -> None:
        offenders = [
            f"{path.relative_to(PACKAGE)}:{number}"
            for path in PACKAGE.rglob("*.py")
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(r"weights_only\s*=\s*False", line)
        ]
        assert not offenders

    @staticmethod
    def test_clip_weights_of_another_width_name_file_model_and_sizes(tmp_path: Path) -> None:
        config = open_clip_module().get_model_config(TINY_MODEL_NAME)
        config["text_cfg"]["width"] = 96
        torch.manual_seed(0)
        wider = open_clip_module().model.CLIP(**config)
        path = tmp_path / "wider.pt"
        torch.save(wider.state_dict(), path)
        with pytest.raises(CheckpointMismatchError) as error:
            load_clip_model(TINY_MODEL_NAME, pretrained=path)
        message = str(error.value)
        assert str(path) in message
        assert f"'{TINY_MODEL_NAME}'" in message
        assert "text width 96" in message
        assert "text width 64" in message

    @staticmethod
    def test_random_bytes_are_no_checkpoint(tmp_path: Path) -> None:
        path = tmp_path / "noise.pt"
        path.write_bytes(random.Random(0).randbytes(4096))
        with pytest.raises(ValueError, match=re.escape(f"{path} is not a PyTorch checkpoint")) as error:
            load_clip_model(TINY_MODEL_NAME, pretrained=path)
        assert f"CLIP model '{TINY_MODEL_NAME}' expected" in str(error.value)

    @staticmethod
    @pytest.mark.parametrize(
        ("content", "found"),
        [
            ({"epoch": 3, "optimizer": {"lr": 0.1}}, "a dict with keys 'epoch', 'optimizer'"),
            ({"state_dict": "elsewhere"}, "a dict with keys 'state_dict'"),
            (42, "a int"),
        ],
        ids=["no-state-dict", "state-dict-not-a-dict", "a-number"],
    )
    def test_files_without_a_state_dict_say_what_they_hold(tmp_path: Path, content: object, found: str) -> None:
        path = tmp_path / "not_weights.pt"
        torch.save(content, path)
        with pytest.raises(ValueError, match="holds no state dict") as error:
            load_clip_model(TINY_MODEL_NAME, pretrained=path)
        assert str(path) in str(error.value)
        assert f"CLIP model '{TINY_MODEL_NAME}'" in str(error.value)
        assert found in str(error.value)

    @staticmethod
    def test_clip_weight_files_run_no_code(tmp_path: Path) -> None:
        marker = tmp_path / "ran"
        path = tmp_path / "payload.pt"
        torch.save({"visual.proj": torch.zeros(1), "payload": _RunsOnLoad(marker)}, path)
        with pytest.raises(ValueError, match="Unsupported global"):
            load_clip_model(TINY_MODEL_NAME, pretrained=path)
        assert not marker.exists()

    @staticmethod
    def test_model_checkpoints_are_read_safely_before_the_backbone_check(tmp_path: Path) -> None:
        """The backbone-override check read whole pickles (``weights_only=False``); now it reads weights only."""
        marker = tmp_path / "ran"
        path = tmp_path / "payload.ckpt"
        torch.save({"state_dict": {}, "anomalib_vlm_backbone": {"backbone": "x"}, "p": _RunsOnLoad(marker)}, path)
        with pytest.raises(ValueError, match=rf"{re.escape(str(path))} is not a PyTorch checkpoint.*AnomalyClip"):
            AnomalyClip.load_from_checkpoint(path, backbone=TINY_MODEL_NAME)
        assert not marker.exists()

    @staticmethod
    @pytest.mark.parametrize(
        ("content", "found"),
        [(b"not a checkpoint at all", "is not a PyTorch checkpoint"), ({"epoch": 1}, "holds no 'state_dict'")],
        ids=["bytes", "no-state-dict"],
    )
    def test_bad_model_checkpoints_name_the_file_and_the_model(tmp_path: Path, content: object, found: str) -> None:
        path = tmp_path / "bad.ckpt"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        for overrides in ({}, {"backbone": TINY_MODEL_NAME}):
            with pytest.raises(ValueError, match=re.escape(found)) as error:
                Supreme.load_from_checkpoint(path, **overrides)
            assert str(path) in str(error.value)
            assert "Supreme" in str(error.value)

    @staticmethod
    def test_a_meta_prompt_file_that_is_none_says_so(tmp_path: Path) -> None:
        noise, other = tmp_path / "noise.pt", tmp_path / "other.pt"
        noise.write_bytes(random.Random(1).randbytes(512))
        torch.save({"epoch": 1}, other)
        settings = {"backbone": TINY_MODEL_NAME, "pretrained": None, "image_size": 64}
        with pytest.raises(ValueError, match=rf"{re.escape(str(noise))} is not a PyTorch checkpoint.*MetaIqa"):
            MetaIqa(meta_prompts=str(noise), **settings)
        with pytest.raises(ValueError, match=rf"{re.escape(str(other))} is not a meta-prompt file.*'epoch'"):
            MetaIqa(meta_prompts=str(other), **settings)
