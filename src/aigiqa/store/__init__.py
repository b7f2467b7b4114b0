"""The score store: the one place that talks SQL (SQLAlchemy; SQLite by default, PostgreSQL by URL).

``Base`` is the declarative base later tables (study subjects, ratings…) extend;
``make_engine`` opens a database from a path or URL; ``ScoreStore`` caches metric scores keyed by
(metric key, image content hash) plus a file-hash cache keyed by (path, size, mtime).
"""

from aigiqa.store import study_models  # noqa: F401  (registers the study tables on Base)
from aigiqa.store.engine import make_engine
from aigiqa.store.models import Base, FileHash, MetricInfo, Score
from aigiqa.store.scores import ScoreStore, StoredScore, open_store

__all__ = [
    "Base",
    "FileHash",
    "MetricInfo",
    "Score",
    "ScoreStore",
    "StoredScore",
    "make_engine",
    "open_store",
]
