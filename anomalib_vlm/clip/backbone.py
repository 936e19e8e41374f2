# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Loading open_clip models: by name and pretrained tag, from a local file, or with seeded random weights.

Every model in the package gets its CLIP through :func:`load_clip_model`, so the offline behaviour (one clear
error instead of a urllib traceback) and the tiny test model (``anomalib-vlm-tiny``) work everywhere a backbone
name is accepted.

Example:
    >>> from anomalib_vlm.clip import load_clip_model
    >>> clip = load_clip_model("anomalib-vlm-tiny", pretrained=None)
    >>> clip.visual.conv1.kernel_size
    (8, 8)
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch

from anomalib_vlm.errors import WeightsUnavailableError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from torch import nn

logger = logging.getLogger(__name__)

TINY_MODEL_NAME = "anomalib-vlm-tiny"
"""A tiny CLIP (ViT with 24 blocks of width 64, text tower of 12 blocks) that ships with the package.

It mirrors ViT-L-14's depth, so every paper default (feature layer 24, DPAM on the last 19 blocks, text prompt
depth 9) applies unchanged; its weights are random but seeded, so tests, demos and checkpoints are reproducible.
"""

SMALL_MODEL_NAME = "anomalib-vlm-small"
"""A small CLIP (ViT with 24 blocks of width 64 at 64 px, text tower of 12 blocks of width 48) with shipped weights.

Like the tiny model it mirrors ViT-L-14's depth; unlike it, its weights (tag :data:`SMALL_PRETRAINED_TAG`) were
pre-trained by ``anomalib-vlm pretrain-clip`` on the package's captioned corpus, so its text and image features
carry (narrow) meaning: colours, materials, shapes, defect kinds and quality degradations.
"""

SMALL_PRETRAINED_TAG = "anomalib-vlm-synthetic"
"""The pretrained tag of the shipped small-CLIP weights, used like ``"openai"``."""

PACKAGE_WEIGHTS: dict[tuple[str, str], Path] = {
    (SMALL_MODEL_NAME, SMALL_PRETRAINED_TAG): Path(__file__).parent
    / "assets"
    / "anomalib-vlm-small-synthetic.safetensors",
}
"""Pretrained tags whose weights ship inside the package: ``(backbone, tag) -> file``."""

SMALL_WEIGHTS_SHA256 = "9720d2883dbd5e0664582913eeddc050192080ea3d3cca6c807c01d859726861"
"""sha256 of the shipped small-CLIP weights file (also in ``anomalib_vlm/clip/README.md``)."""

RANDOM_WEIGHTS_SEED = 0
"""Seed for ``pretrained=None``: the same backbone name always gives the same random weights."""

CONFIG_DIR = Path(__file__).parent / "configs"

# Errors that mean "the weights could not be fetched", whatever library raised them.
_NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)
with contextlib.suppress(ImportError):  # huggingface_hub is optional for open_clip
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    _NETWORK_ERRORS = (*_NETWORK_ERRORS, HfHubHTTPError, LocalEntryNotFoundError)

_DOWNLOAD_TIMEOUT_S = 20.0


@cache
def _open_clip():  # noqa: ANN202
    """Import open_clip once and register the package's model configs with it."""
    try:
        import open_clip
    except ImportError as error:  # pragma: no cover - open_clip is a dependency
        msg = "open_clip is required: pip install 'open-clip-torch>=2.23.0,<2.26.1'"
        raise ImportError(msg) from error
    open_clip.add_model_config(CONFIG_DIR)
    for (backbone, tag), path in PACKAGE_WEIGHTS.items():  # listed like any tag; loaded by load_clip_model
        open_clip.pretrained._PRETRAINED.setdefault(backbone, {})[tag] = {
            "file": str(path),
            "mean": (0.48145466, 0.4578275, 0.40821073),
            "std": (0.26862954, 0.26130258, 0.27577711),
        }
    return open_clip


def list_backbones() -> list[str]:
    """Names of all open_clip model architectures, the package's tiny configs included."""
    return _open_clip().list_models()


def _looks_like_path(pretrained: str) -> bool:
    return (
        os.sep in pretrained or "/" in pretrained or Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}
    )


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Run a block with a fixed torch seed without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _download_timeout(seconds: float) -> Iterator[None]:
    """Bound urllib's socket waits so an unreachable host fails fast instead of hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _weights_cached(pretrained_cfg: dict, cache_dir: str | Path | None) -> bool:
    """Whether open_clip will find the weights of a pretrained tag on disk without any download."""
    if url := pretrained_cfg.get("url"):
        folder = Path(cache_dir).expanduser() if cache_dir else Path("~/.cache/clip").expanduser()
        return (folder / os.path.basename(url)).is_file()
    if hub := pretrained_cfg.get("hf_hub"):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return False
        model_id, filename = os.path.split(hub)
        cached = try_to_load_from_cache(
            model_id,
            filename or "open_clip_pytorch_model.bin",
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
        return isinstance(cached, str)
    return False


def _download_host(pretrained_cfg: dict) -> str:
    if url := pretrained_cfg.get("url"):
        return urlparse(url).hostname or ""
    return urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""


def _reachable(host: str, timeout: float = 5.0) -> bool:
    """A quick TCP probe, so an offline machine fails in seconds instead of after a download's retries."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _weights_help(backbone: str, tag: str) -> str:
    return (
        f"Could not obtain pretrained weights '{tag}' for CLIP model '{backbone}' (no network, or the download "
        "failed). Supply them in one of these ways:\n"
        f'  1. download once on a machine with network access, e.g. python -c "import open_clip; '
        f"open_clip.create_model('{backbone}', pretrained='{tag}')\", then copy the cache folder "
        "(~/.cache/clip for OpenAI weights, ~/.cache/huggingface/hub for the others) to this machine, or point "
        "HF_HUB_CACHE / the `cache_dir` argument at it;\n"
        f"  2. pass a local checkpoint file instead of the tag: pretrained='/path/to/{backbone}.pt' "
        "(an open_clip or OpenAI state dict);\n"
        f"  3. for tests and demos without weights, use backbone='{TINY_MODEL_NAME}', pretrained=None."
    )


def load_clip_model(
    backbone: str,
    pretrained: str | Path | None,
    cache_dir: str | Path | None = None,
    image_size: int | None = None,
) -> nn.Module:
    """Create an open_clip CLIP model, frozen and in eval mode.

    Args:
        backbone (str): open_clip model name, e.g. ``"ViT-L-14-336"`` or ``"anomalib-vlm-tiny"``.
        pretrained (str | Path | None): an open_clip pretrained tag (``"openai"``, ``"laion2b_s34b_b88k"``...),
            a local checkpoint file, or ``None`` for random weights seeded with :data:`RANDOM_WEIGHTS_SEED`.
        cache_dir (str | Path | None): where open_clip looks for and stores downloaded weights.
            Defaults to open_clip's own cache.
        image_size (int | None): build the vision tower for this input size (open_clip resizes the positional
            embedding of loaded weights). Defaults to the config's size; the dense encoders in this package
            resize on their own and leave it unset.

    Returns:
        nn.Module: the CLIP model with ``requires_grad=False`` on every parameter.

    Raises:
        ValueError: unknown backbone name or pretrained tag.
        FileNotFoundError: ``pretrained`` is a path that does not exist.
        WeightsUnavailableError: the weights could not be downloaded.
    """
    open_clip = _open_clip()
    if backbone not in open_clip.list_models():
        msg = (
            f"Unknown CLIP backbone '{backbone}'. Known open_clip models: {', '.join(sorted(open_clip.list_models()))}"
        )
        raise ValueError(msg)

    with _seeded(RANDOM_WEIGHTS_SEED):
        if pretrained is None or str(pretrained) == "":
            model = open_clip.create_model(backbone, pretrained=None, force_image_size=image_size)
        elif isinstance(pretrained, Path) or _looks_like_path(pretrained):
            path = Path(pretrained).expanduser()
            if not path.is_file():
                msg = f"CLIP checkpoint file for '{backbone}' not found: {path}"
                raise FileNotFoundError(msg)
            model = open_clip.create_model(backbone, pretrained=None, force_image_size=image_size)
            try:
                open_clip.load_checkpoint(model, str(path))
            except (RuntimeError, KeyError) as error:
                msg = f"Checkpoint {path} does not fit CLIP model '{backbone}': {str(error).splitlines()[0]}"
                raise ValueError(msg) from None
        elif (backbone, str(pretrained)) in PACKAGE_WEIGHTS:
            model = _load_package_weights(open_clip, backbone, PACKAGE_WEIGHTS[backbone, str(pretrained)], image_size)
        else:
            tags = open_clip.list_pretrained_tags_by_model(backbone)
            if pretrained not in tags:
                msg = (
                    f"Unknown pretrained tag '{pretrained}' for CLIP model '{backbone}'. "
                    f"Known tags: {', '.join(tags) or 'none'}; or pass a local checkpoint file."
                )
                raise ValueError(msg)
            pretrained_cfg = open_clip.get_pretrained_cfg(backbone, pretrained)
            if not _weights_cached(pretrained_cfg, cache_dir) and not _reachable(_download_host(pretrained_cfg)):
                raise WeightsUnavailableError(_weights_help(backbone, str(pretrained)))
            try:
                with _download_timeout(_DOWNLOAD_TIMEOUT_S):
                    model = open_clip.create_model(
                        backbone,
                        pretrained=pretrained,
                        cache_dir=None if cache_dir is None else str(cache_dir),
                        force_image_size=image_size,
                    )
            except _NETWORK_ERRORS:
                raise WeightsUnavailableError(_weights_help(backbone, str(pretrained))) from None
    model.eval()
    model.requires_grad_(False)
    return model


def _load_package_weights(open_clip, backbone: str, path: Path, image_size: int | None) -> nn.Module:  # noqa: ANN001
    """Build ``backbone`` and load weights that ship with the package (half-precision safetensors)."""
    from safetensors.torch import load_file

    if not path.is_file():
        msg = f"The packaged weights of '{backbone}' are missing: {path} (a broken install?)"
        raise WeightsUnavailableError(msg)
    model = open_clip.create_model(backbone, pretrained=None, force_image_size=image_size)
    state = {key: value.float() for key, value in load_file(str(path)).items()}
    open_clip.model.resize_pos_embed(state, model)
    model.load_state_dict(state)
    return model


def backbone_fingerprint(model: nn.Module) -> float:
    """A cheap number that identifies the backbone's weights (same weights, same number).

    Checkpoints store it so prompts are never loaded onto a different CLIP without an error.
    """
    total = 0.0
    for weights in (model.token_embedding.weight, model.visual.conv1.weight):
        flat = weights.detach().double().flatten()
        total += float((flat * torch.linspace(1.0, 2.0, flat.numel(), dtype=torch.float64)).sum())
    return total
