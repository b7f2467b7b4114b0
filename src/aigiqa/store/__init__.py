"""The store: the one place that talks SQL (SQLAlchemy; SQLite by default, PostgreSQL by URL).

``make_engine`` opens a database from a path or URL; ``ScoreStore`` caches metric scores keyed
by (metric key, image content hash) plus a file-hash cache keyed by (path, size, mtime), in the
tables of ``ScoreBase``. The study tables (``aigiqa.store.study_models.StudyBase``) belong to
``aigiqa.store.study.StudyStore``; each store creates only its own tables, and a file may hold
both.
"""

from aigiqa.store.engine import make_engine
from aigiqa.store.score_models import FileHash, MetricInfo, Score, ScoreBase
from aigiqa.store.scores import ScoreStore, StoredScore, open_store

__all__ = [
    "FileHash",
    "MetricInfo",
    "Score",
    "ScoreBase",
    "ScoreStore",
    "StoredScore",
    "make_engine",
    "open_store",
]
