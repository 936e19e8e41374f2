# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Data that anomalib lacks, laid out as anomalib lays out its own.

* :mod:`~anomalib_vlm.data.dataclasses`: batch types (IQA scores, OOD classes) and the rules they carry.
* :mod:`~anomalib_vlm.data.datamodules`: pooled auxiliary training data, IQA with MOS, multi-class OOD.
* :mod:`~anomalib_vlm.data.iqa_tables`: readers of image-quality score tables (KonIQ-10k, LIVE Challenge, ...).
* :mod:`~anomalib_vlm.data.generators`: seeded offline data: synthetic anomalies, synthetic OOD, graded IQA
  distortions, the small CLIP's captioned corpus; :mod:`~anomalib_vlm.data.utils` is what they share.
"""

from .dataclasses import (
    OOD_CLASS_INDEX,
    REFERENCE_TYPE,
    IqaBatch,
    IqaItem,
    OODImageBatch,
    OODImageItem,
    quality_from_score,
)
from .datamodules.auxiliary import AuxiliaryData
from .datamodules.iqa import IqaDataModule, IqaDataset, few_shot_split, split_by_distortion
from .datamodules.ood import OODDataModule, OODDataset
from .generators.iqa import DISTORTIONS, clean_images, distort, generate_iqa_dataset
from .generators.ood import generate_synthetic_ood_dataset
from .generators.synthetic import CATEGORIES, DEFECT_TYPES, generate_synthetic_dataset, render_normal, render_sample
from .iqa_tables import read_mos_csv
from .utils import readable_name

__all__ = [
    "CATEGORIES",
    "DEFECT_TYPES",
    "DISTORTIONS",
    "OOD_CLASS_INDEX",
    "REFERENCE_TYPE",
    "AuxiliaryData",
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
    "generate_iqa_dataset",
    "generate_synthetic_dataset",
    "generate_synthetic_ood_dataset",
    "quality_from_score",
    "read_mos_csv",
    "readable_name",
    "render_normal",
    "render_sample",
    "split_by_distortion",
]
