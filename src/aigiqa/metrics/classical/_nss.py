"""Natural-scene-statistics fits of the LIVE releases (GGD and AGGD by moment matching).

Each fit works on a batch of sample vectors, shape (n, m), and returns one value per row. The
shape parameter is searched on MATLAB's grid ``0.2:0.001:10`` and the first best grid point wins,
as ``min`` does in MATLAB; rows whose moment ratio is NaN (e.g. all zeros) get 0.2, MATLAB's
answer for an all-NaN ``min``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import gamma

#: MATLAB's ``0.2:0.001:10``.
GAM = np.arange(200, 10001, dtype=np.float64) / 1000.0


@lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    ggd = gamma(1 / GAM) * gamma(3 / GAM) / gamma(2 / GAM) ** 2  # decreasing in GAM
    aggd = gamma(2 / GAM) ** 2 / (gamma(1 / GAM) * gamma(3 / GAM))  # increasing in GAM
    assert np.all(np.diff(aggd) > 0) and np.all(np.diff(ggd) < 0)
    return ggd, aggd


def _nearest(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of the first entry of an increasing ``table`` closest to each value (NaN → 0)."""
    idx = np.searchsorted(table, values)
    hi = np.clip(idx, 0, len(table) - 1)
    lo = np.clip(idx - 1, 0, len(table) - 1)
    take_lo = np.abs(values - table[lo]) <= np.abs(table[hi] - values)
    best = np.where(take_lo, lo, hi)
    return np.where(np.isnan(values), 0, best)


def ggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LIVE ``estimateggdparam``: shape alpha and sigma (RMS) of each row of x (n, m)."""
    ggd, _ = _tables()
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_sq = np.mean(x * x, axis=1)
        e = np.mean(np.abs(x), axis=1)
        rho = sigma_sq / e**2
    alpha = GAM[_nearest(-ggd, -rho)]
    return alpha, np.sqrt(sigma_sq)


def aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LIVE ``estimateaggdparam``: shape alpha, left and right RMS of each row of x (n, m).

    A side with no samples has RMS NaN (MATLAB's mean of an empty vector).
    """
    _, aggd = _tables()
    sq = x * x
    neg = x < 0
    total = sq.sum(axis=1)
    left_sum = (sq * neg).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.sqrt(left_sum / np.count_nonzero(neg, axis=1))
        right = np.sqrt((total - left_sum) / np.count_nonzero(x > 0, axis=1))
        g = left / right
        rhat = np.mean(np.abs(x), axis=1) ** 2 / (total / x.shape[1])
        rhatnorm = rhat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = GAM[_nearest(aggd, rhatnorm)]
    return alpha, left, right


def gamma_fn(x: np.ndarray) -> np.ndarray:
    """The Gamma function (scipy), re-exported so callers need not import scipy.special."""
    return gamma(x)
