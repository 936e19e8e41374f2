#!/usr/bin/env python3
# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""Set up a virtual environment and run the demo or the tests: the README's two commands.

Usage:
    python3 tools/dev.py demo [demo options]    # create .venv if needed, install, run the demo
    python3 tools/dev.py test [pytest options]  # create .venv if needed, install, run the test suite

Needs nothing but Python 3.11 and pip. The environment lives in ``.venv`` (override with ``ANOMALIB_VLM_VENV``)
and is reinstalled only when ``pyproject.toml`` changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("ANOMALIB_VLM_VENV", ROOT / ".venv"))
# Installed first and on their own so pip takes these exact builds (they lie on local disk on our machines).
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(*args: str | Path) -> None:
    print("+", " ".join(str(arg) for arg in args), flush=True)
    subprocess.run([str(arg) for arg in args], check=True, cwd=ROOT)


def ensure_environment() -> Path:
    """Create and fill the virtual environment unless it is up to date with pyproject.toml."""
    stamp = VENV / ".anomalib-vlm-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + " ".join(TORCH_PINS).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == wanted and _python().is_file():
        return _python()
    if not _python().is_file():
        print(f"creating virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    python = _python()
    _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(python, "-m", "pip", "install", "--quiet", *TORCH_PINS)
    _run(python, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    stamp.write_text(wanted)
    return python


def parallel_options(options: list[str]) -> list[str]:
    """pytest-xdist options: one worker per core (at most 4), unless ``options`` choose workers themselves.

    The suite is mostly single-threaded (small models, subprocesses, data generation), so on two cores two workers
    halve its time. ``--dist loadgroup`` keeps each test file on one worker (its module fixtures are built once);
    ``tests/conftest.py`` gives every test its file's group unless the test names another.
    """
    if any(option == "-n" or option.startswith(("-n", "--numprocesses", "--dist")) for option in options):
        return []
    if "no:xdist" in options:
        return []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(cores, 4))
    return ["-n", str(workers), "--dist", "loadgroup"] if workers > 1 else []


def main(argv: list[str]) -> int:
    """Entry point."""
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_environment()
    if command == "setup":
        return 0
    if command == "demo":
        args = [python, "-m", "anomalib_vlm.cli", "demo", *rest]
    else:
        args = [python, "-m", "pytest", *parallel_options(rest), *(rest or ["tests"])]
    print("+", " ".join(str(arg) for arg in args), flush=True)
    return subprocess.run([str(arg) for arg in args], cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
