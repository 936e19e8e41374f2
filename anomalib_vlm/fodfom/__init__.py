# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""FodFoM: fake outliers (and fake anomalies) made by foundation models, as swappable stages.

Chen et al., "FodFoM: Fake Outlier Data by Foundation Models Creates Stronger Visual Out-of-Distribution
Detector", ACM MM 2024 (arXiv 2412.05293). Stages (one module each; any object with the same method can replace a
component): captioning, text embedding, boundary selection and perturbation, conditioning map, generation,
background detection and blurring; plus defect in-painting for anomaly detection. The real models come with
``pip install 'anomalib-vlm[fodfom]'`` and load only when used. See ``README.md`` in this folder.
"""

from anomalib_vlm.fodfom.anomalies import RenderedDefectPainter, StableDiffusionInpainter, defect_region
from anomalib_vlm.fodfom.background import GroundingDinoDetector, blur_objects
from anomalib_vlm.fodfom.boundary import PerturbationDirection, perturb, select_boundary
from anomalib_vlm.fodfom.captioning import Blip2Captioner, CaptionTable, caption_text
from anomalib_vlm.fodfom.conditioning import EndOfTextConditioning
from anomalib_vlm.fodfom.datamodule import FakeOutlierDataModule
from anomalib_vlm.fodfom.errors import MissingModelError
from anomalib_vlm.fodfom.generators import DescriptionRenderer, StableDiffusionGenerator
from anomalib_vlm.fodfom.pipeline import Manifest, make_fake_anomalies, make_fake_outliers
from anomalib_vlm.fodfom.text_embedding import OpenClipText, TransformersClipText

__all__ = [
    "Blip2Captioner",
    "CaptionTable",
    "DescriptionRenderer",
    "EndOfTextConditioning",
    "FakeOutlierDataModule",
    "GroundingDinoDetector",
    "Manifest",
    "MissingModelError",
    "OpenClipText",
    "PerturbationDirection",
    "RenderedDefectPainter",
    "StableDiffusionGenerator",
    "StableDiffusionInpainter",
    "TransformersClipText",
    "blur_objects",
    "caption_text",
    "defect_region",
    "make_fake_anomalies",
    "make_fake_outliers",
    "perturb",
    "select_boundary",
]
