# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""anomalib datamodules (and their datasets) that anomalib lacks: pooled auxiliary data, IQA with MOS, multi-class OOD."""
