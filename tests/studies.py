"""Helpers for the study tests: rating (or comparing) a whole study through the store, a small
database whose images share prompts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from aigiqa.databases.base import Database, DatabaseInfo, Record
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


def count_choices(store_url: str) -> int:
    """Number of stored pair choices (all studies)."""
    from sqlalchemy import func, select

    from aigiqa.store.study_models import PairChoice

    with StudyStore(store_url) as store, store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(PairChoice)).scalar_one())


def choose_all(store_url: str, tokens: Iterable[str], *, seed: int = 0, noise: float = 0.7,
               tag: str = "auto", allow_ties: bool = False) -> dict[str, float]:
    """Every subject answers every pair trial of their plan: a latent quality per image in
    [0, 3], the better-looking side (quality plus Gaussian noise) chosen, a tie when the two
    are within 0.2 and ties are allowed. Returns the latent qualities by image path."""
    from aigiqa.store.study_pairs import PairStore

    rng = np.random.default_rng(seed)
    quality: dict[str, float] = {}
    with StudyStore(store_url) as store:
        pairs = PairStore(store)
        for k, token in enumerate(tokens):
            subject = store.subject_by_token(token)
            for n in range(10_000):
                trial = pairs.state(subject.id).trial
                if trial is None:
                    break
                left, right = (quality.setdefault(p, rng.uniform(0, 3))
                               + rng.normal(0, noise)
                               for p in (trial.left_path, trial.right_path))
                choice = ("tie" if allow_ties and abs(left - right) < 0.2 else
                          "left" if left > right else "right")
                pairs.submit(subject, trial.id, choice, f"{tag}-{k}-{n}", 500 + n)
    return quality


#: Prompt of each image: groups of 4, 3 and 2 images, one prompt with a single image, one image
#: without a prompt.
PROMPTS = ["p0"] * 4 + ["p1"] * 3 + ["p2"] * 2 + ["p3", None]


def pair_database(root: Path, prompts=PROMPTS, size: int = 12) -> Database:
    """One small PNG per prompt entry under root/img (``imNN.png``, distinct colours)."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    records = []
    for i, prompt in enumerate(prompts):
        path = root / "img" / f"im{i:02d}.png"
        Image.new("RGB", (size, size), (i * 23 % 256, 60, 120)).save(path)
        records.append(Record(name=path.name, path=path, prompt=prompt, generator=f"G{i % 2}",
                              targets={}))
    info = DatabaseInfo(name="tiny", score_range=(0.0, 5.0), target_names=("mos",))
    return Database(info, records, root)
