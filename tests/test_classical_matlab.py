"""MATLAB primitives behind the classical metrics, against MATLAB's documented definitions.

No MATLAB output for a reproducible image was found, so each primitive is checked against values
derived by hand from MATLAB's published algorithm: imresize's cubic kernel (a = -0.5) with
antialiasing (kernel stretched by 1/scale) and mirrored edges, fspecial's Gaussian, rgb2gray's
weights (documented as 0.2989, 0.5870, 0.1140) with rounding to uint8, imfilter's padding.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, signal

from aigiqa.metrics.classical import _matlab, _nss

# imresize(…, 0.5) bicubic, antialiased: 0.5·cubic(0.5·t) at t = ±0.5, ±1.5, ±2.5, ±3.5
# cubic(0.25) = 0.8671875, cubic(0.75) = 0.2265625, cubic(1.25) = -0.0703125,
# cubic(1.75) = -0.0234375 (Keys, a = -0.5); these already sum to 1.
HALF_TAPS = np.array([-0.0234375, -0.0703125, 0.2265625, 0.8671875])
HALF = np.concatenate([HALF_TAPS, HALF_TAPS[::-1]]) / 2


def test_imresize_half_interior_weights():
    m = _matlab.resize_matrix(16, 0.5).toarray()
    assert m.shape == (8, 16)
    # output 5 (1-based) is centred at u = 2·5 - 0.5 = 9.5: taps 6..13 (1-based)
    np.testing.assert_array_equal(m[4, 5:13], HALF)
    assert np.count_nonzero(m[4]) == 8


def test_imresize_half_first_row_mirrors_the_edge():
    m = _matlab.resize_matrix(8, 0.5).toarray()
    # u = 1.5: taps at 1-based -2..5, mirrored [1:n, n:-1:1] → -2→3, -1→2, 0→1
    expected = np.zeros(8)
    expected[0] = HALF[3] + HALF[2]  # index 1 and its mirror 0
    expected[1] = HALF[4] + HALF[1]
    expected[2] = HALF[5] + HALF[0]
    expected[3] = HALF[6]
    expected[4] = HALF[7]
    np.testing.assert_allclose(m[0], expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-15)


def test_imresize_output_size_is_ceil():
    assert _matlab.imresize(np.zeros((15, 9)), 0.5).shape == (8, 5)


def test_imresize_upscale_uses_plain_cubic():
    m = _matlab.resize_matrix(6, 2.0).toarray()
    assert m.shape == (12, 6)
    # output 2 (1-based): u = 2/2 + 0.25 = 1.25 → taps 0..3 at t = 1.25, 0.25, -0.75, -1.75;
    # tap 0 mirrors onto pixel 1
    np.testing.assert_allclose(m[1, :3], [0.8671875 - 0.0703125, 0.2265625, -0.0234375])


def test_imresize_keeps_constants_and_uint8_rounds_each_pass():
    flat = np.full((20, 30), 200.0)
    np.testing.assert_allclose(_matlab.imresize(flat, 0.5), 200.0, atol=1e-12)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (21, 17)).astype(np.uint8)
    out = _matlab.imresize_uint8(img, 0.5)
    assert out.dtype == np.uint8 and out.shape == (11, 9)
    rows = _matlab.resize_matrix(21, 0.5) @ img.astype(float)
    step = np.clip(_matlab.round_half_away(rows), 0, 255)
    cols = (_matlab.resize_matrix(17, 0.5) @ step.T).T
    np.testing.assert_array_equal(out, np.clip(_matlab.round_half_away(cols), 0, 255))


def test_rgb2gray_matches_matlab_weights_and_rounding():
    np.testing.assert_allclose(_matlab.RGB2GRAY, [0.2989, 0.5870, 0.1140], atol=5e-5)
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]])
    gray = _matlab.rgb2gray_uint8(pixels.astype(np.uint8))
    # 255·0.298936 = 76.23 → 76; 255·0.587043 = 149.70 → 150; 255·0.114021 = 29.08 → 29
    np.testing.assert_array_equal(gray, [[76, 150, 29, 255, 0]])
    # gray images pass through unchanged
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(_matlab.rgb2gray_uint8(np.dstack([g, g, g])), g)


def test_round_half_away_from_zero():
    np.testing.assert_array_equal(
        _matlab.round_half_away(np.array([0.5, 1.5, 2.5, -0.5, 2.4999])), [1, 2, 3, -1, 2]
    )


def test_fspecial_gaussian_and_its_separable_factor():
    h = _matlab.fspecial_gaussian(7, 7 / 6)
    assert h.shape == (7, 7)
    assert h.sum() == pytest.approx(1.0, abs=1e-15)
    # neighbours of the centre differ by exp(-1 / (2 sigma^2)) = exp(-18/49)
    assert h[3, 4] / h[3, 3] == pytest.approx(np.exp(-18 / 49), rel=1e-14)
    g = _matlab.gaussian_1d(7, 7 / 6)
    np.testing.assert_allclose(np.outer(g, g), h, rtol=1e-13)


@pytest.mark.parametrize(
    ("padding", "mode"), [("replicate", "nearest"), ("zeros", "constant")]
)
def test_gaussian_filter_equals_2d_filter_with_matlab_padding(padding, mode):
    img = np.random.default_rng(1).uniform(0, 255, (23, 31))
    h = _matlab.fspecial_gaussian()
    expected = ndimage.correlate(img, h, mode=mode, cval=0.0)
    np.testing.assert_allclose(_matlab.gaussian_filter(img, padding), expected, atol=1e-10)
    if padding == "zeros":  # filter2(h, img, 'same')
        same = signal.correlate2d(img, h, mode="same", boundary="fill")
        np.testing.assert_allclose(_matlab.gaussian_filter(img, padding), same, atol=1e-10)


def test_local_normalize_flat_area_is_exact_zero():
    img = np.full((20, 20), 237.0)
    img[:, 15:] = np.arange(5) * 10.0
    structdis, sigma = _matlab.local_normalize(img, "replicate")
    assert np.all(structdis[:, :8] == 0.0)
    assert np.abs(structdis[:, 12:]).max() > 0.1


def test_ggd_and_aggd_fits_recover_known_shapes():
    rng = np.random.default_rng(2)
    normal = rng.normal(0, 3, (1, 200_000))
    alpha, sigma = _nss.ggd_fit(normal)
    assert alpha[0] == pytest.approx(2.0, abs=0.05) and sigma[0] == pytest.approx(3, rel=0.01)
    alpha, _ = _nss.ggd_fit(rng.laplace(0, 1, (1, 200_000)))
    assert alpha[0] == pytest.approx(1.0, abs=0.05)
    # an AGGD with shape 2: half-normals of scale 3 (left) and 6 (right), in mass 3 : 6
    half = np.abs(rng.normal(0, 1, (1, 300_000)))
    skew = np.where(rng.random(half.shape) < 3 / 9, -3 * half, 6 * half)
    alpha, left, right = _nss.aggd_fit(skew)
    assert alpha[0] == pytest.approx(2.0, abs=0.05)
    assert left[0] == pytest.approx(3, rel=0.01) and right[0] == pytest.approx(6, rel=0.01)


def test_fits_of_all_zero_rows_follow_matlab_nan_rules():
    alpha, left, right = _nss.aggd_fit(np.zeros((2, 50)))
    np.testing.assert_array_equal(alpha, [0.2, 0.2])  # min over all-NaN → first grid point
    assert np.isnan(left).all() and np.isnan(right).all()


def test_nearest_grid_point_takes_the_first_on_ties():
    table = np.array([0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(
        _nss._nearest(table, np.array([0.5, 1.4, 2.6, 9.0, -1.0, np.nan])), [0, 1, 3, 3, 0, 0]
    )
    assert _nss.GAM[0] == 0.2 and _nss.GAM[-1] == 10.0 and len(_nss.GAM) == 9801
