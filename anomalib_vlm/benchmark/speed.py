# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""``anomalib-vlm benchmark speed``: what each model costs per image, next to the backbone floor and WinClip.

In one process and one run it times, for one backbone, input size, batch size and device:

* the bare backbone forward (``clip.encode_image`` of the same open_clip model): the floor;
* the image tower's matrix products alone (every linear layer and the patch embedding, on random tokens of the
  right shapes): what any float32 runtime has to compute, so eager time over it bounds the speed-up an exported
  float32 model can reach on this machine;
* each model of the package (AnomalyClip, Supreme, MetaIqa) in eager torch, with its pre- and post-processing
  (what gets exported), and the same model exported to ONNX (run with onnxruntime, if installed) and to
  OpenVINO (CPU only);
* anomalib's WinClip on the same backbone (zero-shot), the reference a user would otherwise pick;
* AnomalyClip's prompt-training step (forward, loss, backward, optimiser step) in images per second.

Every variant is built and warmed up first; then the timed runs go round robin, one call of each variant per
round, so that a noisy machine (a shared virtual CPU drifts by 10-20% within a minute) slows every variant
alike. Each figure is the median over the rounds. Memory is the peak resident set size during the variant's
warm-up calls above the process's size before the variant was built (CPU), or the peak allocated memory above
the allocation before it (CUDA): what the variant itself adds. Weights are random unless ``--pretrained`` is
given: speed does not depend on weight values, and the output says which was used.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import gc
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from anomalib_vlm.clip import load_clip_model
from anomalib_vlm.deploy import compile_openvino, onnx_to_openvino

DOCS_FILE = Path("docs/benchmarks.md")
MODELS = ("anomaly_clip", "supreme", "meta_iqa")
"""Models ``--models`` can name, in table order."""
SETTLE_SECONDS = 0.2
"""Pause before each timed call (see :meth:`VariantBench.time_round_robin`)."""
MODEL_TITLES = {"anomaly_clip": "AnomalyClip", "supreme": "Supreme", "meta_iqa": "MetaIqa"}


@dataclass
class Timing:
    """One benchmarked variant."""

    name: str
    ms_per_image: float
    images_per_second: float
    peak_memory_mb: float
    ratio_to_floor: float | None = None
    ratio_to_winclip: float | None = None
    max_abs_difference: float | None = None
    note: str = ""


@dataclass
class SpeedReport:
    """Everything one ``benchmark speed`` run measured, and how."""

    settings: dict
    machine: dict
    timings: list[Timing] = field(default_factory=list)
    targets: list[dict] = field(default_factory=list)
    float32_speedup_ceiling: float | None = None
    """AnomalyClip eager time over its backbone's matrix products alone: at torch's GEMM rate, no float32 runtime
    can beat eager by more."""


@dataclass
class Variant:
    """A callable to time, with what is known about it before the timed rounds."""

    name: str
    run: Callable[[], object]
    images_per_call: int
    memory_mb: float
    note: str = ""
    difference: float | None = None
    durations: list[float] = field(default_factory=list)


class _PeakMemory:
    """Peak RSS (CPU, sampled by a thread) or peak allocated memory (CUDA) while the block runs, in MiB."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._sample_once()
            time.sleep(0.01)

    def _sample_once(self) -> None:
        self.peak = max(self.peak, resident_memory_mb())

    @contextlib.contextmanager
    def track(self) -> Iterator[_PeakMemory]:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            yield self
            self.peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        # A block shorter than one sampling period still gets a reading; a missing psutil fails here, not in the thread.
        self._sample_once()
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self._sample_once()


def resident_memory_mb() -> float:
    """This process's resident set size now, in MiB."""
    import psutil  # a declared dependency; imported here so that importing the module stays cheap

    return psutil.Process(os.getpid()).memory_info().rss / 2**20


def current_memory_mb(device: torch.device) -> float:
    """Resident set size (CPU) or allocated memory (CUDA) now, in MiB."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return resident_memory_mb()


class VariantBench:
    """Builds variants one after another (measuring what each adds), then times them round robin."""

    def __init__(self, device: torch.device, warmup: int, repeats: int) -> None:
        self.device = device
        self.warmup = max(1, warmup)
        self.repeats = repeats
        self.variants: list[Variant] = []
        self._baseline = 0.0

    def mark(self) -> None:
        """Call before building a variant's model: its memory is counted from here."""
        gc.collect()
        self._baseline = current_memory_mb(self.device)

    def add(
        self,
        name: str,
        run: Callable[[], object],
        images_per_call: int,
        note: str = "",
        difference: float | None = None,
    ) -> None:
        """Warm ``run`` up (measuring its memory) and queue it for the timed rounds."""
        with _PeakMemory(self.device).track() as memory:
            for _ in range(self.warmup):
                run()
        added = max(memory.peak - self._baseline, 0.0)
        self.variants.append(Variant(name, run, images_per_call, added, note, difference))

    def time_round_robin(self) -> None:
        """One call of every variant per round, ``repeats`` rounds.

        A short pause before each call lets the previous runtime's worker threads (OpenMP, onnxruntime, TBB) stop
        spinning, so no variant pays for the one before it.
        """
        for _ in range(self.repeats):
            for variant in self.variants:
                time.sleep(SETTLE_SECONDS)
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                started = time.perf_counter()
                variant.run()
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                variant.durations.append(time.perf_counter() - started)

    def timings(self) -> list[Timing]:
        """Median milliseconds per image of every variant."""
        return [
            _timing(
                variant.name,
                float(np.median(variant.durations)) * 1000 / variant.images_per_call,
                variant.memory_mb,
                variant.note,
                variant.difference,
            )
            for variant in self.variants
        ]


def _inference(function: Callable[[], object]) -> Callable[[], object]:
    """``function`` run under ``torch.inference_mode`` (the models are built outside it, so they stay trainable)."""

    def run() -> object:
        with torch.inference_mode():
            return function()

    return run


def _timing(name: str, ms: float, memory: float, note: str = "", difference: float | None = None) -> Timing:
    ms = max(round(ms, 3), 0.001)
    return Timing(name, ms, round(1000 / ms, 4), round(memory, 1), max_abs_difference=difference, note=note)


MATRIX_PRODUCTS = "backbone matrix products alone (float32 bound)"


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

    return _inference(run)


def _paper_dpam_layers(backbone: str, pretrained: str | None) -> int:
    """The paper's 19 of 24 DPAM blocks, expressed for this backbone's depth."""
    probe = load_clip_model(backbone, pretrained)
    depth = len(probe.visual.transformer.resblocks)
    return min(depth - 1, round(depth * 19 / 24))


def _build_model(name: str, args: argparse.Namespace, dpam_layers: int) -> torch.nn.Module:
    """One of the package's models at its paper settings for this backbone, ready for inference."""
    common = {"backbone": args.backbone, "pretrained": args.pretrained, "image_size": args.image_size}
    if name == "anomaly_clip":
        from anomalib_vlm.models import AnomalyClip

        return AnomalyClip(**common, feature_layers=[-1], dpam_layers=dpam_layers).eval()
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


def _winclip_on(backbone: str, pretrained: str | None) -> torch.nn.Module:
    """Anomalib's WinClip zero-shot model with our backbone (its module constants are swapped while building)."""
    from anomalib.models.image.winclip import torch_model as winclip

    saved = (winclip.BACKBONE, winclip.PRETRAINED)
    winclip.BACKBONE, winclip.PRETRAINED = backbone, pretrained
    try:
        load_clip_model(backbone, pretrained)  # registers our configs with open_clip, fails clearly offline
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = winclip.WinClipModel(class_name="object")
    finally:
        winclip.BACKBONE, winclip.PRETRAINED = saved
    return model.eval()


def run_speed(args: argparse.Namespace) -> SpeedReport:
    """Build and warm up every variant, time them round robin, and compute the ratios and targets."""
    device = torch.device(args.device)
    torch.manual_seed(0)
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
        },
        machine={
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        },
    )
    bench = VariantBench(device, args.warmup, args.repeats)
    raw = torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(0))
    dpam_layers = _paper_dpam_layers(args.backbone, args.pretrained)
    batch = args.batch_size
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        # The floor: the same open_clip model built for this input size, on CLIP-normalised input.
        from anomalib_vlm.models import AnomalyClip

        normalised = (
            AnomalyClip.configure_pre_processor((args.image_size,) * 2, args.backbone, args.pretrained)
            .transform(raw)
            .to(device)
        )
        bench.mark()
        floor_clip = load_clip_model(args.backbone, args.pretrained, image_size=args.image_size).to(device)
        bench.add("backbone encode_image (floor)", _inference(lambda: floor_clip.encode_image(normalised)), batch)
        matrix_products = _matrix_products_only(floor_clip.visual, batch)
        if matrix_products is not None:
            bench.add(MATRIX_PRODUCTS, matrix_products, batch, "linear layers + patch embedding, random tokens")
        for name in args.models:
            bench.mark()
            model = _build_model(name, args, dpam_layers).to(device)
            title = MODEL_TITLES[name]
            device_raw = raw.to(device)
            eager = _inference(lambda model=model, images=device_raw: model(images))
            bench.add(f"{title} eager", eager, batch, "pre-processing + model + post")
            if not args.skip_export:
                both_precisions = name == "anomaly_clip"
                _add_exported(bench, model, title, raw, folder / name, args, with_default_precision=both_precisions)
        if not args.skip_winclip:
            bench.mark()
            winclip = _winclip_on(args.backbone, args.pretrained).to(device)
            native = tuple(winclip.clip.visual.image_size)
            winclip_input = torch.nn.functional.interpolate(normalised, size=native, mode="bilinear")
            note = f"zero-shot, scales (2, 3), at its backbone's native {native[0]} px"
            bench.add("anomalib WinClip eager", _inference(lambda: winclip(winclip_input)), batch, note)
        if "anomaly_clip" in args.models:
            _add_training_step(bench, args, dpam_layers, normalised)
        bench.time_round_robin()
    report.timings = bench.timings()

    floor = report.timings[0].ms_per_image
    winclip_ms = next((t.ms_per_image for t in report.timings if t.name.startswith("anomalib WinClip")), None)
    for timing in report.timings:
        if "training" in timing.name:
            continue
        timing.ratio_to_floor = round(timing.ms_per_image / floor, 3)
        if winclip_ms:
            timing.ratio_to_winclip = round(timing.ms_per_image / winclip_ms, 4)
    report.targets = _targets(report)
    by_name = {timing.name: timing for timing in report.timings}
    if MATRIX_PRODUCTS in by_name and "AnomalyClip eager" in by_name:
        ceiling = by_name["AnomalyClip eager"].ms_per_image / by_name[MATRIX_PRODUCTS].ms_per_image
        report.float32_speedup_ceiling = round(ceiling, 2)
    return report


def _output_name(model: torch.nn.Module) -> str:
    """The exported output compared with eager: the anomaly map where there is one, else the score."""
    return "anomaly_map" if type(model).__name__ == "AnomalyClip" else "pred_score"


def _add_exported(
    bench: VariantBench,
    model: torch.nn.Module,
    title: str,
    raw: torch.Tensor,
    folder: Path,
    args: argparse.Namespace,
    with_default_precision: bool,
) -> None:
    """ONNX (onnxruntime) and OpenVINO variants of ``model``, each checked against eager on the same input."""
    inputs = raw.cpu().numpy()
    output_name = _output_name(model)
    with torch.inference_mode():
        eager = getattr(model(raw.to(args.device)), output_name).cpu().numpy()
    onnx_path = model.cpu().to_onnx(folder / "onnx", input_size=(args.image_size, args.image_size))
    model.to(args.device)
    try:
        import onnxruntime
    except ImportError:
        missing = Variant(f"{title} ONNX (onnxruntime)", lambda: None, 1, float("nan"), "not installed")
        bench.variants.append(missing)
    else:
        bench.mark()
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads leave the cores
        session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        run = lambda: session.run([output_name], {"input": inputs})  # noqa: E731
        difference = float(np.abs(run()[0].reshape(eager.shape) - eager).max())
        bench.add(f"{title} ONNX (onnxruntime)", run, len(inputs), "CPU", difference)
    openvino_path = onnx_to_openvino(onnx_path)  # anomalib's to_openvino, without its second ONNX export
    # float32 is the row the targets judge (outputs equal to 1e-4); OpenVINO's own default precision
    # (bfloat16 on CPUs with AVX512-BF16 or AMX) gets a row of its own where it differs.
    for exact in (True, False) if with_default_precision else (True,):
        bench.mark()
        compiled = compile_openvino(openvino_path, "CPU", exact=exact)
        precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32", "bf16", ...
        if not exact and precision == "f32":
            break
        request = compiled.create_infer_request()
        port = next(port for port in compiled.outputs if port.get_any_name() == output_name)
        run = lambda request=request: request.infer({0: inputs})  # noqa: E731
        difference = float(np.abs(run()[port].reshape(eager.shape) - eager).max())
        name = f"{title} OpenVINO" if exact else f"{title} OpenVINO (default precision)"
        bench.add(name, run, len(inputs), f"CPU, {precision}", difference)


def _add_training_step(
    bench: VariantBench,
    args: argparse.Namespace,
    dpam_layers: int,
    normalised: torch.Tensor,
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


def _targets(report: SpeedReport) -> list[dict]:
    """The issue's targets for ViT-B-16 at 224 px, batch 1, on CPU: stated whatever the settings, judged on these."""
    by_name = {timing.name: timing for timing in report.timings}
    eager = by_name.get("AnomalyClip eager")
    openvino = by_name.get("AnomalyClip OpenVINO")
    winclip = by_name.get("anomalib WinClip eager")
    targets = []
    if eager:
        targets.append({"target": "AnomalyClip eager <= 1.15 x backbone floor", "value": eager.ratio_to_floor,
                        "met": eager.ratio_to_floor <= 1.15})  # fmt: skip
    if eager and winclip:
        speedup = winclip.ms_per_image / eager.ms_per_image
        targets.append({"target": "AnomalyClip >= 5 x faster than WinClip", "value": round(speedup, 2),
                        "met": speedup >= 5})  # fmt: skip
    if eager and openvino:
        speedup = eager.ms_per_image / openvino.ms_per_image
        targets.append({"target": "OpenVINO >= 1.5 x faster than eager", "value": round(speedup, 2),
                        "met": speedup >= 1.5})  # fmt: skip
        targets.append({"target": "OpenVINO anomaly map equals eager to 1e-4", "value": openvino.max_abs_difference,
                        "met": openvino.max_abs_difference <= 1e-4})  # fmt: skip
    return targets


def format_report(report: SpeedReport) -> str:
    """Markdown: settings, the table, the targets."""
    settings = report.settings
    lines = [
        f"{settings['backbone']} at {settings['image_size']} px, batch {settings['batch_size']}, {settings['device']}, "
        f"{settings['threads']} threads; weights: {settings['weights']}; median of {settings['repeats']} runs after "
        f"{settings['warmup']} warm-up runs.",
        "",
        "| variant | ms / image | images / s | peak memory (MiB) | x floor | x WinClip | max abs diff vs eager "
        "| note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for timing in report.timings:
        cells = [
            timing.name,
            f"{timing.ms_per_image:.1f}",
            f"{timing.images_per_second:.2f}",
            f"{timing.peak_memory_mb:.0f}",
            "" if timing.ratio_to_floor is None else f"{timing.ratio_to_floor:.2f}",
            "" if timing.ratio_to_winclip is None else f"{timing.ratio_to_winclip:.3f}",
            "" if timing.max_abs_difference is None else f"{timing.max_abs_difference:.1e}",
            timing.note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if report.targets:
        lines += ["", "| target | value | met |", "|---|---|---|"]
        lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |" for t in report.targets]
    if report.float32_speedup_ceiling is not None:
        lines += [
            "",
            f"Float32 ceiling: AnomalyClip eager takes {report.float32_speedup_ceiling} x the time of its backbone's "
            "matrix products alone. A float32 runtime (OpenVINO, onnxruntime) whose matrix products run at the rate "
            "torch's do here cannot run the model faster than that, whatever it fuses.",
        ]
    return "\n".join(lines) + "\n"


def write_report(report: SpeedReport, output: Path, command: str, docs: Path | None) -> None:
    """JSON, CSV and markdown into ``output``; optionally a dated section in the docs page."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "speed.json").write_text(json.dumps(asdict(report), indent=2))
    with (output / "speed.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(asdict(report.timings[0])))
        writer.writeheader()
        writer.writerows(asdict(timing) for timing in report.timings)
    markdown = format_report(report)
    (output / "speed.md").write_text(markdown)
    if docs is not None:
        append_docs_section(docs, f"Speed: {report.settings['backbone']} {report.settings['image_size']} px", command,
                            report.machine, markdown)  # fmt: skip


def append_docs_section(docs: Path, title: str, command: str, machine: dict, body: str) -> None:
    """Add a dated section with the exact command and the machine to the benchmarks page."""
    docs.parent.mkdir(parents=True, exist_ok=True)
    if not docs.exists():
        docs.write_text(
            "# Benchmarks\n\nEvery section below was written by the command it shows; no number is typed by hand.\n",
        )
    machine_line = ", ".join(f"{key} {value}" for key, value in machine.items())
    with docs.open("a") as file:
        file.write(
            f"\n## {title} ({machine.get('date', '')})\n\n```bash\n{command}\n```\n\nMachine: {machine_line}\n\n{body}"
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``anomalib-vlm benchmark speed``."""
    parser.add_argument("--backbone", default="ViT-B-16")
    parser.add_argument("--pretrained", default=None, help="open_clip tag or file; default random weights")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="models to time")
    parser.add_argument("--skip-export", action="store_true", help="no ONNX / OpenVINO variants")
    parser.add_argument("--skip-winclip", action="store_true", help="no WinClip reference")
    parser.add_argument("--output", type=Path, default=Path("results/benchmark/speed"))
    parser.add_argument(
        "--docs", type=Path, default=None, help=f"also append a dated section to this page ({DOCS_FILE})"
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
