# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Lightning callbacks that work with any anomalib model: the quality gate in front of anomaly scoring."""

from .quality_gate import GateResult, QualityGate

__all__ = ["GateResult", "QualityGate"]
