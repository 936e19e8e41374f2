# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Data that anomalib lacks: pooled auxiliary training data, synthetic anomaly datasets, IQA data with MOS."""

from .datamodules.auxiliary import AuxiliaryData
from .datamodules.iqa import IqaBatch, IqaDataModule, IqaDataset, generate_iqa_dataset, read_mos_csv
from .datamodules.ood import OODDataModule, OODDataset, OODImageBatch, generate_synthetic_ood_dataset
from .generators.synthetic import CATEGORIES, DEFECT_TYPES, generate_synthetic_dataset, render_sample

__all__ = [
    "CATEGORIES",
    "DEFECT_TYPES",
    "AuxiliaryData",
    "IqaBatch",
    "IqaDataModule",
    "IqaDataset",
    "OODDataModule",
    "OODDataset",
    "OODImageBatch",
    "generate_iqa_dataset",
    "generate_synthetic_dataset",
    "generate_synthetic_ood_dataset",
    "read_mos_csv",
    "render_sample",
]
