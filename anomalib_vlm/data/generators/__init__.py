# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Seeded, offline data generators: synthetic anomalies, synthetic OOD, graded IQA distortions, a captioned corpus."""
