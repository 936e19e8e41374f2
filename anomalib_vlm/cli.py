# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""``anomalib-vlm``: anomalib's CLI with this package's models available by short name, plus our commands.

Every anomalib subcommand and option works unchanged (``anomalib-vlm train --model AnomalyClip --data ...``),
because the models are imported, hence registered, before anomalib's CLI parses the arguments. On top of
anomalib's CLI:

* ``test``, ``predict``, ``validate`` and ``export`` with ``--ckpt_path`` rebuild the model the checkpoint was
  trained with (backbone, pretrained tag or file, image size, options): ``--model`` may be left out, and only
  the options given on the command line override the checkpoint's;
* a zero- or few-shot model (trained AnomalyClip, SMMP or tuned Supreme) tested from a checkpoint is calibrated
  on the new dataset's validation split, as it is without a checkpoint, instead of keeping the thresholds of the
  data it was trained on;
* data loaders use at most as many workers as the machine has CPU cores;
* third-party ``FutureWarning`` s are not printed.

Added commands:

* ``anomalib-vlm demo``: the end-to-end demo on synthetic data (see :mod:`anomalib_vlm.demo`);
* ``anomalib-vlm cross-dataset``: train on one dataset, test every category of another
  (see :mod:`anomalib_vlm.cross_dataset`);
* ``anomalib-vlm synthetic-data``: write the synthetic categories (see :mod:`anomalib_vlm.data.generators.synthetic`);
* ``anomalib-vlm benchmark speed|accuracy``: speed, memory and accuracy tables (see :mod:`anomalib_vlm.benchmark`);
* ``anomalib-vlm official-checkpoint``: turn the papers' released prompt files into checkpoints of our models
  (see :mod:`anomalib_vlm.official_checkpoints`);
* ``anomalib-vlm pretrain-clip``: the recipe of the small CLIP that ships with the package
  (see :mod:`anomalib_vlm.clip.pretrain`);
* ``anomalib-vlm meta-pretrain``: MetaIqa's meta-prompt pre-training on a MOS table with distortion types
  (see :mod:`anomalib_vlm.meta_pretrain`);
* ``anomalib-vlm fake-outliers`` / ``fake-anomalies``: FodFoM's fake outliers and fake anomalies made by
  foundation models (see :mod:`anomalib_vlm.fodfom`).
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from anomalib_vlm.errors import AnomalibVlmError

OWN_COMMANDS = {
    "demo": "anomalib_vlm.demo",
    "cross-dataset": "anomalib_vlm.cross_dataset",
    "synthetic-data": "anomalib_vlm.data.generators.synthetic",
    "benchmark": "anomalib_vlm.benchmark",
    "official-checkpoint": "anomalib_vlm.official_checkpoints",
    "pretrain-clip": "anomalib_vlm.clip.pretrain",
    "meta-pretrain": "anomalib_vlm.meta_pretrain",
    "fake-outliers": "anomalib_vlm.fodfom.cli:main_outliers",
    "fake-anomalies": "anomalib_vlm.fodfom.cli:main_anomalies",
}
CHECKPOINT_COMMANDS = {"test", "predict", "validate", "export"}
"""anomalib subcommands that take ``--ckpt_path`` and so can rebuild the model from it."""

logger = logging.getLogger(__name__)


def quiet_third_party_warnings() -> None:
    """Hide the ``FutureWarning`` s that importing anomalib's dependencies prints (timm, anomalib's own models).

    They concern code this package does not call; our own warnings still show.
    """
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(?!anomalib_vlm)")


def _value_from_checkpoint(value: Any) -> bool:
    """Whether a saved hyper-parameter is a plain value that a command line could have given."""
    if isinstance(value, (list, tuple)):
        return all(_value_from_checkpoint(item) for item in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _model_class(class_path: str) -> type | None:
    import importlib

    module_name, _, class_name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        return None


def checkpoint_model_settings(model_config: Any, checkpoint_path: str) -> list[str]:
    """Fill a parsed ``--model`` configuration with the settings a checkpoint of our models was trained with.

    A setting keeps the command line's value when that differs from the class default (the user asked for it);
    every other setting takes the checkpoint's value, so ``--ckpt_path`` alone rebuilds the trained model.

    Args:
        model_config: jsonargparse namespace with ``class_path`` and ``init_args``; changed in place.
        checkpoint_path (str): the checkpoint.

    Returns:
        list[str]: the names of the settings taken from the checkpoint.
    """
    from anomalib_vlm.models.components import ClipBackboneModule, read_checkpoint

    model_class = _model_class(model_config.class_path)
    if model_class is None or not issubclass(model_class, ClipBackboneModule):
        return []
    saved = read_checkpoint(checkpoint_path, model_class).get("hyper_parameters", {})
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(model_class.__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    taken = []
    for name, value in saved.items():
        if name not in defaults or not _value_from_checkpoint(value):
            continue
        current = model_config.init_args.get(name, defaults[name])
        if _same(current, defaults[name]) and not _same(value, current):
            model_config.init_args[name] = list(value) if isinstance(value, tuple) else value
            taken.append(name)
    return taken


def _same(first: Any, second: Any) -> bool:
    normalise = lambda value: list(value) if isinstance(value, (list, tuple)) else value  # noqa: E731
    return normalise(first) == normalise(second)


def fit_workers_to_machine(data_config: Any) -> None:
    """Cap a datamodule's ``num_workers`` at the machine's CPU count (anomalib's datamodules default to 8)."""
    init_args = getattr(data_config, "init_args", None)
    if init_args is None or "num_workers" not in init_args:
        return
    cores = os.cpu_count() or 1
    if init_args.num_workers is not None and init_args.num_workers > cores:
        logger.info("Data loader workers: %d (the machine's CPU cores) instead of %d.", cores, init_args.num_workers)
        init_args.num_workers = cores


def _with_model_from_checkpoint(args: list[str]) -> list[str]:
    """``--ckpt_path`` without ``--model`` (or a config): name the model class the checkpoint was saved from."""
    if not args or args[0] not in CHECKPOINT_COMMANDS:
        return args
    if any(arg == "--model" or arg.startswith(("--model=", "--model.", "--config")) for arg in args):
        return args
    checkpoint = next(
        (
            value
            for flag, value in zip(args, [*args[1:], None], strict=True)
            if flag == "--ckpt_path" and value is not None
        ),
        None,
    )
    checkpoint = checkpoint or next((arg.split("=", 1)[1] for arg in args if arg.startswith("--ckpt_path=")), None)
    if checkpoint is None:
        return args
    from anomalib_vlm.models.components import CHECKPOINT_KEY, ClipBackboneModule

    identity = ClipBackboneModule.read_checkpoint_identity(checkpoint)
    if identity is None or "model_class" not in identity:
        return args
    print(f"anomalib-vlm: model {identity['model_class']} from {checkpoint} ({CHECKPOINT_KEY})", file=sys.stderr)
    return [args[0], "--model", identity["model_class"], *args[1:]]


def _cli_class() -> type:
    """Anomalib's CLI with checkpoint-aware model building and calibration (see the module docstring)."""
    from anomalib import LearningType
    from anomalib.cli import AnomalibCLI

    from anomalib_vlm.models.components import ClipBackboneModule

    class AnomalibVlmCLI(AnomalibCLI):
        """anomalib's CLI, checkpoint-aware for this package's models."""

        def before_instantiate_classes(self) -> None:
            super().before_instantiate_classes()
            subcommand = self.config["subcommand"]
            config = self.config.get(subcommand)
            if config is None:
                return
            checkpoint = config.get("ckpt_path") if subcommand in CHECKPOINT_COMMANDS else None
            if checkpoint and config.get("model") is not None:
                taken = checkpoint_model_settings(config.model, str(checkpoint))
                if taken:
                    logger.info("Settings from the checkpoint: %s", ", ".join(taken))
            if config.get("data") is not None:
                fit_workers_to_machine(config.data)

        def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
            kwargs = super()._prepare_subcommand_kwargs(subcommand)
            checkpoint = kwargs.get("ckpt_path")
            model = kwargs.get("model")
            if (
                subcommand in {"test", "predict", "validate"}
                and checkpoint
                and isinstance(model, ClipBackboneModule)
                and kwargs.get("datamodule") is not None
            ):
                # anomalib skips validation when given a checkpoint, keeping the thresholds of the training data.
                # A zero-/few-shot model is meant to be calibrated on the data it scores: load the learned state
                # here, and let the Engine validate on this datamodule as it does without a checkpoint.
                model.load_learned_state(checkpoint)
                if model.learning_type in {LearningType.ZERO_SHOT, LearningType.FEW_SHOT}:
                    kwargs["ckpt_path"] = None
            return kwargs

    return AnomalibVlmCLI


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to our own commands or to anomalib's CLI."""
    import importlib

    quiet_third_party_warnings()
    import anomalib_vlm  # noqa: F401 - registers the models with anomalib and jsonargparse

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in OWN_COMMANDS:
        try:
            module, _, function = OWN_COMMANDS[args[0]].partition(":")  # "module" or "module:function"
            return getattr(importlib.import_module(module), function or "main")(args[1:])
        except (AnomalibVlmError, FileNotFoundError, ValueError) as error:
            print(f"anomalib-vlm {args[0]}: error: {error}", file=sys.stderr)
            return 2
    if args and args[0] in {"-h", "--help"}:
        print(__doc__)
    try:
        args = _with_model_from_checkpoint(args)
    except (AnomalibVlmError, FileNotFoundError, ValueError) as error:
        print(f"anomalib-vlm {args[0]}: error: {error}", file=sys.stderr)
        return 2
    from anomalib.loggers import configure_logger

    configure_logger()
    _cli_class()(args=args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
