"""The SQL of adaptive pairs studies (pair trials chosen live, :mod:`aigiqa.store.adaptive_trials`).

An adaptive study is a pairs study (``pair_studies``) with an ``adaptive_pair_studies`` row (the
budget of pairs per subject, the sampler's model) and its images' groups
(``adaptive_pair_items``). At creation only the training trials are stored; each further trial
is inserted when its subject needs it (:func:`insert_next_trial`), at the position of the
subject's answers so far. The sessions are planned at creation, by position.

Commit order: choices of an adaptive study, and its chosen trials, are written after a lock of
the study's ``pair_studies`` row (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite writers are
serialised anyway), so within a study ids are given in commit order and a process that has read
every row up to an id has missed none below it (:func:`choices_since`, :func:`trials_since`).

Functions on an open connection (a write transaction where they write).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select

from aigiqa.chunking import chunks
from aigiqa.store.study_domain import StudyError
from aigiqa.store.study_models import (
    AdaptivePairItem,
    AdaptivePairStudy,
    PairChoice,
    PairStudy,
    PairTrial,
    StudySession,
    Subject,
    Trial,
)
from aigiqa.store.study_models import Study as StudyRow
from aigiqa.store.study_setup import CHUNK
from aigiqa.store.study_writes import insert_current

#: The kind of a chosen pair trial (as the pair trials of a fixed plan: exported as such).
CHOSEN_KIND = "rating"


@dataclass(frozen=True, slots=True)
class AdaptivePlan:
    """What a new adaptive study stores: pairs per subject, sampler model, groups (image
    names, two or more a group)."""

    pairs_per_subject: int
    model: str
    groups: list[list[str]]


@dataclass(frozen=True, slots=True)
class AdaptiveSettings:
    """An adaptive pairs study: pairs per subject, sampler model, seed, training, sessions."""

    study_id: int
    pairs_per_subject: int
    model: str
    seed: int
    n_training: int
    session_size: int

    @property
    def total(self) -> int:
        """Trials of each subject: training, then the chosen pairs."""
        return self.n_training + self.pairs_per_subject

    def session_of(self, position: int) -> int:
        """The session of a position: training opens session 1, then ``session_size`` pairs
        a session (as a fixed plan cuts them, :func:`aigiqa.study.plan.order_trials`)."""
        if position < self.n_training:
            return 1
        size = self.session_size if self.session_size > 0 else max(1, self.pairs_per_subject)
        return 1 + (position - self.n_training) // size

    def bounds(self) -> dict[int, tuple[int, int]]:
        """Session number → (first, last) position."""
        out: dict[int, tuple[int, int]] = {}
        for pos in range(self.total):
            first, _ = out.get(self.session_of(pos), (pos, pos))
            out[self.session_of(pos)] = (first, pos)
        return out


def store_adaptive(conn: Connection, study_id: int, plan: AdaptivePlan,
                   ids: Mapping[str, int]) -> AdaptiveSettings:
    """Mark a just-stored pairs study adaptive: its settings, its groups (``ids``: image name
    → id) and every subject's sessions over the whole budget."""
    conn.execute(insert(AdaptivePairStudy).values(
        study_id=study_id, pairs_per_subject=plan.pairs_per_subject, model=plan.model))
    rows = [{"study_id": study_id, "image_id": ids[name], "group_no": g}
            for g, members in enumerate(plan.groups) for name in members]
    for chunk in chunks(rows, CHUNK):
        conn.execute(insert(AdaptivePairItem), list(chunk))
    settings = _settings(conn, select(StudyRow.id).where(StudyRow.id == study_id))
    subjects = list(conn.execute(select(Subject.id).where(Subject.study_id == study_id)).scalars())
    conn.execute(delete(StudySession).where(StudySession.subject_id.in_(subjects)))
    sessions = [{"subject_id": sid, "number": n, "first_position": a, "last_position": b}
                for sid in subjects for n, (a, b) in sorted(settings.bounds().items())]
    for chunk in chunks(sessions, CHUNK):
        conn.execute(insert(StudySession), list(chunk))
    return settings


def _settings(conn: Connection, study_ids) -> AdaptiveSettings | None:
    r = conn.execute(select(AdaptivePairStudy.study_id, AdaptivePairStudy.pairs_per_subject,
                            AdaptivePairStudy.model, StudyRow.seed, StudyRow.n_training,
                            StudyRow.session_size)
                     .join(StudyRow, StudyRow.id == AdaptivePairStudy.study_id)
                     .where(AdaptivePairStudy.study_id.in_(study_ids))).first()
    return None if r is None else AdaptiveSettings(*r)


def subject_settings(conn: Connection, subject_id: int) -> AdaptiveSettings | None:
    """The adaptive settings of the subject's study, or None (a fixed plan)."""
    return _settings(conn, select(Subject.study_id).where(Subject.id == subject_id))


def study_settings(conn: Connection, study_id: int) -> AdaptiveSettings | None:
    """The adaptive settings of a study, or None (a fixed plan, or a ratings study)."""
    return _settings(conn, select(StudyRow.id).where(StudyRow.id == study_id))


def groups(conn: Connection, study_id: int) -> list[list[int]]:
    """The study's groups: image ids, each group in id order, groups by number."""
    out: dict[int, list[int]] = {}
    for g, image in conn.execute(select(AdaptivePairItem.group_no, AdaptivePairItem.image_id)
                                 .where(AdaptivePairItem.study_id == study_id)
                                 .order_by(AdaptivePairItem.group_no, AdaptivePairItem.image_id)):
        out.setdefault(int(g), []).append(int(image))
    return [out[g] for g in sorted(out)]


def choices_since(conn: Connection, study_id: int, after: int) -> list:
    """The study's choices with id > ``after``, in id (= commit) order: id, trial_id,
    left_image_id, right_image_id, choice, kind."""
    return conn.execute(
        select(PairChoice.id, PairChoice.trial_id, PairChoice.left_image_id,
               PairChoice.right_image_id, PairChoice.choice, PairChoice.kind)
        .where(PairChoice.id > after, (PairChoice.subject_id + 0).in_(_subjects(study_id)))
        .order_by(PairChoice.id)).all()


def _subjects(study_id: int):
    # "subject_id + 0 IN (…)", not a join: SQLite then reads the newest rows by their id range
    # (through the subject index it would read every row of the study)
    return select(Subject.id).where(Subject.study_id == study_id)


def trials_since(conn: Connection, study_id: int, after: int) -> list:
    """The study's chosen trials with id > ``after``, in id order: id, subject_id, left
    (image id), right."""
    return conn.execute(
        select(Trial.id, Trial.subject_id, Trial.image_id, PairTrial.right_image_id)
        .join(PairTrial, PairTrial.trial_id == Trial.id)
        .where(Trial.id > after, (Trial.subject_id + 0).in_(_subjects(study_id)),
               Trial.kind == CHOSEN_KIND)
        .order_by(Trial.id)).all()


def lock_study(conn: Connection, study_id: int) -> None:
    """Take the study's row lock until the transaction ends (PostgreSQL; nothing on SQLite,
    whose writers hold the database's write lock)."""
    conn.execute(select(PairStudy.study_id).where(PairStudy.study_id == study_id)
                 .with_for_update())


def insert_next_trial(conn: Connection, settings: AdaptiveSettings, subject_id: int,
                      position: int, left: int, right: int) -> int | None:
    """Insert the subject's trial at ``position`` (left, right: image ids) if it is still the
    next one: the subject has exactly ``position`` trials and ``position`` answers. Returns the
    new trial id, or None when another request inserted it (or answered) first."""
    if left == right or not settings.n_training <= position < settings.total:
        raise StudyError(f"subject {subject_id}: no chosen trial ({left}, {right}) at "
                         f"position {position}")
    lock_study(conn, settings.study_id)
    trials = select(func.count()).select_from(Trial).where(
        Trial.subject_id == subject_id).scalar_subquery()
    answers = select(func.count()).select_from(PairChoice).where(
        PairChoice.subject_id == subject_id).scalar_subquery()
    row = insert_current(conn, Trial, {
        "subject_id": subject_id, "image_id": left, "position": position, "kind": CHOSEN_KIND,
        "session": settings.session_of(position), "note": None},
        current=(trials == position) & (answers == position))
    if row is None:
        return None
    conn.execute(insert(PairTrial).values(trial_id=row.id, right_image_id=right))
    return int(row.id)
