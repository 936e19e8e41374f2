# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Data that anomalib lacks: batch types, datamodules, IQA table readers, and seeded offline data generators."""

from .dataclasses import IqaBatch, IqaItem, OODImageBatch, OODImageItem, quality_from_score
from .datamodules.auxiliary import AuxiliaryData
from .datamodules.captioned import CaptionedDomainDataModule, read_captions_csv
from .datamodules.iqa import IqaDataModule, IqaDataset, few_shot_split, split_by_distortion
from .datamodules.ood import OODDataModule, OODDataset
from .generators.domain_shift import generate_domain_shift_dataset
from .generators.iqa import DISTORTIONS, clean_images, distort, generate_iqa_dataset
from .generators.ood import generate_synthetic_ood_dataset
from .generators.synthetic import CATEGORIES, DEFECT_TYPES, generate_synthetic_dataset, render_normal, render_sample
from .iqa_tables import read_mos_csv

__all__ = [
    "CATEGORIES",
    "DEFECT_TYPES",
    "DISTORTIONS",
    "AuxiliaryData",
    "CaptionedDomainDataModule",
    "IqaBatch",
    "IqaDataModule",
    "IqaDataset",
    "IqaItem",
    "OODDataModule",
    "OODDataset",
    "OODImageBatch",
    "OODImageItem",
    "clean_images",
    "distort",
    "few_shot_split",
    "generate_domain_shift_dataset",
    "generate_iqa_dataset",
    "generate_synthetic_dataset",
    "generate_synthetic_ood_dataset",
    "quality_from_score",
    "read_captions_csv",
    "read_mos_csv",
    "render_normal",
    "render_sample",
    "split_by_distortion",
]
