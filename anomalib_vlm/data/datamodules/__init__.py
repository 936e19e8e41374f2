# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Datamodules (with their datasets) that anomalib lacks: pooled auxiliary data, IQA with MOS, multi-class OOD."""
