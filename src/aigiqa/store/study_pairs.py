"""PairStore: the paired-comparison mode's reads and writes, beside :class:`StudyStore`.

A pair trial shows two images (left: ``trials.image_id``, right: ``pair_trials``); its answer is
one ``pair_choices`` row. The rules are those of ratings (:mod:`aigiqa.store.study`):

- a subject's trials are answered strictly in order: the current trial is the one at position
  ``count(choices of the subject)``; only it may be answered (else :class:`TrialConflict`);
- a choice is unique per trial and per (subject, submission id): a replay (same submission id,
  or a trial already answered) inserts nothing and returns the stored choice;
- :meth:`PairStore.submit` returns only after its transaction has committed;
- a choice is ``left``/``right``, or ``tie`` where the study allows ties (else
  :class:`~aigiqa.store.study_domain.ChoiceValueError`); a trial of another subject, or of a
  ratings study, is :class:`TrialNotFound`.

It shares the StudyStore's engine, write queue and subject/study caches. In an adaptive study
(:mod:`aigiqa.store.adaptive_trials`) the trials after training are chosen one at a time, when
the subject needs the next: :meth:`PairStore.state` and :meth:`PairStore.submit` choose and
store it before they return the state; the rules above are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, bindparam, func, insert, or_, select
from sqlalchemy.orm import aliased

from aigiqa.chunking import chunks
from aigiqa.store import adaptive_pairs, study_admin, study_setup
from aigiqa.store.adaptive_trials import AdaptiveTrials
from aigiqa.store.lru import LruMap
from aigiqa.store.study import PLAN_CACHE_SIZE, StudyStore
from aigiqa.store.study_domain import (
    PlannedTrial,
    StudyError,
    SubjectPlan,
    SubjectRef,
    SubjectState,
    TrialConflict,
    TrialNotFound,
    check_choice,
    check_response_ms,
    check_submission_id,
    iso_utc,
)
from aigiqa.store.study_models import (
    PairChoice,
    PairStudy,
    PairTrial,
    Prompt,
    StudyImage,
    StudySession,
    Subject,
    Trial,
)
from aigiqa.store.study_writes import insert_current, touch_session

CHOICE_COLUMNS = ["subject", "position", "kind", "session", "prompt", "left", "right", "choice",
                  "response_ms", "time"]
_CHOICE = PairChoice.__table__


def _plan_query():
    """A subject's pair trials from a position on (built once: SQLAlchemy then reuses its
    compiled form)."""
    left, right = aliased(StudyImage), aliased(StudyImage)
    lp, rp = aliased(Prompt), aliased(Prompt)
    return (select(Trial.id, Trial.position, Trial.kind, Trial.session, Trial.note,
                   Trial.image_id, left.path.label("lpath"), lp.text.label("ltext"),
                   PairTrial.right_image_id, right.path.label("rpath"), rp.text.label("rtext"))
            .join(PairTrial, PairTrial.trial_id == Trial.id)
            .join(left, left.id == Trial.image_id)
            .join(right, right.id == PairTrial.right_image_id)
            .outerjoin(lp, lp.id == left.prompt_id).outerjoin(rp, rp.id == right.prompt_id)
            .where(Trial.subject_id == bindparam("subject"),
                   Trial.position >= bindparam("start"))
            .order_by(Trial.position))


_PLAN_QUERY = _plan_query()


@dataclass(frozen=True, slots=True)
class PlannedPair:
    """One planned pair trial: image names by side, kind, session, practice note."""

    left: str
    right: str
    kind: str
    session: int
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PairSettings:
    """A pairs study's settings: ties allowed, grouping, candidate pairs, images left out."""

    allow_ties: bool
    group_by: str
    n_pairs: int
    n_left_out: int


@dataclass(frozen=True, slots=True)
class PairTrialView:
    """A pair trial as shown to its subject (no image names: they would reveal repeats)."""

    id: int
    position: int
    kind: str
    session: int
    note: str | None
    left_prompt: str | None
    right_prompt: str | None
    left_path: str  # relative to the database root
    right_path: str
    left_id: int
    right_id: int

    def image_path(self, side: str) -> str:
        return self.left_path if side == "left" else self.right_path


@dataclass(frozen=True, slots=True)
class StoredChoice:
    """An acknowledged choice as the store keeps it."""

    trial_id: int
    choice: str
    kind: str
    session: int
    submission_id: str
    response_ms: int | None
    created_at: str  # ISO 8601, UTC

    def as_dict(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "choice": self.choice, "kind": self.kind,
                "session": self.session, "submission_id": self.submission_id,
                "response_ms": self.response_ms, "time": self.created_at}


class PairStore:
    """Paired-comparison data access on a :class:`StudyStore` (which it does not own)."""

    def __init__(self, store: StudyStore):
        self.store = store
        self._plans = LruMap(PLAN_CACHE_SIZE)  # subject id → SubjectPlan of PairTrialViews
        self.adaptive = AdaptiveTrials(self)

    def insert_pair_study(self, *, name: str, database_id: int, design: str,
                          judgements_per_pair: int, session_size: int, n_training: int,
                          n_repeats: int, seed: int, settings: PairSettings,
                          plan: dict[str, Sequence[PlannedPair]],
                          adaptive: adaptive_pairs.AdaptivePlan | None = None
                          ) -> tuple[int, str, dict[str, str]]:
        """Store a planned pairs study in one transaction (``plan``: subject label → pairs in
        order; ``adaptive``: the pairs after them are chosen live). Returns (study id, admin
        token, {subject label: token})."""
        with self.store._write() as conn:  # the store's write queue (same package)
            study_id, admin, tokens = study_setup.store_study(
                conn, name=name, database_id=database_id, scale=(0.0, 1.0, 1.0),
                labels=["left", "right"], design=design, ratings_per_image=judgements_per_pair,
                session_size=session_size, n_training=n_training, n_repeats=n_repeats,
                seed=seed, plan={label: [PlannedTrial(p.left, p.kind, p.session, p.note)
                                         for p in pairs] for label, pairs in plan.items()})
            conn.execute(insert(PairStudy).values(
                study_id=study_id, allow_ties=settings.allow_ties, group_by=settings.group_by,
                n_pairs=settings.n_pairs, n_left_out=settings.n_left_out))
            ids = study_setup.image_ids(conn, database_id)
            trial_ids = {(label, pos): tid for tid, label, pos in conn.execute(
                select(Trial.id, Subject.label, Trial.position).join(
                    Subject, Subject.id == Trial.subject_id).where(Subject.study_id == study_id))}
            rows = []
            for label, pairs in plan.items():
                for pos, p in enumerate(pairs):
                    if p.right not in ids or p.right == p.left:
                        raise StudyError(f"planned pair ({p.left!r}, {p.right!r}) of {label}: "
                                         "the right image is unknown or the left one")
                    rows.append({"trial_id": trial_ids[(label, pos)],
                                 "right_image_id": ids[p.right]})
            for chunk in chunks(rows, study_setup.CHUNK):
                conn.execute(insert(PairTrial), list(chunk))
            if adaptive is not None:
                adaptive_pairs.store_adaptive(conn, study_id, adaptive, ids)
        return study_id, admin, tokens

    def settings(self, study_id: int) -> PairSettings:
        """The pairs settings of a study (StudyError if it is not a pairs study)."""
        with self.store.engine.connect() as conn:
            r = conn.execute(select(PairStudy.__table__).where(
                PairStudy.study_id == study_id)).first()
        if r is None:
            raise StudyError(f"study {study_id} is not a paired-comparison study")
        return PairSettings(allow_ties=bool(r.allow_ties), group_by=r.group_by,
                            n_pairs=int(r.n_pairs), n_left_out=int(r.n_left_out))

    # A subject's trials -----------------------------------------------------------------------
    def _plan(self, conn: Connection, subject_id: int) -> SubjectPlan:
        plan = self._plans.get(subject_id)
        if plan is not None:
            return plan
        bounds = {n: (a, b) for n, a, b in conn.execute(select(
            StudySession.number, StudySession.first_position, StudySession.last_position)
            .where(StudySession.subject_id == subject_id))}
        return self._extend_plan(conn, subject_id, SubjectPlan.of((), (), bounds))

    def _extend_plan(self, conn: Connection, subject_id: int, plan: SubjectPlan) -> SubjectPlan:
        """``plan`` with the subject's trials after it read from the store (an adaptive
        study's plan grows as its trials are chosen); cached when not empty."""
        rows = conn.execute(_PLAN_QUERY, {"subject": subject_id, "start": plan.total}).all()
        if not rows:
            return plan
        if [r.position for r in rows] != list(range(plan.total, plan.total + len(rows))):
            raise StudyError(f"subject {subject_id}: pair trial positions are not 0..n-1")
        trials = tuple(PairTrialView(
            id=r.id, position=r.position, kind=r.kind, session=r.session, note=r.note,
            left_prompt=r.ltext, right_prompt=r.rtext, left_path=r.lpath, right_path=r.rpath,
            left_id=r.image_id, right_id=r.right_image_id) for r in rows)
        plan = SubjectPlan.of(plan.trials + trials,
                              plan.image_ids + tuple(r.image_id for r in rows), plan.bounds)
        self._plans.put(subject_id, plan)
        return plan

    @staticmethod
    def _done_query(subject_id: int):
        return select(func.count()).select_from(PairChoice).where(
            PairChoice.subject_id == subject_id).scalar_subquery()

    def _done(self, conn: Connection, subject_id: int) -> int:
        return int(conn.execute(select(self._done_query(subject_id))).scalar_one())

    def state(self, subject_id: int) -> SubjectState:
        """The subject's progress and current pair trial (the first one not answered)."""
        with self.store.engine.connect() as conn:
            adaptive = self.adaptive.settings(conn, subject_id)
            if adaptive is None:
                return self._plan(conn, subject_id).state(self._done(conn, subject_id))
        return self.adaptive.state(subject_id, adaptive)

    def trial(self, subject_id: int, trial_id: int) -> PairTrialView | None:
        """The subject's pair trial with this id, or None if it is not theirs."""
        plan = self._plans.get(subject_id)
        if plan is None or trial_id not in plan.positions:  # (chosen since: adaptive)
            with self.store.engine.connect() as conn:
                plan = self._extend_plan(conn, subject_id, self._plan(conn, subject_id))
        position = plan.positions.get(trial_id)
        return None if position is None else plan.trials[position]

    def submit(self, subject: SubjectRef, trial_id: int, choice: Any, submission_id: str,
               response_ms: Any = None) -> tuple[StoredChoice, bool, SubjectState]:
        """Store the subject's choice of their current pair trial; returns (stored choice,
        replayed, state after it), only after COMMIT. See the module doc for the rules."""
        if subject.study.mode != "pairs":
            raise TrialNotFound("this is a rating study: its trials take scores")
        value = check_choice(subject.study, choice)
        check_submission_id(submission_id)
        ms = check_response_ms(response_ms)
        with self.store._write() as conn:
            adaptive = self.adaptive.settings(conn, subject.id)
            if adaptive is not None:  # choices in commit order (adaptive_pairs)
                adaptive_pairs.lock_study(conn, adaptive.study_id)
            plan = self._plan(conn, subject.id)
            if trial_id not in plan.positions:  # (chosen since: adaptive)
                plan = self._extend_plan(conn, subject.id, plan)
            position = plan.positions.get(trial_id)
            if position is None:
                raise TrialNotFound(f"no trial {trial_id} for this subject")
            trial = plan.trials[position]
            now = datetime.now(UTC)
            inserted = insert_current(conn, PairChoice, {
                "trial_id": trial_id, "subject_id": subject.id, "left_image_id": trial.left_id,
                "right_image_id": trial.right_id, "choice": value, "kind": trial.kind,
                "session": trial.session, "submission_id": submission_id, "response_ms": ms,
                "created_at": now}, current=self._done_query(subject.id) == position)
            if inserted is not None:
                touch_session(conn, subject.id, plan.bounds, trial.session, position, now)
                result, replayed, done = _stored(inserted), False, position + 1
            else:  # not the current trial, a replay, or a reused submission id
                done = self._done(conn, subject.id)
                result, replayed = self._existing(conn, subject.id, trial, done,
                                                  submission_id), True
            state = plan.state(done)
        if adaptive is not None:  # committed: now the next trial
            state = self.adaptive.state(subject.id, adaptive)
        return result, replayed, state

    @staticmethod
    def _existing(conn: Connection, subject_id: int, trial: PairTrialView, done: int,
                  submission_id: str) -> StoredChoice:
        rows = conn.execute(select(_CHOICE).where(
            PairChoice.subject_id == subject_id,
            or_(PairChoice.submission_id == submission_id, PairChoice.trial_id == trial.id))).all()
        same_id = next((r for r in rows if r.submission_id == submission_id), None)
        if same_id is not None:
            if same_id.trial_id != trial.id:
                raise TrialConflict(f"submission id {submission_id!r} was already used "
                                    f"for trial {same_id.trial_id}")
            return _stored(same_id)
        answered = next((r for r in rows if r.trial_id == trial.id), None)
        if answered is not None:
            return _stored(answered)
        raise TrialConflict(f"trial {trial.id} is not the current trial (position "
                            f"{trial.position}, current {done})")

    # Admin ------------------------------------------------------------------------------------
    def progress(self, study_id: int) -> pd.DataFrame:
        """One row per subject: subject, done, total, sessions, sessions_done, last (time)."""
        with self.store.engine.connect() as conn:
            frame = study_admin.progress(conn, study_id, answers=PairChoice)
            adaptive = adaptive_pairs.study_settings(conn, study_id)
        if adaptive is not None:  # trials are chosen as they are needed: count the budget
            frame["total"] = adaptive.total
        return frame

    def choices_frame(self, study_id: int) -> pd.DataFrame:
        """Raw choices: subject, position, kind, session, prompt (of the left image), left,
        right (image names), choice, response_ms, time; by subject and trial position."""
        left, right, lp = aliased(StudyImage), aliased(StudyImage), aliased(Prompt)
        query = (select(Subject.label, Trial.position, PairChoice.kind, PairChoice.session,
                        lp.text, left.name, right.name.label("rname"), PairChoice.choice,
                        PairChoice.response_ms, PairChoice.created_at)
                 .join(Subject, Subject.id == PairChoice.subject_id)
                 .join(Trial, Trial.id == PairChoice.trial_id)
                 .join(left, left.id == PairChoice.left_image_id)
                 .join(right, right.id == PairChoice.right_image_id)
                 .outerjoin(lp, lp.id == left.prompt_id)
                 .where(Subject.study_id == study_id).order_by(Subject.label, Trial.position))
        with self.store.engine.connect() as conn:
            rows = [(*r[:9], iso_utc(r[9])) for r in conn.execute(query)]
        frame = pd.DataFrame(rows, columns=CHOICE_COLUMNS)
        return frame.astype({"response_ms": "Int64"})


def _stored(r) -> StoredChoice:
    return StoredChoice(trial_id=r.trial_id, choice=r.choice, kind=r.kind, session=r.session,
                        submission_id=r.submission_id, response_ms=r.response_ms,
                        created_at=iso_utc(r.created_at))
