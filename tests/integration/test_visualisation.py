# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The images anomalib's Engine writes for Supreme and MetaIqa show the answer, and Supreme's metrics rank raw scores.

Each model runs ``Engine.test`` once on the tiny random CLIP and small generated data; the written images are
compared with the plain input (the panel) and with each other (the caption strip), and the captions the
visualizer composed are recorded. The Supreme run also checks, through the real Lightning callback order, that
the logged AUROC / FPR95 are those of the model's own OOD scores while the deployed scores are normalised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.data import ImageItem
from PIL import Image
from torchmetrics.functional.classification import binary_auroc

from anomalib_vlm.data import (
    IqaDataModule,
    IqaItem,
    OODDataModule,
    OODImageItem,
    generate_iqa_dataset,
    generate_synthetic_ood_dataset,
)
from anomalib_vlm.metrics import fpr_at_tpr
from anomalib_vlm.models.meta_iqa import MetaIqa
from anomalib_vlm.models.meta_iqa.visualizer import QualityVisualizer
from anomalib_vlm.models.supreme import OODVisualizer, Supreme
from tests.helpers import make_engine

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

IMAGE_SIZE = 64
PANEL = 256  # the visualizers' default field size
TINY = {"backbone": "anomalib-vlm-tiny", "pretrained": None, "image_size": IMAGE_SIZE}


@dataclass
class Run:
    """One ``Engine.test``: the model, its metrics, the captions by image path and the written images."""

    model: Supreme | MetaIqa
    metrics: dict[str, float]
    captions: dict[str, list[str]]
    written: dict[str, Path]
    datamodule: OODDataModule | IqaDataModule


def _test_and_record(model: Supreme | MetaIqa, datamodule: OODDataModule | IqaDataModule, work: Path) -> Run:
    """``Engine.test`` with the visualizer's captions recorded per image path."""
    captions: dict[str, list[str]] = {}
    compose = model.visualizer.caption_lines

    def recording(item: ImageItem) -> list[str]:
        captions[str(item.image_path)] = lines = compose(item)
        return lines

    model.visualizer.caption_lines = recording
    metrics = make_engine(work).test(model=model, datamodule=datamodule, verbose=False)[0]
    written = {}
    for path in (path for path in work.rglob("*.png") if "images" in path.parts):
        matches = [source for source in captions if Path(source).name == path.name]
        matches = [source for source in matches if Path(source).parent.name == path.parent.name] or matches
        if len(matches) == 1:
            written[matches[0]] = path
    return Run(model, {k: float(v) for k, v in metrics.items()}, captions, written, datamodule)


@pytest.fixture(scope="module")
def supreme_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = generate_synthetic_ood_dataset(
        tmp_path_factory.mktemp("ood") / "data", image_size=IMAGE_SIZE, num_train=2, num_test=4, num_ood=4
    )
    torch.manual_seed(0)
    model = Supreme(mode="mcm", temperature=0.1, **TINY)
    datamodule = OODDataModule(root, shots_per_class=2, num_workers=0, train_batch_size=2, eval_batch_size=8)
    return _test_and_record(model, datamodule, tmp_path_factory.mktemp("supreme"))


@pytest.fixture(scope="module")
def meta_iqa_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = generate_iqa_dataset(
        tmp_path_factory.mktemp("iqa") / "data",
        distortions=["gaussian_noise"],
        image_size=IMAGE_SIZE,
        num_images=4,
        levels=3,
        seed=0,
    )
    torch.manual_seed(0)
    model = MetaIqa(visual_prompt_tokens=4, visual_prompt_dropout=0.0, **TINY)
    datamodule = IqaDataModule(root=root.parent, csv=root.name, num_shots=4, num_workers=0, eval_batch_size=16)
    return _test_and_record(model, datamodule, tmp_path_factory.mktemp("meta_iqa"))


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _plain_panel(source: str) -> np.ndarray:
    """The input image as anomalib's visualizer draws it in a panel (no overlay, no title)."""
    return np.asarray(Image.open(source).convert("RGB").resize((PANEL, PANEL)), dtype=np.int16)


def _title_free(panel: np.ndarray) -> np.ndarray:
    """The panel below anomalib's field title (drawn at the top left)."""
    return panel[PANEL // 4 :]


def _ood_and_id(run: Run) -> tuple[str, str]:
    labels = {str(path): int(label) for path, label in _paths_and_labels(run.datamodule)}
    ood = next(path for path in run.written if labels[path] == 1)
    known = next(path for path in run.written if labels[path] == 0)
    return ood, known


def _paths_and_labels(datamodule: OODDataModule) -> Iterator[tuple[str, int]]:
    for batch in datamodule.test_dataloader():
        yield from zip(batch.image_path, batch.gt_label.tolist(), strict=True)


def test_supreme_images_show_one_panel_with_class_score_and_decision(supreme_run: Run) -> None:
    run = supreme_run
    class_names = run.model.model.class_names
    ood, known = _ood_and_id(run)
    assert len(run.written) == len(run.captions)
    for source in (ood, known):
        image = _pixels(run.written[source])
        assert image.shape[1] == PANEL  # one panel, not the image three times
        assert image.shape[0] > PANEL  # plus the caption strip
        # The panel is the plain input (anomalib's field, no overlay); the caption is below it.
        assert np.abs(_title_free(image[:PANEL]) - _title_free(_plain_panel(source))).mean() < 2.0
    ood_lines, id_lines = run.captions[ood], run.captions[known]
    assert any(line.startswith("class: ") and line.removeprefix("class: ") in class_names for line in ood_lines)
    true_class = Path(known).parent.name.replace("_", " ")
    assert f"truth: ID, {true_class}" in id_lines
    assert "truth: OOD" in ood_lines
    for lines in (ood_lines, id_lines):
        assert any(line.startswith("OOD score ") and line.endswith(("-> OOD", "-> ID")) for line in lines)
    # The OOD and ID images differ in the caption strip: what is written there is the answer.
    ood_strip, id_strip = _pixels(run.written[ood])[PANEL:], _pixels(run.written[known])[PANEL:]
    assert ood_strip.shape == id_strip.shape
    assert np.abs(ood_strip - id_strip).sum() > 0
    assert ood_strip.max() > 128  # text is drawn on the dark strip


def test_supreme_caption_score_and_decision_are_the_deployed_ones(supreme_run: Run) -> None:
    """The caption's OOD score is the normalised one users deploy, and its decision the deployed label."""
    run = supreme_run
    for lines in run.captions.values():
        score_line = next(line for line in lines if line.startswith("OOD score "))
        score, decision = score_line.removeprefix("OOD score ").split(" -> ")
        assert 0.0 <= float(score) <= 1.0
        assert decision == ("OOD" if float(score) > 0.5 else "ID") or abs(float(score) - 0.5) < 0.01


def test_supreme_engine_metrics_rank_the_models_own_scores(supreme_run: Run) -> None:
    """Through the real callback order: logged AUROC / FPR95 are those of the raw OOD scores."""
    run = supreme_run
    model = run.model
    scores, labels = [], []
    model.eval()
    with torch.no_grad():
        for batch in run.datamodule.test_dataloader():
            id_score = 1 - model.model(model.pre_processor.transform(batch.image)).pred_score
            scores.append(1 - id_score)
            labels.append(batch.gt_label)
    raw, truth = torch.cat(scores), torch.cat(labels)
    assert run.metrics["image_AUROC"] == pytest.approx(float(binary_auroc(raw, truth)), abs=1e-5)
    assert run.metrics["image_FPR95"] == pytest.approx(float(fpr_at_tpr(raw, truth)), abs=1e-5)


def test_meta_iqa_images_show_one_panel_with_the_quality(meta_iqa_run: Run) -> None:
    run = meta_iqa_run
    assert run.written
    sources = sorted(run.written)
    for source in sources:
        image = _pixels(run.written[source])
        assert image.shape[1] == PANEL
        assert image.shape[0] > PANEL
        lines = run.captions[source]
        assert lines[0].startswith("quality ")
        assert 0.0 <= float(lines[0].removeprefix("quality ")) <= 1.0
        assert any(line.startswith("MOS ") for line in lines)
        assert lines[-1] in {"accepted", "rejected"}
    # Different images carry different captions (their MOS at least), drawn in the strip.
    differing = [s for s in sources[1:] if run.captions[s] != run.captions[sources[0]]]
    assert differing
    first, other = _pixels(run.written[sources[0]]), _pixels(run.written[differing[0]])
    assert np.abs(first[PANEL:] - other[PANEL:]).sum() > 0


def _item_with_maps(item_class: type[ImageItem], **fields: torch.Tensor) -> ImageItem:
    generator = torch.Generator().manual_seed(0)
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[8:20, 8:20] = True
    return item_class(
        image=torch.rand(3, 32, 32, generator=generator),
        anomaly_map=torch.rand(32, 32, generator=generator),
        pred_mask=mask,
        pred_score=torch.tensor(0.8),
        pred_label=torch.tensor(True),
        **fields,
    )


@pytest.mark.parametrize(
    ("visualizer_class", "item"),
    [
        (OODVisualizer, _item_with_maps(OODImageItem, pred_class=torch.tensor(0), gt_label=torch.tensor(1))),
        (QualityVisualizer, _item_with_maps(IqaItem, mos=torch.tensor(2.0))),
    ],
)
def test_empty_overlay_fields_means_no_overlay(visualizer_class: type, item: ImageItem) -> None:
    """``overlay_fields=[]`` draws the image alone (anomalib would read it as its default overlays)."""
    none = visualizer_class(overlay_fields=[]).visualize(item)
    overlaid = visualizer_class(overlay_fields=[("image", ["anomaly_map"])]).visualize(item)
    assert none.width == PANEL
    assert overlaid.width == 2 * PANEL
    plain = visualizer_class(overlay_fields=[], fields=["image"]).visualize(item)
    assert np.array_equal(np.asarray(none), np.asarray(plain))
    assert visualizer_class(overlay_fields=[]).overlay_fields == []
