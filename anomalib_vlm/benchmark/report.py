# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""The report of ``anomalib-vlm benchmark speed``: tables, the CPU's instruction sets, and targets judged on them.

No target is written in this module. A target comes from the user (``--target``) or from a docs page
(``--targets docs/benchmark-targets.md``), as a table row or an option value of four ``|``-separated fields::

    name | variants | conditions | needs

* ``variants``: a shell pattern on the variant names (``AnomalyClip OpenVINO*``); the target is met when one
  matching variant meets every condition;
* ``conditions``: comma-separated ``measure >= value`` or ``measure <= value``, measures being the fields of
  :class:`~anomalib_vlm.benchmark.timing.Timing` (``speedup_to_eager``, ``image_auroc_change`` in AUROC points,
  ``max_abs_difference``, ``ratio_to_floor``, ...);
* ``needs``: CPU flags from ``/proc/cpuinfo`` of which at least one must be present (``amx_bf16 or amx_tile``),
  or empty. On a CPU without them the target is reported as *not judged* with the missing flags named.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from anomalib_vlm.benchmark.timing import Timing

CPU_FEATURES = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "avx512_vnni",
    "avx_vnni",
)
"""Flags that decide which precision is fast: bfloat16 (AVX512-BF16, AMX), INT8 (VNNI, AMX-INT8)."""
COLUMNS = (
    ("ms / image", "ms_per_image", ".1f"),
    ("images / s", "images_per_second", ".2f"),
    ("x eager", "speedup_to_eager", ".2f"),
    ("images / s (async)", "throughput_images_per_second", ".2f"),
    ("peak MiB", "peak_memory_mb", ".0f"),
    ("x floor", "ratio_to_floor", ".2f"),
    ("x WinClip", "ratio_to_winclip", ".3f"),
    ("max abs diff", "max_abs_difference", ".1e"),
    ("image AUROC", "image_auroc", ".3f"),
    ("Δ image", "image_auroc_change", "+.2f"),
    ("pixel AUROC", "pixel_auroc", ".3f"),
    ("Δ pixel", "pixel_auroc_change", "+.2f"),
)
"""The report table's columns between the variant's name and its note: header, :class:`Timing` field, format."""
_CONDITION = re.compile(r"^\s*(\w+)\s*(>=|<=)\s*(-?[0-9.eE+-]+)\s*$")


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """The CPU's model name and which of :data:`CPU_FEATURES` it has (empty where ``cpuinfo`` is unreadable)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {"model": "unknown (no /proc/cpuinfo)", "flags": []}
    flags: set[str] = set()
    model = "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
        elif key.strip() == "model name" and model == "unknown":
            model = value.strip()
    return {"model": model, "flags": [name for name in CPU_FEATURES if name in flags]}


@dataclass
class Target:
    """One acceptance target, read from a docs page or an option (see the module docstring)."""

    name: str
    variants: str
    conditions: list[tuple[str, str, float]]
    needs: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, source: str = "--target") -> Target:
        """``name | variants | conditions | needs`` (``needs`` may be left out).

        Raises:
            ValueError: the text has not three or four fields, or a condition is not ``measure >= value``;
                the message names the source and the expected form.
        """
        fields = [cell.strip() for cell in text.strip().strip("|").split("|")]
        if len(fields) not in (3, 4):
            msg = (
                f"{source}: target {text!r} has {len(fields)} fields; expected "
                "'name | variants | measure >= value, ... | needs (CPU flags, may be empty)'"
            )
            raise ValueError(msg)
        conditions = []
        for condition in fields[2].split(","):
            match = _CONDITION.match(condition)
            if match is None or match.group(1) not in Timing.__dataclass_fields__:
                msg = (
                    f"{source}: condition {condition.strip()!r} of target {fields[0]!r} is not "
                    f"'measure >= value' or 'measure <= value' with a measure among "
                    f"{', '.join(sorted(Timing.__dataclass_fields__))}"
                )
                raise ValueError(msg)
            conditions.append((match.group(1), match.group(2), float(match.group(3))))
        needs = [flag.strip() for flag in fields[3].split(" or ") if flag.strip()] if len(fields) == 4 else []
        return cls(fields[0], fields[1], conditions, needs)


def read_targets(page: Path) -> list[Target]:
    """The targets in a markdown page: rows of the table whose header starts with ``| target | variants |``.

    Raises:
        FileNotFoundError: the page does not exist.
    """
    if not page.is_file():
        msg = f"--targets: page {page} not found (a markdown table '| target | variants | conditions | needs |')"
        raise FileNotFoundError(msg)
    targets, in_table = [], False
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells[:2] == ["target", "variants"]:
            in_table = True
        elif in_table and line.lstrip().startswith("|"):
            if not set(line.replace("|", "").strip()) <= {"-", ":", " "}:
                targets.append(Target.parse(line, f"{page}:{number}"))
        else:
            in_table = False
    return targets


def judge(target: Target, timings: list[Timing], flags: list[str]) -> dict[str, object]:
    """Whether a variant matching ``target`` meets all its conditions; not judged where the CPU lacks ``needs``."""
    row: dict[str, object] = {"target": target.name, "variants": target.variants}
    if target.needs and not set(target.needs) & set(flags):
        row.update(met=None, value=f"not judged: this CPU lacks {' / '.join(target.needs)}")
        return row
    best, best_failures = None, None
    for timing in timings:
        if not fnmatch.fnmatchcase(timing.name, target.variants):
            continue
        failures = []
        for measure, operator, bound in target.conditions:
            value = getattr(timing, measure)
            holds = (
                value is not None and not math.isnan(value) and (value >= bound if operator == ">=" else value <= bound)
            )
            if not holds:
                failures.append(f"{measure} {value}")
        if best_failures is None or len(failures) < len(best_failures):
            best, best_failures = timing, failures
    if best is None:
        row.update(met=None, value="not judged: no variant of that name was measured")
        return row
    shown = ", ".join(f"{measure} {getattr(best, measure)}" for measure, _, _ in target.conditions)
    row.update(met=not best_failures, value=f"{best.name}: {shown}")
    return row


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


def _cell(value: float | None, form: str) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, form)


def format_report(report: SpeedReport) -> str:
    """Markdown: settings, CPU features, the table, the targets."""
    settings = report.settings
    cpu = report.machine.get("cpu", {})
    lines = [
        f"{settings['backbone']} at {settings['image_size']} px, batch {settings['batch_size']}, {settings['device']}, "
        f"{settings['threads']} threads; weights: {settings['weights']}; median of {settings['repeats']} runs after "
        f"{settings['warmup']} warm-up runs; accuracy on {settings.get('test_data', 'no test split')}.",
        "",
        f"CPU: {cpu.get('model', 'unknown')}; instruction sets: {', '.join(cpu.get('flags', [])) or 'none listed'}.",
        "",
        "| " + " | ".join(["variant", *(header for header, _, _ in COLUMNS), "note"]) + " |",
        "|" + "---|" * (len(COLUMNS) + 2),
    ]
    for timing in report.timings:
        cells = [_cell(getattr(timing, name), form) for _, name, form in COLUMNS]
        lines.append("| " + " | ".join([timing.name, *cells, timing.note]) + " |")
    lines += [
        "",
        "x eager: eager float32 time over the variant's; Δ: change of AUROC in points (percent) against "
        "eager float32 on the same images.",
    ]
    if report.targets:
        lines += ["", "| target | value | met |", "|---|---|---|"]
        for row in report.targets:
            met = {True: "yes", False: "NO", None: "not judged"}[row["met"]]
            lines.append(f"| {row['target']} | {row['value']} | {met} |")
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
        title = f"Speed: {report.settings['backbone']} {report.settings['image_size']} px"
        append_docs_section(docs, title, command, report.machine, markdown)


def append_docs_section(docs: Path, title: str, command: str, machine: dict, body: str) -> None:
    """Add a dated section with the exact command and the machine to the benchmarks page."""
    docs.parent.mkdir(parents=True, exist_ok=True)
    if not docs.exists():
        docs.write_text(
            "# Benchmarks\n\nEvery section below was written by the command it shows; no number is typed by hand.\n",
        )
    machine_line = ", ".join(f"{key} {value}" for key, value in machine.items() if key != "cpu")
    with docs.open("a") as file:
        file.write(
            f"\n## {title} ({machine.get('date', '')})\n\n```bash\n{command}\n```\n\nMachine: {machine_line}\n\n{body}"
        )
