"""Per-subject (per-session) z-scores and P.913 subject-bias removal.

z-score (sureal ``zscore_mode``; van Dijk et al. 1995): each rating of subject s in session k is
replaced by ``(x − μ_sk) / σ_sk``, the mean and the sample standard deviation (ddof = 1) of all
ratings subject s gave in session k (repeats included). A subject-session with fewer than two
ratings, or with all ratings equal (σ = 0), has no z-score: that is an error naming it, never a
silent drop.

Bias removal (ITU-T P.913 subject-bias removal; sureal ``bias_offset``): the bias of subject s
is the mean of ``x_es − MOS_e`` over the ratings s gave, where ``MOS_e`` is the plain mean of
image e; it is subtracted from every rating of s.
"""

from __future__ import annotations

import numpy as np

from aigiqa.subjective.ratings import Encoded, RatingsError
from aigiqa.subjective.stats import group_count, group_mean, group_std

__all__ = ["remove_bias", "zscore"]


def zscore(enc: Encoded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z-scores per subject-session: (z (n_ratings,), mean (n_groups,), std (n_groups,))."""
    n_groups = len(enc.groups)
    n = group_count(enc.group, n_groups)
    mu = group_mean(enc.score, enc.group, n_groups)
    sigma = group_std(enc.score, enc.group, n_groups, ddof=1, mean=mu)
    bad = (n < 2) | ~(sigma > 0)
    if bad.any():
        rows = enc.groups[bad]
        problems = [
            f"subject {s!r}" + (f" session {k!r}" if k != "" else "")
            + f": {c} rating(s)" + ("" if c < 2 else ", all equal")
            for s, k, c in zip(rows["subject"], rows["session"], n[bad], strict=True)
        ]
        raise RatingsError(
            f"z-scores need >= 2 different ratings per subject"
            f"{' and session' if (enc.groups['session'] != '').any() else ''}; "
            f"{int(bad.sum())} do not have them: remove them from the ratings, or use "
            f"method 'mos' or 'bias_removed'", problems)
    return (enc.score - mu[enc.group]) / sigma[enc.group], mu, sigma


def remove_bias(values: np.ndarray, enc: Encoded) -> tuple[np.ndarray, np.ndarray]:
    """P.913 bias removal: (corrected values (n_ratings,), bias per subject (n_subjects,))."""
    mos = group_mean(values, enc.image, enc.n_images)
    bias = group_mean(values - mos[enc.image], enc.subject, enc.n_subjects)
    return values - bias[enc.subject], bias
