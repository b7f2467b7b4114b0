"""Planning a subjective study: who rates which image, in which order, in which session.

Rules (all seeded by ``seed``; the same inputs give the same plan):

- design ``full``: every subject rates every image; ``balanced``: a balanced incomplete design,
  each image rated by ``ratings_per_image`` = K distinct subjects, images given one at a time (in
  a random order) to the K subjects with the fewest images so far (ties broken at random), so the
  loads differ by at most one;
- ``training`` = T anchor images open every subject's list (kind ``training``, session 1, the same
  anchors for everybody, from worst to best): chosen at the quantiles (i + ½)/T of the released
  MOS when the database has one, otherwise one image per generator in turn; each carries a note
  explaining it. Anchors stay in the rating pool (their training ratings are not used for MOS);
- the subject's images come in a random order of their own (kind ``rating``); ``repeats`` = R of
  them are shown a second time (kind ``repeat``), hidden among the others, at a random later
  position more than ``min(5, n − R)`` trials after the first showing;
- rating and repeat trials are cut into sessions of ``session_size`` trials (training is part of
  session 1 on top of it); ``session_size=0`` means one session.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aigiqa.store.study import PlannedTrial, StudyError, StudyStore

DESIGNS = ("full", "balanced")
DEFAULT_LABELS = ("bad", "poor", "fair", "good", "excellent")
REPEAT_MIN_GAP = 5


@dataclass(frozen=True)
class SubjectLink:
    """A subject's label, personal token (shown once, never stored) and link path."""

    label: str
    token: str

    @property
    def path(self) -> str:
        return f"/s/{self.token}"


@dataclass(frozen=True)
class Study:
    """A created study: its id, admin token (shown once) and the subjects' links."""

    id: int
    name: str
    store_url: str
    admin_token: str
    subjects: list[SubjectLink] = field(default_factory=list)
    n_trials: dict[str, int] = field(default_factory=dict)
    mode: str = "ratings"  # "pairs": see aigiqa.study.plan_pairs
    n_pairs: int = 0  # pairs mode: candidate pairs
    n_left_out: int = 0  # pairs mode: images in no pair (alone in their group)

    @property
    def admin_path(self) -> str:
        return f"/admin/{self.admin_token}"


def choose_anchors(names: Sequence[str], mos: Sequence[float | None],
                   generators: Sequence[str | None], n: int,
                   rng: np.random.Generator) -> list[tuple[str, float | None]]:
    """T anchor images (name, MOS or None), worst first; see the module rules."""
    if n <= 0:
        return []
    known = [(m, nm) for nm, m in zip(names, mos, strict=True)
             if m is not None and math.isfinite(m)]
    if len(known) >= n:
        known.sort()
        picks = [known[min(len(known) - 1, int((i + 0.5) * len(known) / n))] for i in range(n)]
        return [(nm, m) for m, nm in picks]
    by_gen: dict[str, list[str]] = {}
    for nm, g in zip(names, generators, strict=True):
        by_gen.setdefault(g or "", []).append(nm)
    pools = [list(rng.permutation(by_gen[g])) for g in sorted(by_gen)]
    out: list[str] = []
    while len(out) < n:
        for pool in pools:
            if pool and len(out) < n:
                out.append(str(pool.pop()))
    return [(nm, None) for nm in out]


def assign_images(names: Sequence[str], subjects: int, design: str, ratings_per_image: int,
                  rng: np.random.Generator) -> list[list[str]]:
    """Images of each subject (unordered): all of them, or a balanced incomplete design."""
    if design == "full":
        return [list(names) for _ in range(subjects)]
    loads = np.zeros(subjects, dtype=int)
    out: list[list[str]] = [[] for _ in range(subjects)]
    for i in rng.permutation(len(names)):
        order = np.lexsort((rng.random(subjects), loads))
        for s in order[:ratings_per_image]:
            out[s].append(names[i])
            loads[s] += 1
    return out


def order_trials(images: Sequence[str], repeats: int, session_size: int,
                 rng: np.random.Generator) -> list[PlannedTrial]:
    """A subject's rating and repeat trials in a random order, cut into sessions."""
    seq: list[tuple[str, str]] = [(str(images[i]), "rating")
                                  for i in rng.permutation(len(images))]
    gap = max(0, min(REPEAT_MIN_GAP, len(seq) - repeats))
    # Repeat images shown early enough that their second showing fits ``gap`` trials later.
    chosen = rng.choice(len(seq) - gap, size=repeats, replace=False) if repeats else []
    for name in sorted(seq[i][0] for i in chosen):
        first = next(k for k, (nm, _) in enumerate(seq) if nm == name)
        seq.insert(int(rng.integers(first + 1 + gap, len(seq) + 1)), (name, "repeat"))
    size = session_size if session_size > 0 else max(1, len(seq))
    return [PlannedTrial(nm, kind, 1 + k // size) for k, (nm, kind) in enumerate(seq)]


def _label_for(value: float, lo: float, hi: float, labels: Sequence[str]) -> str:
    if not labels:
        return f"{value:.2f}"
    frac = 0.0 if hi == lo else min(max((value - lo) / (hi - lo), 0.0), 1.0)
    return labels[min(len(labels) - 1, int(frac * len(labels)))]


def anchor_notes(anchors: list[tuple[str, float | None]], generators: dict[str, str | None],
                 score_range: tuple[float, float], scale: tuple[float, float],
                 labels: Sequence[str]) -> list[PlannedTrial]:
    """Training trials with their explanation (expected label from the released MOS)."""
    out = []
    t = len(anchors)
    for i, (name, m) in enumerate(anchors):
        head = f"Training image {i + 1} of {t}."
        if m is not None:
            lo, hi = score_range
            on_scale = scale[0] + (m - lo) / ((hi - lo) or 1.0) * (scale[1] - scale[0])
            note = (f"{head} Earlier raters found this image {_label_for(on_scale, *scale, labels)}"
                    f" (about {on_scale:.1f} on {scale[0]:g}–{scale[1]:g}). Rate it as you see"
                    " it; training ratings only help you get used to the scale.")
        else:
            gen = generators.get(name) or "an unknown model"
            note = (f"{head} An example made by {gen}, to show the kind of images in this study."
                    " Training ratings only help you get used to the scale.")
        out.append(PlannedTrial(name, "training", 1, note))
    return out


def create_study(store_url: str | Path, database, root: str | Path | None = None, *,
                 subjects: int, design: str = "full", ratings_per_image: int | None = None,
                 training: int = 5, repeats: int = 0, session_size: int = 0, seed: int = 0,
                 scale: tuple[float, float, float] = (0.0, 5.0, 0.1),
                 labels: Sequence[str] = DEFAULT_LABELS, name: str | None = None,
                 subject_prefix: str = "S", check_images: bool = True) -> Study:
    """Plan a study of ``database`` (a registry name with ``root``, or a Database) and store it.

    ``scale`` = (lo, hi, step) of the slider. Returns the Study with the admin token and one
    link per subject; the tokens are shown only here (the store keeps their sha256).
    """
    db = study_database(database, root, check_images)
    n_images = len(db)
    _check_options(n_images, subjects, design, ratings_per_image, training, repeats,
                   session_size, scale)
    k = subjects if design == "full" else int(ratings_per_image)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    names = [r.name for r in db]
    main = db.info.main_target
    gens = {r.name: r.generator for r in db}
    anchors = choose_anchors(names, [r.targets.get(main) for r in db],
                             [r.generator for r in db], training, rng)
    training_trials = anchor_notes(anchors, gens, db.info.score_range, scale[:2], labels)
    assigned = assign_images(names, subjects, design, k, rng)
    fewest = min(len(images) for images in assigned)
    if repeats > fewest:
        raise StudyError(f"repeats={repeats} is more than the {fewest} images of the subject "
                         "with the fewest; lower repeats or raise ratings_per_image")
    width = max(2, len(str(subjects)))
    plan: dict[str, list[PlannedTrial]] = {}
    for s, images in enumerate(assigned):
        label = f"{subject_prefix}{s + 1:0{width}d}"
        plan[label] = training_trials + order_trials(images, repeats, session_size, rng)
    with StudyStore(store_url) as store:
        db_id = store.add_database(db)
        study_id, admin, tokens = store.insert_study(
            name=name or f"{db.info.name} study", database_id=db_id,
            scale=(float(scale[0]), float(scale[1]), float(scale[2])), labels=labels,
            design=design, ratings_per_image=k, session_size=session_size,
            n_training=training, n_repeats=repeats, seed=seed, plan=plan)
    return Study(id=study_id, name=name or f"{db.info.name} study", store_url=str(store_url),
                 admin_token=admin,
                 subjects=[SubjectLink(label, tokens[label]) for label in plan],
                 n_trials={label: len(t) for label, t in plan.items()})


def study_database(database, root, check_images: bool):
    """The Database a study is planned on: ``database`` itself, or read by name from ``root``."""
    from aigiqa.databases import load_database

    if not isinstance(database, str):
        return database
    if root is None:
        raise StudyError(f"database {database!r}: pass root= (its folder)")
    return load_database(database, root, check_images=check_images)


def check_design(n_units: int, units: str, subjects: int, design: str, per_unit: int | None,
                 per_option: str, judged: str, training: int, repeats: int,
                 session_size: int) -> int:
    """Check the options a rating and a pair study share; returns K (subjects per image or
    pair). ``units``: what the study shows (``images``, ``candidate pairs``); ``per_option``
    the option naming K; ``judged``: how one unit is answered (``rated``, ``judged``)."""
    def whole(value, option: str, low: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise StudyError(f"{option}={value!r} is invalid; use an integer >= {low}")

    whole(subjects, "subjects", 1)
    if design not in DESIGNS:
        raise StudyError(f"design={design!r} is unknown; use one of {list(DESIGNS)}")
    if design == "balanced":
        whole(per_unit, per_option, 1)
        if per_unit > subjects:  # type: ignore[operator]
            raise StudyError(f"{per_option}={per_unit} is more than subjects={subjects}: each "
                             f"{units.split()[-1].rstrip('s')} is {judged} by distinct subjects")
    whole(training, "training", 0)
    if training > n_units:
        raise StudyError(f"training={training} is more than the {n_units} {units}")
    whole(repeats, "repeats", 0)
    whole(session_size, "session_size", 0)
    return subjects if design == "full" else int(per_unit)  # type: ignore[arg-type]


def _check_options(n_images: int, subjects: int, design: str, ratings_per_image: int | None,
                   training: int, repeats: int, session_size: int,
                   scale: tuple[float, float, float]) -> None:
    if n_images == 0:
        raise StudyError("the database has no images to rate")
    check_design(n_images, "images", subjects, design, ratings_per_image, "ratings_per_image",
                 "rated", training, repeats, session_size)
    if len(scale) != 3 or not all(isinstance(x, int | float) and math.isfinite(x)
                                  for x in scale):
        raise StudyError(f"scale={scale!r} is invalid; use (lo, hi, step) numbers")
    lo, hi, step = scale
    if not lo < hi or not 0 < step <= hi - lo:
        raise StudyError(f"scale={scale!r} is invalid; need lo < hi and 0 < step <= hi - lo")
