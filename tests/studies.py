"""Helpers for the study tests: rating a whole study through the store."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from aigiqa.store.study import StudyStore


def rate_all(store_url: str, tokens: Iterable[str], *, seed: int = 0, noise: float = 0.5,
             tag: str = "auto") -> None:
    """Every subject rates every trial of their plan: a latent quality per image in [1, 4] plus
    Gaussian noise (sd ``noise``), rounded to 0.1 and clipped to [0, 5]."""
    rng = np.random.default_rng(seed)
    quality: dict[str, float] = {}
    with StudyStore(store_url) as store:
        for k, token in enumerate(tokens):
            subject = store.subject_by_token(token)
            for n in range(10_000):
                trial = store.state(subject.id).trial
                if trial is None:
                    break
                q = quality.setdefault(trial.image_path, rng.uniform(1, 4))
                value = float(np.clip(round(q + rng.normal(0, noise), 1), 0, 5))
                store.submit_rating(subject, trial.id, value, f"{tag}-{k}-{n}")
