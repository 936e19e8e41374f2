# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""An anomalib datamodule that feeds fake outliers next to the real ID training images.

:class:`FakeOutlierDataModule` is :class:`~anomalib_vlm.data.OODDataModule` (ID class folders, ID test and
OOD test folders) whose training split also holds the fakes that ``anomalib-vlm fake-outliers`` wrote: every image
under ``<fakes_root>/<kind>/<class>/`` for the chosen kinds (``outliers``, ``background``), with ``gt_label = 1``
and ``gt_class = K`` (one extra "outlier" class after the K ID classes), as FodFoM's ``MergedDataset`` relabels
both fake folders to one class. Validation and test splits are the real ones.

.. code-block:: yaml

    data:
      class_path: anomalib_vlm.fodfom.FakeOutlierDataModule
      init_args:
        root: ./datasets/imagenet100
        fakes_root: ./fakes/imagenet100
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from anomalib_vlm.data import OODDataModule
from anomalib_vlm.data.utils import class_folders, list_images

FAKE_KINDS: tuple[str, ...] = ("outliers", "background")


def fake_rows(fakes_root: Path, kinds: Sequence[str], outlier_class: int) -> list[dict[str, Any]]:
    """Samples-table rows of every fake image of the chosen kinds (``class_index = outlier_class``)."""
    rows = []
    for kind in kinds:
        folder = fakes_root / kind
        if not folder.is_dir():
            msg = f"Fake-outlier folder {folder} does not exist (kinds {list(kinds)}; run anomalib-vlm fake-outliers)"
            raise FileNotFoundError(msg)
        for class_name in class_folders(folder):
            rows += [
                {
                    "image_path": str(path),
                    "label_index": 1,
                    "class_index": outlier_class,
                    "kind": f"fake_{kind}",
                    "split": "train",
                    "mask_path": "",
                }
                for path in list_images(folder / class_name)
            ]
    if not rows:
        msg = f"No fake images under {fakes_root} for kinds {list(kinds)}"
        raise FileNotFoundError(msg)
    return rows


class FakeOutlierDataModule(OODDataModule):
    """:class:`~anomalib_vlm.data.OODDataModule` plus fake outliers as class ``K`` in the training split.

    Args:
        root (str | Path): the real OOD dataset root (``train/<class>``, ``test/<class>``, ``ood/<kind>``).
        fakes_root (str | Path): the output of ``anomalib-vlm fake-outliers``.
        fake_kinds (Sequence[str] | None): which fakes to feed (``outliers``, ``background``); each one chosen must
            exist. Defaults to ``None``: every kind that ``fakes_root`` holds (at least one).
        **kwargs: everything :class:`~anomalib_vlm.data.OODDataModule` takes.
    """

    def __init__(
        self,
        root: str | Path,
        fakes_root: str | Path,
        fake_kinds: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, **kwargs)
        if fake_kinds is not None:
            unknown = sorted(set(fake_kinds) - set(FAKE_KINDS))
            if unknown or not fake_kinds:
                msg = f"fake_kinds must be a non-empty subset of {list(FAKE_KINDS)}, got {list(fake_kinds)}"
                raise ValueError(msg)
        self.fakes_root = Path(fakes_root)
        self.fake_kinds = None if fake_kinds is None else list(fake_kinds)

    def _kinds(self) -> list[str]:
        """The chosen kinds, or every kind present under ``fakes_root``."""
        if self.fake_kinds is not None:
            return self.fake_kinds
        present = [kind for kind in FAKE_KINDS if (self.fakes_root / kind).is_dir()]
        if not present:
            msg = (
                f"No fake outliers under {self.fakes_root}: expected a folder {' or '.join(FAKE_KINDS)} there "
                "(the output of anomalib-vlm fake-outliers)."
            )
            raise FileNotFoundError(msg)
        return present

    @property
    def outlier_class(self) -> int:
        """``K``: the class index of the fakes."""
        return len(self.class_folders)

    def _setup(self, _stage: str | None = None) -> None:
        super()._setup(_stage)
        fakes = pd.DataFrame(fake_rows(self.fakes_root, self._kinds(), self.outlier_class))
        samples = pd.concat([self.train_data.samples, fakes], ignore_index=True)
        samples.attrs["task"] = "classification"
        self.train_data.samples = samples
