"""Tables of the score store: metric configurations, cached scores, cached file hashes.

They have their own declarative base: a score store creates these tables and no others (the
study tables are on :class:`aigiqa.store.study_models.StudyBase`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class ScoreBase(DeclarativeBase):
    """Declarative base of the score tables; ``ScoreBase.metadata.create_all(engine)`` makes
    them (only them)."""


class MetricInfo(ScoreBase):
    """One metric configuration seen by the store: its cache key and how to recreate it."""

    __tablename__ = "metrics"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    spec: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(String(50))
    options: Mapped[str] = mapped_column(Text)  # JSON of all options
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Score(ScoreBase):
    """One score of one metric configuration for one input.

    ``input_hash`` is the sha256 of the image file's bytes, or for a prompt-aware metric the
    sha256 of that hash plus the prompt. ``value`` is NULL and ``error`` set when scoring failed
    (failures are cached too). At most one row per (metric_key, input_hash).
    """

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("metric_key", "input_hash", name="uq_scores_metric_input"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    metric_key: Mapped[str] = mapped_column(
        String(200), ForeignKey("metrics.key", ondelete="CASCADE")
    )
    input_hash: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Double, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class FileHash(ScoreBase):
    """File-hash cache: absolute path → sha256 of its bytes, valid while size and mtime match.

    ``hashed_at_ns`` (wall clock when the bytes were read) guards against a file rewritten within
    the file system's timestamp granularity: a hash read too soon after the file's mtime is not
    trusted on the next run (the "racy" case) and is recomputed once.
    """

    __tablename__ = "file_hashes"

    path: Mapped[str] = mapped_column(String(4096), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    content_hash: Mapped[str] = mapped_column(String(64))
    hashed_at_ns: Mapped[int] = mapped_column(BigInteger)
