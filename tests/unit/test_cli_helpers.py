# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""What ``anomalib-vlm`` adds to anomalib's CLI, checked on parsed configurations."""

from __future__ import annotations

import os
import warnings

from jsonargparse import Namespace

from anomalib_vlm.cli import fit_workers_to_machine, quiet_third_party_warnings


def test_data_loader_workers_are_capped_at_the_machine_cores() -> None:
    cores = os.cpu_count() or 1
    many = Namespace(class_path="anomalib.data.MVTecAD", init_args=Namespace(num_workers=cores + 6))
    fit_workers_to_machine(many)
    assert many.init_args.num_workers == cores
    few = Namespace(class_path="anomalib.data.MVTecAD", init_args=Namespace(num_workers=0))
    fit_workers_to_machine(few)
    assert few.init_args.num_workers == 0  # a user's smaller choice stays


def test_third_party_future_warnings_are_hidden_ours_are_not() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party_warnings()
        warnings.warn_explicit("old layer path", FutureWarning, "layers.py", 1, module="timm.models.layers")
        warnings.warn_explicit("our option moves", FutureWarning, "cli.py", 1, module="anomalib_vlm.cli")
    assert [str(warning.message) for warning in caught] == ["our option moves"]
