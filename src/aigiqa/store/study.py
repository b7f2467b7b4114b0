"""StudyStore: the one place that reads and writes the subjective study's tables.

Everything goes through SQLAlchemy constructs (no SQL built from strings) and works on SQLite and
PostgreSQL. Rules the web app relies on:

- a subject's trials are rated strictly in order: the current trial is the one at position
  ``count(ratings of the subject)``; only it may be rated (another trial → :class:`TrialConflict`);
- a rating is unique per trial and per (subject, submission id): a replay (same submission id or
  same trial) inserts nothing and returns the stored rating, so the answer equals the first one;
- :meth:`StudyStore.submit_rating` returns only after its transaction has committed;
- on SQLite every write transaction is ``BEGIN IMMEDIATE`` (takes the write lock first and waits
  for it), so concurrent raters queue instead of failing on a stale read snapshot; on a SQLite
  file the store's writers (all threads and processes) first queue on an exclusive ``flock`` of
  ``<file>.writelock``, woken as soon as it is free, instead of SQLite's busy handler, which
  polls with sleeps of up to 100 ms (a latency tail with several server processes).

Connections: a pool of ``pool_size`` connections kept open (no overflow connections opened and
closed under load: on PostgreSQL each costs a SCRAM authentication).

Tokens are stored as sha256 hex digests only; lookups go through the unique index on the digest
and the match is confirmed with ``hmac.compare_digest`` (a timing difference could only reveal
bits of a digest, never of the token).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from aigiqa.errors import AigiqaError
from aigiqa.store.engine import make_engine, sqlite_file
from aigiqa.store.models import Base
from aigiqa.store.study_models import (
    TRIAL_KINDS,
    Generator,
    HyperParameter,
    Prompt,
    Rating,
    StudyDatabase,
    StudyImage,
    StudyMos,
    StudySession,
    Subject,
    Trial,
)
from aigiqa.store.study_models import Study as StudyRow

CHUNK = 500
#: Pooled connections kept per StudyStore (and process) by default.
POOL_SIZE = 16
#: Extra connections allowed beyond the pool (opened and closed on demand) as a safety valve.
POOL_OVERFLOW = 4
#: Subjects (token → ids, study settings) kept per process.
SUBJECT_CACHE_SIZE = 4096
#: Subjects' plans (their trials: image path, prompt …; session bounds) kept per process.
PLAN_CACHE_SIZE = 1024
_RATING = Rating.__table__
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_SUBMISSION_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class StudyError(AigiqaError):
    """A study that cannot be planned, stored or served as asked."""


class TrialNotFound(StudyError):
    """No such trial for this subject (or no such subject)."""


class TrialConflict(StudyError):
    """A rating for a trial that is not the subject's current one, or a reused submission id."""


class RatingValueError(StudyError):
    """A score outside the study's scale, off its step grid, or not a finite number."""


def hash_token(token: str) -> str:
    """sha256 hex digest of a token (what the store keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh unguessable URL-safe token (256 bits)."""
    return secrets.token_urlsafe(32)


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
class _SubjectPlan:
    """A subject's fixed plan: its trials by position (views and image ids), trial id →
    position, number of sessions, session number → (first, last) position."""

    trials: tuple[TrialView, ...]
    image_ids: tuple[int, ...]
    positions: dict[int, int]
    sessions: int
    bounds: dict[int, tuple[int, int]]

    @property
    def total(self) -> int:
        return len(self.trials)

    def state(self, done: int) -> SubjectState:
        """The state after ``done`` ratings (the trial at position ``done``, if any)."""
        trial = self.trials[done] if done < len(self.trials) else None
        start = trial is not None and self.bounds.get(trial.session, (None,))[0] == done
        return SubjectState(done=done, total=len(self.trials), sessions=self.sessions,
                            trial=trial, session_start=start)


class _Lru:
    """A small thread-safe LRU map (entries never go stale: what it holds is immutable)."""

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


@dataclass(frozen=True, slots=True)
class PlannedTrial:
    """One planned trial: image name, kind (training|rating|repeat), session, anchor note."""

    image: str
    kind: str
    session: int
    note: str | None = None


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _FileWriteLock:
    """Exclusive lock of a SQLite file's writers: a thread lock, then ``flock`` of a lock file
    beside the database (other processes). Released by the kernel if a process dies."""

    def __init__(self, db_file: Path):
        self.path = db_file.with_name(db_file.name + ".writelock")
        self._thread_lock = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): this process's threads only
            fcntl = None
        with self._thread_lock:
            if fcntl is None:
                yield
                return
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _sqlite_autocommit_driver(dbapi_connection, connection_record) -> None:  # noqa: ARG001
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" hook below emits BEGIN


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("aigiqa_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class StudyStore:
    """Data access of the study tables on one database (path, URL, or an Engine it does not own).

    Tables (all of ``Base``) are created if missing. Use as a context manager or ``close()``.
    """

    def __init__(self, url_or_path: str | Path | None = None, *, engine: Engine | None = None,
                 pool_size: int = POOL_SIZE):
        self._owns_engine = engine is None
        self._studies: dict[int, StudyInfo] = {}
        self._by_token = _Lru(SUBJECT_CACHE_SIZE)  # token digest → SubjectRef
        self._plans = _Lru(PLAN_CACHE_SIZE)  # subject id → _SubjectPlan
        self.engine = engine if engine is not None else make_engine(
            url_or_path, pool_size=pool_size, max_overflow=POOL_OVERFLOW)
        self._write_lock: _FileWriteLock | None = None
        if self.engine.dialect.name == "sqlite" and self._owns_engine:
            event.listen(self.engine, "connect", _sqlite_autocommit_driver)
            event.listen(self.engine, "begin", _sqlite_begin)
            db_file = sqlite_file(self.engine)
            if db_file is not None:
                self._write_lock = _FileWriteLock(db_file)
        Base.metadata.create_all(self.engine)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()
        if self._write_lock is not None:
            self._write_lock.close()

    def warm_up(self, n: int) -> None:
        """Open up to ``n`` pooled connections now (first requests then find them open)."""
        conns = []
        try:
            for _ in range(n):
                conns.append(self.engine.connect())
                conns[-1].exec_driver_sql("SELECT 1")
        finally:
            for conn in conns:
                conn.close()

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends (BEGIN IMMEDIATE on SQLite, after
        the file's write lock)."""
        lock = nullcontext() if self._write_lock is None else self._write_lock.hold()
        with self.engine.connect() as conn:
            conn.execution_options(aigiqa_write=True)
            with lock, conn.begin():
                yield conn

    # Databases and images ---------------------------------------------------------------------
    def add_database(self, db) -> int:
        """Store a :class:`~aigiqa.databases.base.Database` (images, prompts, generators,
        hyper-parameters, released main target); returns its id. Known (name, root): reused,
        new images added."""
        root = str(Path(db.root).absolute())
        lo, hi = db.info.score_range
        main = db.info.main_target
        with self._write() as conn:
            db_id = conn.execute(select(StudyDatabase.id).where(
                StudyDatabase.name == db.info.name, StudyDatabase.root == root)).scalar()
            if db_id is None:
                db_id = conn.execute(insert(StudyDatabase).values(
                    name=db.info.name, root=root, score_lo=float(lo), score_hi=float(hi)
                ).returning(StudyDatabase.id)).scalar_one()
            prompt_ids = self._ensure_prompts(conn, [r.prompt for r in db if r.prompt])
            gen_ids = self._ensure_generators(conn, [r.generator for r in db if r.generator])
            known = set(conn.execute(select(StudyImage.name).where(
                StudyImage.database_id == db_id)).scalars())
            rows = []
            for rec in db:
                if rec.name in known:
                    continue
                path = Path(rec.path)
                try:
                    rel = path.absolute().relative_to(root).as_posix()
                except ValueError:
                    raise StudyError(f"{db.info.name}: image {rec.name!r} at {path} lies "
                                     f"outside the database root {root}") from None
                mos = rec.targets.get(main)
                rows.append({
                    "database_id": db_id, "name": rec.name, "path": rel,
                    "prompt_id": prompt_ids.get(rec.prompt) if rec.prompt else None,
                    "generator_id": gen_ids.get(rec.generator) if rec.generator else None,
                    "split": rec.split,
                    "mos": None if mos is None or not math.isfinite(mos) else float(mos),
                })
            for chunk in _chunks(rows):
                conn.execute(insert(StudyImage), list(chunk))
            ids = self._image_ids(conn, db_id)
            hyper = [{"image_id": ids[rec.name], "name": str(k), "value": str(v)}
                     for rec in db if rec.name not in known for k, v in rec.hyper.items()]
            for chunk in _chunks(hyper):
                conn.execute(insert(HyperParameter), list(chunk))
        return int(db_id)

    @staticmethod
    def _ensure_prompts(conn: Connection, texts: list[str]) -> dict[str, int]:
        by_hash = {hashlib.sha256(t.encode("utf-8")).hexdigest(): t for t in texts}
        found: dict[str, int] = {}
        for chunk in _chunks(list(by_hash)):
            for h, pid in conn.execute(select(Prompt.sha256, Prompt.id).where(
                    Prompt.sha256.in_(chunk))):
                found[h] = pid
        fresh = [{"sha256": h, "text": t} for h, t in by_hash.items() if h not in found]
        for chunk in _chunks(fresh):
            conn.execute(insert(Prompt), list(chunk))
            for h, pid in conn.execute(select(Prompt.sha256, Prompt.id).where(
                    Prompt.sha256.in_([r["sha256"] for r in chunk]))):
                found[h] = pid
        return {t: found[h] for h, t in by_hash.items()}

    @staticmethod
    def _ensure_generators(conn: Connection, names: list[str]) -> dict[str, int]:
        wanted = list(dict.fromkeys(names))
        found = dict(conn.execute(select(Generator.name, Generator.id).where(
            Generator.name.in_(wanted))).all()) if wanted else {}
        fresh = [{"name": n} for n in wanted if n not in found]
        if fresh:
            conn.execute(insert(Generator), fresh)
            found = dict(conn.execute(select(Generator.name, Generator.id).where(
                Generator.name.in_(wanted))).all())
        return found

    @staticmethod
    def _image_ids(conn: Connection, db_id: int) -> dict[str, int]:
        return dict(conn.execute(select(StudyImage.name, StudyImage.id).where(
            StudyImage.database_id == db_id)).all())

    # Studies ----------------------------------------------------------------------------------
    def insert_study(self, *, name: str, database_id: int, scale: tuple[float, float, float],
                     labels: Sequence[str], design: str, ratings_per_image: int,
                     session_size: int, n_training: int, n_repeats: int, seed: int,
                     plan: dict[str, list[PlannedTrial]]) -> tuple[int, str, dict[str, str]]:
        """Store a planned study in one transaction; ``plan`` maps subject label → trials in
        order. Returns (study id, admin token, {subject label: token}); tokens are not stored."""
        admin_token = new_token()
        tokens = {label: new_token() for label in plan}
        lo, hi, step = scale
        with self._write() as conn:
            study_id = conn.execute(insert(StudyRow).values(
                name=name, database_id=database_id, scale_lo=lo, scale_hi=hi, scale_step=step,
                labels=json.dumps(list(labels)), design=design,
                ratings_per_image=ratings_per_image, session_size=session_size,
                n_training=n_training, n_repeats=n_repeats, seed=seed,
                admin_token_hash=hash_token(admin_token), csrf_key=secrets.token_hex(32),
            ).returning(StudyRow.id)).scalar_one()
            image_ids = self._image_ids(conn, database_id)
            for label, trials in plan.items():
                subject_id = conn.execute(insert(Subject).values(
                    study_id=study_id, label=label, token_hash=hash_token(tokens[label])
                ).returning(Subject.id)).scalar_one()
                rows, sessions = [], {}
                for pos, t in enumerate(trials):
                    if t.kind not in TRIAL_KINDS:
                        raise StudyError(f"trial kind {t.kind!r} is not one of {TRIAL_KINDS}")
                    if t.image not in image_ids:
                        raise StudyError(f"planned image {t.image!r} is not in the database")
                    rows.append({"subject_id": subject_id, "image_id": image_ids[t.image],
                                 "position": pos, "kind": t.kind, "session": t.session,
                                 "note": t.note})
                    first, _ = sessions.get(t.session, (pos, pos))
                    sessions[t.session] = (first, pos)
                for chunk in _chunks(rows):
                    conn.execute(insert(Trial), list(chunk))
                conn.execute(insert(StudySession), [
                    {"subject_id": subject_id, "number": n, "first_position": a,
                     "last_position": b} for n, (a, b) in sorted(sessions.items())])
        return int(study_id), admin_token, tokens

    def _study_info(self, conn: Connection, study_id: int) -> StudyInfo:
        """A study's settings (they never change once planned: cached by id)."""
        cached = self._studies.get(study_id)
        if cached is not None:
            return cached
        s = conn.execute(select(StudyRow.__table__, StudyDatabase.root.label("root")).join(
            StudyDatabase, StudyDatabase.id == StudyRow.database_id).where(
            StudyRow.id == study_id)).one()
        root = s.root
        info = StudyInfo(id=s.id, name=s.name, scale_lo=s.scale_lo, scale_hi=s.scale_hi,
                         scale_step=s.scale_step, labels=tuple(json.loads(s.labels)),
                         design=s.design, session_size=s.session_size, database_root=root,
                         csrf_key=s.csrf_key)
        self._studies[study_id] = info
        return info

    def study_ids(self) -> list[int]:
        """Ids of every stored study, oldest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(StudyRow.id).order_by(StudyRow.id)).scalars())

    def study(self, study_id: int) -> StudyInfo:
        """A study's settings (StudyError if unknown)."""
        with self.engine.connect() as conn:
            if conn.execute(select(StudyRow.id).where(StudyRow.id == study_id)).first() is None:
                raise StudyError(f"no study with id {study_id}")
            return self._study_info(conn, study_id)

    def study_by_admin_token(self, token: str) -> StudyInfo | None:
        """The study whose admin token this is, or None."""
        if not _TOKEN_RE.match(token or ""):
            return None
        digest = hash_token(token)
        with self.engine.connect() as conn:
            row = conn.execute(select(StudyRow.id, StudyRow.admin_token_hash).where(
                StudyRow.admin_token_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.admin_token_hash, digest):
                return None
            return self._study_info(conn, row.id)

    def subject_by_token(self, token: str) -> SubjectRef | None:
        """The subject whose personal token this is, or None."""
        if not _TOKEN_RE.match(token or ""):
            return None
        digest = hash_token(token)
        cached = self._by_token.get(digest)  # tokens never change: found once, kept
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            row = conn.execute(select(Subject.id, Subject.label, Subject.study_id,
                                      Subject.token_hash).where(
                Subject.token_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                return None
            ref = SubjectRef(id=row.id, label=row.label,
                             study=self._study_info(conn, row.study_id))
        self._by_token.put(digest, ref)
        return ref

    # A subject's trials -----------------------------------------------------------------------
    def state(self, subject_id: int) -> SubjectState:
        """The subject's progress and current trial (the first one not rated)."""
        with self.engine.connect() as conn:
            return self._state(conn, subject_id)

    def _plan(self, conn: Connection, subject_id: int) -> _SubjectPlan:
        """The subject's trials and sessions (fixed once planned: cached)."""
        plan = self._plans.get(subject_id)
        if plan is None:
            rows = conn.execute(
                select(Trial.id, Trial.position, Trial.kind, Trial.session, Trial.note,
                       Trial.image_id, StudyImage.path, Prompt.text)
                .join(StudyImage, StudyImage.id == Trial.image_id)
                .outerjoin(Prompt, Prompt.id == StudyImage.prompt_id)
                .where(Trial.subject_id == subject_id).order_by(Trial.position)).all()
            bounds = {n: (a, b) for n, a, b in conn.execute(select(
                StudySession.number, StudySession.first_position, StudySession.last_position)
                .where(StudySession.subject_id == subject_id))}
            if [r.position for r in rows] != list(range(len(rows))):
                raise StudyError(f"subject {subject_id}: trial positions are not 0..n-1")
            trials = tuple(TrialView(id=r.id, position=r.position, kind=r.kind,
                                     session=r.session, prompt=r.text, note=r.note,
                                     image_path=r.path) for r in rows)
            plan = _SubjectPlan(trials=trials, image_ids=tuple(r.image_id for r in rows),
                                positions={t.id: t.position for t in trials},
                                sessions=max((t.session for t in trials), default=0),
                                bounds=bounds)
            if plan.total:  # a subject id seen committed has its whole plan
                self._plans.put(subject_id, plan)
        return plan

    @staticmethod
    def _done_query(subject_id: int):
        return select(func.count()).select_from(Rating).where(
            Rating.subject_id == subject_id).scalar_subquery()

    def _done(self, conn: Connection, subject_id: int) -> int:
        return int(conn.execute(select(self._done_query(subject_id))).scalar_one())

    def _state(self, conn: Connection, subject_id: int) -> SubjectState:
        """One query (the subject's rating count) and the cached plan."""
        plan = self._plan(conn, subject_id)
        return plan.state(self._done(conn, subject_id))

    def cached_trial(self, token: str, trial_id: int) -> tuple[SubjectRef, TrialView] | None:
        """(subject, trial) from the caches alone, or None (not seen yet, or not theirs): no
        database access, safe on an event loop."""
        if not _TOKEN_RE.match(token or ""):
            return None
        subject = self._by_token.get(hash_token(token))
        plan = None if subject is None else self._plans.get(subject.id)
        position = None if plan is None else plan.positions.get(trial_id)
        return None if position is None else (subject, plan.trials[position])

    def trial(self, subject_id: int, trial_id: int) -> TrialView | None:
        """The subject's trial with this id, or None if it is not theirs."""
        plan = self._plans.get(subject_id)  # trials never change once planned
        if plan is None:
            with self.engine.connect() as conn:
                plan = self._plan(conn, subject_id)
        position = plan.positions.get(trial_id)
        return None if position is None else plan.trials[position]

    @staticmethod
    def check_value(study: StudyInfo, value: Any) -> float:
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

    def submit_rating(self, subject: SubjectRef, trial_id: int, value: Any,
                      submission_id: str) -> tuple[StoredRating, bool]:
        """Store a rating of the subject's current trial; returns (stored rating, replayed).

        Returns only after COMMIT. A replay (same submission id, or a trial already rated)
        stores nothing and returns the stored rating with ``replayed=True``. Raises
        RatingValueError (bad score or submission id), TrialNotFound (not this subject's trial),
        TrialConflict (not the current trial, or the submission id was used for another trial).
        """
        stored, replayed, _ = self.submit_and_state(subject, trial_id, value, submission_id)
        return stored, replayed

    def submit_and_state(self, subject: SubjectRef, trial_id: int, value: Any,
                         submission_id: str) -> tuple[StoredRating, bool, SubjectState]:
        """:meth:`submit_rating`, plus the subject's state read in the same transaction
        (returned only after COMMIT)."""
        v = self.check_value(subject.study, value)
        if not isinstance(submission_id, str) or not _SUBMISSION_RE.match(submission_id):
            raise RatingValueError("submission_id must be 1-64 characters of A-Z a-z 0-9 _ . : -")
        with self._write() as conn:
            plan = self._plan(conn, subject.id)
            position = plan.positions.get(trial_id)
            if position is None:
                raise TrialNotFound(f"no trial {trial_id} for this subject")
            trial = plan.trials[position]
            now = datetime.now(UTC)
            # One statement: insert only if the trial is the current one (position = count of
            # the subject's ratings) and nothing unique is taken.
            inserted = _insert_current(conn, {
                "trial_id": trial_id, "subject_id": subject.id,
                "image_id": plan.image_ids[position], "value": v, "kind": trial.kind,
                "session": trial.session, "submission_id": submission_id, "created_at": now},
                current=self._done_query(subject.id) == position)
            if inserted is not None:
                self._touch_session(conn, subject.id, trial.session, trial.position, now)
                result, replayed, done = self._stored(inserted), False, position + 1
            else:
                # Not the current trial, or the insert hit a unique constraint (a replay, a
                # concurrent submission that committed first, or a reused submission id).
                done = self._done(conn, subject.id)
                result = self._existing(conn, subject.id, trial, done, submission_id)
                replayed = True
            state = plan.state(done)
        return result, replayed, state

    def _existing(self, conn: Connection, subject_id: int, trial: TrialView, done: int,
                  submission_id: str) -> StoredRating:
        """The stored rating a non-inserting submission answers with; TrialConflict if none."""
        rows = conn.execute(select(_RATING).where(
            Rating.subject_id == subject_id,
            or_(Rating.submission_id == submission_id, Rating.trial_id == trial.id))).all()
        same_id = next((r for r in rows if r.submission_id == submission_id), None)
        if same_id is not None:
            if same_id.trial_id != trial.id:
                raise TrialConflict(f"submission id {submission_id!r} was already used "
                                    f"for trial {same_id.trial_id}")
            return self._stored(same_id)
        rated = next((r for r in rows if r.trial_id == trial.id), None)
        if rated is not None:  # rated already (trials are rated in order): a replay
            return self._stored(rated)
        raise TrialConflict(f"trial {trial.id} is not the current trial (position "
                            f"{trial.position}, current {done})")

    def _touch_session(self, conn: Connection, subject_id: int, number: int, position: int,
                       now: datetime) -> None:
        """Mark the session started (its first trial) or finished (its last); else nothing."""
        first, last = self._plan(conn, subject_id).bounds.get(number, (None, None))
        if position not in (first, last):
            return
        where = (StudySession.subject_id == subject_id, StudySession.number == number)
        values = {}
        if position == first:
            values["started_at"] = func.coalesce(StudySession.started_at, now)
        if position == last:
            values["finished_at"] = now
        conn.execute(update(StudySession).where(*where).values(**values))

    @staticmethod
    def _stored(r) -> StoredRating:
        return StoredRating(trial_id=r.trial_id, value=float(r.value), kind=r.kind,
                            session=r.session, submission_id=r.submission_id,
                            created_at=_iso(r.created_at))

    # Admin ------------------------------------------------------------------------------------
    def progress(self, study_id: int) -> pd.DataFrame:
        """One row per subject: subject, done, total, sessions, sessions_done, last (time)."""
        with self.engine.connect() as conn:
            subjects = conn.execute(select(Subject.id, Subject.label).where(
                Subject.study_id == study_id).order_by(Subject.label)).all()
            totals = dict(conn.execute(select(Trial.subject_id, func.count()).join(
                Subject, Subject.id == Trial.subject_id).where(Subject.study_id == study_id)
                .group_by(Trial.subject_id)).all())
            done = {sid: (n, last) for sid, n, last in conn.execute(
                select(Rating.subject_id, func.count(), func.max(Rating.created_at)).join(
                    Subject, Subject.id == Rating.subject_id).where(
                    Subject.study_id == study_id).group_by(Rating.subject_id))}
            sessions = {sid: (n, fin) for sid, n, fin in conn.execute(
                select(StudySession.subject_id, func.count(), func.count(
                    StudySession.finished_at)).join(Subject, Subject.id == StudySession.subject_id)
                .where(Subject.study_id == study_id).group_by(StudySession.subject_id))}
        rows = []
        for sid, label in subjects:
            n, last = done.get(sid, (0, None))
            n_sessions, finished = sessions.get(sid, (0, 0))
            rows.append({"subject": label, "done": int(n), "total": int(totals.get(sid, 0)),
                         "sessions": int(n_sessions), "sessions_done": int(finished),
                         "last": _iso(last)})
        return pd.DataFrame(rows, columns=["subject", "done", "total", "sessions",
                                           "sessions_done", "last"])

    def ratings_frame(self, study_id: int) -> pd.DataFrame:
        """Raw ratings of a study: subject, image, score, session, kind, time (ISO 8601 UTC),
        ordered by subject and trial position."""
        query = (select(Subject.label, StudyImage.name, Rating.value, Rating.session,
                        Rating.kind, Rating.created_at)
                 .join(Subject, Subject.id == Rating.subject_id)
                 .join(StudyImage, StudyImage.id == Rating.image_id)
                 .join(Trial, Trial.id == Rating.trial_id)
                 .where(Subject.study_id == study_id)
                 .order_by(Subject.label, Trial.position))
        with self.engine.connect() as conn:
            rows = [(s, i, float(v), int(n), k, _iso(t)) for s, i, v, n, k, t in
                    conn.execute(query)]
        return pd.DataFrame(rows, columns=["subject", "image", "score", "session", "kind",
                                           "time"])

    def save_mos(self, study_id: int, table: pd.DataFrame, method: str) -> int:
        """Replace the stored MOS of (study, method) by ``table`` (image, mos, std, ci95, n)."""
        with self._write() as conn:
            db_id = conn.execute(select(StudyRow.database_id).where(
                StudyRow.id == study_id)).scalar_one()
            ids = self._image_ids(conn, db_id)
            conn.execute(StudyMos.__table__.delete().where(
                StudyMos.study_id == study_id, StudyMos.method == method))
            now = datetime.now(UTC)

            def num(x) -> float | None:
                return None if x is None or not math.isfinite(float(x)) else float(x)

            rows = [{"study_id": study_id, "image_id": ids[str(r.image)], "method": method,
                     "mos": float(r.mos), "std": num(r.std), "ci95": num(r.ci95),
                     "n": int(r.n), "computed_at": now} for r in table.itertuples()]
            for chunk in _chunks(rows):
                conn.execute(insert(StudyMos), list(chunk))
        return len(rows)

    def count_ratings(self, study_id: int | None = None) -> int:
        """Number of stored ratings (of one study, or all)."""
        query = select(func.count()).select_from(Rating)
        if study_id is not None:
            query = query.join(Subject, Subject.id == Rating.subject_id).where(
                Subject.study_id == study_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _insert_current(conn: Connection, row: dict, current):
    """INSERT INTO ratings … SELECT <row> WHERE <current> ON CONFLICT DO NOTHING (any unique
    constraint), on SQLite and PostgreSQL; the inserted row (all columns), or None if nothing
    was inserted."""
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        raise StudyError(f"the study store supports SQLite and PostgreSQL, not {name}")
    columns = list(row)
    values = select(*(literal(row[c], type_=_RATING.c[c].type) for c in columns)).where(current)
    stmt = dialect_insert(Rating).from_select(columns, values).on_conflict_do_nothing()
    return conn.execute(stmt.returning(*_RATING.c)).first()
