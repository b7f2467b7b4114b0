"""Simulated subjective studies with a known truth, for tests, benchmarks and study planning.

Model (the one :mod:`aigiqa.subjective.mle` estimates): ``X_es = ψ_e + Δ_s + υ_s · N(0, 1)``,
rounded to ``step`` and clipped to ``scale``; "random" subjects instead answer uniformly on the
scale (what BT.500 screening should catch). Seeded: the same arguments give the same table.
Paired comparisons: :func:`simulate_pair_raters` (Thurstone raters with lapses and a position
bias, qualities in JND units), judging pairs on demand (for adaptive sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["JND_SIGMA", "SimulatedPairRaters", "SimulatedStudy", "design_discordance",
           "simulate_pair_raters", "simulate_ratings"]


@dataclass(frozen=True)
class SimulatedStudy:
    """Ratings (subject, image, score[, session]) and the truth that generated them."""

    ratings: pd.DataFrame
    quality: pd.Series  # ψ_e, index = image name
    bias: pd.Series  # Δ_s, index = subject name
    inconsistency: pd.Series  # υ_s, index = subject name
    random_subjects: tuple[str, ...]


def simulate_ratings(n_images: int = 200, n_subjects: int = 21, *, seed: int = 0,
                     scale: tuple[float, float] = (0.0, 100.0), quality_margin: float = 0.15,
                     bias_sd: float = 6.0, inconsistency: tuple[float, float] = (4.0, 12.0),
                     missing: float = 0.0, repeats: float = 0.0, sessions: int = 0,
                     random_subjects: int = 0, step: float = 0.1) -> SimulatedStudy:
    """Simulate a study; sizes in images/subjects, bias and inconsistency in scale units.

    ``missing``: fraction of (image, subject) pairs not rated (incomplete design);
    ``repeats``: fraction rated a second time; ``sessions`` > 0 adds a ``session`` column
    (images split into that many consecutive blocks); ``random_subjects``: the last ones answer
    uniformly at random.
    """
    rng = np.random.default_rng(seed)
    lo, hi = scale
    span = hi - lo
    psi = rng.uniform(lo + quality_margin * span, hi - quality_margin * span, n_images)
    bias = rng.normal(0.0, bias_sd, n_subjects)
    bias -= bias.mean()
    upsilon = rng.uniform(*inconsistency, n_subjects)
    e, s = (a.ravel() for a in np.meshgrid(np.arange(n_images), np.arange(n_subjects),
                                           indexing="ij"))
    rated = rng.random(e.size) >= missing
    again = rated & (rng.random(e.size) < repeats)
    e = np.concatenate([e[rated], e[again]])
    s = np.concatenate([s[rated], s[again]])
    score = psi[e] + bias[s] + upsilon[s] * rng.standard_normal(e.size)
    chance = s >= n_subjects - random_subjects
    score[chance] = rng.uniform(lo, hi, int(chance.sum()))
    score = np.clip(np.round(score / step) * step, lo, hi)
    images = np.array([f"img{i:05d}" for i in range(n_images)])
    subjects = np.array([f"S{j:03d}" for j in range(n_subjects)])
    frame = pd.DataFrame({"subject": subjects[s], "image": images[e], "score": score})
    if sessions > 0:
        frame["session"] = np.char.add("k", (e * sessions // n_images).astype(str))
    order = rng.permutation(len(frame))
    frame = frame.iloc[order].reset_index(drop=True)
    return SimulatedStudy(ratings=frame, quality=pd.Series(psi, index=images),
                          bias=pd.Series(bias, index=subjects),
                          inconsistency=pd.Series(upsilon, index=subjects),
                          random_subjects=tuple(subjects[n_subjects - random_subjects:]))


JND_SIGMA = 1.0 / 0.6744897501960817  # Φ(1/σ) = 0.75: one JND is a 75 % preference


@dataclass(frozen=True)
class SimulatedPairRaters:
    """Raters of paired comparisons with a known truth (qualities in JND units).

    A judgement of ``(a, b)`` shows a on the left or right at random; the rater picks the left
    image with probability ``lapse/2 + (1 - lapse) Φ((q_left - q_right + bias_r) / σ)``,
    σ = :data:`JND_SIGMA` (a difference of 1 JND is preferred 75 % of the time), ``bias_r`` the
    rater's position bias toward the left image (JND). Seeded by ``seed`` of
    :func:`simulate_pair_raters`.
    """

    quality: np.ndarray
    position_bias: np.ndarray
    lapse: float
    rng: np.random.Generator

    def judge(self, a: int, b: int, rater: int) -> str:
        """The outcome ("a" or "b") of rater ``rater`` comparing items ``a`` and ``b``."""
        left_is_a = self.rng.random() < 0.5
        left, right = (a, b) if left_is_a else (b, a)
        if self.rng.random() < self.lapse:
            picks_left = self.rng.random() < 0.5
        else:
            diff = self.quality[left] - self.quality[right] + self.position_bias[rater]
            picks_left = self.rng.standard_normal() * JND_SIGMA < diff
        return "a" if picks_left == left_is_a else "b"


def simulate_pair_raters(n_items: int = 200, spread: float = 1.0, n_raters: int = 20, *,
                         lapse: float = 0.05, position_bias: float = 0.2,
                         seed: int = 0) -> SimulatedPairRaters:
    """Qualities ~ N(0, spread²) JND, rater position biases ~ N(position_bias, (bias/2)²)."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(0.0, spread, n_items)
    bias = rng.normal(position_bias, abs(position_bias) / 2, n_raters)
    return SimulatedPairRaters(quality, bias, lapse, rng)


def design_discordance(quality, i, j, lapse: float = 0.05) -> float:
    """The expected number of item pairs a design (judgements of the pairs ``i[k]``, ``j[k]``)
    leaves in the wrong order, Σ Φ(−|Δq|/√V) over all item pairs, V the variance of the
    difference from the inverse Fisher information of the judgements at the true ``quality``
    (JND units; Thurstone with a ``lapse`` rate, as the simulated raters): the design's worth
    without the outcomes' noise (2 / (n(n − 1)/2) times it is the expected 1 − Kendall's τ)."""
    from scipy import special

    quality = np.asarray(quality, float)
    i, j = np.asarray(i), np.asarray(j)
    n = len(quality)
    x = (quality[i] - quality[j]) / JND_SIGMA
    p = lapse / 2 + (1 - lapse) * special.ndtr(x)
    info = ((1 - lapse) * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)) ** 2 / (p * (1 - p))
    fisher = np.zeros((n, n))
    np.add.at(fisher, (i, j), -info)
    np.add.at(fisher, (j, i), -info)
    fisher[np.diag_indices(n)] = -fisher.sum(axis=1)
    cov = np.linalg.pinv(fisher)
    d = np.diag(cov)
    k = np.triu_indices(n, 1)
    var = np.maximum((d[:, None] + d[None, :] - 2 * cov)[k], 1e-12)
    gap = np.abs(quality[:, None] - quality[None, :])[k]
    return float(special.ndtr(-gap / np.sqrt(var)).sum())
