# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""MetaIqa (GRMP-IQA) inside anomalib, on the tiny random CLIP and generated distortions.

Behaviour shown here:

* meta-pre-training over distortion types (tasks) teaches the prompts quality: they rank a distortion type held
  out of meta-training (impulse noise) zero-shot, and after few-shot fine-tuning through ``Engine.fit`` they rank
  it better than prompts trained from scratch on the same shots (mean over three seeded splits);
* the predicted quality falls monotonically with the level of every distortion the tiny model perceives;
* the quality gate in front of another anomalib model (AnomalyClip) rejects the badly exposed captures and
  reports the count in ``Engine.test``'s results;
* fine-tuning moves only the context and the last blocks, checkpoints hold what was learned, exports match eager.

Why these settings: the tiny CLIP has random weights, so it perceives only what changes its 8-pixel patch
embeddings strongly (noise, exposure; not blur, JPEG or contrast at 32 pixels). Meta-training uses three such
types and holds out a fourth. Prompt dropout is off: with full-batch few-shot steps it only makes the outcome
depend on the global random stream. The learning rates are the tiny model's (a random backbone learns slowly
at the paper's 1e-4 / 1e-3).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.deploy import ExportType
from anomalib.models import get_model, list_models

from anomalib_vlm.callbacks import QualityGate
from anomalib_vlm.data import (
    IqaDataModule,
    clean_images,
    distort,
    generate_iqa_dataset,
    generate_synthetic_dataset,
    split_by_distortion,
)
from anomalib_vlm.deploy import compile_openvino, onnx_to_openvino
from anomalib_vlm.errors import CheckpointMismatchError
from anomalib_vlm.models.anomaly_clip import AnomalyClip
from anomalib_vlm.models.meta_iqa import MetaIqa
from anomalib_vlm.models.meta_iqa.loss import quality_loss, semantic_loss
from tests.helpers import make_engine

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
IMAGE_SIZE = 32
TOLERANCE = 1e-4
TINY = {
    "backbone": "anomalib-vlm-tiny",
    "pretrained": None,
    "image_size": IMAGE_SIZE,
    "visual_prompt_tokens": 4,
    "visual_prompt_dropout": 0.0,
}
META_TYPES = ("gaussian_noise", "speckle_noise", "underexposure")
HELD_OUT = "impulse_noise"
# The tiny model's meta settings were tuned with every support batch before every query batch. The official order
# (one support and one query step in turn, the default since 2026-12) gives a task about twice the steps; at these
# settings it then ranks level-1 Gaussian noise above clean images (0.719 vs 0.716), and no inner learning rate
# tried (3e-3 to 2e-2) keeps both the monotonic ranking and the gate's margin. The order is pinned here; the
# default is pinned by tests/unit/test_meta_iqa_official.py.
META = {
    "meta_inner_lr": 1e-2,
    "meta_outer_lr": 1.0,
    "meta_support_batch_size": 16,
    "meta_query_batch_size": 16,
    "meta_inner_order": "support_then_query",
}
META_EPOCHS = 4
SHOTS = 12
FEW_SHOT = {"learning_rate": 0.05, "epochs": 10}
SEEDS = (0, 1, 2)


@dataclass
class MetaRun:
    """The meta-pre-training fixture's outputs."""

    model: MetaIqa
    prompts: Path
    history: list[dict[str, float]]
    val_tasks: dict
    datamodule: IqaDataModule


@dataclass
class Adapted:
    """One few-shot fine-tuning through Engine.fit on the held-out distortion."""

    model: MetaIqa
    engine: object
    datamodule: IqaDataModule
    zero_shot_srcc: float
    results: dict[str, float]
    before: dict[str, torch.Tensor]
    checkpoint: Path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Meta-training data (three types) and the held-out type on other clean images."""
    root = tmp_path_factory.mktemp("iqa")
    return {
        "meta": generate_iqa_dataset(
            root / "meta", distortions=META_TYPES, image_size=IMAGE_SIZE, num_images=16, seed=0
        ),
        "target": generate_iqa_dataset(
            root / "target", distortions=[HELD_OUT], image_size=IMAGE_SIZE, num_images=20, seed=1
        ),
    }


@pytest.fixture(scope="module")
def meta_run(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> MetaRun:
    """Meta-pre-train the prompts, one task per distortion type; select on the same types of other clean images."""
    datamodule = IqaDataModule(
        root=data["meta"].parent,
        csv=data["meta"].name,
        num_shots=None,
        test_ratio=0.25,
        split_by_reference=True,
        num_workers=0,
    )
    datamodule.setup()
    torch.manual_seed(0)
    model = MetaIqa(**TINY, **META)
    val_tasks = split_by_distortion(datamodule.test_data)
    history = model.meta_pretrain(split_by_distortion(datamodule.train_data), val_data=val_tasks, epochs=META_EPOCHS)
    prompts = model.save_prompts(tmp_path_factory.mktemp("prompts") / "meta_prompts.pt")
    return MetaRun(model, prompts, history, val_tasks, datamodule)


def _target_datamodule(data: dict[str, Path], seed: int) -> IqaDataModule:
    return IqaDataModule(
        root=data["target"].parent,
        csv=data["target"].name,
        num_shots=SHOTS,
        test_ratio=0.4,
        split_by_reference=True,  # test on clean images never seen in any shot
        train_batch_size=SHOTS,
        eval_batch_size=64,
        num_workers=0,
        seed=seed,
    )


@pytest.fixture(scope="module")
def adapted(
    data: dict[str, Path], meta_run: MetaRun, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, int], Adapted]:
    """Scratch and meta-pre-trained prompts, each fine-tuned on the same shots of the held-out type, three splits."""
    runs = {}
    for seed in SEEDS:
        for init in ("scratch", "meta"):
            torch.manual_seed(seed)
            model = MetaIqa(**TINY, **FEW_SHOT, meta_prompts=str(meta_run.prompts) if init == "meta" else None)
            datamodule = _target_datamodule(data, seed)
            datamodule.setup()
            zero_shot = model.evaluate_srcc(datamodule.test_data)
            before = {k: v.clone() for k, v in model.model.state_dict().items()}
            engine = make_engine(tmp_path_factory.mktemp(f"{init}{seed}"))
            engine.fit(model=model, datamodule=datamodule)
            results = engine.test(model=model, datamodule=datamodule)[0]
            checkpoints = sorted(Path(engine.trainer.default_root_dir).rglob("*.ckpt"))
            assert checkpoints, "Engine.fit wrote no checkpoint"
            runs[init, seed] = Adapted(
                model, engine, datamodule, zero_shot, {k: float(v) for k, v in results.items()}, before, checkpoints[-1]
            )
    return runs


@pytest.fixture(scope="module")
def finetuned(adapted: dict[tuple[str, int], Adapted]) -> Adapted:
    """The meta-pre-trained, few-shot fine-tuned model of the first split."""
    return adapted["meta", SEEDS[0]]


def _distorted(kind: str, level: int, images: list[tuple[str, np.ndarray]]) -> torch.Tensor:
    return torch.stack(
        [
            torch.from_numpy(distort(image, kind, level, seed=index)).permute(2, 0, 1).float() / 255
            for index, (_, image) in enumerate(images)
        ]
    )


# ----------------------------------------------------------------------------------------------------------------
# anomalib integration
# ----------------------------------------------------------------------------------------------------------------
def test_registered_with_anomalib_and_paper_defaults() -> None:
    import anomalib_vlm
    from anomalib_vlm.models import MetaIqa as Exported

    assert anomalib_vlm.MetaIqa is Exported is MetaIqa
    assert "meta_iqa" in list_models()
    model = get_model("meta_iqa", backbone="anomalib-vlm-tiny", pretrained=None, image_size=IMAGE_SIZE)
    assert isinstance(model, MetaIqa)
    hparams = MetaIqa(backbone="anomalib-vlm-tiny", pretrained=None).hparams
    assert MetaIqa.__init__.__defaults__[:2] == ("ViT-B-16", "openai")
    assert (hparams.image_size, hparams.prompt_context_length, hparams.visual_prompt_tokens) == (224, 4, 100)
    assert (hparams.visual_prompt_depth, hparams.visual_prompt_dropout, hparams.finetune_blocks) == (None, 0.1, 4)
    assert (hparams.gradient_rule, hparams.gradient_lambda, hparams.learning_rate) == ("grmp", 5.0, 1e-3)
    assert (hparams.meta_inner_lr, hparams.meta_outer_lr, hparams.meta_support_ratio) == (1e-4, 0.01, 0.8)
    # The official fine-tuning: plain SGD, weight decay 1e-4, up to 2000 epochs, KL at temperature 1.
    assert (hparams.epochs, hparams.weight_decay, hparams.momentum, hparams.kl_temperature) == (2000, 1e-4, 0.0, 1.0)
    assert (hparams.meta_epochs, hparams.meta_support_batch_size, hparams.meta_query_batch_size) == (50, 75, 50)
    assert hparams.scene_classes is None  # the paper's nine scenes


def test_fit_finetunes_context_and_last_blocks_only(finetuned: Adapted) -> None:
    after = finetuned.model.model.state_dict()
    changed = {k for k, v in after.items() if v.dtype.is_floating_point and not torch.equal(v, finetuned.before[k])}
    assert {"quality_prompts.context", "text_features", "clip.ln_final.weight", "clip.visual.ln_post.weight"} <= changed
    assert any(k.startswith("clip.visual.transformer.resblocks.23.") for k in changed)
    assert any(k.startswith("clip.transformer.resblocks.11.") for k in changed)
    assert not any(k.startswith("clip.visual.transformer.resblocks.19.") for k in changed)  # 4 last blocks only
    assert not any(k.startswith("visual_prompts.") for k in changed)  # visual prompts stay frozen in fine-tuning


def test_test_reports_srcc_plcc_and_quality_scores(finetuned: Adapted) -> None:
    assert {"test_SRCC", "test_PLCC"} <= set(finetuned.results)
    assert finetuned.results["test_SRCC"] > 0.2  # the held-out type is ranked, on unseen clean images
    batch = next(iter(finetuned.engine.predict(model=finetuned.model, datamodule=finetuned.datamodule)))
    assert batch.pred_quality.min() >= 0 and batch.pred_quality.max() <= 1
    assert torch.equal(batch.pred_label, batch.pred_quality < 0.5)  # rejected = quality below the threshold
    saved = sorted(Path(finetuned.engine.trainer.default_root_dir).rglob("images/**/*.png"))
    assert saved, "the visualizer saved no image"


# ----------------------------------------------------------------------------------------------------------------
# behaviour of the method
# ----------------------------------------------------------------------------------------------------------------
def test_meta_pretraining_learns_the_quality_of_its_tasks(meta_run: MetaRun) -> None:
    """Each meta-training distortion is ranked on clean images kept out of meta-training; CLIP stays frozen."""
    assert [record["epoch"] for record in meta_run.history] == [float(e) for e in range(META_EPOCHS)]
    best = max(meta_run.history, key=lambda record: record["val_srcc"])
    assert best["val_srcc"] > meta_run.history[0]["val_srcc"]  # the epochs after the first improved the prompts
    for kind, task in meta_run.val_tasks.items():
        srcc = meta_run.model.evaluate_srcc(task)
        assert srcc == pytest.approx(best[f"val_srcc/{kind}"], abs=1e-6)  # the best epoch is the one kept
        assert srcc > 0.5, kind
    fresh = MetaIqa(**TINY)
    assert all(
        torch.equal(v, fresh.model.clip.state_dict()[k]) for k, v in meta_run.model.model.clip.state_dict().items()
    )


def test_meta_prompts_adapt_to_a_held_out_distortion_better_than_scratch(
    adapted: dict[tuple[str, int], Adapted],
) -> None:
    """Same 12 shots of impulse noise (never seen in meta-training), same fine-tuning: meta prompts rank it better.

    Measured over six splits and three meta-training seeds (README): meta 0.49-0.53 vs scratch 0.34 mean test SRCC,
    meta ahead in 5 of 6 splits each time, and in all of the three splits used here.
    """
    srcc = {init: [adapted[init, seed].results["test_SRCC"] for seed in SEEDS] for init in ("scratch", "meta")}
    zero_shot = {init: [adapted[init, seed].zero_shot_srcc for seed in SEEDS] for init in ("scratch", "meta")}
    assert statistics.mean(zero_shot["meta"]) > 0.2 > statistics.mean(zero_shot["scratch"])  # transfer before tuning
    assert statistics.mean(srcc["scratch"]) > statistics.mean(zero_shot["scratch"])  # scratch does learn from the shots
    assert statistics.mean(srcc["meta"]) > statistics.mean(srcc["scratch"]) + 0.05, srcc
    assert sum(m > s for m, s in zip(srcc["meta"], srcc["scratch"], strict=True)) >= 2, srcc


@pytest.mark.parametrize("kind", [*META_TYPES, HELD_OUT])
def test_quality_falls_monotonically_with_the_distortion_level(
    meta_run: MetaRun, finetuned: Adapted, kind: str
) -> None:
    """Mean predicted quality of new clean images at levels 0..5 strictly decreases (meta model and fine-tuned)."""
    images = clean_images("synthetic", image_size=IMAGE_SIZE, num_images=8, seed=2)
    for model in (meta_run.model, finetuned.model):
        model.eval()
        with torch.no_grad():
            quality = [float((1 - model(_distorted(kind, level, images)).pred_score).mean()) for level in range(6)]
        assert np.all(np.diff(quality) < 0), (kind, np.round(quality, 3))


def test_gradient_regularisation_reverses_the_semantic_aligned_part_per_tensor(finetuned: Adapted) -> None:
    """On real gradients: every tensor keeps its own pair (g_q, g_s); GRMP flips the aligned part by (1 - lambda).

    This is the mechanism. Whether it narrows the train-test gap is measured, not asserted: on the random tiny
    backbone it does not do so reliably (README, "Measured on the tiny model").
    """
    model = MetaIqa(**TINY, **FEW_SHOT, gradient_rule="none")
    model.model.load_state_dict(finetuned.before)
    batch = next(iter(finetuned.datamodule.train_dataloader()))
    images = model.pre_processor.transform(batch.image)
    params = model.model.set_trainable("finetune")
    model.model.train()
    features = model.model.image_features(images)
    loss_q = quality_loss(model.model.quality_logits(features), batch.gt_quality)
    loss_s = semantic_loss(model.model.scene_logits(features), model.model.teacher_scene_logits(images))
    g_q = torch.autograd.grad(loss_q, params, retain_graph=True, allow_unused=True)
    g_s = torch.autograd.grad(loss_s, params, allow_unused=True)
    plain = model.finetune_gradients(images, batch.gt_quality)["grads"]
    model.hparams.gradient_rule = "grmp"
    regularised = model.finetune_gradients(images, batch.gt_quality)["grads"]
    assert g_s[0] is None  # the text context does not reach the scene logits: it keeps g_q
    aligned = 0
    for param, q, s, p, r in zip(params, g_q, g_s, plain, regularised, strict=True):
        assert p is None or p.shape == param.shape
        torch.testing.assert_close(p, q)
        if s is None or float((q * s).sum()) <= 0:
            torch.testing.assert_close(r, q)
            continue
        aligned += 1
        # Component along g_s: (1 - lambda) times the original, the orthogonal part unchanged.
        torch.testing.assert_close((r * s).sum(), (1 - 5.0) * (q * s).sum(), rtol=1e-3, atol=1e-7)
    assert aligned > 0


# ----------------------------------------------------------------------------------------------------------------
# checkpoints, export, gate
# ----------------------------------------------------------------------------------------------------------------
def test_checkpoint_holds_prompts_and_finetuned_blocks_and_reloads(finetuned: Adapted) -> None:
    state = torch.load(finetuned.checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert "model.clip.visual.transformer.resblocks.23.mlp.c_fc.weight" in state
    assert "model.clip.visual.transformer.resblocks.0.mlp.c_fc.weight" not in state  # frozen: not saved
    reloaded = MetaIqa.load_from_checkpoint(finetuned.checkpoint).eval()
    images = torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = finetuned.model.eval()(images).pred_score
        assert torch.allclose(reloaded(images).pred_score, expected, atol=1e-6)
    with pytest.raises(CheckpointMismatchError, match="prompt settings"):
        MetaIqa.load_from_checkpoint(finetuned.checkpoint, visual_prompt_tokens=5)


def test_prompts_file_round_trip_and_errors(meta_run: MetaRun, tmp_path: Path) -> None:
    fresh = MetaIqa(**TINY, meta_prompts=str(meta_run.prompts))
    assert all(torch.equal(v, meta_run.model.prompt_state()[k]) for k, v in fresh.prompt_state().items())
    with pytest.raises(CheckpointMismatchError, match="does not fit this model"):
        MetaIqa(**(TINY | {"visual_prompt_tokens": 6}), meta_prompts=str(meta_run.prompts))
    with pytest.raises(FileNotFoundError, match="Meta-prompt file not found"):
        MetaIqa(**TINY, meta_prompts=str(tmp_path / "missing.pt"))


def test_pretrain_command_writes_prompts_the_model_loads(data: dict[str, Path], tmp_path: Path) -> None:
    """``anomalib-vlm meta-pretrain``: table in, prompts file out, loadable by MetaIqa."""
    from anomalib_vlm.meta_pretrain import main

    output = tmp_path / "prompts.pt"
    tiny = ["--backbone", "anomalib-vlm-tiny", "--pretrained", "none", "--image-size", str(IMAGE_SIZE)]
    tiny += ["--visual-prompt-tokens", "4", "--visual-prompt-dropout", "0", "--batch-size", "16", "--epochs", "1"]
    assert main(["--root", str(data["meta"].parent), "--csv", data["meta"].name, "--output", str(output), *tiny]) == 0
    loaded = MetaIqa(**TINY, meta_prompts=str(output))
    assert not torch.equal(
        loaded.prompt_state()["visual_prompts.prompt_embeddings"],
        MetaIqa(**TINY).prompt_state()["visual_prompts.prompt_embeddings"],
    )


def test_export_onnx_and_openvino_match_eager(finetuned: Adapted, tmp_path: Path) -> None:
    import onnxruntime

    model = finetuned.model.eval()
    images = torch.rand(4, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = model(images)
    onnx_path = finetuned.engine.export(
        model, ExportType.ONNX, export_root=tmp_path, input_size=(IMAGE_SIZE, IMAGE_SIZE)
    )
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    onnx_out = dict(zip(names, session.run(names, {"input": images.numpy()}), strict=True))
    # The IR from the same ONNX file (to_openvino would export again first); float32 even where OpenVINO's CPU
    # default is bfloat16 (~2e-3 off).
    compiled = compile_openvino(onnx_to_openvino(onnx_path))
    results = compiled(images.numpy())
    ov_out = {output.get_any_name(): results[output] for output in compiled.outputs}
    for outputs in (onnx_out, ov_out):
        np.testing.assert_allclose(outputs["pred_score"].reshape(-1), eager.pred_score.numpy(), atol=TOLERANCE, rtol=0)
        assert np.array_equal(outputs["pred_label"].reshape(-1), eager.pred_label.numpy())


def test_quality_gate_in_front_of_anomaly_clip_rejects_dark_captures(meta_run: MetaRun, tmp_path: Path) -> None:
    """AnomalyClip tests an inspection set where a third of the captures are underexposed; the gate flags those."""
    root = generate_synthetic_dataset(
        tmp_path / "mvtec", categories=["wood"], image_size=64, num_train=2, num_test_normal=6, num_test_per_defect=3
    )
    captures = sorted((root / "wood" / "test").glob("*/*.png"))
    dark = set(captures[::3])
    for index, path in enumerate(sorted(dark)):  # a lighting failure on every third capture
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        cv2.imwrite(str(path), cv2.cvtColor(distort(image, "underexposure", 3, seed=index), cv2.COLOR_RGB2BGR))
    gate = QualityGate(meta_run.model, threshold=0.35)
    torch.manual_seed(0)
    anomaly_model = AnomalyClip(backbone="anomalib-vlm-tiny", pretrained=None, image_size=64)
    datamodule = MVTecAD(root=root, category="wood", num_workers=0, eval_batch_size=16)
    results = make_engine(tmp_path / "run", callbacks=[gate]).test(model=anomaly_model, datamodule=datamodule)[0]
    rejected = {Path(record.image_path) for record in gate.records if record.rejected}
    assert gate.num_seen == len(captures)
    assert rejected == dark
    assert int(results["gate_rejected"]) == len(dark)
    assert "image_AUROC" in results  # the anomaly model was tested as usual
    with pytest.raises(ValueError, match="threshold must be in"):
        QualityGate(meta_run.model, threshold=1.5)
