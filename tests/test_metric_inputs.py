"""Metric.score takes what users have: paths, PIL images, numpy arrays, torch tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aigiqa.errors import MetricError
from aigiqa.metrics.registry import create_metric


def _rgb(seed: int = 0, h: int = 40, w: int = 56) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["entropy", "sharpness", "piqe"])
def test_every_input_form_gives_the_score_of_its_pixels(name, tmp_path):
    metric = create_metric(name)
    rgb = _rgb(1, 64, 72)
    expected = metric.score([rgb])[0]
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    forms = {
        "path str": str(path),
        "pathlib": path,
        "PIL": Image.fromarray(rgb),
        "float [0, 1]": rgb / 255.0,
        "float32 [0, 1]": (rgb / 255.0).astype(np.float32),
        "tensor CHW": torch.from_numpy(rgb).permute(2, 0, 1).float() / 255,
        "uint8 tensor": torch.from_numpy(rgb).permute(2, 0, 1).contiguous(),
        "RGBA": np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
    }
    for label, form in forms.items():
        assert metric.score([form])[0] == expected, label
        assert metric(form) == expected, label  # one image: a float
    assert isinstance(metric(rgb), float)
    batch = torch.stack([forms["tensor CHW"]] * 3)  # (B, C, H, W), as pyiqa users pass
    np.testing.assert_array_equal(metric(batch), [expected] * 3)
    np.testing.assert_array_equal(metric.score(np.stack([rgb, rgb])), [expected] * 2)


def test_gray_images_are_repeated_to_rgb():
    metric = create_metric("entropy")
    gray = _rgb(2)[:, :, 0]
    expected = metric.score([np.repeat(gray[:, :, None], 3, axis=2)])[0]
    assert metric(gray) == expected
    assert metric(torch.from_numpy(gray)[None].float() / 255) == expected


@pytest.mark.parametrize(("bad", "words"), [
    (np.full((8, 8, 3), 1.5), "outside [0, 1]"),
    (np.full((8, 8, 3), np.nan), "NaN or infinite"),
    (np.zeros((8, 8, 3), np.int64), "dtype int64"),
    (np.zeros((8, 8, 2), np.uint8), "shape (8, 8, 2)"),
    (torch.zeros(2, 8, 8), "(C, H, W) with C = 1 or 3"),
    ({"pixels": 1}, "is a dict"),
])
def test_bad_images_are_named_with_their_position(bad, words):
    with pytest.raises(MetricError) as info:
        create_metric("entropy").score([_rgb(), bad])
    assert "image 1" in str(info.value) and words in str(info.value)


def test_a_single_image_to_score_is_refused_with_the_short_form_named():
    with pytest.raises(MetricError, match=r"for one image use metric\(image\)"):
        create_metric("entropy").score(_rgb())


def test_missing_file_is_an_image_error_naming_it(tmp_path):
    from aigiqa.errors import ImageError

    with pytest.raises(ImageError, match="nope.png"):
        create_metric("entropy").score([tmp_path / "nope.png"])


def test_one_prompt_string_for_one_image():
    from aigiqa.metrics.base import Metric

    class Echo(Metric):
        name = "test-inputs-echo"
        needs_prompt = True

        def score_batch(self, images, prompts):
            return np.array([len(p) for p in prompts], dtype=float)

    metric = Echo()
    assert metric(_rgb(), "four") == 4.0
    np.testing.assert_array_equal(metric.score([_rgb(), _rgb()], ["a", "abc"]), [1, 3])
    with pytest.raises(MetricError, match="one prompt string for 2 images"):
        metric.score([_rgb(), _rgb()], "a")
    with pytest.raises(MetricError, match="2 images but 1 prompts"):
        metric.score([_rgb(), _rgb()], ["a"])
    with pytest.raises(MetricError, match=r"no prompt for image\(s\) \[1\]"):
        metric.score([_rgb(), _rgb()], ["a", "  "])
    with pytest.raises(MetricError, match="needs a prompt"):
        metric(_rgb())


def test_wrong_number_of_scores_from_a_metric_is_an_error():
    from aigiqa.metrics.base import Metric

    class Short(Metric):
        name = "test-inputs-short"

        def score_batch(self, images, prompts):
            return np.zeros(len(images) - 1)

    with pytest.raises(MetricError, match="returned 1 scores .* for 2 images"):
        Short().score([_rgb(), _rgb()])
