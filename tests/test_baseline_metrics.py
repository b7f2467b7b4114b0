"""Baseline metrics: known values on constructed images, monotonicity, batching, options."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from aigiqa.errors import MetricError
from aigiqa.metrics.baseline import luma, luma_uint8
from aigiqa.metrics.registry import create_metric, list_metrics, metric_from_spec

BASELINES = ("sharpness", "colourfulness", "entropy", "contrast")


def constant(value, h=16, w=16) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def texture(seed: int = 0, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def halves(low: int, high: int) -> np.ndarray:
    image = constant(low, 8, 8)
    image[:, 4:] = high
    return image


def test_registered_with_metadata():
    names = list_metrics()
    for name in BASELINES:
        assert name in names
        metric = create_metric(name)
        assert metric.name == name
        assert metric.kind == "baseline"
        assert metric.needs_prompt is False
        assert metric.lower_better is False
        assert metric.citation and metric.description
        assert metric.score_range is not None and metric.score_range[0] == 0.0


def test_luma_is_matlab_rgb2gray():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [77, 77, 77]]], dtype=np.uint8)
    # MATLAB rgb2gray(uint8): pure red 76, green 150, blue 29; gray keeps its value
    assert luma_uint8(pixels).tolist() == [[76, 150, 29, 77]]
    assert luma(pixels)[0, 3] == pytest.approx(77.0, abs=1e-9)


@pytest.mark.parametrize("value", [0, 128, 255])
def test_constant_image_is_zero(value):
    image = constant(value)
    for name in BASELINES:
        assert create_metric(name).score([image])[0] == pytest.approx(0.0, abs=1e-9), name
    assert create_metric("sharpness", neighbours=8).score([image])[0] == pytest.approx(0.0)


def test_entropy_of_two_equal_halves_is_one_bit():
    assert create_metric("entropy").score([halves(10, 200)])[0] == pytest.approx(1.0)
    # two levels in the same bin of a 2-bin histogram: zero bits
    assert create_metric("entropy", bins=2).score([halves(10, 100)])[0] == pytest.approx(0.0)
    assert create_metric("entropy", bins=2).score([halves(10, 200)])[0] == pytest.approx(1.0)


def test_entropy_of_all_levels_is_eight_bits():
    image = np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(16, 16, 3)
    assert create_metric("entropy").score([image])[0] == pytest.approx(8.0)


def test_contrast_of_black_white_halves_is_half():
    assert create_metric("contrast").score([halves(0, 255)])[0] == pytest.approx(0.5)


def test_colourfulness_of_gray_image_is_zero():
    gray = np.repeat(texture()[:, :, :1], 3, axis=2)
    assert create_metric("colourfulness").score([gray])[0] == pytest.approx(0.0, abs=1e-9)


def test_colourfulness_by_hand():
    image = np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)  # red, blue
    # rg = R - G = [255, 0]; yb = (R + G)/2 - B = [127.5, -255]
    sigma_rg, sigma_yb = 127.5, 191.25  # population std: half the spread of two values
    mu_rg, mu_yb = 127.5, -63.75
    expected = math.sqrt(sigma_rg**2 + sigma_yb**2) + 0.3 * math.sqrt(mu_rg**2 + mu_yb**2)
    assert create_metric("colourfulness").score([image])[0] == pytest.approx(expected)


def test_sharpness_matches_scipy_laplacian():
    image = texture(1)
    y = luma(image)
    lap4 = ndimage.laplace(y)[1:-1, 1:-1]
    assert create_metric("sharpness").score([image])[0] == pytest.approx(lap4.var())
    kernel8 = np.ones((3, 3))
    kernel8[1, 1] = -8
    lap8 = ndimage.convolve(y, kernel8)[1:-1, 1:-1]
    assert create_metric("sharpness", neighbours=8).score([image])[0] == pytest.approx(lap8.var())


def test_blurring_lowers_sharpness():
    image = texture(2).astype(float)
    metric = create_metric("sharpness")
    scores = []
    for sigma in (0.0, 0.5, 1.0, 2.0):
        blurred = ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0)) if sigma else image
        scores.append(metric.score([np.clip(np.round(blurred), 0, 255).astype(np.uint8)])[0])
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), scores


def test_saturating_raises_colourfulness():
    image = texture(3).astype(float)
    gray = image.mean(axis=2, keepdims=True)
    metric = create_metric("colourfulness")
    scores = [
        metric.score([np.clip(gray + k * (image - gray), 0, 255).astype(np.uint8)])[0]
        for k in (0.25, 0.5, 1.0)
    ]
    assert scores[0] < scores[1] < scores[2]


@pytest.mark.parametrize("name", BASELINES)
def test_batch_equals_one_at_a_time(name):
    images = [texture(4), texture(5, size=32), halves(0, 255), constant(9)]
    metric = create_metric(name)
    batch = metric.score(images)
    assert batch.dtype == np.float64 and batch.shape == (4,)
    single = [metric.score([im])[0] for im in images]
    np.testing.assert_allclose(batch, single, rtol=0, atol=0)
    assert metric.score([]).shape == (0,)
    assert np.allclose(metric.score(images, prompts=["a", "b", "c", "d"]), batch)


def test_option_validation():
    with pytest.raises(MetricError, match="neighbours"):
        create_metric("sharpness", neighbours=5)
    with pytest.raises(MetricError, match="bins"):
        create_metric("entropy", bins=1)
    with pytest.raises(MetricError, match="bins"):
        create_metric("entropy", bins=257)
    with pytest.raises(MetricError, match="bins"):
        create_metric("entropy", bins="many")
    with pytest.raises(MetricError, match="unknown option"):
        create_metric("colourfulness", gamma=2)
    metric = metric_from_spec("sharpness:neighbours=8")
    assert metric.options["neighbours"] == 8
    assert metric.spec == "sharpness:neighbours=8"
    assert create_metric("sharpness").key != metric.key


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((8, 8, 2), dtype=np.uint8),
        np.full((8, 8, 3), 1.5, dtype=np.float32),
        np.zeros((8, 8, 3), dtype=np.int32),
        [[1, 2, 3]],
    ],
)
def test_bad_images_are_named(bad):
    for name in BASELINES:
        with pytest.raises(MetricError, match="image 1"):
            create_metric(name).score([constant(0), bad])


def test_sharpness_needs_three_pixels():
    with pytest.raises(MetricError, match="at least 3x3"):
        create_metric("sharpness").score([constant(0, 2, 8)])
