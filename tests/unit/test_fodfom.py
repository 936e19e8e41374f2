# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""FodFoM stages on tiny random transformers / diffusers models, the resumable pipeline, and the two claims."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from anomalib_vlm.fodfom import (
    CaptionTable,
    DescriptionRenderer,
    EndOfTextConditioning,
    FakeOutlierDataModule,
    MissingModelError,
    OpenClipText,
    RenderedDefectPainter,
    StableDiffusionGenerator,
    TransformersClipText,
    blur_objects,
    caption_text,
    make_fake_anomalies,
    make_fake_outliers,
    perturb,
    select_boundary,
)
from anomalib_vlm.fodfom.conditioning import FIXED_PROMPT
from tests.unit.fodfom_tiny_models import tiny_clip_text, tiny_stable_diffusion

REPO = Path(__file__).resolve().parents[2]


def _proof_module() -> object:
    """``tools/fodfom_offline_proof.py`` (the measured experiment; the tests run it small)."""
    spec = importlib.util.spec_from_file_location("fodfom_offline_proof", REPO / "tools" / "fodfom_offline_proof.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------- stage 1-3
def test_caption_text_is_the_official_template_cut_to_60_characters() -> None:
    caption = "a dog sitting on a wooden bench next to a red bicycle in a park on a sunny day"
    assert caption_text("golden retriever", caption) == f"This is a photo of golden retriever and {caption[:60]}"


def test_caption_table_names_a_missing_row(tmp_path: Path) -> None:
    table = tmp_path / "captions.csv"
    table.write_text("image,caption\na/1.png,a red thing\n")
    assert CaptionTable(table)([], [Path("x/a/1.png")]) == ["a red thing"]  # matched by file name
    with pytest.raises(ValueError, match=r"no row for image .*2\.png"):
        CaptionTable(table)([], [Path("a/2.png")])
    (tmp_path / "bad.csv").write_text("path,text\n")
    with pytest.raises(ValueError, match="lacks the column"):
        CaptionTable(tmp_path / "bad.csv")


def test_boundary_is_the_share_least_similar_to_the_class_mean() -> None:
    embeddings = torch.randn(50, 8, generator=torch.Generator().manual_seed(0)) + 3.0
    indices, mean = select_boundary(embeddings, 20)
    similarity = torch.nn.functional.cosine_similarity(embeddings, embeddings.mean(0)[None])
    assert set(indices.tolist()) == set(similarity.argsort()[:10].tolist())  # 20 % of 50, lowest similarity
    torch.testing.assert_close(mean, embeddings.mean(0))


def test_perturbation_official_scalar_offset_and_outward_option() -> None:
    edges, mean = torch.tensor([[1.0, 2.0, 2.0]]), torch.zeros(3)
    fakes = perturb(edges, mean, slide=0.1, add_slide=0.2, num_per_sample=3)
    # official: ||e - mean|| = 3 added to every dimension, times 0.1, 0.3, 0.5
    torch.testing.assert_close(fakes - edges, torch.tensor([[0.3] * 3, [0.9] * 3, [1.5] * 3]))
    outward = perturb(edges, mean, slide=0.1, add_slide=0.2, num_per_sample=3, direction="outward")
    torch.testing.assert_close(outward - edges, torch.tensor([0.1, 0.3, 0.5])[:, None] * edges)
    with pytest.raises(ValueError, match="num_per_sample"):
        perturb(edges, mean, num_per_sample=0)


# ---------------------------------------------------------------------------------------------------- stage 4-5
@pytest.fixture(scope="module")
def tiny_text() -> TransformersClipText:
    return TransformersClipText(tiny_clip_text())


def test_conditioning_round_trip_gives_the_text_encoders_own_conditioning(tiny_text: TransformersClipText) -> None:
    conditioning = EndOfTextConditioning(tiny_text)
    states, embedding = tiny_text.hidden_states([FIXED_PROMPT])
    torch.testing.assert_close(conditioning(embedding), states, atol=1e-4, rtol=1e-4)
    # a perturbed embedding changes the end-of-text slot only
    moved = conditioning(embedding + 0.5)
    changed = (moved - states).abs().amax(-1)[0] > 1e-4
    assert changed.nonzero().flatten().tolist() == [conditioning.slot]


def test_stable_diffusion_generator_is_seeded_and_follows_the_embedding(tiny_text: TransformersClipText) -> None:
    generator = StableDiffusionGenerator(
        tiny_stable_diffusion(tiny_text.model), EndOfTextConditioning(tiny_text), steps=3, image_size=32
    )
    embedding = tiny_text.embed([FIXED_PROMPT])
    inputs = torch.cat([embedding, embedding, embedding, embedding * -3])
    first, again, other_seed, other_embedding = generator.generate(inputs, [1, 1, 2, 1])
    assert first.shape == (32, 32, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other_seed).max() > 10
    assert np.abs(first.astype(int) - other_embedding).max() > 0


# ---------------------------------------------------------------------------------------------------- stage 6
def test_box_rule_blurs_small_boxes_and_drops_images_with_a_large_one() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)
    blurred = blur_objects(image, np.array([[10.7, 10.2, 60.9, 60.0]]))  # 50 x 50 = 25 % of the image
    inside, outside = np.s_[12:58, 12:58], np.s_[70:, 70:]
    assert blurred[inside].std() < image[inside].std() / 3
    np.testing.assert_array_equal(blurred[outside], image[outside])
    assert blur_objects(image, np.array([[0, 0, 80, 80]])) is None  # 64 % > 50 %: dropped
    np.testing.assert_array_equal(blur_objects(image, np.zeros((0, 4))), image)  # nothing found: kept


def test_grounding_dino_detector_on_a_tiny_random_model(tmp_path: Path) -> None:
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    from anomalib_vlm.fodfom.background import GroundingDinoDetector

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "red", "cube", "a"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 64}),
        tokenizer=BertTokenizer(str(tmp_path / "vocab.txt")),
    )
    torch.manual_seed(0)
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin",
            "embed_dim": 8,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 1, 1],
            "window_size": 2,
            "image_size": 64,
            "out_indices": [2, 3, 4],
        },
        text_config={
            "model_type": "bert",
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 16,
        },
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=8,
        num_feature_levels=3,
        encoder_n_points=1,
        decoder_n_points=1,
        max_text_len=16,
        fusion_dropout=0.0,
        text_enhancer_dropout=0.0,
    )
    detector = GroundingDinoDetector(
        GroundingDinoForObjectDetection(config), processor, box_threshold=0.0, text_threshold=0.0
    )
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    boxes = detector.detect(image, "red cube")
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0
    np.testing.assert_allclose(detector.detect(image, "red cube"), boxes)  # deterministic


def test_blip2_captioner_on_a_tiny_random_model() -> None:
    from transformers import Blip2Config, Blip2ForConditionalGeneration, BlipImageProcessor

    from anomalib_vlm.fodfom.captioning import Blip2Captioner

    class Processor:  # BLIP-2's image processing; ids written out as words (no tokenizer files offline)
        image_processor = BlipImageProcessor(size={"height": 32, "width": 32})

        def __call__(self, images: list, return_tensors: str) -> dict:
            return self.image_processor(images, return_tensors=return_tensors)

        @staticmethod
        def batch_decode(ids: torch.Tensor, skip_special_tokens: bool) -> list[str]:
            return [" ".join(f"w{i}" for i in row.tolist() if i > 2) for row in ids]

    torch.manual_seed(0)
    config = Blip2Config(
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        qformer_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "encoder_hidden_size": 16,
            "vocab_size": 64,
        },
        text_config={
            "model_type": "opt",
            "hidden_size": 16,
            "ffn_dim": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 64,
            "word_embed_proj_dim": 16,
            "bos_token_id": 2,
            "eos_token_id": 2,
            "pad_token_id": 1,
        },
        num_query_tokens=4,
        image_token_index=63,
    )
    captioner = Blip2Captioner(Blip2ForConditionalGeneration(config), Processor(), max_new_tokens=5)
    images = [np.full((40, 40, 3), value, np.uint8) for value in (0, 255)]
    captions = captioner(images, [Path("a.png"), Path("b.png")])
    assert len(captions) == 2 and all(isinstance(caption, str) for caption in captions)
    assert captioner(images, [Path("a.png"), Path("b.png")]) == captions


# ---------------------------------------------------------------------------------------------------- pipeline
def _id_folders(root: Path, classes: dict[str, str], count: int = 5) -> Path:
    """Class folders of rendered corpus images and a caption table."""
    from anomalib_vlm.data.generators.corpus import CaptionCorpus
    from anomalib_vlm.fodfom.pipeline import write_rgb

    corpus = CaptionCorpus(image_size=32, photos=False)
    rows = []
    for name, colour in classes.items():
        for index in range(count):
            sample = corpus.render(name, colour, None, None, np.random.default_rng(index))
            write_rgb(root / "train" / name / f"{index}.png", sample.image)
            rows.append([f"{name}/{index}.png", sample.caption])
    with (root / "captions.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["image", "caption"], *rows])
    return root


def test_fake_outliers_resume_and_record_what_made_each_file(tmp_path: Path) -> None:
    root = _id_folders(tmp_path / "data", {"striped": "red", "circle": "blue"})
    embedder = OpenClipText.load("anomalib-vlm-tiny", None)
    generator = DescriptionRenderer(embedder, families=["dotted", "ring"], image_size=32, wordings=1)

    class Boxes:  # a detector stub: one box a quarter of the image
        calls = 0

        def detect(self, image: np.ndarray, text: str) -> np.ndarray:
            Boxes.calls += 1
            return np.array([[0, 0, image.shape[1] / 2, image.shape[0] / 2]])

    output = tmp_path / "fakes"
    args = (root / "train", output, CaptionTable(root / "captions.csv"), embedder, generator, Boxes())
    make_fake_outliers(*args, num_per_sample=2, seed=3)
    files = sorted(p.relative_to(output).as_posix() for p in output.rglob("*.png"))
    assert len([f for f in files if f.startswith("outliers/")]) == 2 * 2  # 1 boundary image x 2 steps per class
    assert len([f for f in files if f.startswith("background/")]) == 10
    records = [json.loads(line) for line in (output / "manifest.jsonl").read_text().splitlines()]
    outlier = next(r for r in records if r["kind"] == "outlier")
    assert outlier["generator"] == "DescriptionRenderer" and outlier["text"].startswith("This is a photo of")
    assert outlier["direction"] == "official" and outlier["slide"] == 3e-5

    # a re-run writes nothing; a deleted file comes back identical, and alone
    victim = output / outlier["file"]
    before = victim.read_bytes()
    victim.unlink()
    calls = Boxes.calls
    make_fake_outliers(*args, num_per_sample=2, seed=3)
    assert victim.read_bytes() == before
    assert Boxes.calls == calls
    assert len((output / "manifest.jsonl").read_text().splitlines()) == len(records) + 1


def test_fakes_datamodule_adds_the_outlier_class(tmp_path: Path) -> None:
    root = _id_folders(tmp_path / "data", {"striped": "red", "circle": "blue"}, count=3)
    for kind in ("outliers", "background"):
        from anomalib_vlm.fodfom.pipeline import write_rgb

        write_rgb(tmp_path / "fakes" / kind / "striped" / "0.png", np.zeros((32, 32, 3), np.uint8))
    write_rgb(root / "test" / "striped" / "0.png", np.zeros((32, 32, 3), np.uint8))
    write_rgb(root / "ood" / "noise" / "0.png", np.zeros((32, 32, 3), np.uint8))
    datamodule = FakeOutlierDataModule(root=root, fakes_root=tmp_path / "fakes", num_workers=0)
    datamodule.setup()
    samples = datamodule.train_data.samples
    assert datamodule.outlier_class == 2
    assert sorted(samples[samples.class_index == 2].kind) == ["fake_background", "fake_outliers"]
    assert (samples[samples.class_index == 2].label_index == 1).all()
    with pytest.raises(ValueError, match="fake_kinds"):
        FakeOutlierDataModule(root=root, fakes_root=tmp_path / "fakes", fake_kinds=["nope"])


def test_fake_anomalies_write_anomalibs_layout_with_masks(tmp_path: Path) -> None:
    from anomalib.data import MVTecAD

    from anomalib_vlm.data import generate_synthetic_dataset

    real = generate_synthetic_dataset(tmp_path / "real", categories=["wood"], image_size=32, num_train=4, seed=0)
    output = make_fake_anomalies(real, tmp_path / "fakes", RenderedDefectPainter(), categories=["wood"], seed=0)
    datamodule = MVTecAD(root=output, category="wood", num_workers=0)
    datamodule.setup()
    samples = datamodule.test_data.samples
    assert sorted(set(samples.label)) == ["burn", "chip", "contamination", "crack", "good"]
    for row in samples[samples.label_index == 1].itertuples():
        from anomalib_vlm.fodfom.pipeline import read_rgb

        mask = read_rgb(Path(row.mask_path))[..., 0] > 0
        normal = Path(row.image_path.replace(f"test/{row.label}/", "test/good/").replace("_0.png", ".png"))
        change = np.abs(read_rgb(Path(row.image_path)).astype(int) - read_rgb(normal)).max(-1)
        assert 0 < mask.mean() < 0.2
        assert change[mask].mean() > 4 * change[~mask].mean()  # the defect is where the mask says


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_errors_name_the_missing_model_and_renderer_runs_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from anomalib_vlm.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    root = _id_folders(tmp_path / "data", {"striped": "red"}, count=5)
    common = ["--input", str(root / "train"), "--captions", str(root / "captions.csv"), "--detector", "none"]
    assert main(["fake-outliers", *common, "--output", str(tmp_path / "a"), "--sd-model", "nobody/no-sd"]) == 2
    assert "generation (Stable Diffusion) stage cannot load 'nobody/no-sd'" in capsys.readouterr().err
    config = tmp_path / "outliers.yaml"
    config.write_text(
        f"generator: renderer\nrenderer_backbone: anomalib-vlm-tiny\nrenderer_pretrained: ''\n"
        f"renderer_families: [dotted, ring]\noutput: {tmp_path / 'b'}\nnum_per_sample: 2\n"
    )
    assert main(["fake-outliers", *common, "--config", str(config)]) == 0
    assert len(list((tmp_path / "b" / "outliers" / "striped").glob("*.png"))) == 2
    with pytest.raises(MissingModelError, match="inpainting"):
        from anomalib_vlm.fodfom.anomalies import StableDiffusionInpainter

        StableDiffusionInpainter.from_pretrained("nobody/no-inpainting", device="cpu")


# ---------------------------------------------------------------------------------------------------- the claims
def test_supreme_trained_with_fakes_lowers_fpr95_on_held_out_ood(tmp_path: Path) -> None:
    """Small CLIP, 4 ID classes, held-out OOD families: the K+1 head with fakes beats Supreme's SMMP (no fakes)."""
    proof = _proof_module()
    args = argparse.Namespace(
        id_classes=list(proof.ID_CLASSES),
        train=20,
        shots=20,
        test=16,
        ood=12,
        direction="official",
        slide=3e-5,
        top_k=3,
        temperature=0.01,
        epochs=0,
        supcon=False,
        lightning_epochs=5,
    )
    results = proof.outliers_run(0, tmp_path, args)  # measured: FPR95 0.10 with fakes, 0.375 SMMP, 0.50 K-way
    assert results["K+1 id_classes"][0] < results["smmp"][0] - 0.15
    assert results["K+1 id_classes"][0] < results["K-way"][0] - 0.15
    # the same head as a user trains it: Supreme(mode="outlier_class"), Engine.fit on FakeOutlierDataModule
    assert results["Supreme outlier_class (Engine)"][0] < results["smmp"][0] - 0.15


def test_anomaly_clip_trained_on_fake_anomalies_detects_another_generators_defects(tmp_path: Path) -> None:
    """Normal images only -> fake anomalies (corpus drawers) -> AnomalyClip -> real synthetic defects."""
    from anomalib_vlm.data import AuxiliaryData, generate_synthetic_dataset

    proof = _proof_module()
    real = generate_synthetic_dataset(
        tmp_path / "real",
        categories=["tile"],
        image_size=64,
        num_train=24,
        num_test_normal=8,
        num_test_per_defect=4,
        seed=1,
    )
    fakes = make_fake_anomalies(real, tmp_path / "fakes", RenderedDefectPainter(), categories=["tile"], seed=0)
    data = AuxiliaryData(
        source="anomalib.data.MVTecAD", root=fakes, categories=["tile"], split="test", num_workers=0, seed=0
    )
    image_auroc, pixel_auroc = proof.train_and_test_anomaly_clip(data, real, "tile", 1, 4, tmp_path)
    assert image_auroc > 0.75
    assert pixel_auroc > 0.75


@pytest.mark.parametrize("config", sorted((REPO / "configs" / "fodfom" / "generation").glob("*.yaml")), ids=str)
def test_generation_configs_parse(config: Path) -> None:
    from anomalib_vlm.fodfom import cli

    parser = cli.outliers_parser() if "outliers" in config.name else cli.anomalies_parser()
    args = cli.parse_arguments(parser, ["--config", str(config)])
    assert args.input is not None and args.output is not None


def test_outlier_class_head_scores_and_supcon() -> None:
    from anomalib_vlm.models.supreme.outlier_class import OutlierClassHead, supcon_loss

    generator = torch.Generator().manual_seed(0)
    centres = torch.eye(4)[:3] * 5  # two ID classes and the outliers' region
    samples = torch.cat([centres[i] + torch.randn(20, 4, generator=generator) * 0.3 for i in range(3)])
    labels = torch.arange(3).repeat_interleave(20)
    shuffled = labels[torch.randperm(60, generator=generator)]
    assert supcon_loss(samples, labels) < supcon_loss(samples, shuffled) - 1.0  # clustered labels cost less
    head = OutlierClassHead(centres[:2], samples[40:], temperature=0.1, supcon=True, score="id_classes")
    head.fit(samples[:40], labels[:40], epochs=3)
    near_outliers = centres[2] + torch.randn(10, 4, generator=generator) * 0.3
    assert head.id_score(near_outliers).max() < head.id_score(samples[:40]).min()
    official = OutlierClassHead(centres[:2], samples[40:], temperature=0.1)  # MSP over all K+1: outliers look sure
    assert official.id_score(near_outliers).mean() > 0.9


def test_supreme_outlier_class_mode_scores_from_the_fakes_and_exports_them(tmp_path: Path) -> None:
    """``Supreme(mode="outlier_class")``: fakes from the datamodule become class K; the bank is saved and exported."""
    from anomalib.deploy import ExportType
    from anomalib.engine import Engine

    from anomalib_vlm.fodfom.pipeline import write_rgb
    from anomalib_vlm.models import Supreme

    root = _id_folders(tmp_path / "data", {"striped": "red", "circle": "blue"}, count=4)
    rng = np.random.default_rng(0)
    for folder in ("test/striped", "test/circle", "ood/noise", "fakes/outliers/striped"):
        for index in range(3):
            write_rgb(root / folder / f"{index}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    datamodule = FakeOutlierDataModule(root=root, fakes_root=root / "fakes", num_workers=0, train_batch_size=4)
    model = Supreme(mode="outlier_class", backbone="anomalib-vlm-tiny", pretrained=None, image_size=32, epochs=2)
    assert model.learning_type.value == "one_class"  # Engine.fit trains it
    engine = Engine(default_root_dir=tmp_path / "run", accelerator="cpu", logger=False, enable_progress_bar=False)
    engine.fit(model=model, datamodule=datamodule)
    assert model.learning_type.value == "few_shot" and len(model.model.outlier_head.fake_bank) == 3
    checkpoint = tmp_path / "outlier_class.ckpt"
    engine.trainer.save_checkpoint(checkpoint)
    restored = Supreme.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    assert torch.equal(restored.model.outlier_head.fake_bank, model.model.outlier_head.fake_bank)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        eager = model.model(images)
        assert torch.allclose(restored.model(images).pred_score, eager.pred_score)
    assert eager.pred_class.max() < 2  # an ID class, never the outlier class
    exported = engine.export(model=model, export_type=ExportType.ONNX, export_root=tmp_path / "export")
    assert exported is not None and exported.is_file()
    with pytest.raises(ValueError, match="outlier class"):  # no fakes in the training split: a named error
        from anomalib_vlm.data import OODDataModule

        Engine(default_root_dir=tmp_path / "run2", accelerator="cpu", logger=False).fit(
            model=Supreme(mode="outlier_class", backbone="anomalib-vlm-tiny", pretrained=None, image_size=32, epochs=1),
            datamodule=OODDataModule(root=root, num_workers=0),
        )
