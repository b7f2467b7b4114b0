"""The shared preprocessing of the classic learned metrics matches torchvision's transforms."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from PIL import Image  # noqa: E402

from aigiqa.errors import MetricError  # noqa: E402
from aigiqa.metrics.learned._blocks import (  # noqa: E402
    check_min_size,
    five_crop,
    random_crops,
    resize_exact,
    resize_shorter_tv,
    stack_normalised,
)

T = torchvision.transforms


#: torchvision's Resize as the official code called it (its defaults then: bilinear, and PIL
#: images are always antialiased), spelled out so that a change of torchvision's defaults cannot
#: move the reference.
TV_RESIZE = dict(interpolation=T.InterpolationMode.BILINEAR, antialias=True)


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(300, 451), (451, 300), (384, 384), (97, 1000)])
def test_resize_shorter_matches_torchvision_resize(shape: tuple[int, int]) -> None:
    im = image(*shape)
    ours = resize_shorter_tv(im, 256)
    theirs = np.asarray(T.Resize(256, **TV_RESIZE)(Image.fromarray(im)))
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def test_resize_exact_matches_torchvision_resize_pair() -> None:
    im = image(200, 330)
    theirs = np.asarray(T.Resize((512, 384), **TV_RESIZE)(Image.fromarray(im)))
    assert np.array_equal(resize_exact(im, 512, 384), theirs)


@pytest.mark.parametrize("shape", [(100, 131), (101, 100), (64, 64)])
def test_five_crop_matches_torchvision(shape: tuple[int, int]) -> None:
    im = image(*shape)
    theirs = [np.asarray(c) for c in T.FiveCrop(64)(Image.fromarray(im))]
    ours = five_crop(im, 64)
    assert len(ours) == 5
    for a, b in zip(ours, theirs, strict=True):
        assert np.array_equal(a, b)


def test_random_crops_are_seeded_and_inside_the_image() -> None:
    im = image(90, 120)
    a, b = random_crops(im, 32, 6, seed=3), random_crops(im, 32, 6, seed=3)
    c = random_crops(im, 32, 6, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert all(x.shape == (32, 32, 3) for x in a)


def test_stack_normalised_matches_to_tensor_and_normalize() -> None:
    crops = [image(16, 20, s) for s in range(3)]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ours = stack_normalised(crops, mean, std)
    theirs = torch.stack([T.Normalize(mean, std)(T.ToTensor()(Image.fromarray(c))) for c in crops])
    assert ours.shape == (3, 3, 16, 20)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_too_small_image_is_a_metric_error_naming_the_size() -> None:
    with pytest.raises(MetricError, match="30x20"):
        check_min_size("x", image(20, 30), 32)
