"""Planning a paired-comparison study: which two images each subject compares, on which side.

Rules (all seeded by ``seed``; the same inputs give the same plan):

- candidate pairs are every unordered pair of images within a group: ``group_by="prompt"``
  (images generated from the same prompt, as in AIGIQA-20K or an ``aigiqa generate`` folder) or
  ``"all"`` (one group: any two images of the database). An image alone in its group (the only
  image of its prompt, or an image without a prompt) is in no pair: it is *left out*, and the
  number is returned (``Study.n_left_out``), stored and printed by ``aigiqa study create``. No
  pair at all, or more than :data:`MAX_PAIRS`, is a StudyError;
- the trial-selection step is one call, :meth:`PairSampler.next_pair` (subject, pairs given so
  far → the next pair's index, or None when the subject has enough). The default,
  :class:`BalancedPairs`, is the ratings' design over pairs: ``full`` (every subject every pair)
  or ``balanced`` (each pair to ``judgements_per_pair`` = K distinct subjects, loads within one);
- a subject's pairs come in a random order of their own; the left/right sides are drawn per trial
  (a fair coin); ``repeats`` = R pairs are shown again later (kind ``repeat``) with the sides
  swapped, as hidden repeats of ratings are placed (:func:`aigiqa.study.plan.order_trials`);
- ``training`` = T practice pairs (kind ``training``, the same pairs for everybody, drawn at
  random from the candidates, sides drawn per trial) open session 1; they stay in the pool;
- sessions as for ratings (``session_size`` trials; training on top of session 1);
- ``adaptive=True``: no pair is planned beyond training. Each subject's ``pairs_per_subject``
  pairs are chosen live, one when the subject needs it, from everybody's choices so far
  (:mod:`aigiqa.store.adaptive_trials`); ``design``, ``judgements_per_pair``, ``repeats`` and
  ``sampler`` plan fixed trials and are refused with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Protocol

import numpy as np

from aigiqa.store.adaptive_pairs import AdaptivePlan
from aigiqa.store.study import StudyError, StudyStore
from aigiqa.store.study_pairs import PairSettings, PairStore, PlannedPair
from aigiqa.study.plan import (
    Study,
    SubjectLink,
    assign_images,
    check_design,
    order_trials,
    study_database,
)

GROUP_BY = ("prompt", "all")
#: Most candidate pairs a plan may hold (``group_by="all"`` on n images gives n(n-1)/2).
MAX_PAIRS = 1_000_000


def pair_groups(names: Sequence[str], prompts: Sequence[str | None],
                group_by: str = "prompt") -> list[list[str]]:
    """The images by group (one prompt's, or all), groups and images in database order; an
    image without a prompt is a group of its own. StudyError if ``group_by`` is unknown."""
    if group_by not in GROUP_BY:
        raise StudyError(f"group_by={group_by!r} is unknown; use one of {list(GROUP_BY)}")
    groups: dict[object, list[str]] = {}
    for k, (name, prompt) in enumerate(zip(names, prompts, strict=True)):
        key = "all" if group_by == "all" else (prompt if prompt else ("no prompt", k))
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def candidate_pairs(names: Sequence[str], prompts: Sequence[str | None],
                    group_by: str = "prompt") -> tuple[list[tuple[str, str]], list[str]]:
    """(every within-group pair, in database order; the images left out, alone in their
    group). StudyError if ``group_by`` is unknown or there are more than MAX_PAIRS pairs."""
    groups = {k: g for k, g in enumerate(pair_groups(names, prompts, group_by))}
    sizes = [len(g) for g in groups.values()]
    total = sum(n * (n - 1) // 2 for n in sizes)
    if total > MAX_PAIRS:
        raise StudyError(f"{total} candidate pairs is more than {MAX_PAIRS}: group the images "
                         "by prompt (--pair-group prompt) or plan a smaller database")
    pairs = [p for g in groups.values() for p in combinations(g, 2)]
    alone = [g[0] for g in groups.values() if len(g) == 1]
    return pairs, alone


class PairSampler(Protocol):
    """The trial-selection step: the next pair (an index into the candidate pairs) for a
    subject, or None when the subject has all the pairs they should judge."""

    def next_pair(self, subject: int, given: Sequence[int]) -> int | None: ...


class BalancedPairs:
    """Fixed design over pairs: ``full`` (every pair to every subject) or ``balanced`` (each
    pair to K distinct subjects, the K with the fewest pairs so far, ties at random)."""

    def __init__(self, n_pairs: int, subjects: int, design: str, k: int,
                 rng: np.random.Generator):
        keys = [str(i) for i in range(n_pairs)]
        self._lists = [[int(x) for x in got]
                       for got in assign_images(keys, subjects, design, k, rng)]

    def next_pair(self, subject: int, given: Sequence[int]) -> int | None:
        mine = self._lists[subject]
        return mine[len(given)] if len(given) < len(mine) else None


def _sides(pair: tuple[str, str], rng: np.random.Generator) -> tuple[str, str]:
    return (pair[1], pair[0]) if rng.random() < 0.5 else pair


def create_pair_study(store_url: str | Path, database, root: str | Path | None = None, *,
                      subjects: int, design: str = "full",
                      judgements_per_pair: int | None = None, training: int = 0,
                      repeats: int = 0, session_size: int = 0, seed: int = 0,
                      allow_ties: bool = False, group_by: str = "prompt",
                      name: str | None = None, subject_prefix: str = "S",
                      check_images: bool = True, sampler: PairSampler | None = None,
                      adaptive: bool = False, pairs_per_subject: int | None = None) -> Study:
    """Plan a paired-comparison study of ``database`` (a registry name with ``root``, or a
    Database) and store it; see the module rules. Returns the Study (``mode="pairs"``, with
    ``n_pairs`` and ``n_left_out``) with the admin token and one link per subject."""
    db = study_database(database, root, check_images)
    names, prompts = [r.name for r in db], [r.prompt for r in db]
    pairs, alone = candidate_pairs(names, prompts, group_by)
    if not pairs:
        raise StudyError(f"{db.info.name}: no {group_by} group has two images, so there is no "
                         "pair to compare" + ("; --pair-group all compares any two images"
                                              if group_by == "prompt" else ""))
    k = check_design(len(pairs), "candidate pairs", subjects, design, judgements_per_pair,
                     "judgements_per_pair", "judged", training, repeats, session_size)
    live = None
    if adaptive:
        live = _adaptive_plan(pair_groups(names, prompts, group_by), len(pairs), design,
                              judgements_per_pair, training, repeats, sampler,
                              pairs_per_subject)
        k, design = 0, "adaptive"
    elif pairs_per_subject is not None:
        raise StudyError("pairs_per_subject is the budget of the adaptive sampler: a fixed "
                         "plan's pairs come from design and judgements_per_pair")
    rng = np.random.default_rng(seed)
    sampler = sampler or (_NoPairs() if adaptive else
                          BalancedPairs(len(pairs), subjects, design, k, rng))
    practice = [pairs[int(i)] for i in rng.choice(len(pairs), size=training, replace=False)]
    width = max(2, len(str(subjects)))
    plan: dict[str, list[PlannedPair]] = {}
    for s in range(subjects):
        given: list[int] = []
        while (nxt := sampler.next_pair(s, given)) is not None:
            given.append(int(nxt))
        if repeats > len(given):
            raise StudyError(f"repeats={repeats} is more than the {len(given)} pairs of "
                             f"subject {s + 1}; lower repeats or raise judgements_per_pair")
        trials = [PlannedPair(*_sides(p, rng), "training", 1,
                              f"Practice pair {i + 1} of {training}: choose the image you find "
                              "better. Practice choices are not used in the results.")
                  for i, p in enumerate(practice)]
        first_sides: dict[str, tuple[str, str]] = {}
        for t in order_trials([str(i) for i in given], repeats, session_size, rng):
            if t.kind == "repeat":  # the second showing swaps the sides
                right, left = first_sides[t.image]
            else:
                left, right = first_sides.setdefault(t.image, _sides(pairs[int(t.image)], rng))
            trials.append(PlannedPair(left, right, t.kind, t.session))
        plan[f"{subject_prefix}{s + 1:0{width}d}"] = trials
    title = name or f"{db.info.name} paired comparisons"
    settings = PairSettings(allow_ties=bool(allow_ties), group_by=group_by, n_pairs=len(pairs),
                            n_left_out=len(alone))
    with StudyStore(store_url) as store:
        db_id = store.add_database(db)
        study_id, admin, tokens = PairStore(store).insert_pair_study(
            name=title, database_id=db_id, design=design, judgements_per_pair=k,
            session_size=session_size, n_training=training, n_repeats=repeats, seed=seed,
            settings=settings, plan=plan, adaptive=live)
    budget = 0 if live is None else live.pairs_per_subject
    return Study(id=study_id, name=title, store_url=str(store_url), admin_token=admin,
                 subjects=[SubjectLink(label, tokens[label]) for label in plan],
                 n_trials={label: len(t) + budget for label, t in plan.items()}, mode="pairs",
                 n_pairs=len(pairs), n_left_out=len(alone))


class _NoPairs:
    """An adaptive plan's fixed part: no pair beyond training."""

    def next_pair(self, subject: int, given: Sequence[int]) -> int | None:
        return None


def _adaptive_plan(groups: list[list[str]], n_pairs: int, design: str,
                   judgements_per_pair: int | None, training: int, repeats: int,
                   sampler: PairSampler | None, pairs_per_subject: int | None) -> AdaptivePlan:
    """The adaptive part of a plan, after its options are checked against each other."""
    from aigiqa.subjective.adaptive import MAX_ITEMS

    fixed = {"design": None if design == "full" else design,
             "judgements_per_pair": judgements_per_pair, "repeats": repeats or None,
             "sampler": sampler}
    wrong = [key for key, value in fixed.items() if value is not None]
    if wrong:
        raise StudyError(f"{', '.join(wrong)}: not with the adaptive sampler (its pairs are "
                         "chosen live, pairs_per_subject per subject; hidden repeats are not "
                         "planned)")
    if isinstance(pairs_per_subject, bool) or not isinstance(pairs_per_subject, int) \
            or pairs_per_subject < 1:
        raise StudyError(f"pairs_per_subject={pairs_per_subject!r} is invalid: the adaptive "
                         "sampler needs a budget of pairs per subject, an integer >= 1")
    if training + pairs_per_subject > n_pairs:
        raise StudyError(f"training + pairs_per_subject = {training + pairs_per_subject} is "
                         f"more than the {n_pairs} candidate pairs (a subject never judges a "
                         "pair twice)")
    big = max(len(g) for g in groups)
    if big > MAX_ITEMS:
        raise StudyError(f"a group of {big:,} images is more than the adaptive sampler's "
                         f"{MAX_ITEMS:,}: group the pairs by prompt")
    return AdaptivePlan(pairs_per_subject, "thurstone", [g for g in groups if len(g) > 1])


