"""MATLAB image-processing primitives, reimplemented to give MATLAB's numbers.

Everything works on float64 2-D arrays (H, W) unless said otherwise; pixel values stay in the
units given (0-255 for the classical metrics).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage, sparse

from aigiqa.errors import MetricError

#: MATLAB's rgb2gray weights: the first row of inv of the NTSC (YIQ → RGB) matrix rgb2gray uses.
RGB2GRAY = np.linalg.inv(
    np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
)[0]


def round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB's round (halves away from zero), as used when casting to an integer class."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def rgb2gray_uint8(image: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` of a uint8 image: (H, W, 3) uint8 → (H, W) float64 of integers 0-255.

    A 2-D array is returned as it is (MATLAB leaves grayscale images untouched).
    """
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.dtype == np.uint8:  # same products, looked up: R·c0 + G·c1 + B·c2 in this order
        gray = _RGB_LUT[0][image[..., 0]] + _RGB_LUT[1][image[..., 1]]
        gray += _RGB_LUT[2][image[..., 2]]
    else:
        rgb = image[..., :3].astype(np.float64)
        gray = rgb[..., 0] * RGB2GRAY[0] + rgb[..., 1] * RGB2GRAY[1] + rgb[..., 2] * RGB2GRAY[2]
    return np.clip(np.floor(gray + 0.5), 0, 255)  # gray >= 0: MATLAB's round


_RGB_LUT = np.arange(256, dtype=np.float64)[None, :] * RGB2GRAY[:, None]


def gray_image(image: np.ndarray, metric: str) -> np.ndarray:
    """Check an input of the Metric contract (uint8, (H, W, 3|4) or (H, W)) and make it gray
    with MATLAB's rgb2gray: (H, W) float64 of integers 0-255. MetricError otherwise."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (
        image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))
    ):
        raise MetricError(
            f"metric {metric!r}: expected a uint8 image of shape (H, W, 3) (see "
            f"aigiqa.images.load_image), got {image.dtype} of shape {image.shape}"
        )
    return rgb2gray_uint8(image)


@lru_cache(maxsize=8)
def gaussian_1d(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """The 1-D factor of ``fspecial('gaussian', size, sigma)``: outer(g, g) is the 2-D kernel."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    g.setflags(write=False)
    return g / g.sum()


def fspecial_gaussian(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: (size, size), sums to 1."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    h = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0
    return h / h.sum()


def gaussian_filter(image: np.ndarray, padding: str, size: int = 7, sigma: float = 7 / 6):
    """``imfilter(image, fspecial('gaussian', size, sigma), padding)`` as two 1-D passes.

    ``padding`` is ``"replicate"`` (imfilter's option) or ``"zeros"`` (``filter2(…, 'same')``).
    """
    mode = {"replicate": "nearest", "zeros": "constant"}[padding]
    g = gaussian_1d(size, sigma)
    out = ndimage.correlate1d(image, g, axis=0, mode=mode, cval=0.0)
    return ndimage.correlate1d(out, g, axis=1, mode=mode, cval=0.0)


def local_normalize(image: np.ndarray, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """MSCN coefficients ``(I - mu) / (sigma + 1)`` and the local deviation ``sigma``.

    Where ``|I - mu|`` is below 1e-8 (a 7x7 neighbourhood of one gray level, where only the
    filter's rounding noise is left) it is set to exactly 0, the exact-arithmetic value. MATLAB
    leaves its own rounding noise there (~1e-14, sign set by its conv2/imfilter arithmetic), and
    NSS fits count the sign of every coefficient, so on images with exactly flat areas NIQE and
    BRISQUE differ from MATLAB by an amount no MATLAB-independent code can remove.
    """
    mu = gaussian_filter(image, padding)
    sigma = np.sqrt(np.abs(gaussian_filter(image * image, padding) - mu * mu))
    centred = image - mu
    centred[np.abs(centred) < 1e-8] = 0.0
    return centred / (sigma + 1.0), sigma


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=64)
def resize_matrix(in_len: int, scale: float, antialias: bool = True) -> sparse.csr_matrix:
    """MATLAB ``imresize`` bicubic weights along one dimension: (ceil(in_len·scale), in_len).

    Kernel a = -0.5; for scale < 1 with antialiasing the kernel is stretched by 1/scale; edges
    are mirrored (``[1:n, n:-1:1]``) as in MATLAB's ``contributions``.
    """
    out_len = int(np.ceil(in_len * scale))
    width = 4.0
    if scale < 1 and antialias:
        width = 4.0 / scale

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(np.ceil(width)) + 2
    index = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - index)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(index - 1, 2 * in_len).astype(np.int64)]
    rows = np.repeat(np.arange(out_len), taps)
    return sparse.csr_matrix(
        (weights.ravel(), (rows, cols.ravel())), shape=(out_len, in_len)
    )


def imresize(image: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """MATLAB ``imresize(image, scale)`` (bicubic) of a float64 (H, W) array, rows first."""
    rows = resize_matrix(image.shape[0], scale, antialias)
    cols = resize_matrix(image.shape[1], scale, antialias)
    out = rows @ image
    return np.asarray((cols @ out.T).T)


def imresize_uint8(image: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """MATLAB ``imresize`` of a uint8 image: rounded and saturated after each dimension."""
    rows = resize_matrix(image.shape[0], scale, antialias)
    cols = resize_matrix(image.shape[1], scale, antialias)
    out = np.clip(round_half_away(rows @ image.astype(np.float64)), 0, 255)
    out = np.clip(round_half_away(np.asarray((cols @ out.T).T)), 0, 255)
    return out.astype(np.uint8)
