"""Per-image statistics of ratings (MOS, std, standard error, CI95, SOS) and split-half SRCC.

All functions take flat per-rating arrays (``values``, integer ``codes``) and use ``np.bincount``,
so incomplete designs (not every subject rates every image) need no special case.

Conventions (those of ITU-R BT.500 and sureal's ``MosModel``):

- ``std`` is the sample standard deviation (ddof = 1) of an image's ratings; NaN when n < 2;
- ``se = std / sqrt(n)``; ``ci95 = 1.95996 * se`` (normal quantile, BT.500's δ = 1.96 S/√N);
- SOS (Hoßfeld et al., QoMEX 2011) is the ``std`` of the *raw* opinion scores on the rating
  scale; the SOS parameter ``a`` is the least-squares fit of
  ``SOS² = a · (MOS − lo)(hi − MOS)`` over images with n ≥ 2.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

Z95 = 1.95996  # two-sided 95 % normal quantile, as in sureal

__all__ = ["Z95", "group_count", "group_mean", "group_std", "sos_parameter", "split_half_srcc"]


def group_count(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Number of ratings per group, int64 (n_groups,)."""
    return np.bincount(codes, minlength=n_groups)


def group_mean(values: np.ndarray, codes: np.ndarray, n_groups: int,
               weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) mean per group, float64 (n_groups,); NaN for a group without ratings."""
    w = np.ones_like(values) if weights is None else weights
    num = np.bincount(codes, weights=values * w, minlength=n_groups)
    den = np.bincount(codes, weights=w, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def group_std(values: np.ndarray, codes: np.ndarray, n_groups: int, ddof: int = 1,
              mean: np.ndarray | None = None) -> np.ndarray:
    """Standard deviation per group (two-pass, numerically stable); NaN where n <= ddof."""
    mu = group_mean(values, codes, n_groups) if mean is None else mean
    dev2 = np.bincount(codes, weights=(values - mu[codes]) ** 2, minlength=n_groups)
    n = group_count(codes, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = dev2 / (n - ddof)
    var[n <= ddof] = np.nan
    return np.sqrt(var)


def sos_parameter(mos_raw: np.ndarray, sos: np.ndarray, scale: tuple[float, float]) -> float:
    """SOS-hypothesis parameter ``a`` (least squares, no intercept) on the raw rating scale."""
    lo, hi = scale
    f = (mos_raw - lo) * (hi - mos_raw)
    ok = np.isfinite(sos) & np.isfinite(f)
    den = float(np.sum(f[ok] ** 2))
    return float(np.sum(sos[ok] ** 2 * f[ok]) / den) if den > 0 else float("nan")


def split_half_srcc(values: np.ndarray, image: np.ndarray, subject: np.ndarray, n_images: int,
                    subjects: np.ndarray, n_splits: int = 20, seed: int = 0,
                    subject_weights: np.ndarray | None = None) -> dict[str, float]:
    """Inter-subject consistency: SRCC between the MOS of two random halves of the subjects.

    ``subjects`` are the codes of the subjects taking part (e.g. those kept by screening). Each
    split permutes them (seeded), the first ⌊S/2⌋ form half A, the rest half B; the MOS of each
    half is the mean of ``values`` over its ratings (weighted by ``subject_weights[subject]`` if
    given, e.g. the MLE's 1/υ²). Images rated in only one half are left
    out of that split (``min_images`` reports the fewest images used). Returns mean and std of the
    SRCC over splits and the Spearman–Brown prediction for the full panel, ``2r / (1 + r)``.
    """
    subjects = np.asarray(subjects)
    if n_splits <= 0 or len(subjects) < 2:
        return {"srcc": float("nan"), "srcc_std": float("nan"),
                "spearman_brown": float("nan"), "n_splits": 0, "min_images": 0}
    rng = np.random.default_rng(seed)
    n_codes = int(max(subject.max(initial=0), subjects.max()) + 1)
    in_a = np.zeros(n_codes, dtype=bool)
    valid = np.zeros(n_codes, dtype=bool)
    valid[subjects] = True
    taking = valid[subject]
    values, image, subject = values[taking], image[taking], subject[taking]
    weight = None if subject_weights is None else np.asarray(subject_weights)[subject]
    rs, used = [], []
    for _ in range(n_splits):
        perm = rng.permutation(subjects)
        in_a[:] = False
        in_a[perm[: len(perm) // 2]] = True
        a = in_a[subject]
        w_a = None if weight is None else weight[a]
        w_b = None if weight is None else weight[~a]
        mos_a = group_mean(values[a], image[a], n_images, weights=w_a)
        mos_b = group_mean(values[~a], image[~a], n_images, weights=w_b)
        ok = np.isfinite(mos_a) & np.isfinite(mos_b)
        used.append(int(ok.sum()))
        if ok.sum() < 3:
            continue
        ranks_a = stats.rankdata(mos_a[ok], method="average")
        ranks_b = stats.rankdata(mos_b[ok], method="average")
        rs.append(float(np.corrcoef(ranks_a, ranks_b)[0, 1]))  # Spearman's rho, average ties
    if not rs:
        return {"srcc": float("nan"), "srcc_std": float("nan"),
                "spearman_brown": float("nan"), "n_splits": 0, "min_images": min(used)}
    r = float(np.mean(rs))
    return {"srcc": r, "srcc_std": float(np.std(rs)), "spearman_brown": 2 * r / (1 + r),
            "n_splits": len(rs), "min_images": min(used)}
