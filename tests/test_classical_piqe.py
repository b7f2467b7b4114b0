"""PIQE (as MATLAB's piqe): block criteria, score formula, masks, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

import synthetic
from aigiqa.errors import MetricError
from aigiqa.metrics.classical import piqe as piqe_mod
from aigiqa.metrics.registry import create_metric


def natural(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    return synthetic.natural(seed, h, w)


def test_registered():
    m = create_metric("piqe")
    assert isinstance(m, piqe_mod.Piqe) and m.lower_better and m.score_range == (0.0, 100.0)


def test_flat_image_scores_100_with_no_active_block():
    result = piqe_mod.piqe(np.full((48, 64, 3), 77, np.uint8))
    assert result.score == 100.0 and not result.activity.any()
    assert piqe_mod.piqe(np.zeros((32, 32, 3), np.uint8)).score == 100.0


def test_masks_have_the_input_size_and_nest_in_activity():
    img = natural(0, 100, 70)  # not multiples of 16: padded, masks cropped back
    result = create_metric("piqe").masks(img)
    for mask in (result.activity, result.artifacts, result.noise):
        assert mask.shape == (100, 70) and mask.dtype == bool
    assert not (result.artifacts & ~result.activity).any()
    assert not (result.noise & ~result.activity).any()
    assert 0.0 <= result.score <= 100.0


def test_score_formula_from_block_counts():
    img = natural(1, 64, 64)
    result = piqe_mod.piqe(img)
    # recompute from the definition: blocks of the normalised image, var > 0.1 active
    from aigiqa.metrics.classical import _matlab

    gray = _matlab.rgb2gray_uint8(img)
    norm, _ = _matlab.local_normalize(gray, "replicate")
    blocks = norm.reshape(4, 16, 4, 16).transpose(0, 2, 1, 3).reshape(16, 16, 16)
    var = blocks.reshape(16, -1).var(axis=1, ddof=1)
    act = var > 0.1
    art = result.artifacts[::16, ::16].ravel()
    noi = result.noise[::16, ::16].ravel()
    np.testing.assert_array_equal(result.activity[::16, ::16].ravel(), act)
    total = (np.where(art, 1 - var, 0) + np.where(noi, var, 0)).sum()
    assert result.score == pytest.approx(100 * (total + 1) / (act.sum() + 1), rel=1e-12)


def test_noise_and_blockiness_are_flagged():
    rng = np.random.default_rng(2)
    smooth = np.clip(natural(2, 64, 64).astype(float) * 0.3 + 90, 0, 255)
    noisy = np.clip(smooth + rng.normal(0, 30, smooth.shape), 0, 255).round().astype(np.uint8)
    assert piqe_mod.piqe(noisy).noise.any()
    # 8x8 flat tiles with random levels: flat 6-pixel edge segments in active blocks
    tiles = rng.integers(0, 256, (8, 8)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
    blocky = piqe_mod.piqe(np.dstack([tiles] * 3))
    assert blocky.artifacts.any()
    assert blocky.score > piqe_mod.piqe(natural(3, 64, 64)).score


def test_padding_replicates_the_last_row_and_column():
    img = natural(4, 40, 40)
    padded = np.pad(img, ((0, 8), (0, 8), (0, 0)), mode="edge")
    assert piqe_mod.piqe(img).score == pytest.approx(piqe_mod.piqe(padded).score, rel=1e-12)


def test_too_small_image_names_minimum_size():
    with pytest.raises(MetricError, match="16x16"):
        create_metric("piqe").score([natural(5, 15, 40)])
