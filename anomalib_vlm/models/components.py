# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""What every anomalib-vlm model on a frozen open_clip backbone shares, in torch and in Lightning.

* :class:`FrozenClipModel` is the base of every torch model: it loads the CLIP model (frozen, in eval mode
  whatever mode its owner is in), checks input images, keeps the buffers derived from the learned state (text
  features, prototypes) up to date on one trigger (:meth:`FrozenClipModel.refresh_cached_features`: entering eval
  mode, loading a state dict, or a subclass's own setters), and holds the training state (``trained``).
* :class:`ClipBackboneModule` is the Lightning side, mixed in before ``AnomalibModule``: lean checkpoints (only
  what was learned plus the backbone's identity: name, tag and a fingerprint of its weights; the frozen CLIP
  weights are dropped on save and filled back in on load, after the identity has been checked), ONNX export, the
  validation step through the torch model's ``forward`` (anomalib's own test and predict steps do the same), and
  the learning type that follows the training state. Models keep their torch model at ``self.model``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from anomalib import LearningType
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

from anomalib_vlm.clip import backbone_fingerprint, clip_pre_processor, load_clip_model
from anomalib_vlm.clip.backbone import describe_loaded, load_weights_only
from anomalib_vlm.errors import CheckpointMismatchError
from anomalib_vlm.models.quantization import TransformerQuantization

if TYPE_CHECKING:
    from anomalib.data import Batch
    from anomalib.metrics import Evaluator
    from anomalib.post_processing import PostProcessor
    from anomalib.pre_processing import PreProcessor
    from anomalib.visualization import Visualizer
    from lightning.pytorch.utilities.types import STEP_OUTPUT

logger = logging.getLogger(__name__)

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


class FrozenClipModel(nn.Module):
    """Base of the package's torch models: a frozen open_clip CLIP at ``self.clip`` plus what a model learns.

    Subclasses build their learned parts after ``super().__init__``, return the buffers derived from them in
    :meth:`cached_features` and score images in ``forward`` (eval mode: an ``InferenceBatch``, what gets exported),
    starting with :meth:`check_images`.

    Args:
        backbone (str): open_clip model name.
        pretrained (str | Path | None): open_clip tag, local weight file, or ``None`` (seeded random weights).
        image_size (int): square input side the model is built for.
        cache_dir (str | Path | None): open_clip weight cache. Defaults to open_clip's own.
    """

    model_name: ClassVar[str] = "This model"
    """How error messages name the model (e.g. ``"AnomalyClip"``)."""

    def __init__(
        self,
        backbone: str,
        pretrained: str | Path | None,
        image_size: int,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.backbone, self.pretrained, self.image_size, self.cache_dir = backbone, pretrained, image_size, cache_dir
        self.clip = load_clip_model(backbone, pretrained, cache_dir)
        # Whether an optimiser step (or a loaded checkpoint) changed the learned state; saved in checkpoints.
        self.register_buffer("trained", torch.zeros((), dtype=torch.bool))

    @property
    def input_channels(self) -> int:
        """Channels the backbone expects."""
        return int(self.clip.visual.conv1.in_channels)

    def check_images(self, images: torch.Tensor) -> None:
        """Raise unless ``images`` is a ``[B, C, H, W]`` batch with the backbone's channels.

        Raises:
            ValueError: the message names the expected and the given shape.
        """
        if images.ndim != 4 or images.shape[1] != self.input_channels:
            msg = (
                f"{self.model_name} expects images of shape [B, {self.input_channels}, H, W], got "
                f"{list(images.shape)}; convert grayscale images to RGB in the datamodule."
            )
            raise ValueError(msg)

    def cached_features(self) -> dict[str, torch.Tensor]:
        """Buffers derived from the learned state, by name (e.g. the text features); none by default."""
        return {}

    def store_buffers(self, **buffers: torch.Tensor) -> None:
        """Replace registered buffers by detached copies of the given tensors.

        Outside inference mode: buffers written under ``torch.inference_mode()`` (Lightning's test and predict
        loops) would be inference tensors, which later training steps cannot use.
        """
        with torch.inference_mode(False), torch.no_grad():
            for name, value in buffers.items():
                setattr(self, name, value.detach().clone())

    def refresh_cached_features(self) -> None:
        """Recompute the buffers of :meth:`cached_features` from the current learned state."""
        self.store_buffers(**self.cached_features())

    def train(self, mode: bool = True) -> FrozenClipModel:
        """Switch mode; the backbone stays in eval mode, and entering eval mode refreshes the cached features."""
        super().train(mode)
        self.clip.eval()  # frozen backbone: never its train-mode behaviour (patch dropout)
        if not mode:
            self.refresh_cached_features()
        return self


class ClipBackboneModule(TransformerQuantization):
    """Mixin for an ``AnomalibModule`` whose torch model (at ``self.model``) is a :class:`FrozenClipModel`.

    Subclasses may set :attr:`trained_learning_type` (what the model is once trained) and override
    :meth:`backbone_identity` (to record more, e.g. class names), :meth:`restore_from_identity` (to rebuild what
    depends on it before the state is loaded), :meth:`kept_frozen_keys` (backbone weights that were
    fine-tuned and so belong in the checkpoint) and
    :meth:`~anomalib_vlm.models.quantization.TransformerQuantization.nncf_quantization_options` (what anomalib's
    ``INT8_PTQ`` / ``INT8_ACQ`` export passes to NNCF; NNCF's transformer scheme by default).
    """

    trained_learning_type: ClassVar[LearningType | None] = None
    """The learning type of a trained model, e.g. ``ZERO_SHOT`` for prompts trained once on auxiliary data and
    then used on unseen categories. ``None``: ``ONE_CLASS`` always (``Engine.fit`` trains, every time)."""
    default_backbone: ClassVar[str] = "ViT-B-16"
    """The backbone of the model's paper (the ``backbone`` argument's default)."""
    default_image_size: ClassVar[int] = 224
    """The input side of the model's paper (the ``image_size`` argument's default)."""
    resize_mode: ClassVar[str | None] = None
    """How the pre-processor resizes: ``None`` as open_clip declares for the weights (OpenAI's: shorter side and
    centre crop), ``"squash"`` the whole image to the input size (dense maps must cover all of it)."""

    def __init__(
        self,
        backbone: str,
        pretrained: str | Path | None,
        image_size: int,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        """Build anomalib's components; ``pre_processor=True`` is the backbone's CLIP pre-processor at ``image_size``.

        The model's own ``__init__`` validates its options, calls this, then builds its torch model at
        ``self.model``.
        """
        if pre_processor is True:
            pre_processor = self.configure_pre_processor((image_size, image_size), backbone, pretrained)
        super().__init__(
            pre_processor=pre_processor,
            post_processor=post_processor,
            evaluator=evaluator,
            visualizer=visualizer,
        )

    # ------------------------------------------------------------------ anomalib configuration
    @classmethod
    def configure_pre_processor(
        cls,
        image_size: tuple[int, int] | None = None,
        backbone: str | None = None,
        pretrained: str | Path | None = "openai",
    ) -> PreProcessor:
        """Resize to the model input (:attr:`resize_mode`) and normalise as the backbone's weights were trained.

        Statistics and interpolation are those open_clip declares for ``backbone`` and ``pretrained``
        (:func:`~anomalib_vlm.clip.clip_pre_processor`).

        Args:
            image_size (tuple[int, int] | None): model input size. Defaults to :attr:`default_image_size` squared.
            backbone (str | None): open_clip model name. Defaults to :attr:`default_backbone`.
            pretrained (str | Path | None): pretrained tag or weight file. Defaults to ``"openai"``.

        Raises:
            ValueError: an unknown backbone, or a non-square size where the resize crops the centre.
        """
        size = image_size or (cls.default_image_size, cls.default_image_size)
        return clip_pre_processor(backbone or cls.default_backbone, pretrained, size, resize_mode=cls.resize_mode)

    # ------------------------------------------------------------------ training state
    @property
    def learning_type(self) -> LearningType:
        """``ONE_CLASS`` until trained (so ``Engine.fit`` trains), then :attr:`trained_learning_type` if set.

        A trained zero-/few-shot model is validated, not trained, by ``Engine.fit`` and ``Engine.test``:
        anomalib then calibrates its thresholds and normalisation on the datamodule at hand, which is what
        zero-shot use on a new category needs. :meth:`continue_training` makes the next ``Engine.fit`` train.
        """
        if self.trained_learning_type is not None and bool(self.model.trained):  # type: ignore[attr-defined]
            return self.trained_learning_type
        return LearningType.ONE_CLASS

    def continue_training(self, epochs: int | None = None) -> None:
        """Make the next ``Engine.fit`` train further from the current learned state, instead of only validating.

        Args:
            epochs (int | None): epochs of that training; ``None`` keeps the model's ``epochs``.

        Raises:
            ValueError: ``epochs`` < 1.
        """
        if epochs is not None:
            if epochs < 1:
                msg = f"continue_training needs epochs >= 1, got {epochs}"
                raise ValueError(msg)
            self.hparams.epochs = int(epochs)  # type: ignore[attr-defined]
        self.model.trained.fill_(False)  # type: ignore[attr-defined]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """An optimiser step changed the learned state: the model is trained from now on.

        Set after every step (not at the end of fit), so the checkpoint Lightning saves at the end-of-training
        validation already records it and loads as a trained model.
        """
        self.model.trained.fill_(True)  # type: ignore[attr-defined]

    def on_validation_start(self) -> None:
        """Say so when a trained model is only validated: ``Engine.fit`` on it trains nothing."""
        super().on_validation_start()  # type: ignore[misc]
        trainer = self.trainer  # type: ignore[attr-defined]
        if trainer.state.fn == TrainerFn.VALIDATING and self.learning_type != LearningType.ONE_CLASS:
            if bool(self.model.trained):  # type: ignore[attr-defined]
                logger.info(
                    "%s is already trained: Engine.fit and Engine.test only validate it on this datamodule "
                    "(thresholds and normalisation); nothing is trained. To train further, call "
                    "model.continue_training() before Engine.fit.",
                    type(self).__name__,
                )

    def validation_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """Score a batch through the torch model's ``forward``, as anomalib's test and predict steps do.

        The batch takes the prediction fields it has (``pred_class`` only on batches that carry it).
        """
        del args, kwargs  # These variables are not used.
        return batch.update(**self.model(batch.image)._asdict())  # type: ignore[attr-defined]

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
        self.model.refresh_cached_features()  # type: ignore[attr-defined]
        return result
