"""ITU-R BT.500 observer screening (the β2 kurtosis test for single-stimulus ratings).

For each image e, over the ratings it received: mean μ_e, standard deviation σ_e (ddof = 0,
as sureal) and kurtosis β2_e = m4 / m2² (central moments over n). The image's distribution is
taken as normal when 2 ≤ β2_e ≤ 4; then a rating is *high* when ``x ≥ μ_e + 2σ_e`` and *low*
when ``x ≤ μ_e − 2σ_e``; otherwise the band is ``±√20·σ_e``. For subject s, P_s counts the high
and Q_s the low ratings and N_s all ratings s gave (repeats count). Subject s is rejected when

    (P_s + Q_s) / N_s > 0.05   and   |P_s − Q_s| / (P_s + Q_s) < 0.3.

If every subject would be rejected, none is (sureal's rule; reported as ``all_rejected``).

Where this differs from sureal (``subject_rejection=True``), on purpose:

- the first ratio divides by the ratings subject s actually gave (N_s), not by
  images × maximum repetitions: the same for a complete design, but correct for incomplete ones;
- an image whose ratings are all equal (σ_e = 0) yields no high/low ratings (sureal's NaN
  kurtosis makes every such rating both high and low).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from aigiqa.subjective.stats import group_count, group_mean

__all__ = ["Screening", "bt500_screen"]

SQRT20 = float(np.sqrt(20.0))


@dataclass(frozen=True)
class Screening:
    """Per-subject screening statistics (one row per subject code) and the rejected mask."""

    table: pd.DataFrame  # columns: n, p, q, ratio_outside, asymmetry, rejected
    rejected: np.ndarray  # bool (n_subjects,)
    all_rejected: bool


def bt500_screen(values: np.ndarray, image: np.ndarray, subject: np.ndarray, n_images: int,
                 n_subjects: int) -> Screening:
    """Screen subjects with the BT.500 β2 test on per-rating ``values`` (raw or z-scores)."""
    mu = group_mean(values, image, n_images)
    dev = values - mu[image]
    n_img = group_count(image, n_images).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        m2 = np.bincount(image, weights=dev**2, minlength=n_images) / n_img
        m4 = np.bincount(image, weights=dev**4, minlength=n_images) / n_img
        beta2 = m4 / m2**2
    sigma = np.sqrt(m2)
    normal = (beta2 >= 2) & (beta2 <= 4)
    k = np.where(normal, 2.0, SQRT20)
    spread = (sigma > 0)[image]
    high = spread & (values >= mu[image] + (k * sigma)[image])
    low = spread & (values <= mu[image] - (k * sigma)[image])
    p = np.bincount(subject, weights=high, minlength=n_subjects)
    q = np.bincount(subject, weights=low, minlength=n_subjects)
    n = group_count(subject, n_subjects)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (p + q) / n
        asym = np.abs(p - q) / (p + q)
    rejected = (ratio > 0.05) & (asym < 0.3)
    all_rejected = bool(rejected.all())
    if all_rejected:
        rejected = np.zeros_like(rejected)
    table = pd.DataFrame({"n": n, "p": p.astype(np.int64), "q": q.astype(np.int64),
                          "ratio_outside": ratio, "asymmetry": asym, "rejected": rejected})
    return Screening(table=table, rejected=rejected, all_rejected=all_rejected)
