# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""What every anomalib-vlm model on a frozen open_clip backbone shares: lean checkpoints and ONNX export.

A checkpoint holds only what was learned (prompts, heads, prototypes) plus the backbone's identity (name, tag and
a fingerprint of its weights); the frozen CLIP weights are dropped on save and filled back in from the model on
load, after the identity has been checked. Models mix :class:`ClipBackboneModule` in before ``AnomalibModule`` and
keep their ``torch_model`` at ``self.model`` with the CLIP model at ``self.model.clip``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from anomalib_vlm.clip import backbone_fingerprint
from anomalib_vlm.clip.backbone import describe_loaded, load_weights_only
from anomalib_vlm.errors import CheckpointMismatchError
from anomalib_vlm.models.quantization import TransformerQuantization

CHECKPOINT_KEY = "anomalib_vlm_backbone"
"""Checkpoint entry holding the backbone identity."""
FROZEN_PREFIX = "model.clip."
"""State-dict prefix of the frozen CLIP weights, which checkpoints leave out."""


EXPORTER_LOGGERS = ("onnx_ir", "onnxscript")
"""Loggers of torch's ONNX exporter that write a line per rewritten node at INFO (thousands for a CLIP)."""


@contextlib.contextmanager
def _quiet_loggers(names: Sequence[str], level: int = logging.WARNING) -> Iterator[None]:
    """Raise the level of some loggers for the duration of a block."""
    loggers = [logging.getLogger(name) for name in names]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        for logger, old_level in zip(loggers, previous, strict=True):
            logger.setLevel(old_level)


def read_checkpoint(path: str | Path, model: type) -> dict[str, Any]:
    """Read a Lightning checkpoint of ``model`` safely: ``weights_only=True`` under anomalib's safe globals.

    Args:
        path (str | Path): the checkpoint file.
        model (type): the model class it should belong to (its ``checkpoint_safe_globals`` are allowed).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is no checkpoint that can be read safely, or holds no ``state_dict``; the message names
            the file, the model and what was found.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{model.__name__} checkpoint not found: {path}"
        raise FileNotFoundError(msg)
    extra = model.checkpoint_safe_globals() if hasattr(model, "checkpoint_safe_globals") else ()
    checkpoint = load_weights_only(path, f"{model.__name__} checkpoint", extra)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        msg = (
            f"{path} is not a {model.__name__} checkpoint: it holds no 'state_dict' "
            f"(found {describe_loaded(checkpoint)})."
        )
        raise ValueError(msg)
    return dict(checkpoint)


class ClipBackboneModule(TransformerQuantization):
    """Mixin for an ``AnomalibModule`` whose torch model keeps a frozen open_clip model at ``model.clip``.

    Subclasses may override :meth:`backbone_identity` (to record more, e.g. class names),
    :meth:`restore_from_identity` (to rebuild what depends on it before the state is loaded),
    :meth:`kept_frozen_keys` (backbone weights that were fine-tuned and so belong in the checkpoint) and
    :meth:`refresh_cached_features` (buffers derived from the learned state, e.g. text features), and
    :meth:`~anomalib_vlm.models.quantization.TransformerQuantization.nncf_quantization_options` (what anomalib's
    ``INT8_PTQ`` / ``INT8_ACQ`` export passes to NNCF; NNCF's transformer scheme by default).
    """

    # ------------------------------------------------------------------ export
    def to_onnx(
        self,
        export_root: Path | str,
        model_file_name: str = "model",
        input_size: tuple[int, int] | None = None,
        **kwargs: Any,
    ) -> Path:
        """Export to ONNX (used by ``to_openvino`` too) at opset 18 unless told otherwise.

        The dynamo exporter emits opset 18 anyway; asking for anomalib's default 14 only adds a failed
        down-conversion and its traceback to the log.
        """
        kwargs.setdefault("opset_version", 18)
        with _quiet_loggers(EXPORTER_LOGGERS):
            return super().to_onnx(export_root, model_file_name=model_file_name, input_size=input_size, **kwargs)  # type: ignore[misc]

    # ------------------------------------------------------------------ identity
    def backbone_identity(self) -> dict[str, Any]:
        """Name, tag and weight fingerprint of the backbone, as stored in checkpoints."""
        pretrained = self.hparams.pretrained  # type: ignore[attr-defined]
        return {
            # The CLI rebuilds the model from this when ``--ckpt_path`` comes without ``--model``.
            "model_class": f"{type(self).__module__}.{type(self).__qualname__}",
            "backbone": self.hparams.backbone,  # type: ignore[attr-defined]
            "pretrained": None if pretrained is None else str(pretrained),
            "fingerprint": backbone_fingerprint(self.model.clip),  # type: ignore[attr-defined]
        }

    @classmethod
    def mismatch_message(cls, saved: Mapping[str, Any], backbone: str, pretrained: str | None) -> str:
        """The error text for a checkpoint of another backbone: both identities and what to do."""
        name = cls.__name__
        return (
            f"This {name} checkpoint holds state trained for backbone '{saved['backbone']}' "
            f"(pretrained={saved['pretrained']!r}), but the model uses '{backbone}' (pretrained={pretrained!r}). "
            f"Build the model with the checkpoint's backbone: in Python {name}.load_from_checkpoint(path) without "
            "overriding backbone/pretrained; on the command line `anomalib-vlm test|predict|export --ckpt_path "
            "path` without --model.backbone / --model.pretrained (the checkpoint supplies them)."
        )

    def check_backbone_identity(self, saved: Mapping[str, Any] | None) -> None:
        """Raise if ``saved`` (a checkpoint's identity; ``None`` = unknown) names another backbone or weights.

        Raises:
            CheckpointMismatchError: another backbone name, or weights whose fingerprint differs.
        """
        if saved is None:
            return
        current = self.backbone_identity()
        tolerance = 1e-6 * max(1.0, abs(current["fingerprint"]))
        if saved["backbone"] != current["backbone"] or abs(saved["fingerprint"] - current["fingerprint"]) > tolerance:
            raise CheckpointMismatchError(self.mismatch_message(saved, current["backbone"], current["pretrained"]))

    # ------------------------------------------------------------------ hooks for subclasses
    def restore_from_identity(self, saved: Mapping[str, Any]) -> None:
        """Rebuild what the checkpoint's identity determines (e.g. class prompts) before its state loads."""

    def kept_frozen_keys(self) -> set[str]:
        """Backbone state-dict keys (with ``model.clip.`` prefix) that belong in the checkpoint."""
        return set()

    def refresh_cached_features(self) -> None:
        """Recompute buffers derived from the learned state (called after every state-dict load)."""

    # ------------------------------------------------------------------ reading checkpoints
    @staticmethod
    def read_checkpoint_identity(checkpoint_path: str | Path) -> dict[str, Any] | None:
        """The backbone identity stored in a checkpoint of any of the package's models (``None``: not one of ours).

        Raises:
            FileNotFoundError: no such file.
        """
        model_classes, pending = [], [ClipBackboneModule]
        while pending:  # every model class, for the types their hyper-parameters may hold
            model_class = pending.pop()
            model_classes.append(model_class)
            pending.extend(model_class.__subclasses__())
        safe_types = [
            safe_type
            for model_class in model_classes
            if hasattr(model_class, "checkpoint_safe_globals")
            for safe_type in model_class.checkpoint_safe_globals()
        ]
        path = Path(checkpoint_path).expanduser()
        if not path.is_file():
            msg = f"Checkpoint not found: {path}"
            raise FileNotFoundError(msg)
        checkpoint = load_weights_only(path, "a checkpoint of an anomalib-vlm model", safe_types)
        return checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, Mapping) else None

    def load_learned_state(self, checkpoint_path: str | Path) -> None:
        """Load a checkpoint's learned state (prompts, thresholds, normalisation) into this model, in place.

        What Lightning does for ``trainer.test(ckpt_path=...)``, without a trainer: the CLI uses it so a zero- or
        few-shot model can be calibrated on a new dataset after its prompts are loaded.
        """
        checkpoint = read_checkpoint(checkpoint_path, type(self))
        self.on_load_checkpoint(checkpoint)
        self.load_state_dict(checkpoint["state_dict"])

    # ------------------------------------------------------------------ lightning checkpoint hooks
    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls,
        checkpoint_path: str | Path,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Load a checkpoint; a ``backbone`` override that differs from the checkpoint's fails before any loading.

        The file is read once up front, with ``weights_only=True`` under anomalib's safe globals and the model's
        :meth:`checkpoint_safe_globals`, so a file that is no checkpoint of this model fails with a message that
        names it instead of deep inside Lightning.

        Raises:
            ValueError: the file is no readable checkpoint, or holds no ``state_dict``.
            CheckpointMismatchError: the checkpoint's state belongs to another backbone.
        """
        checkpoint = read_checkpoint(checkpoint_path, cls)
        saved = checkpoint.get(CHECKPOINT_KEY)
        if "backbone" in kwargs and saved is not None and saved["backbone"] != kwargs["backbone"]:
            raise CheckpointMismatchError(cls.mismatch_message(saved, kwargs["backbone"], kwargs.get("pretrained")))
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)  # type: ignore[misc]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only what was learned: drop the frozen CLIP weights, record which backbone they belong to."""
        keep = self.kept_frozen_keys()
        state_dict = checkpoint["state_dict"]
        for key in [key for key in state_dict if key.startswith(FROZEN_PREFIX) and key not in keep]:
            del state_dict[key]
        checkpoint[CHECKPOINT_KEY] = self.backbone_identity()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check the backbone, then complete the checkpoint's state with this model's frozen CLIP weights.

        Raises:
            CheckpointMismatchError: the checkpoint belongs to another backbone, or its tensors to other settings.
        """
        super().on_load_checkpoint(checkpoint)  # type: ignore[misc]
        saved = checkpoint.get(CHECKPOINT_KEY)
        self.check_backbone_identity(saved)
        if saved is not None:
            self.restore_from_identity(saved)
        state_dict = checkpoint["state_dict"]
        own_state = self.state_dict()  # type: ignore[attr-defined]
        for key, value in state_dict.items():
            # Empty buffers are placeholders that the checkpoint sizes (anomalib's DynamicBufferMixin).
            if key in own_state and own_state[key].numel() > 0 and own_state[key].shape != value.shape:
                msg = (
                    f"Checkpoint tensor '{key}' has shape {list(value.shape)} but this model expects "
                    f"{list(own_state[key].shape)}: build the model with the checkpoint's prompt settings."
                )
                raise CheckpointMismatchError(msg)
        for key, value in own_state.items():
            if key.startswith(FROZEN_PREFIX):
                state_dict.setdefault(key, value)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load a state dict, then refresh what is derived from it."""
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)  # type: ignore[misc]
        self.refresh_cached_features()
        return result
