"""Tables of the subjective study: images and their metadata, studies, subjects, trials, ratings,
and the paired-comparison mode's additions (``pair_studies``, ``pair_trials``, ``pair_choices``).

Normalised just enough: a database's images reference shared ``prompts`` and ``generators`` rows;
hyper-parameters are (image, name, value) rows. A study plans ``trials`` (subject, image,
position, kind, session); a subject's ``ratings`` are unique per trial and per client submission
id, which makes replays idempotent. Tokens are never stored, only their sha256.

A paired-comparison study is a ``studies`` row with a ``pair_studies`` row (its settings); each of
its trials has a ``pair_trials`` row naming the right-hand image (the left one is
``trials.image_id``), and its answers are ``pair_choices`` (unique per trial and per client
submission id, as ratings). An adaptive pairs study (pairs chosen live from the choices so far)
also has an ``adaptive_pair_studies`` row and its images' groups in ``adaptive_pair_items``.
New tables only: a store made before them opens unchanged.

No table here is shared with the score store (``score_models``): each store creates only its own.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aigiqa.store.study_domain import SUBMISSION_ID_MAX_LENGTH


class StudyBase(DeclarativeBase):
    """Declarative base of the study tables; ``StudyBase.metadata.create_all(engine)`` makes
    them (only them: the score tables are on :class:`aigiqa.store.score_models.ScoreBase`)."""


class StudyDatabase(StudyBase):
    """An image database known to the study tool: its registry name and folder."""

    __tablename__ = "study_databases"
    __table_args__ = (UniqueConstraint("name", "root", name="uq_study_databases_name_root"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    root: Mapped[str] = mapped_column(String(4096))
    score_lo: Mapped[float | None] = mapped_column(Double, nullable=True)
    score_hi: Mapped[float | None] = mapped_column(Double, nullable=True)


class Prompt(StudyBase):
    """A text prompt, shared by the images generated from it (unique by sha256 of the text)."""

    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)


class Generator(StudyBase):
    """A text-to-image model name."""

    __tablename__ = "generators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)


class StudyImage(StudyBase):
    """One image of a database: path relative to the database root, prompt, generator, MOS."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("database_id", "name", name="uq_images_database_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    database_id: Mapped[int] = mapped_column(ForeignKey("study_databases.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(1000))
    path: Mapped[str] = mapped_column(String(4096))  # relative to the database root
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id"), nullable=True)
    generator_id: Mapped[int | None] = mapped_column(ForeignKey("generators.id"), nullable=True)
    split: Mapped[str] = mapped_column(String(50))
    mos: Mapped[float | None] = mapped_column(Double, nullable=True)  # released main target


class HyperParameter(StudyBase):
    """One generation hyper-parameter of one image (value kept as text)."""

    __tablename__ = "hyper_parameters"

    image_id: Mapped[int] = mapped_column(
        ForeignKey("images.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Study(StudyBase):
    """A planned study: scale, labels, design and the hash of its admin token."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    database_id: Mapped[int] = mapped_column(ForeignKey("study_databases.id"))
    scale_lo: Mapped[float] = mapped_column(Double)
    scale_hi: Mapped[float] = mapped_column(Double)
    scale_step: Mapped[float] = mapped_column(Double)
    labels: Mapped[str] = mapped_column(Text)  # JSON list, spread evenly over the scale
    design: Mapped[str] = mapped_column(String(20))
    ratings_per_image: Mapped[int] = mapped_column(Integer)
    session_size: Mapped[int] = mapped_column(Integer)
    n_training: Mapped[int] = mapped_column(Integer)
    n_repeats: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    admin_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_key: Mapped[str] = mapped_column(String(64))  # server secret for per-subject CSRF tokens
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Subject(StudyBase):
    """A subject of a study, known by a label and the sha256 of their personal token."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("study_id", "label", name="uq_subjects_study_label"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)


class StudySession(StudyBase):
    """One planned session of a subject: its trial positions and when it started/finished."""

    __tablename__ = "study_sessions"
    __table_args__ = (UniqueConstraint("subject_id", "number", name="uq_sessions_subject_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1-based
    first_position: Mapped[int] = mapped_column(Integer)
    last_position: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Trial(StudyBase):
    """One planned presentation: subject, image, 0-based position, kind, session, anchor note."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("subject_id", "position", name="uq_trials_subject_position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))  # study_domain.TRIAL_KINDS
    session: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # training explanation


class Rating(StudyBase):
    """One acknowledged rating: unique per trial and per (subject, client submission id)."""

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("trial_id", name="uq_ratings_trial"),
        UniqueConstraint("subject_id", "submission_id", name="uq_ratings_subject_submission"),
        Index("ix_ratings_subject", "subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    value: Mapped[float] = mapped_column(Double)
    kind: Mapped[str] = mapped_column(String(10))
    session: Mapped[int] = mapped_column(Integer)
    submission_id: Mapped[str] = mapped_column(String(SUBMISSION_ID_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StudyMos(StudyBase):
    """A MOS computed from a study's ratings by one method (one row per image and method)."""

    __tablename__ = "study_mos"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    method: Mapped[str] = mapped_column(String(30), primary_key=True)
    mos: Mapped[float] = mapped_column(Double)
    std: Mapped[float | None] = mapped_column(Double, nullable=True)
    ci95: Mapped[float | None] = mapped_column(Double, nullable=True)
    n: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PairStudy(StudyBase):
    """A paired-comparison study's settings (a row here: the study's trials are pairs)."""

    __tablename__ = "pair_studies"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    allow_ties: Mapped[bool] = mapped_column(Boolean)
    group_by: Mapped[str] = mapped_column(String(20))  # plan_pairs.GROUP_BY
    n_pairs: Mapped[int] = mapped_column(Integer)  # candidate pairs of the plan
    n_left_out: Mapped[int] = mapped_column(Integer)  # images in no pair (alone in their group)


class PairTrial(StudyBase):
    """The right-hand image of a pair trial (its left-hand image is ``trials.image_id``)."""

    __tablename__ = "pair_trials"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    right_image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))


class PairChoice(StudyBase):
    """One acknowledged choice of a pair trial (left, right or tie) and the response time the
    page measured; unique per trial and per (subject, client submission id)."""

    __tablename__ = "pair_choices"
    __table_args__ = (
        UniqueConstraint("trial_id", name="uq_pair_choices_trial"),
        UniqueConstraint("subject_id", "submission_id", name="uq_pair_choices_subject_submission"),
        Index("ix_pair_choices_subject", "subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    left_image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    right_image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    choice: Mapped[str] = mapped_column(String(5))  # study_domain.CHOICES
    kind: Mapped[str] = mapped_column(String(10))
    session: Mapped[int] = mapped_column(Integer)
    submission_id: Mapped[str] = mapped_column(String(SUBMISSION_ID_MAX_LENGTH))
    response_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdaptivePairStudy(StudyBase):
    """A pairs study whose pair trials are chosen live (``--sampler adaptive``): each subject's
    budget of pairs; its trials beyond training are inserted one at a time as they are needed."""

    __tablename__ = "adaptive_pair_studies"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    pairs_per_subject: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(20))  # the sampler's observation model


class AdaptivePairItem(StudyBase):
    """An image of an adaptive pairs study and its group (the images a pair is drawn from)."""

    __tablename__ = "adaptive_pair_items"

    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), primary_key=True
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    group_no: Mapped[int] = mapped_column(Integer)  # 0-based, in database order
