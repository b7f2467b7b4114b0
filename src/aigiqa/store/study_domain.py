"""The study's rules and values, apart from SQL: errors, tokens, submission ids, scores.

What the study store (:mod:`aigiqa.store.study`) and the web app (:mod:`aigiqa.study.app`) both
check is written here once:

- a token (personal or admin link) is 16-128 characters of ``A-Z a-z 0-9 _ -``; only its sha256
  is kept (:func:`hash_token`);
- a submission id (the client's id of one rating post, which makes replays idempotent) is 1 to
  :data:`SUBMISSION_ID_MAX_LENGTH` characters matching :data:`SUBMISSION_ID_PATTERN`;
- a score is a finite number on the study's scale and its step grid (:func:`check_rating_value`);
- a choice of a pair trial is ``left``, ``right`` or, where the study allows ties, ``tie``
  (:func:`check_choice`); a response time is a whole number of milliseconds in
  [0, :data:`RESPONSE_MS_MAX`] or absent.

The dataclasses are what the store hands out: immutable, so caches never go stale.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aigiqa.errors import AigiqaError

TRIAL_KINDS = ("training", "rating", "repeat")
#: Study modes: absolute ratings (one image a trial) or paired comparisons (two images).
MODES = ("ratings", "pairs")
#: Answers of a pair trial.
CHOICES = ("left", "right", "tie")
#: Longest response time kept (one day, in ms); a page left open longer sends none.
RESPONSE_MS_MAX = 86_400_000
#: A token as links carry it (``secrets.token_urlsafe(32)`` gives 43 of these characters).
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{16,128}$"
#: Characters of a client submission id (the web app's request schema uses the same pattern).
SUBMISSION_ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"
#: Longest submission id (the width of ``ratings.submission_id``).
SUBMISSION_ID_MAX_LENGTH = 64


class StudyError(AigiqaError):
    """A study that cannot be planned, stored or served as asked."""


class TrialNotFound(StudyError):
    """No such trial for this subject (or no such subject)."""


class TrialConflict(StudyError):
    """A rating for a trial that is not the subject's current one, or a reused submission id."""


class RatingValueError(StudyError):
    """A score outside the study's scale, off its step grid, or not a finite number."""


class ChoiceValueError(RatingValueError):
    """A pair trial's choice outside left/right (/tie where allowed), or a bad response time."""


def hash_token(token: str) -> str:
    """sha256 hex digest of a token (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh unguessable URL-safe token (256 bits)."""
    return secrets.token_urlsafe(32)


def is_token(text: Any) -> bool:
    """Whether ``text`` has the shape of a token (anything else is never looked up)."""
    return isinstance(text, str) and re.fullmatch(TOKEN_PATTERN, text) is not None


def check_submission_id(submission_id: Any) -> str:
    """``submission_id`` if it is 1-64 characters of ``A-Z a-z 0-9 _ . : -``; RatingValueError
    otherwise (a trailing newline included)."""
    if not isinstance(submission_id, str) or len(submission_id) > SUBMISSION_ID_MAX_LENGTH \
            or re.fullmatch(SUBMISSION_ID_PATTERN, submission_id) is None:
        raise RatingValueError(f"submission_id must be 1-{SUBMISSION_ID_MAX_LENGTH} characters "
                               "of A-Z a-z 0-9 _ . : -")
    return submission_id


def check_rating_value(study: StudyInfo, value: Any) -> float:
    """The score as float if finite, on [lo, hi] and on the step grid; RatingValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RatingValueError(f"score must be a number, not {value!r}")
    v = float(value)
    if not math.isfinite(v) or not study.scale_lo <= v <= study.scale_hi:
        raise RatingValueError(
            f"score {value!r} is outside the scale [{study.scale_lo}, {study.scale_hi}]")
    if study.scale_step > 0:
        steps = (v - study.scale_lo) / study.scale_step
        if abs(steps - round(steps)) > 1e-6:
            raise RatingValueError(f"score {value!r} is not on the scale's step "
                                   f"{study.scale_step} from {study.scale_lo}")
    return v


def check_choice(study: StudyInfo, choice: Any) -> str:
    """``choice`` if it is ``left`` or ``right``, or ``tie`` in a study that allows ties;
    ChoiceValueError otherwise."""
    allowed = CHOICES if study.allow_ties else CHOICES[:2]
    if choice == "tie" and not study.allow_ties:
        raise ChoiceValueError("this study does not allow ties: choose left or right")
    if not isinstance(choice, str) or choice not in allowed:
        raise ChoiceValueError(f"choice {choice!r} is not one of {list(allowed)}")
    return choice


def check_response_ms(value: Any) -> int | None:
    """A response time in whole ms in [0, RESPONSE_MS_MAX], or None; ChoiceValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 <= value <= RESPONSE_MS_MAX:
        raise ChoiceValueError(f"response_ms {value!r} must be a whole number of ms in "
                               f"[0, {RESPONSE_MS_MAX}] or absent")
    return value


def iso_utc(value: datetime | None) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z`` (a naive time is taken as UTC); "" for
    None."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StudyInfo:
    """A study's settings as the app needs them."""

    id: int
    name: str
    scale_lo: float
    scale_hi: float
    scale_step: float
    labels: tuple[str, ...]
    design: str
    session_size: int
    database_root: str
    csrf_key: str
    mode: str = "ratings"  # MODES
    allow_ties: bool = False  # pairs mode: whether "tie" is an answer


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """A subject found by token: ids, label and the study's settings."""

    id: int
    label: str
    study: StudyInfo


@dataclass(frozen=True, slots=True)
class TrialView:
    """A trial as shown to its subject (no image name: it would reveal hidden repeats)."""

    id: int
    position: int
    kind: str
    session: int
    prompt: str | None
    note: str | None
    image_path: str  # relative to the database root


@dataclass(frozen=True, slots=True)
class SubjectState:
    """Where a subject stands: ratings done, trials planned, the current trial (None = done)."""

    done: int
    total: int
    sessions: int
    trial: TrialView | None
    session_start: bool  # the current trial opens its session

    @property
    def finished(self) -> bool:
        return self.trial is None


@dataclass(frozen=True, slots=True)
class StoredRating:
    """An acknowledged rating as the store keeps it."""

    trial_id: int
    value: float
    kind: str
    session: int
    submission_id: str
    created_at: str  # ISO 8601, UTC

    def as_dict(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "value": self.value, "kind": self.kind,
                "session": self.session, "submission_id": self.submission_id,
                "time": self.created_at}


@dataclass(frozen=True, slots=True)
class PlannedTrial:
    """One planned trial: image name, kind (training|rating|repeat), session, anchor note."""

    image: str
    kind: str
    session: int
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SubjectPlan:
    """A subject's fixed plan: its trials by position (views and image ids), trial id →
    position, number of sessions, session number → (first, last) position."""

    trials: tuple[TrialView, ...]
    image_ids: tuple[int, ...]
    positions: dict[int, int]
    sessions: int
    bounds: dict[int, tuple[int, int]]

    @classmethod
    def of(cls, trials: tuple[TrialView, ...], image_ids: tuple[int, ...],
           bounds: dict[int, tuple[int, int]]) -> SubjectPlan:
        """The plan of trials in position order (their image ids aligned) and session bounds."""
        return cls(trials=trials, image_ids=image_ids,
                   positions={t.id: t.position for t in trials},
                   sessions=max((t.session for t in trials), default=0), bounds=bounds)

    @property
    def total(self) -> int:
        return len(self.trials)

    def state(self, done: int) -> SubjectState:
        """The state after ``done`` ratings (the trial at position ``done``, if any): trials
        are rated strictly in order."""
        trial = self.trials[done] if done < len(self.trials) else None
        start = trial is not None and self.bounds.get(trial.session, (None,))[0] == done
        return SubjectState(done=done, total=len(self.trials), sessions=self.sessions,
                            trial=trial, session_start=start)
