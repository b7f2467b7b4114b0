"""Opening the store's database: a plain path is a SQLite file, anything with ``://`` a URL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from aigiqa.errors import AigiqaError

#: Seconds a SQLite connection waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_S = 60.0


def make_engine(url_or_path: str | Path | None = None, **kwargs) -> Engine:
    """Create an Engine: ``None`` → in-memory SQLite, a path → SQLite file (folders created),
    a URL (``sqlite:///…``, ``postgresql+psycopg://…``) → as is.

    SQLite connections get ``journal_mode=WAL``, ``synchronous=NORMAL`` (durable against a killed
    process) and ``foreign_keys=ON`` through a connect-event hook. Extra ``kwargs`` go to
    ``sqlalchemy.create_engine``.
    """
    if url_or_path is None or str(url_or_path) in ("", ":memory:"):
        engine = create_engine(
            "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool, **kwargs
        )
    elif "://" in str(url_or_path):
        engine = create_engine(str(url_or_path), **kwargs)
    else:
        path = Path(url_or_path).expanduser().absolute()
        if path.is_dir():
            raise AigiqaError(f"{path}: the score store must be a file, not a folder")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AigiqaError(f"{path}: cannot create the store's folder ({exc})") from exc
        engine = create_engine(
            f"sqlite:///{path}", connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **kwargs
        )
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:  # noqa: ARG001
    """Connect hook: WAL journal (not for in-memory databases), NORMAL sync, foreign keys on."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "memory":
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
