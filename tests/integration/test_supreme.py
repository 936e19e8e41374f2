# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Supreme inside anomalib, on the tiny random CLIP and generated OOD data: the paper's claims as behaviour.

What the random backbone can and cannot show:
    The tiny CLIP has random weights, so the text embedding of a class name means nothing and its image
    embedding separates colour but hardly texture. The synthetic OOD task is built on that: each ID class is one
    texture category in its own colourway; OOD images are object categories, ID textures in other colourways
    and colour noise. Text-only MCM is therefore at chance, image prototypes from the shots work without any
    training, and the text side becomes useful only through prompts tuned on the shots. The margins say nothing
    about real CLIP weights (see the README for the paper's numbers).

Settings that differ from the paper's, the same for every mode and variant:
    * ``temperature=0.1``: the random backbone's cosines span [-0.5, 1], not the narrow band of real CLIP
      image-text cosines that tau = 0.01 is made for; with 0.01 every softmax saturates and all scores tie.
    * ``epochs=20, batch_size=4`` (80 SGD steps at the paper's lr 0.002) and ``itc_weight=1.0``: the paper's
      alpha = 0.005 weighs the ITC losses for ~25,000 steps at tau = 0.01 (ImageNet, 16 shots, 50 epochs);
      in 80 steps at tau = 0.1 the maps would not leave their identity start and ITC could not be observed.

Settings, configurations and the Engine runs come from `tools/supreme_ablation.py`, whose
command repeats them over training seeds (README, "Measured on the tiny model"). The tuned model's gain over SMMP is
asserted on the mean of three training seeds; the module ablation on FPR95 is printed but *not* asserted: on this
model ITC lowers FPR95 only on average (within the seed spread) and BPG raises it (README).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from anomalib import LearningType
from anomalib.data import MVTecAD
from anomalib.deploy import ExportType
from anomalib.engine import Engine
from anomalib.models import get_model, list_models

from anomalib_vlm.data import OODDataModule, generate_synthetic_dataset, generate_synthetic_ood_dataset
from anomalib_vlm.deploy import compile_openvino, onnx_to_openvino
from anomalib_vlm.models.supreme import Supreme
from anomalib_vlm.models.supreme.torch_model import mcm_terms
from tests.helpers import make_engine
from tools.supreme_ablation import (
    CONFIGURATIONS,
    SHOTS,
    SYNTHETIC_DATA,
    TINY_SETTINGS,
    run_configuration,
    synthetic_datamodule,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

REPO = Path(__file__).resolve().parents[2]
IMAGE_SIZE = SYNTHETIC_DATA["image_size"]  # 64 px: the tiny backbone takes any size and its 24 blocks stay cheap
TINY = TINY_SETTINGS
TUNING_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def ood_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 colour-coded ID classes (16 train, 24 test images each); 3 OOD kinds of 32 images each."""
    return generate_synthetic_ood_dataset(tmp_path_factory.mktemp("supreme") / "synthetic_ood", **SYNTHETIC_DATA)


@dataclass
class Run:
    """One configuration after Engine.fit (tuning) or Engine.test (calibration) and Engine.test."""

    model: Supreme
    engine: Engine
    metrics: dict[str, float]


@pytest.fixture(scope="module")
def runs(ood_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """MCM, SMMP and SUPREME with each module switched off, seed 0; only the full SUPREME run draws images."""
    work = tmp_path_factory.mktemp("runs")
    names = ("mcm", "smmp", "supreme", "supreme without BPG", "supreme without ITC")
    results = {}
    for name in names:
        options = CONFIGURATIONS[name] | ({} if name == "supreme" else {"visualizer": False})
        results[name] = Run(*run_configuration(ood_root, work / name.replace(" ", "_"), seed=0, **options))
    for seed in TUNING_SEEDS[1:]:  # the tuned model's claim is asserted on the mean over training seeds
        options = CONFIGURATIONS["supreme"] | {"visualizer": False}
        results[f"supreme seed {seed}"] = Run(*run_configuration(ood_root, work / f"seed{seed}", seed=seed, **options))
    return results


def test_importing_the_model_registers_it_with_anomalib() -> None:
    assert "supreme" in list_models()
    model = get_model("supreme", class_names=["wood"], **TINY)
    assert isinstance(model, Supreme)
    assert model.learning_type == LearningType.ONE_CLASS  # untuned: Engine.fit must tune it
    assert Supreme(mode="smmp", class_names=["wood"], **TINY).learning_type == LearningType.FEW_SHOT
    assert Supreme(mode="mcm", class_names=["wood"], **TINY).learning_type == LearningType.ZERO_SHOT


def test_paper_defaults() -> None:
    """Defaults are the paper's; only the backbone is swapped so no weights are needed."""
    hparams = Supreme(backbone="anomalib-vlm-tiny", pretrained=None).hparams
    assert Supreme.__init__.__defaults__[1:4] == ("supreme", "ViT-B-16", "openai")
    assert (hparams.image_size, hparams.shots, hparams.temperature, hparams.epochs) == (224, 16, 0.01, 50)
    assert (hparams.itc_weight, hparams.bias_weight, hparams.learning_rate) == (0.005, 0.1, 0.002)
    assert (hparams.context_length, hparams.use_bpg, hparams.use_itc, hparams.batch_size) == (16, True, True, 32)
    # The re-implementation's optimiser and prompts (README, "Tuning setup").
    assert (hparams.bias_learning_rate, hparams.momentum, hparams.weight_decay) == (1e-4, 0.9, 5e-4)
    assert (hparams.prompt_template, hparams.context_init) == ("a photo of a {}.", "a photo of a")
    assert hparams.gradient_clip_norm is None  # ours, off by default


def test_metrics_and_visualizer_on_ood_batches(runs: dict[str, Run]) -> None:
    """Batches of the multi-class OOD datamodule go through anomalib's Evaluator and ImageVisualizer unchanged."""
    assert set(runs["supreme"].metrics) == {"image_AUROC", "image_FPR95", "id_IDAccuracy"}
    images = list(Path(runs["supreme"].engine.trainer.default_root_dir).rglob("images/**/*.png"))
    kinds = {path.parent.name for path in images}
    assert {"noise", "objects", "recoloured", "wood"} <= kinds, kinds  # ID classes and OOD kinds alike
    assert not list(Path(runs["smmp"].engine.trainer.default_root_dir).rglob("*.png"))  # visualizer=False


def test_image_prototypes_lower_fpr95_without_training(runs: dict[str, Run]) -> None:
    """SMMP vs MCM: the random text prototypes are at chance; the shots' image prototypes separate ID from OOD."""
    mcm, smmp = runs["mcm"].metrics, runs["smmp"].metrics
    assert mcm["image_FPR95"] >= 0.8, mcm  # text-only MCM on meaningless class names
    assert smmp["image_FPR95"] <= mcm["image_FPR95"] - 0.5, (mcm, smmp)
    assert smmp["image_AUROC"] >= mcm["image_AUROC"] + 0.3, (mcm, smmp)
    assert smmp["id_IDAccuracy"] > mcm["id_IDAccuracy"]


def test_text_prototypes_of_the_learned_small_clip_carry_meaning(ood_root: Path, tmp_path: Path) -> None:
    """MCM's claim needs a CLIP that reads: on the learned small CLIP the class-name prototypes alone detect OOD.

    The same data and settings as above with ``anomalib-vlm-small`` / ``anomalib-vlm-synthetic``: text-only MCM
    goes from chance on random weights (FPR95 0.99) to a real detector, and the shots' image prototypes (SMMP)
    still lower FPR95 further. Whether BPG and ITC add to that on this model is measured over seeds, not asserted
    (``tools/remeasure_on_small_clip.py``, README).
    """
    small = {"backbone": "anomalib-vlm-small", "pretrained": "anomalib-vlm-synthetic", "visualizer": False}
    mcm = run_configuration(ood_root, tmp_path / "mcm", seed=0, mode="mcm", **small)[2]
    smmp = run_configuration(ood_root, tmp_path / "smmp", seed=0, mode="smmp", **small)[2]
    print(f"\nsmall CLIP: MCM {mcm}\nsmall CLIP: SMMP {smmp}")
    random_mcm = run_configuration(ood_root, tmp_path / "random", seed=0, mode="mcm", visualizer=False)[2]
    assert mcm["image_FPR95"] <= 0.5, mcm  # measured 0.365
    assert mcm["image_FPR95"] <= random_mcm["image_FPR95"] - 0.4, (random_mcm, mcm)
    assert mcm["image_AUROC"] >= 0.75, mcm  # measured 0.815; random weights 0.44
    assert smmp["image_FPR95"] <= mcm["image_FPR95"] - 0.1, (mcm, smmp)  # measured 0.125
    assert smmp["image_AUROC"] >= mcm["image_AUROC"] + 0.05, (mcm, smmp)


def test_few_shot_tuning_lowers_fpr95_further(runs: dict[str, Run]) -> None:
    """SUPREME (BPG + ITC, S_GMP) vs SMMP: tuned prompts make the text side useful too.

    Asserted on the mean over three training seeds: single seeds scatter by about +-0.05 FPR95 on this model
    (seed 3 of the README's five ties with SMMP).
    """
    smmp = runs["smmp"].metrics
    tuned = [runs["supreme"]] + [runs[f"supreme seed {seed}"] for seed in TUNING_SEEDS[1:]]
    assert all(run.model.learning_type == LearningType.FEW_SHOT for run in tuned)
    fpr95 = float(np.mean([run.metrics["image_FPR95"] for run in tuned]))
    auroc = float(np.mean([run.metrics["image_AUROC"] for run in tuned]))
    assert fpr95 <= smmp["image_FPR95"] - 0.05, (smmp, fpr95)
    assert auroc >= smmp["image_AUROC"] + 0.03, (smmp, auroc)


def test_each_module_switched_off_shows_what_it_adds(runs: dict[str, Run]) -> None:
    """What BPG and ITC each do, asserted on the tuned models; their FPR95 ablation is printed, not asserted.

    * Tuning with either module off still beats SMMP: the gain comes from the tuned text side.
    * ITC: its image-to-text map closes the modality gap (projected ID images lie nearer their class's text
      prototype than raw ones), and S_GMP gains the two projected terms; without ITC the maps stay the identity
      and S_GMP is exactly S_MMP with the tuned prompts.
    * BPG: the text prototypes are conditioned on the image domain (they move with the image condition and the
      bias mean mu), training sees sampled biases while inference is deterministic at b = mu; without BPG the
      prompts ignore the image side and m, mu never move.
    """
    smmp = runs["smmp"].metrics
    for name in ("supreme", "supreme without BPG", "supreme without ITC"):
        assert runs[name].metrics["image_FPR95"] < smmp["image_FPR95"], (name, runs[name].metrics, smmp)

    # ITC on: the gap between ID images and their own class's text prototype closes.
    model = runs["supreme"].model.model
    features, labels = model.shot_features, model.shot_labels
    with torch.no_grad():
        projected = F.normalize(model.image_to_text(features), dim=-1)
        own_text = model.text_prototypes[labels]
        raw_gap = 1 - (features * own_text).sum(-1).mean()
        projected_gap = 1 - (projected * own_text).sum(-1).mean()
    assert projected_gap < raw_gap - 0.05, (float(raw_gap), float(projected_gap))
    # ITC off: identity maps, and the score is the two-term S_MMP of the tuned prototypes.
    without_itc = runs["supreme without ITC"].model.model
    weight = without_itc.image_to_text.weight
    assert torch.equal(weight, torch.eye(weight.shape[0]))
    with torch.no_grad():
        gmp, _ = without_itc.score_features(features)
        text_term, _ = mcm_terms(features, without_itc.text_prototypes, without_itc.temperature)
        image_term, _ = mcm_terms(features, without_itc.image_prototypes, without_itc.temperature)
    torch.testing.assert_close(gmp, (text_term + image_term) / 2)

    # BPG on: tuned m and mu; the prototypes depend on the image condition; training samples biases.
    assert torch.count_nonzero(model.bias_net[2].weight) > 0
    assert torch.count_nonzero(model.bias_mean) > 0
    with torch.no_grad():
        at_mean = model.encode_text_prototypes()
        other_condition = model.encode_text_prototypes(condition=-model.image_condition_mean)
        sampled = [model.encode_text_prototypes(sample=True) for _ in range(2)]
    torch.testing.assert_close(at_mean, model.text_prototypes)  # the exported buffer is BPG at b = mu
    assert (at_mean - other_condition).abs().max() > 1e-4
    assert (sampled[0] - sampled[1]).abs().max() > 0
    # BPG off: the image side never reaches the prompts.
    without_bpg = runs["supreme without BPG"].model.model
    assert torch.count_nonzero(without_bpg.bias_mean) == 0
    assert torch.count_nonzero(without_bpg.bias_net[2].weight) == 0
    with torch.no_grad():
        torch.testing.assert_close(
            without_bpg.encode_text_prototypes(condition=-without_bpg.image_condition_mean),
            without_bpg.encode_text_prototypes(),
        )


def test_checkpoint_holds_no_backbone_and_reloads_identically(runs: dict[str, Run]) -> None:
    tuned = runs["supreme"]
    checkpoints = sorted(Path(tuned.engine.trainer.default_root_dir).rglob("*.ckpt"))
    assert checkpoints
    checkpoint = torch.load(checkpoints[-1], map_location="cpu", weights_only=False)
    assert not any(key.startswith("model.clip.") for key in checkpoint["state_dict"])
    reloaded = Supreme.load_from_checkpoint(checkpoints[-1])
    assert reloaded.model.class_names == tuned.model.model.class_names
    assert reloaded.learning_type == LearningType.FEW_SHOT
    images = torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    tuned.model.eval()
    reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded.model(images).pred_score, tuned.model.model(images).pred_score)


def _id_and_ood_images(ood_root: Path) -> torch.Tensor:
    """Four ID test images and four OOD images, raw [0, 1] (the pre-processing is part of the exported graph)."""
    data = synthetic_datamodule(ood_root)
    data.setup()
    batches = list(data.test_dataloader())
    labels = torch.cat([batch.gt_label for batch in batches]).bool()
    everything = torch.cat([batch.image for batch in batches])
    return torch.cat([everything[~labels][:4], everything[labels][:4]])


def test_a_checkpoint_tested_on_other_classes_is_refused(runs: dict[str, Run], ood_root: Path, tmp_path: Path) -> None:
    """``Engine.test(ckpt_path=...)`` restores the checkpoint's classes after ``setup``: they are checked there too."""
    tuned = runs["supreme"]
    checkpoint = sorted(Path(tuned.engine.trainer.default_root_dir).rglob("*.ckpt"))[-1]
    assert tuned.model.model.class_names == ["leather", "tile", "weave", "wood"]
    relabelled = OODDataModule(ood_root, class_names=["tile", "leather", "weave", "wood"], num_workers=0)
    fresh = Supreme(mode="supreme", visualizer=False, **TINY)
    with pytest.raises(ValueError, match=r"model's ID classes \['leather', 'tile', 'weave', 'wood'\] are not"):
        make_engine(tmp_path).test(model=fresh, datamodule=relabelled, ckpt_path=checkpoint, verbose=False)


@pytest.fixture(scope="module")
def exported(runs: dict[str, Run], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tuned SUPREME exported by ``Engine.export`` to ONNX, and that graph converted to OpenVINO IR.

    anomalib's ``to_openvino`` is ``to_onnx`` followed by ``openvino.convert_model`` and ``save_model``; doing the
    conversion here from the same ONNX file saves a second 20 s dynamo export of the 24-block tiny encoder.
    """
    tuned = runs["supreme"]
    root = tmp_path_factory.mktemp("export")
    onnx_path = tuned.engine.export(tuned.model, ExportType.ONNX, export_root=root, input_size=(IMAGE_SIZE, IMAGE_SIZE))
    return {"onnx": Path(onnx_path), "openvino": onnx_to_openvino(onnx_path)}


@pytest.mark.parametrize("export_format", ["onnx", "openvino"])
def test_export_bakes_in_the_prototypes_and_matches_eager(
    runs: dict[str, Run],
    exported: dict[str, Path],
    ood_root: Path,
    export_format: str,
) -> None:
    """One image in, the OOD score and the ID class out (no text tower, tokenizer or shots): as eager, to 1e-4."""
    tuned = runs["supreme"]
    images = _id_and_ood_images(ood_root)
    tuned.model.eval()
    with torch.no_grad():
        eager = {name: value.numpy() for name, value in tuned.model(images)._asdict().items() if value is not None}
    assert {"pred_score", "pred_label", "pred_class"} <= set(eager)
    if export_format == "onnx":
        import onnx
        import onnxruntime

        graph = onnx.load(str(exported["onnx"]), load_external_data=False).graph
        assert [tensor.name for tensor in graph.input] == ["input"]
        for initializer in graph.initializer:
            assert 49408 not in initializer.dims, f"text token embedding {initializer.name} in the graph"
        session = onnxruntime.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        results = dict(zip(names, session.run(names, {"input": images.numpy()}), strict=True))
    else:
        compiled = compile_openvino(exported["openvino"])  # float32 also where OpenVINO's CPU default is bf16
        outputs = compiled(images.numpy())
        results = {output.get_any_name(): outputs[output] for output in compiled.outputs}
    assert set(results) == set(eager)  # every field of the eager batch, the ID class included
    # Real scores are compared, not only the post-processor's clamp at 0 and 1.
    assert int(((eager["pred_score"] > 0) & (eager["pred_score"] < 1)).sum()) >= 6, eager["pred_score"]
    np.testing.assert_allclose(results["pred_score"].reshape(-1), eager["pred_score"], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(results["pred_class"].reshape(-1), eager["pred_class"])
    # The ID class is the one the test step reports: forward is the one scoring path.
    assert set(eager["pred_class"].tolist()) <= set(range(len(tuned.model.model.class_names)))


def test_training_free_smmp_exports_too(runs: dict[str, Run], ood_root: Path, tmp_path: Path) -> None:
    """SMMP, the mode for one-class use, exports with its text and image prototypes baked in (ONNX, 1e-4)."""
    import onnxruntime

    smmp = runs["smmp"]
    onnx_path = smmp.engine.export(smmp.model, ExportType.ONNX, export_root=tmp_path, input_size=(IMAGE_SIZE,) * 2)
    images = _id_and_ood_images(ood_root)
    smmp.model.eval()
    with torch.no_grad():
        eager = smmp.model(images).pred_score.numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    result = session.run(["pred_score"], {"input": images.numpy()})[0]
    np.testing.assert_allclose(result.reshape(eager.shape), eager, atol=1e-4, rtol=0)


def test_gradient_clip_norm_bounds_every_tuning_step(ood_root: Path, tmp_path: Path) -> None:
    """One epoch: with a tiny clip norm the context words ("a photo of a") stay put; without, they move."""
    fresh = Supreme(mode="supreme", **TINY)
    fresh.model.set_classes(["leather", "tile", "weave", "wood"])
    words = fresh.model.prompt_learner.context[0, -4:].detach()  # initialised from the words, not random
    moved = {}
    for clip in (None, 1e-9):
        options = CONFIGURATIONS["supreme"] | {"epochs": 1, "gradient_clip_norm": clip, "visualizer": False}
        model = run_configuration(ood_root, tmp_path / str(clip), seed=0, **options)[0]
        moved[clip] = float((model.model.prompt_learner.context[0, -4:].detach() - words).abs().max())
    assert moved[None] > 1e-3, moved
    assert moved[1e-9] < 1e-5, moved
    with pytest.raises(ValueError, match="gradient_clip_norm must be > 0"):
        Supreme(gradient_clip_norm=0.0, **TINY)


def test_one_class_ood_on_anomalib_mvtec(tmp_path: Path) -> None:
    """MVTec AD layout, category 'wood': ID = its good images, everything else OOD; class name from the category."""
    root = generate_synthetic_dataset(
        tmp_path / "mvtec",
        categories=["wood"],
        image_size=IMAGE_SIZE,
        num_train=SHOTS,
        num_test_normal=8,
        num_test_per_defect=2,
    )
    model = Supreme(mode="smmp", visualizer=False, **TINY)
    metrics = make_engine(tmp_path / "run").test(
        model=model,
        datamodule=MVTecAD(root=root, category="wood", num_workers=0, eval_batch_size=32),
        verbose=False,
    )[0]
    assert model.model.class_names == ["wood"]
    assert model.model.image_prototypes.shape[0] == 1
    assert set(metrics) == {"image_AUROC", "image_FPR95"}  # no ID classes to score: IDAccuracy skips itself
    assert 0.0 <= metrics["image_FPR95"] <= 1.0


def test_explicit_shots_and_bad_input(ood_root: Path) -> None:
    with pytest.raises(ValueError, match="empty list"):
        Supreme(class_names=[], **TINY)
    with pytest.raises(ValueError, match="Duplicate ID class names"):
        Supreme(class_names=["wood", "wood"], **TINY)
    # Shots from an explicit folder of class folders (here the dataset's train split).
    names = ["leather", "tile", "weave", "wood"]
    model = Supreme(mode="smmp", class_names=names, few_shot_source=str(ood_root / "train"), **TINY)
    model.setup("validate")
    assert model.model.image_prototypes.shape == (4, 64)
    assert model.model.shot_features.shape == (4 * SHOTS, 64)  # at most `shots` images per class
    empty = {"leather": [], "tile": sorted((ood_root / "train" / "tile").glob("*.png"))}
    model = Supreme(mode="smmp", class_names=["leather", "tile"], few_shot_source=empty, **TINY)
    with pytest.raises(ValueError, match="ID class 'leather' has no shots"):
        model.setup("validate")


def test_tiny_config_runs_through_anomalib_cli(
    ood_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    """``configs/supreme/tiny_synthetic.yaml`` through ``anomalib-vlm`` (anomalib's CLI, short model names).

    Run in-process: a subprocess would spend ~15 s importing anomalib again.
    """
    from anomalib_vlm.cli import main

    config = REPO / "configs/supreme/tiny_synthetic.yaml"
    model = yaml.safe_load(config.read_text())["model"]
    assert model["class_path"] == "Supreme"
    assert model["init_args"] == CONFIGURATIONS["supreme"] | TINY_SETTINGS  # the settings the tests measure
    main([
        "test", "--config", str(config),
        "--model.init_args.mode", "smmp", "--model.init_args.visualizer", "false",
        "--data.init_args.root", str(ood_root), "--default_root_dir", str(tmp_path),
    ])  # fmt: skip
    output = capsys.readouterr().out
    for metric in ("image_AUROC", "image_FPR95", "id_IDAccuracy"):
        assert metric in output, output[-2000:]
