# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""``anomalib-vlm benchmark speed|accuracy``: what each model costs per image and how accurate it is."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

SUBCOMMANDS = {"speed": "anomalib_vlm.benchmark.speed", "accuracy": "anomalib_vlm.benchmark.accuracy"}


def main(argv: Sequence[str]) -> int:
    """Dispatch to ``speed`` or ``accuracy``."""
    if not argv or argv[0] not in SUBCOMMANDS:
        print("usage: anomalib-vlm benchmark {speed,accuracy} [options]   (--help after the subcommand)")
        return 2
    return importlib.import_module(SUBCOMMANDS[argv[0]]).main(list(argv[1:]))


__all__ = ["main"]
