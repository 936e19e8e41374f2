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
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch

from anomalib_vlm.errors import CheckpointMismatchError, WeightsUnavailableError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

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
def open_clip_module() -> ModuleType:
    """open_clip, imported once, with the package's model configs registered (``anomalib-vlm-tiny``, ...)."""
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


def list_backbones() -> list[str]:
    """Names of all open_clip model architectures, the package's tiny configs included.

    Any of them with :data:`QUICK_GELU_SUFFIX` appended is accepted too (see :func:`open_clip_config`).
    """
    return open_clip_module().list_models()


QUICK_GELU_SUFFIX = "-quickgelu"
"""Appended to a backbone name, builds that architecture with QuickGELU activations (OpenAI's CLIP models use
them, open_clip's own configs mostly GELU). Only weight files need it: ``pretrained="openai"`` and OpenAI's own
files are recognised, but a state dict in open_clip's layout does not say which activation it was trained with."""

_OPENAI_MARKER_KEYS = ("input_resolution", "context_length", "vocab_size")
"""Entries of OpenAI's released checkpoints that open_clip's state dicts never have."""

_NOT_WEIGHTS = ("attn_mask",)
"""Buffers a TorchScript archive may carry that are rebuilt from the config, never loaded."""


def open_clip_config(backbone: str) -> tuple[str, bool]:
    """The open_clip config a backbone name builds, and whether QuickGELU is forced on it.

    ``"ViT-L-14-336-quickgelu"`` names open_clip's ``ViT-L-14-336`` config with QuickGELU when open_clip has no
    config of that name; names open_clip knows (its own ``-quickgelu`` configs included) are used as they are.

    Raises:
        ValueError: a name open_clip does not know, with or without the suffix.
    """
    known = open_clip_module().list_models()
    if backbone in known:
        return backbone, False
    base = backbone.removesuffix(QUICK_GELU_SUFFIX)
    if base != backbone and base in known:
        return base, True
    msg = f"Unknown CLIP backbone '{backbone}'. Known open_clip models: {', '.join(sorted(known))}"
    raise ValueError(msg)


def _is_tag(pretrained: str | Path | None) -> bool:
    return pretrained is not None and str(pretrained) != "" and not _is_file_argument(pretrained)


def _is_file_argument(pretrained: str | Path) -> bool:
    return isinstance(pretrained, Path) or _looks_like_path(str(pretrained))


# ---------------------------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class ClipPreprocessing:
    """How images are prepared for one CLIP backbone and pretrained tag, as open_clip declares it.

    Attributes:
        mean (tuple[float, ...]): normalisation mean per RGB channel.
        std (tuple[float, ...]): normalisation standard deviation per RGB channel.
        interpolation (str): ``"bicubic"`` or ``"bilinear"`` (open_clip's names).
        resize_mode (str): ``"shortest"`` (shorter side to the size, then centre crop) or ``"squash"`` (both
            sides to the size); open_clip's ``"longest"`` (pad) is declared by none of its pretrained tags.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    resize_mode: str


_PREPROCESS_FIELDS = ("mean", "std", "interpolation", "resize_mode")


def clip_preprocessing(backbone: str, pretrained: str | Path | None) -> ClipPreprocessing:
    """The normalisation and resizing the weights of ``backbone`` / ``pretrained`` were trained with.

    Read from open_clip's registry without any download: its defaults (OpenAI's statistics, bicubic, shortest
    side), overlaid with the model config's ``preprocess_cfg`` and then the pretrained tag's settings (LAION's
    ``ViT-L-14`` ``laion2b_s32b_b82k`` uses Inception statistics, CLIPA tags ImageNet's and bilinear resizing,
    SigLIP tags squash). A local file or ``None`` has no tag, so the config's defaults apply.

    Args:
        backbone (str): open_clip model name (see :func:`open_clip_config`).
        pretrained (str | Path | None): pretrained tag, local file or ``None``.

    Raises:
        ValueError: an unknown backbone name.
    """
    open_clip = open_clip_module()
    config_name, _ = open_clip_config(backbone)
    settings: dict = {}
    with contextlib.suppress(ImportError):  # open_clip >= 2.24 declares its defaults in one dataclass
        from dataclasses import asdict

        from open_clip.transform import PreprocessCfg

        settings.update(asdict(PreprocessCfg()))
    if not settings:  # pragma: no cover - older open_clip: the defaults it hard-codes
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        settings = {
            "mean": OPENAI_DATASET_MEAN,
            "std": OPENAI_DATASET_STD,
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        }
    overlays = [(open_clip.get_model_config(config_name) or {}).get("preprocess_cfg") or {}]
    if _is_tag(pretrained):
        overlays.append(open_clip.get_pretrained_cfg(config_name, str(pretrained)) or {})
    for overlay in overlays:
        settings.update({key: overlay[key] for key in _PREPROCESS_FIELDS if overlay.get(key) is not None})
    return ClipPreprocessing(
        mean=tuple(float(value) for value in settings["mean"]),
        std=tuple(float(value) for value in settings["std"]),
        interpolation=str(settings["interpolation"]),
        resize_mode=str(settings["resize_mode"]),
    )


# ---------------------------------------------------------------------------------------------- weight files
def describe_loaded(found: object) -> str:
    """A short description of what a file held, for error messages."""
    if isinstance(found, Mapping):
        keys = [repr(key) for key in list(found)[:6]]
        more = ", ..." if len(found) > len(keys) else ""
        return f"a dict with keys {', '.join(keys)}{more}" if keys else "an empty dict"
    return f"a {type(found).__name__}"


def _weights_only(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict without OpenAI's size markers and rebuilt buffers, which no model loads."""
    return {key: value for key, value in state.items() if key not in {*_OPENAI_MARKER_KEYS, *_NOT_WEIGHTS}}


def _is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (OpenAI released its CLIP weights as such archives)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.count("/") == 1 and name.endswith("/constants.pkl") for name in archive.namelist())


def load_weights_only(path: str | Path, expected: str, safe_globals: Sequence[Any] = ()) -> Any:
    """``torch.load(path, weights_only=True)`` under anomalib's safe globals (plus ``safe_globals``).

    Every checkpoint the package reads goes through here, so none is ever fully unpickled (``weights_only`` is
    never turned off).

    Args:
        path (str | Path): the file.
        expected (str): what it should hold, for the error message (e.g. ``"CLIP model 'ViT-B-16'"``).
        safe_globals (Sequence[Any]): further types to allow (a model's ``checkpoint_safe_globals()``).

    Raises:
        ValueError: the file cannot be read this way (not a PyTorch file, truncated, or pickling other objects);
            the message names the file, what was expected and torch's reason.
    """
    from anomalib.utils.serialization import anomalib_safe_globals

    try:
        with anomalib_safe_globals(extra=safe_globals):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file gets the same clear message
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        reason = next((line for line in lines if line.startswith("WeightsUnpickler error")), lines[0])
        msg = (
            f"{path} is not a PyTorch checkpoint that can be read safely (weights only); {expected} expected. "
            f"torch.load said: {reason}"
        )
        raise ValueError(msg) from None


def read_weights_file(path: Path, expected: str) -> tuple[dict[str, torch.Tensor], bool]:
    """Read a CLIP weight file safely: its state dict, and whether it is in OpenAI's released layout.

    A TorchScript archive (OpenAI's release format) is opened with ``torch.jit.load``, which reads TorchScript's
    own format and runs no pickled Python, and only its tensors are kept; anything else is read with
    ``torch.load(weights_only=True)`` under anomalib's safe globals. The state dict may sit under
    ``"state_dict"`` (open_clip's training checkpoints) and carry DataParallel's ``module.`` prefix.

    Args:
        path (Path): the file.
        expected (str): what the file should hold, for error messages (e.g. ``"CLIP model 'ViT-B-16'"``).

    Raises:
        ValueError: the file is no PyTorch checkpoint, or holds no state dict of tensors.
    """
    if path.suffix == ".safetensors":  # a format of tensors only: nothing to unpickle
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except SafetensorError as error:
            msg = f"{path} is not a readable safetensors file ({expected} expected): {error}"
            raise ValueError(msg) from None
        # Stored in half precision to keep the file small; the model computes in float32.
        return _weights_only({key: value.float() for key, value in tensors.items()}), False
    if _is_torchscript_archive(path):
        try:
            archive = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as error:
            msg = f"{path} looks like a TorchScript archive but cannot be read as one ({expected} expected): {error}"
            raise ValueError(msg) from None
        state_dict = {key: value.detach() for key, value in archive.state_dict().items()}
        return _weights_only(state_dict), True
    found = load_weights_only(path, expected)
    state_dict = found.get("state_dict") if isinstance(found, Mapping) and "state_dict" in found else found
    tensors = (
        {str(key): value for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
        if isinstance(state_dict, Mapping)
        else {}
    )
    if not tensors:
        msg = f"{path} holds no state dict of {expected}: found {describe_loaded(found)}."
        raise ValueError(msg)
    if all(key.startswith("module.") for key in tensors):
        tensors = {key.removeprefix("module."): value for key, value in tensors.items()}
    openai_layout = "visual.trunk.stem.0.weight" not in tensors and any(key in tensors for key in _OPENAI_MARKER_KEYS)
    return _weights_only(tensors), openai_layout


def _architecture(state: Mapping[str, torch.Tensor]) -> str:
    """The size of the CLIP a state dict holds (widths and depths), as far as it can tell."""

    def blocks(prefix: str) -> int:
        return len({key[len(prefix) :].split(".")[0] for key in state if key.startswith(prefix)})

    parts = []
    if (conv := state.get("visual.conv1.weight")) is not None:
        parts.append(
            f"vision width {conv.shape[0]}, patch {conv.shape[-1]}, "
            f"{blocks('visual.transformer.resblocks.')} vision blocks"
        )
    text_prefix = "text." if "text.token_embedding.weight" in state else ""
    if (tokens := state.get(f"{text_prefix}token_embedding.weight")) is not None:
        parts.append(f"text width {tokens.shape[1]}, {blocks(f'{text_prefix}transformer.resblocks.')} text blocks")
    if (projection := state.get(f"{text_prefix}text_projection")) is not None and projection.dim() == 2:
        parts.append(f"embedding {projection.shape[1]}")
    return "; ".join(parts) or f"{len(state)} tensors of no CLIP layout it knows"


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path, backbone: str) -> None:
    """Load a file's state dict into ``model`` (built from ``backbone``'s config), as open_clip's loader does.

    The steps are open_clip's own helpers (``convert_to_custom_text_state_dict``, ``resize_pos_embed``,
    ``resize_text_pos_embed``) on a state that :func:`read_weights_file` has already read: open_clip's
    ``load_checkpoint`` (2.24-2.26, the versions anomalib allows) takes only a path and reads it with ``torch.load``,
    which can open neither OpenAI's TorchScript archives under ``weights_only`` nor safetensors files. Added here: the
    architecture check, whose error names both architectures instead of listing a hundred size mismatches.

    Raises:
        CheckpointMismatchError: the file holds another architecture; the message compares both.
    """
    from open_clip.model import convert_to_custom_text_state_dict, resize_pos_embed, resize_text_pos_embed

    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    if "logit_bias" not in state and getattr(model, "logit_bias", None) is not None and "logit_scale" in state:
        state["logit_bias"] = torch.zeros_like(state["logit_scale"])
    own = model.state_dict()
    state = {key: value for key, value in state.items() if key in own or not key.endswith("position_ids")}
    resizable = {"visual.positional_embedding", "positional_embedding", "text.positional_embedding"}
    problems = [
        f"'{key}' is {list(value.shape)} in the file, {list(own[key].shape)} in the model"
        for key, value in state.items()
        if key in own
        and (value.shape[-1:] != own[key].shape[-1:] if key in resizable else value.shape != own[key].shape)
    ]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        problems.append(f"{len(missing)} weights missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unknown entries (e.g. {', '.join(unexpected[:3])})")
    if problems:
        msg = (
            f"Checkpoint {path} does not fit CLIP model '{backbone}': the file holds a CLIP with "
            f"{_architecture(state)}, '{backbone}' has {_architecture(own)}. {'; '.join(problems[:4])}. "
            "Pass the backbone name these weights were trained as."
        )
        raise CheckpointMismatchError(msg)
    resize_pos_embed(state, model)
    resize_text_pos_embed(state, model)
    model.load_state_dict(state, strict=True)


def _load_file(
    open_clip,  # noqa: ANN001
    backbone: str,
    path: Path,
    image_size: int | None,
) -> nn.Module:
    """Build ``backbone`` for a weight file and load it; OpenAI's files get QuickGELU as ``"openai"`` does."""
    if not path.is_file():
        msg = f"CLIP checkpoint file for '{backbone}' not found: {path}"
        raise FileNotFoundError(msg)
    config_name, quick_gelu = open_clip_config(backbone)
    state, openai_layout = read_weights_file(path, f"CLIP model '{backbone}'")
    if openai_layout:
        logger.info("%s is in OpenAI's layout: building '%s' with QuickGELU, as pretrained='openai'", path, backbone)
    model = open_clip.create_model(
        config_name,
        pretrained=None,
        force_quick_gelu=quick_gelu or openai_layout,
        force_image_size=image_size,
    )
    _load_weights(model, state, path, backbone)
    return model


def _weights_help(backbone: str, tag: str) -> str:
    return (
        f"Could not obtain pretrained weights '{tag}' for CLIP model '{backbone}' (no network, or the download "
        "failed). Supply them in one of these ways:\n"
        f'  1. download once on a machine with network access, e.g. python -c "import open_clip; '
        f"open_clip.create_model('{backbone}', pretrained='{tag}')\", then copy the cache folder "
        "(~/.cache/clip for OpenAI weights, ~/.cache/huggingface/hub for the others) to this machine, or point "
        "HF_HUB_CACHE / the `cache_dir` argument at it;\n"
        f"  2. pass a local checkpoint file instead of the tag: pretrained='/path/to/{backbone}.pt' (command line: "
        f"--model.pretrained /path/to/{backbone}.pt). OpenAI's "
        "released file (or its state dict) builds the model exactly as pretrained='openai' (QuickGELU); an open_clip "
        f"state dict builds '{backbone}' as configured, so name the backbone '{backbone}{QUICK_GELU_SUFFIX}' if "
        "its weights were trained with QuickGELU;\n"
        f"  3. for tests and demos without weights, use backbone='{TINY_MODEL_NAME}', pretrained=None "
        f"(command line: --model.backbone {TINY_MODEL_NAME} --model.pretrained null)."
    )


def load_clip_model(
    backbone: str,
    pretrained: str | Path | None,
    cache_dir: str | Path | None = None,
    image_size: int | None = None,
) -> nn.Module:
    """Create an open_clip CLIP model, frozen and in eval mode.

    Args:
        backbone (str): open_clip model name, e.g. ``"ViT-L-14-336"`` or ``"anomalib-vlm-tiny"``; with
            :data:`QUICK_GELU_SUFFIX` appended, the same architecture with QuickGELU activations.
        pretrained (str | Path | None): an open_clip pretrained tag (``"openai"``, ``"laion2b_s34b_b88k"``...),
            a local checkpoint file, or ``None`` for random weights seeded with :data:`RANDOM_WEIGHTS_SEED`.
            A file may be OpenAI's released TorchScript archive or state dict (recognised by its layout and built
            with QuickGELU, exactly as ``"openai"``), or an open_clip state dict or training checkpoint (built as
            ``backbone`` says). Files are read with ``weights_only=True``; see :func:`read_weights_file`.
        cache_dir (str | Path | None): where open_clip looks for and stores downloaded weights.
            Defaults to open_clip's own cache.
        image_size (int | None): build the vision tower for this input size (open_clip resizes the positional
            embedding of loaded weights). Defaults to the config's size; the dense encoders in this package
            resize on their own and leave it unset.

    Returns:
        nn.Module: the CLIP model with ``requires_grad=False`` on every parameter.

    Raises:
        ValueError: unknown backbone name or pretrained tag, or a file that is no readable state dict.
        CheckpointMismatchError: a file holding another architecture than ``backbone``.
        FileNotFoundError: ``pretrained`` is a path that does not exist.
        WeightsUnavailableError: the weights could not be downloaded.
    """
    open_clip = open_clip_module()
    config_name, quick_gelu = open_clip_config(backbone)

    with _seeded(RANDOM_WEIGHTS_SEED):
        if pretrained is None or str(pretrained) == "":
            model = open_clip.create_model(
                config_name, pretrained=None, force_quick_gelu=quick_gelu, force_image_size=image_size
            )
        elif _is_file_argument(pretrained):
            model = _load_file(open_clip, backbone, Path(pretrained).expanduser(), image_size)
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
                        force_quick_gelu=bool(pretrained_cfg.get("quick_gelu", False)),
                    )
            except _NETWORK_ERRORS:
                raise WeightsUnavailableError(_weights_help(backbone, str(pretrained))) from None
    model.eval()
    model.requires_grad_(False)
    return model


def _load_package_weights(open_clip, backbone: str, path: Path, image_size: int | None) -> nn.Module:  # noqa: ANN001
    """Build ``backbone`` with weights that ship with the package, through the same loader as any weight file."""
    if not path.is_file():
        msg = f"The packaged weights of '{backbone}' are missing: {path} (a broken install?)"
        raise WeightsUnavailableError(msg)
    return _load_file(open_clip, backbone, path, image_size)


def backbone_fingerprint(model: nn.Module) -> float:
    """A cheap number that identifies the backbone's weights (same weights, same number).

    Checkpoints store it so prompts are never loaded onto a different CLIP without an error.
    """
    total = 0.0
    for weights in (model.token_embedding.weight, model.visual.conv1.weight):
        flat = weights.detach().double().flatten()
        total += float((flat * torch.linspace(1.0, 2.0, flat.numel(), dtype=torch.float64)).sum())
    return total
