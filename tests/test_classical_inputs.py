"""Classical metrics on every image kind load_image accepts: same pixels → same score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigiqa.images import load_image
from aigiqa.metrics.registry import create_metric


@pytest.fixture(autouse=True)
def _assets(live_assets):
    """Every test here reads the LIVE parameter files from ../shared/assets."""


def natural_gray(seed: int = 0, h: int = 112, w: int = 128) -> np.ndarray:
    """A 1/f-spectrum gray uint8 image (H, W)."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    shape = (h, w // 2 + 1)
    spec = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.maximum(f, 1e-4) ** 0.9
    img = np.fft.irfft2(spec, s=(h, w))
    return np.round((img - img.min()) / (img.max() - img.min()) * 255).astype(np.uint8)


METRICS = ["niqe", "brisque", "piqe"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """One gray picture written as L, RGB, RGBA, 16-bit and palette PNGs."""
    root = tmp_path_factory.mktemp("kinds")
    gray = natural_gray()
    out = {}
    out["gray"] = root / "gray.png"
    Image.fromarray(gray, "L").save(out["gray"])
    out["rgb"] = root / "rgb.png"
    Image.fromarray(np.dstack([gray] * 3), "RGB").save(out["rgb"])
    out["rgba"] = root / "rgba.png"
    alpha = np.full_like(gray, 255)
    Image.fromarray(np.dstack([gray] * 3 + [alpha]), "RGBA").save(out["rgba"])
    out["16bit"] = root / "16bit.png"
    Image.fromarray(gray.astype(np.uint16) * 257).save(out["16bit"])
    out["palette"] = root / "palette.png"
    pal = Image.fromarray(gray, "L").convert("P")  # 256 gray entries: lossless
    pal.save(out["palette"])
    return out


def test_all_kinds_decode_to_the_same_pixels(files):
    ref = load_image(files["rgb"])
    for kind, path in files.items():
        np.testing.assert_array_equal(load_image(path), ref, err_msg=kind)


@pytest.mark.parametrize("name", METRICS)
def test_same_pixels_same_score_for_every_kind(files, name):
    metric = create_metric(name)
    scores = metric.score([load_image(p) for p in files.values()])
    assert np.isfinite(scores).all()
    assert np.all(scores == scores[0]), dict(zip(files, scores, strict=True))


@pytest.mark.parametrize("name", METRICS)
def test_jpeg_and_png_of_the_same_pixels_score_the_same(tmp_path, name):
    rgb = np.dstack([natural_gray(1), natural_gray(2), natural_gray(3)])
    jpg = tmp_path / "x.jpg"
    Image.fromarray(rgb).save(jpg, quality=80)
    decoded = load_image(jpg)
    png = tmp_path / "x.png"
    Image.fromarray(decoded).save(png)
    metric = create_metric(name)
    a, b = metric.score([load_image(jpg), load_image(png)])
    assert np.isfinite(a) and a == b


@pytest.mark.parametrize("name", METRICS)
def test_color_matters_only_through_matlab_gray(name):
    rgb = np.dstack([natural_gray(4), natural_gray(5), natural_gray(6)])
    from aigiqa.metrics.classical import _matlab

    gray = _matlab.rgb2gray_uint8(rgb).astype(np.uint8)
    metric = create_metric(name)
    a, b = metric.score([rgb, np.dstack([gray] * 3)])
    assert a == pytest.approx(b, rel=1e-12)


@pytest.mark.parametrize("name", METRICS)
def test_score_does_not_depend_on_batch_position(name):
    a, b = np.dstack([natural_gray(7)] * 3), np.dstack([natural_gray(8)] * 3)
    metric = create_metric(name)
    batch = metric.score([a, b, a])
    assert batch[0] == batch[2] == metric.score([a])[0]
    assert batch[1] == metric.score([b])[0]


@pytest.mark.parametrize("name", METRICS)
def test_non_uint8_or_odd_shapes_are_metric_errors(name):
    from aigiqa.errors import MetricError

    metric = create_metric(name)
    with pytest.raises(MetricError, match=f"metric '{name}'.*outside \\[0, 1\\].*uint8"):
        metric.score([np.full((128, 128, 3), 2.0)])
    with pytest.raises(MetricError, match=f"metric '{name}'.*dtype int64.*uint8"):
        metric.score([np.zeros((128, 128, 3), np.int64)])
    with pytest.raises(MetricError, match="shape"):
        metric.score([np.zeros((128, 128, 2), np.uint8)])
