# Copyright (C) 2026 anomalib-vlm authors
# SPDX-License-Identifier: Apache-2.0

"""AnomalyClip's map smoothing is scipy's ``gaussian_filter(sigma=4)``, as in the official test.py, borders included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from anomalib_vlm.models.anomaly_clip.torch_model import AnomalyClipModel, GaussianSmoothing

TOLERANCE = 1e-6


@pytest.mark.parametrize("shape", [(64, 64), (37, 50), (12, 9)])  # the last is narrower than the kernel radius
@pytest.mark.parametrize("sigma", [4.0, 1.5])
def test_smoothing_equals_scipy_gaussian_filter_including_borders(shape: tuple[int, int], sigma: float) -> None:
    """Half-sample symmetric padding (scipy's ``reflect``): the border rows and columns match too."""
    maps = np.random.default_rng(0).random((2, 3, *shape)).astype(np.float32)
    smoothed = GaussianSmoothing(sigma)(torch.from_numpy(maps)).numpy()
    expected = np.stack([[gaussian_filter(channel, sigma=sigma) for channel in image] for image in maps])
    assert smoothed.shape == maps.shape
    np.testing.assert_allclose(smoothed, expected, atol=TOLERANCE, rtol=0)
    border = np.s_[..., : int(4 * sigma + 0.5), :]
    np.testing.assert_allclose(smoothed[border], expected[border], atol=TOLERANCE, rtol=0)


def test_anomaly_map_is_the_scipy_smoothed_raw_map() -> None:
    """In eval mode the model's map is ``gaussian_filter(raw_map, sigma=4)``, the official ``test.py`` post-step."""
    torch.manual_seed(0)
    model = AnomalyClipModel(backbone="anomalib-vlm-tiny", pretrained=None, image_size=64).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        smoothed = model(images).anomaly_map.numpy()
        blur, model.gaussian_blur = model.gaussian_blur, None
        raw = model(images).anomaly_map.numpy()
        model.gaussian_blur = blur
    expected = np.stack([gaussian_filter(image[0], sigma=4)[None] for image in raw])
    np.testing.assert_allclose(smoothed, expected, atol=TOLERANCE, rtol=0)


def test_smoothing_holds_no_state_and_rejects_a_bad_sigma() -> None:
    """The kernel is derived from sigma, so checkpoints stay prompts-only; sigma must be positive."""
    assert GaussianSmoothing(4.0).state_dict() == {}
    assert GaussianSmoothing(4.0).kernel.numel() == 33  # scipy's radius int(4 * sigma + 0.5) = 16
    with pytest.raises(ValueError, match="sigma must be > 0"):
        GaussianSmoothing(0.0)
