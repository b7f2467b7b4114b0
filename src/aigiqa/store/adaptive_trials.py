"""Adaptive pairs studies: each subject's next pair chosen live from the choices stored so far.

A subject of an adaptive study (``aigiqa study create --mode pairs --sampler adaptive``) has
their training trials from creation; each further trial is chosen when they need it (the page or
an answer asks for the current trial, :meth:`AdaptiveTrials.state`) and inserted at once:

- **Groups**: one :class:`~aigiqa.subjective.AdaptivePairSampler` per group of the study (the
  images of one prompt, or all: ``group_by``), fed the ``rating`` choices of every subject of
  the study (training choices are not used, as in the export). The next pair comes from the
  group, among those where the subject has a pair left, with the fewest comparisons (stored
  plus on screen; ties: the first group), so the budget spreads evenly over the prompts.
- **The pair**: the sampler's choice, never a pair the subject was shown already (training
  included) and, while another is left, none on screen for another subject (else concurrent
  raters would all get the same most informative pair). Sides: a fair coin seeded by (study
  seed, subject id, position); stored with the trial as in a fixed plan.
- **Stored atomically**: the trial row goes in only if the subject still has exactly that many
  trials and answers (:func:`~aigiqa.store.adaptive_pairs.insert_next_trial`); two requests for
  one subject get the one trial that went in first; other subjects are not held up (only this
  process's choice for one study is serialised, by a lock).
- **State from the store**: the samplers are built from the stored choices and brought up to
  date from the rows newer than the last one read (several server processes share a store:
  each catches up from it). A group's sampler is a function of its choices in commit order:
  the Laplace posterior of the first k (a fresh sampler with ``comparisons=``), then one
  online update per later choice (``refit=0``); k is the last checkpoint (:data:`REFIT`
  schedule) passed by a quarter of the way to the next one: each fit runs in a background
  thread from its checkpoint on and is used from there (waited for, if it has not finished).
  After a restart, or in another process, the same choices give the same sampler and the
  same next pair (the sampler's next pair depends on its judgements only: its own coin for
  the sides is not used).
- **Cost**: an online update is O(n²) and a choice O(n²) (the criterion of every pair) for a
  group of n images; a fit is O(n³) (about a second at 1,000 images), in the background
  except the first one after a start (benchmarks/study_adaptive.py measures both).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from aigiqa.errors import ComparisonError
from aigiqa.store import adaptive_pairs
from aigiqa.store.adaptive_pairs import CHOSEN_KIND, AdaptiveSettings
from aigiqa.store.lru import LruMap
from aigiqa.store.study_domain import StudyError, SubjectState
from aigiqa.subjective.adaptive import AdaptivePairSampler

#: Checkpoints of a group's sampler (a full Laplace refit): after the first ``max(10, n/4)``
#: choices (n images in the group), then whenever its choices grew by this fraction (or
#: ``max(10, n/4)``, the larger).
REFIT = 0.05
_FIXED = object()  # a cached "this subject's study has a fixed plan"


def _outcome(choice: str) -> str:
    return {"left": "a", "right": "b", "tie": "tie"}[choice]


class GroupSampler:
    """The sampler of one group: its choices (left id, right id, outcome) in commit order and
    the sampler they give (module doc), brought up to date when it is asked for."""

    def __init__(self, members: list[int], seed: int, model: str):
        self.items = [str(i) for i in members]
        self.n_pairs = len(members) * (len(members) - 1) // 2
        self.seed, self.model = seed, model
        self.choices: list[tuple[str, str, str]] = []  # appended to, never changed
        self._sampler: AdaptivePairSampler | None = None
        self._base = self._applied = 0  # its checkpoint, the choices folded in
        self._marks = [0]
        self._step = max(10, len(members) // 4)
        self._fits: dict[int, _Fit] = {}  # checkpoint → its sampler, made in the background

    def checkpoint(self, n: int) -> int:
        """The last checkpoint at or before ``n`` choices."""
        while self._marks[-1] <= n:
            last = self._marks[-1]
            self._marks.append(last + max(self._step, math.ceil(REFIT * last)))
        return max(m for m in self._marks if m <= n)

    def base(self, n: int) -> int:
        """The checkpoint the sampler of ``n`` choices is built on: the last one that ``n``
        passed by a quarter of the way to the next (its fit runs in the background
        meanwhile)."""
        self.checkpoint(n)  # the marks up to past n
        marks = self._marks
        return max((a for a, b in zip(marks, marks[1:], strict=False)
                    if a and a + (b - a) // 4 <= n), default=0)

    def add(self, left: int, right: int, outcome: str) -> None:
        self.choices.append((str(left), str(right), outcome))
        for fit in self._fits.values():
            fit.follow()

    def sampler(self) -> AdaptivePairSampler:
        """The sampler of all the choices added so far."""
        n = len(self.choices)
        base = self.base(n)
        if self._sampler is None or self._base != base:
            fit = self._fits.pop(base, None) or _Fit(self, base)
            self._sampler, self._applied = fit.take()
            self._base = base
            for k in [k for k in self._fits if k < base]:
                self._fits.pop(k).dropped = True
        while self._applied < n:
            self._sampler.update(*self.choices[self._applied])
            self._applied += 1
        last = self.checkpoint(n)
        if last > base and last not in self._fits:  # needed at the next checkpoint
            self._fits[last] = _Fit(self, last)
            self._fits[last].follow()
        return self._sampler


class _Fit:
    """A group's sampler from one checkpoint on, made in the background thread: the fit of
    the first ``k`` choices, then each later choice folded in as it is added."""

    def __init__(self, group: GroupSampler, k: int):
        self.group, self.k = group, k
        self.sampler: AdaptivePairSampler | None = None
        self.applied = k
        self.lock = threading.Lock()  # held while it is fitted or brought up to date
        self._queue_lock = threading.Lock()  # only for ``queued``: never held for long
        self.queued = self.dropped = False

    def follow(self) -> None:
        """Bring it up to date in the background (one task queued at a time); returns at
        once, even while a fit is running."""
        with self._queue_lock:
            if self.queued:
                return
            self.queued = True
        _background().submit(self._advance)

    def _advance(self) -> None:
        with self._queue_lock:
            self.queued = False
        with self.lock:
            if not self.dropped:
                self._catch_up()

    def _catch_up(self) -> None:
        choices = self.group.choices
        if self.sampler is None:
            first = pd.DataFrame(choices[:self.k], columns=["a", "b", "outcome"]) \
                if self.k else None
            self.sampler = AdaptivePairSampler(self.group.items, model=self.group.model,
                                               seed=self.group.seed, refit=0,
                                               comparisons=first)
        while self.applied < len(choices):
            self.sampler.update(*choices[self.applied])
            self.applied += 1

    def take(self) -> tuple[AdaptivePairSampler, int]:
        """(the sampler, the choices folded in): waits for a fit under way, or makes it."""
        with self.lock:
            self._catch_up()
            return self.sampler, self.applied


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _background() -> ThreadPoolExecutor:
    """One thread for the samplers' fits (numpy's solves release the GIL meanwhile)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aigiqa-adaptive-fit")
        return _POOL


class StudySamplers:
    """One adaptive study's samplers in this process, and the trials on screen (chosen, not
    answered yet)."""

    def __init__(self, settings: AdaptiveSettings, groups: list[list[int]]):
        self.settings = settings
        self.lock = threading.Lock()
        self.group_of = {image: g for g, members in enumerate(groups) for image in members}
        self.groups = [GroupSampler(members, int(np.random.SeedSequence(
            [settings.seed, g]).generate_state(1)[0]), settings.model)
            for g, members in enumerate(groups)]
        self.last_choice = self.last_trial = 0
        self.pending: dict[int, tuple[int, int, int, int]] = {}  # trial → subject, group, l, r
        self.answered: set[int] = set()  # chosen trials answered

    def _group(self, left: int, right: int, what: str) -> int:
        g = self.group_of.get(left)
        if g is None or self.group_of.get(right) != g:
            raise StudyError(f"study {self.settings.study_id}: {what} ({left}, {right}) is not "
                             "a pair of one of the study's groups")
        return g

    def catch_up(self, conn) -> None:
        """Fold in the choices and chosen trials stored since the last call."""
        sid = self.settings.study_id
        for c in adaptive_pairs.choices_since(conn, sid, self.last_choice):
            self.last_choice = c.id
            if c.kind != CHOSEN_KIND:
                continue
            self.answered.add(c.trial_id)
            self.pending.pop(c.trial_id, None)
            g = self._group(c.left_image_id, c.right_image_id, f"choice {c.id}")
            self.groups[g].add(c.left_image_id, c.right_image_id, _outcome(c.choice))
        for t in adaptive_pairs.trials_since(conn, sid, self.last_trial):
            self.last_trial = t.id
            if t.id not in self.answered:
                self.pending[t.id] = (t.subject_id, self._group(t.image_id, t.right_image_id,
                                                                f"trial {t.id}"),
                                      t.image_id, t.right_image_id)

    def pick(self, subject_id: int, position: int, shown: list[tuple[int, int]]
             ) -> tuple[int, int, int]:
        """(group, left, right) of the subject's next pair; ``shown``: their pairs so far."""
        n = len(self.groups)
        own: list[list[tuple[str, str]]] = [[] for _ in range(n)]
        for left, right in shown:
            g = self.group_of.get(left)
            if g is not None and self.group_of.get(right) == g:
                own[g].append((str(left), str(right)))
        others: list[list[tuple[str, str]]] = [[] for _ in range(n)]
        for subject, g, left, right in self.pending.values():
            if subject != subject_id:
                others[g].append((str(left), str(right)))
        open_groups = [g for g in range(n)
                       if len({frozenset(p) for p in own[g]}) < self.groups[g].n_pairs]
        if not open_groups:
            raise StudyError(f"subject {subject_id}: every pair of the study was shown to them")
        g = min(open_groups, key=lambda k: (len(self.groups[k].choices) + len(others[k]), k))
        sampler = self.groups[g].sampler()
        try:
            a, b = sampler.next_pair(exclude=own[g] + others[g])
        except ComparisonError:  # every pair left is on screen elsewhere: share one
            a, b = sampler.next_pair(exclude=own[g])
        a, b = sorted((int(a), int(b)))
        coin = np.random.default_rng([self.settings.seed, subject_id, position]).random()
        return (g, b, a) if coin < 0.5 else (g, a, b)


class AdaptiveTrials:
    """The adaptive part of a :class:`~aigiqa.store.study_pairs.PairStore` (whose plan cache,
    answer count and write transaction it uses)."""

    def __init__(self, pairs):
        self.pairs = pairs
        self._subjects = LruMap(4096)  # subject id → AdaptiveSettings, or _FIXED
        self._studies: dict[int, StudySamplers] = {}
        self._lock = threading.Lock()

    def settings(self, conn, subject_id: int) -> AdaptiveSettings | None:
        """The adaptive settings of the subject's study, or None (a fixed plan)."""
        cached = self._subjects.get(subject_id)
        if cached is None:
            cached = adaptive_pairs.subject_settings(conn, subject_id) or _FIXED
            self._subjects.put(subject_id, cached)
        return None if cached is _FIXED else cached

    def _samplers(self, settings: AdaptiveSettings) -> StudySamplers:
        with self._lock:
            found = self._studies.get(settings.study_id)
            if found is None:
                with self.pairs.store.engine.connect() as conn:
                    groups = adaptive_pairs.groups(conn, settings.study_id)
                found = self._studies[settings.study_id] = StudySamplers(settings, groups)
            return found

    def state(self, subject_id: int, settings: AdaptiveSettings) -> SubjectState:
        """The subject's state, their current trial chosen and stored first if it is not yet."""
        pairs = self.pairs
        with pairs.store.engine.connect() as conn:
            done = pairs._done(conn, subject_id)
            plan = pairs._plan(conn, subject_id)
            if done < settings.total and plan.total <= done:
                plan = pairs._extend_plan(conn, subject_id, plan)  # chosen by another process?
        if done < settings.total and plan.total <= done:
            self._choose(subject_id, done, [(t.left_id, t.right_id) for t in plan.trials],
                         settings)
            with pairs.store.engine.connect() as conn:
                done = pairs._done(conn, subject_id)
                plan = pairs._extend_plan(conn, subject_id, plan)
        trial = plan.trials[done] if done < min(plan.total, settings.total) else None
        start = trial is not None and plan.bounds.get(trial.session, (None,))[0] == done
        return SubjectState(done=done, total=settings.total, sessions=len(plan.bounds),
                            trial=trial, session_start=start)

    def _choose(self, subject_id: int, position: int, shown: list[tuple[int, int]],
                settings: AdaptiveSettings) -> None:
        pairs = self.pairs
        samplers = self._samplers(settings)
        with samplers.lock:
            with pairs.store.engine.connect() as conn:
                samplers.catch_up(conn)
            g, left, right = samplers.pick(subject_id, position, shown)
            with pairs.store._write() as conn:  # the store's write queue (same package)
                trial_id = adaptive_pairs.insert_next_trial(conn, settings, subject_id,
                                                            position, left, right)
            if trial_id is not None:
                samplers.pending[trial_id] = (subject_id, g, left, right)
