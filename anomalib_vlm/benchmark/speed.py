# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""``anomalib-vlm benchmark speed``: what each model costs per image in each precision, and what that costs in AUROC.

In one process and one run it times, for one backbone, input size, batch size and device:

* the bare backbone forward (``clip.encode_image`` of the same open_clip model): the floor;
* the image tower's matrix products alone (every linear layer and the patch embedding, on random tokens of the
  right shapes): what any float32 runtime has to compute, so eager time over it bounds the speed-up an exported
  float32 model can reach on this machine;
* each model of the package (AnomalyClip, Supreme, MetaIqa) with its pre- and post-processing (what gets
  exported) in every precision of :mod:`anomalib_vlm.benchmark.precision`: eager float32 and autocast, ONNX,
  OpenVINO float32 / device default / FP16 IR / INT8 (``INT8_PTQ``, ``INT8_ACQ``), the OpenVINO ones also in
  throughput mode (several asynchronous requests); each scored on a test split (synthetic by default,
  ``--data`` for any anomalib datamodule) for its map difference and AUROC change against eager float32;
* anomalib's WinClip on the same backbone (zero-shot), the reference a user would otherwise pick;
* AnomalyClip's prompt-training step (forward, loss, backward, optimiser step) in images per second.

The timing discipline is :mod:`anomalib_vlm.benchmark.timing`'s; the tables, the CPU's instruction sets and the
targets (passed with ``--target`` or read from a docs page with ``--targets``) are
:mod:`anomalib_vlm.benchmark.report`'s. With ``--device cuda`` the eager rows run on the GPU in float32,
float16 and bfloat16 autocast with their peak memory; the export rows are CPU runtimes and stay on the CPU.
Weights are random unless ``--pretrained`` is given: speed does not depend on weight values, and the output says
which was used (AUROC only means something with learned weights).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import platform
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from anomalib_vlm.benchmark.precision import PRECISIONS, PrecisionBench, TestSplit, load_test_split, save_openvino
from anomalib_vlm.benchmark.report import (
    SpeedReport,
    Target,
    cpu_features,
    format_report,
    judge,
    read_targets,
    write_report,
)
from anomalib_vlm.benchmark.timing import VariantBench, inference
from anomalib_vlm.clip import load_clip_model

MODELS = ("anomaly_clip", "supreme", "meta_iqa")
"""Models ``--models`` can name, in table order."""
MODEL_TITLES = {"anomaly_clip": "AnomalyClip", "supreme": "Supreme", "meta_iqa": "MetaIqa"}
MATRIX_PRODUCTS = "backbone matrix products alone (float32 bound)"
SYNTHETIC_CATEGORY = "capsule"
"""The default test split: a synthetic object category (normal images and three kinds of defect, with masks)."""


def _matrix_products_only(visual: torch.nn.Module, batch_size: int) -> Callable[[], object] | None:
    """The image tower's linear layers and patch embedding as bare GEMMs on random tokens (ViTs only).

    Attention's own two products (about 4% of ViT-B-16's work at 224 px) and everything elementwise are left out,
    so the time is below what a complete float32 forward can take.
    """
    grid = getattr(visual, "grid_size", None)
    if grid is None:
        return None
    patches = batch_size * grid[0] * grid[1]
    tokens = patches + batch_size  # plus one class token per image
    conv = visual.conv1
    device = conv.weight.device
    products = [(torch.randn(patches, conv.weight[0].numel(), device=device), conv.weight.flatten(1), conv.bias)]
    for module in visual.modules():
        if isinstance(module, torch.nn.MultiheadAttention):  # its input projection is not an nn.Linear
            inputs = torch.randn(tokens, module.embed_dim, device=device)
            products.append((inputs, module.in_proj_weight, module.in_proj_bias))
        elif isinstance(module, torch.nn.Linear):
            products.append((torch.randn(tokens, module.in_features, device=device), module.weight, module.bias))

    def run() -> None:
        for inputs, weight, bias in products:
            torch.nn.functional.linear(inputs, weight, bias)

    return inference(run)


def _paper_dpam_layers(backbone: str, pretrained: str | None) -> int:
    """The paper's 19 of 24 DPAM blocks, expressed for this backbone's depth."""
    probe = load_clip_model(backbone, pretrained)
    depth = len(probe.visual.transformer.resblocks)
    return min(depth - 1, round(depth * 19 / 24))


def _build_model(name: str, args: argparse.Namespace, dpam_layers: int) -> torch.nn.Module:
    """One of the package's models at its paper settings for this backbone, ready for inference."""
    # No evaluator: the benchmark scores the outputs itself, and a model's own metrics (MetaIqa's SRCC) need
    # fields that anomaly data does not have; validation then only calibrates the post-processor.
    common = {
        "backbone": args.backbone,
        "pretrained": args.pretrained,
        "image_size": args.image_size,
        "evaluator": False,
    }
    if name == "anomaly_clip":
        from anomalib_vlm.models import AnomalyClip

        return AnomalyClip(**common, feature_layers=[-1], dpam_layers=dpam_layers, visualizer=False).eval()
    if name == "supreme":
        from anomalib_vlm.models import Supreme

        # ImageNet-style scale would be 1000 classes; 10 classes x 16 shots is what a line inspection team has.
        class_names = [f"part {index}" for index in range(10)]
        model = Supreme(**common, mode="supreme", class_names=class_names, shots=16, visualizer=False)
        generator = torch.Generator().manual_seed(1)
        size = (args.image_size, args.image_size)
        model.set_shots({name: torch.randn(16, 3, *size, generator=generator) for name in class_names})
        return model.eval()
    if name == "meta_iqa":
        from anomalib_vlm.models import MetaIqa

        return MetaIqa(**common, visualizer=False).eval()
    msg = f"--models: unknown model '{name}', expected some of {', '.join(MODELS)}"
    raise ValueError(msg)


def winclip_on(backbone: str, pretrained: str | None, class_name: str = "object") -> torch.nn.Module:
    """Anomalib's WinClip torch model (zero-shot) on our backbone, built by a subclass with its own constructor.

    ``WinClipModel.__init__`` loads the backbone named by its module's constants; the subclass takes the CLIP
    model as an argument instead and sets up what WinClip's methods read, so no module global is touched.
    """
    from anomalib.models.image.winclip import WinClipModel

    class WinClipOnBackbone(WinClipModel):
        def __init__(self, clip: torch.nn.Module) -> None:
            torch.nn.Module.__init__(self)  # not WinClipModel's: it would load its own backbone
            self.backbone, self.pretrained, self.temperature = backbone, pretrained, 0.07  # CLIP's temperature
            self.class_name, self.reference_images, self.scales = class_name, None, (2, 3)
            self.apply_transform, self.k_shot, self._transform = False, 0, None
            self.clip = clip
            clip.visual.output_tokens = True  # WinClip reads the patch tokens
            self.grid_size = clip.visual.grid_size
            self.register_buffer_list("masks", self._generate_masks(), persistent=False)
            self.register_buffer("_text_embeddings", torch.empty(0))
            self.register_buffer_list("_visual_embeddings", [torch.empty(0) for _ in self.scales])
            self.register_buffer("_patch_embeddings", torch.empty(0))
            self.setup(class_name, None)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return WinClipOnBackbone(load_clip_model(backbone, pretrained)).eval()


def _test_split(args: argparse.Namespace, folder: Path) -> TestSplit | None:
    """The datamodule of ``--data`` (a YAML ``class_path`` / ``init_args`` file) or the synthetic category."""
    if args.no_accuracy:
        return None
    from torchvision.transforms import v2

    resize = v2.Resize((args.image_size, args.image_size), antialias=True)  # INT8 IRs take the exported size
    if args.data is not None:
        import yaml

        from anomalib_vlm.data.datamodules.auxiliary import import_class

        spec = yaml.safe_load(args.data.read_text()) or {}
        if "class_path" not in spec:
            msg = f"--data {args.data}: expected a YAML mapping with 'class_path' (and 'init_args'), got {spec!r}"
            raise ValueError(msg)
        init_args = {"augmentations": resize, "num_workers": 0} | dict(spec.get("init_args") or {})
        datamodule = import_class(spec["class_path"])(**init_args)
        return load_test_split(datamodule, args.image_size, f"{spec['class_path']} ({args.data})")
    from anomalib.data import MVTecAD

    from anomalib_vlm.data import generate_synthetic_dataset

    root = generate_synthetic_dataset(folder / "synthetic", [SYNTHETIC_CATEGORY], image_size=args.image_size)
    # Generated at the input size: no resize needed.
    datamodule = MVTecAD(root=root, category=SYNTHETIC_CATEGORY, eval_batch_size=8, num_workers=0, seed=0)
    return load_test_split(datamodule, args.image_size, f"synthetic '{SYNTHETIC_CATEGORY}' test split")


def _calibrate(model: Any, split: TestSplit | None, device: torch.device) -> None:
    """Thresholds and normalisation from the validation split, as before any export (INT8 needs finite ones)."""
    if split is None:
        return
    from anomalib.engine import Engine

    engine = Engine(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tempfile.gettempdir(),
    )
    engine.validate(model=model, datamodule=split.datamodule, verbose=False)
    model.to(device).eval()


def _add_model(
    precision: PrecisionBench, name: str, args: argparse.Namespace, dpam_layers: int, raw: torch.Tensor, folder: Path
) -> None:
    """Every requested precision of one model."""
    device = torch.device(args.device)
    model = _build_model(name, args, dpam_layers).to(device)
    _calibrate(model, precision.split, device)
    title = MODEL_TITLES[name] if device.type == "cpu" else f"{MODEL_TITLES[name]} ({device.type})"  # GPU rows say so
    precisions = args.precisions
    precision.add_eager(title, model, device, raw, precisions)
    if args.throughput_batch_size and args.throughput_batch_size != len(raw):
        repeats = -(-args.throughput_batch_size // len(raw))
        batch = raw.repeat(repeats, 1, 1, 1)[: args.throughput_batch_size].to(device)
        for dtype in [None, *((torch.float16, torch.bfloat16) if device.type == "cuda" else ())]:
            label = "float32" if dtype is None else str(dtype).removeprefix("torch.") + " autocast"

            def run(dtype: torch.dtype | None = dtype) -> object:
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    return model(batch)

            precision.bench.add(f"{title} eager {label} batch {len(batch)}", inference(run), len(batch), "throughput")
    exported = {"onnx", "openvino_f32", "openvino_default", "openvino_fp16", "int8_ptq", "int8_acq"} & set(precisions)
    if not exported:
        return
    onnx_path = model.cpu().to_onnx(folder / name / "onnx", input_size=(args.image_size, args.image_size))
    model.to(device)
    if "onnx" in precisions:
        precision.add_onnx(title, onnx_path, raw)
    irs = folder / name / "openvino"
    if {"openvino_f32", "openvino_default"} & set(precisions):
        xml = save_openvino(model, onnx_path, irs / "f32" / "model.xml", None)
        if "openvino_f32" in precisions:
            precision.add_openvino(f"{title} OpenVINO float32", xml, raw, exact=True)
        if "openvino_default" in precisions:
            precision.add_openvino(
                f"{title} OpenVINO default precision", xml, raw, exact=False, note="OpenVINOInferencer's default"
            )
    if "openvino_fp16" in precisions:
        xml = save_openvino(model, onnx_path, irs / "fp16" / "model.xml", "fp16")
        precision.add_openvino(f"{title} OpenVINO FP16 IR", xml, raw, exact=False, note="weights stored in fp16")
    for compression in ("int8_ptq", "int8_acq"):
        if compression not in precisions:
            continue
        if precision.split is None:
            precision.bench.skip(f"{title} OpenVINO {compression.upper()}", "needs a test split to calibrate on")
            continue
        xml = save_openvino(model, onnx_path, irs / compression / "model.xml", compression, precision.split.datamodule)
        precision.add_openvino(
            f"{title} OpenVINO {compression.upper()}",
            xml,
            raw,
            exact=False,
            note="anomalib export compression, NNCF model_type from the model's hook",
        )


def _add_training_step(
    bench: VariantBench, args: argparse.Namespace, dpam_layers: int, normalised: torch.Tensor
) -> None:
    """One prompt update per call, on a model of its own so that the eager one keeps its prompts.

    The frozen backbone runs under no_grad; the text features are recomputed because they change.
    """
    bench.mark()
    model = _build_model("anomaly_clip", args, dpam_layers).to(args.device)
    images = normalised.repeat(max(1, 8 // args.batch_size), 1, 1, 1)[:8]
    labels = torch.arange(len(images), device=images.device) % 2
    masks = torch.zeros(len(images), *images.shape[-2:], device=images.device)
    masks[labels == 1, : images.shape[-2] // 4, : images.shape[-1] // 4] = 1
    optimizer = model.configure_optimizers()
    model.model.train()

    def step() -> None:
        outputs = model.model(images)
        loss = model.loss(outputs.image_logits, outputs.layer_probabilities, labels, masks)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    bench.add("AnomalyClip training step", step, len(images), f"batch {len(images)}, images/s = training throughput")


def machine_description(device: torch.device) -> dict[str, Any]:
    """Platform, CPU features, library versions and the GPU's name where one is used."""
    machine: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_features(),
    }
    if device.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(device)
    if importlib.util.find_spec("openvino") is not None:
        import openvino

        machine["openvino"] = openvino.__version__.split("-")[0]
    return machine


def add_ratios(report: SpeedReport) -> None:
    """Each row against the floor, WinClip and its own model's eager float32."""
    floor = report.timings[0].ms_per_image
    winclip_ms = next((t.ms_per_image for t in report.timings if t.name.startswith("anomalib WinClip")), None)
    eager = {
        t.name.removesuffix(" eager float32"): t.ms_per_image
        for t in report.timings
        if t.name.endswith(" eager float32")
    }
    for timing in report.timings:
        if "training" in timing.name:
            continue
        timing.ratio_to_floor = round(timing.ms_per_image / floor, 3)
        if winclip_ms:
            timing.ratio_to_winclip = round(timing.ms_per_image / winclip_ms, 4)
        model = max((key for key in eager if timing.name.startswith(f"{key} ")), key=len, default=None)
        if model is not None:
            timing.speedup_to_eager = round(eager[model] / timing.ms_per_image, 3)
    by_name = {timing.name: timing for timing in report.timings}
    if MATRIX_PRODUCTS in by_name and "AnomalyClip eager float32" in by_name:
        ceiling = by_name["AnomalyClip eager float32"].ms_per_image / by_name[MATRIX_PRODUCTS].ms_per_image
        report.float32_speedup_ceiling = round(ceiling, 2)


def run_speed(args: argparse.Namespace) -> SpeedReport:
    """Build, score and warm up every variant, time them round robin, and judge the given targets."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    if device.type != "cpu":  # OpenVINO and onnxruntime rows are CPU runtimes
        args.precisions = [name for name in args.precisions if name == "autocast"]
    report = SpeedReport(
        settings={
            "backbone": args.backbone,
            "pretrained": args.pretrained,
            "weights": "pretrained" if args.pretrained else "random (speed does not depend on weight values)",
            "image_size": args.image_size,
            "batch_size": args.batch_size,
            "device": str(device),
            "warmup": args.warmup,
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "models": list(args.models),
            "precisions": list(args.precisions),
        },
        machine=machine_description(device),
    )
    targets = [Target.parse(text) for text in args.target]
    if args.targets is not None:
        targets += read_targets(args.targets)
    bench = VariantBench(device, args.warmup, args.repeats)
    raw = torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(0))
    dpam_layers = _paper_dpam_layers(args.backbone, args.pretrained)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        split = _test_split(args, folder)
        report.settings["test_data"] = split.description if split else "no test split (--no-accuracy)"
        from anomalib_vlm.models import AnomalyClip

        # The floor: the same open_clip model built for this input size, on CLIP-normalised input.
        pre_processor = AnomalyClip.configure_pre_processor((args.image_size,) * 2, args.backbone, args.pretrained)
        normalised = pre_processor.transform(raw).to(device)
        bench.mark()
        floor_clip = load_clip_model(args.backbone, args.pretrained, image_size=args.image_size).to(device)
        bench.add(
            "backbone encode_image (floor)", inference(lambda: floor_clip.encode_image(normalised)), args.batch_size
        )
        matrix_products = _matrix_products_only(floor_clip.visual, args.batch_size)
        if matrix_products is not None:
            bench.add(
                MATRIX_PRODUCTS, matrix_products, args.batch_size, "linear layers + patch embedding, random tokens"
            )
        precision = PrecisionBench(bench, split, args.requests)
        for name in args.models:
            _add_model(precision, name, args, dpam_layers, raw, folder)
        if not args.skip_winclip:
            bench.mark()
            winclip = winclip_on(args.backbone, args.pretrained).to(device)
            native = tuple(winclip.clip.visual.image_size)
            winclip_input = torch.nn.functional.interpolate(normalised, size=native, mode="bilinear")
            note = f"zero-shot, scales (2, 3), at its backbone's native {native[0]} px"
            bench.add("anomalib WinClip eager", inference(lambda: winclip(winclip_input)), args.batch_size, note)
        if "anomaly_clip" in args.models and not args.skip_training:
            _add_training_step(bench, args, dpam_layers, normalised)
        bench.time_round_robin()
    report.timings = bench.timings()
    add_ratios(report)
    flags = report.machine["cpu"]["flags"]
    report.targets = [judge(target, report.timings, flags) for target in targets]
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``anomalib-vlm benchmark speed``."""
    parser.add_argument("--backbone", default="ViT-B-16")
    parser.add_argument("--pretrained", default=None, help="open_clip tag or file; default random weights")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument(
        "--throughput-batch-size",
        type=int,
        default=None,
        help="also time eager at this batch (float32, and float16/bfloat16 autocast on CUDA)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]; export rows always run on the CPU")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="models to time")
    parser.add_argument(
        "--precisions",
        nargs="*",
        default=list(PRECISIONS),
        choices=PRECISIONS,
        help="variants besides eager float32 (default: all)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="OpenVINO asynchronous requests in throughput mode (default: OpenVINO's optimum)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="YAML with an anomalib datamodule's class_path and init_args: the test split scored "
        "(default: a synthetic category generated in a temporary folder)",
    )
    parser.add_argument("--no-accuracy", action="store_true", help="time only: no test split, no INT8 rows")
    parser.add_argument("--skip-winclip", action="store_true", help="no WinClip reference")
    parser.add_argument("--skip-training", action="store_true", help="no prompt-training step")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="'NAME | VARIANTS | CONDITIONS | NEEDS'",
        help="a target to judge (see anomalib_vlm.benchmark.report); repeatable",
    )
    parser.add_argument(
        "--targets",
        type=Path,
        default=None,
        help="a markdown page whose '| target | variants |' table holds targets, e.g. docs/benchmark-targets.md",
    )
    parser.add_argument("--output", type=Path, default=Path("results/benchmark/speed"))
    parser.add_argument(
        "--docs", type=Path, default=None, help="also append a dated section to this page (docs/benchmarks.md)"
    )


def main(argv: Sequence[str]) -> int:
    """Run the speed benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="anomalib-vlm benchmark speed", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    report = run_speed(args)
    command = "anomalib-vlm benchmark speed " + " ".join(argv)
    write_report(report, args.output, command.strip(), args.docs)
    print(format_report(report))
    print(f"written to {args.output}/speed.{{json,csv,md}}" + (f" and {args.docs}" if args.docs else ""))
    return 0
