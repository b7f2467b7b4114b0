"""Simulated subjective studies with a known truth, for tests, benchmarks and study planning.

Model (the one :mod:`aigiqa.subjective.mle` estimates): ``X_es = ψ_e + Δ_s + υ_s · N(0, 1)``,
rounded to ``step`` and clipped to ``scale``; "random" subjects instead answer uniformly on the
scale (what BT.500 screening should catch). Seeded: the same arguments give the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SimulatedStudy", "simulate_ratings"]


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
