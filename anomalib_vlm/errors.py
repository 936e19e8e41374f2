# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Errors raised by anomalib-vlm; each message names the problem and how to fix it."""


class AnomalibVlmError(Exception):
    """Base class of the package's own errors."""


class WeightsUnavailableError(AnomalibVlmError, RuntimeError):
    """Pretrained CLIP weights could not be downloaded or found."""


class CheckpointMismatchError(AnomalibVlmError, ValueError):
    """A checkpoint was made for another backbone or another prompt layout."""
