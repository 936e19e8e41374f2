# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""``anomalib-vlm``: anomalib's CLI with this package's models available by short name, plus our commands.

Every anomalib subcommand and option works unchanged (``anomalib-vlm train --model AnomalyClip --data ...``),
because the models are imported, hence registered, before anomalib's CLI parses the arguments. Added commands:

* ``anomalib-vlm demo``: the end-to-end demo on synthetic data (see :mod:`anomalib_vlm.demo`);
* ``anomalib-vlm cross-dataset``: train on one dataset, test every category of another
  (see :mod:`anomalib_vlm.cross_dataset`);
* ``anomalib-vlm synthetic-data``: write the synthetic categories (see :mod:`anomalib_vlm.data.synthetic`);
* ``anomalib-vlm benchmark speed|accuracy``: speed, memory and accuracy tables (see :mod:`anomalib_vlm.benchmark`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from anomalib_vlm.errors import AnomalibVlmError

OWN_COMMANDS = {
    "demo": "anomalib_vlm.demo",
    "cross-dataset": "anomalib_vlm.cross_dataset",
    "synthetic-data": "anomalib_vlm.data.synthetic",
    "benchmark": "anomalib_vlm.benchmark",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to our own commands or to anomalib's CLI."""
    import importlib

    import anomalib_vlm  # noqa: F401 - registers the models with anomalib and jsonargparse

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in OWN_COMMANDS:
        try:
            return importlib.import_module(OWN_COMMANDS[args[0]]).main(args[1:])
        except (AnomalibVlmError, FileNotFoundError, ValueError) as error:
            print(f"anomalib-vlm {args[0]}: error: {error}", file=sys.stderr)
            return 2
    if args and args[0] in {"-h", "--help"}:
        print(__doc__)
    from anomalib.cli.cli import main as anomalib_main

    sys.argv = ["anomalib-vlm", *args]
    anomalib_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
