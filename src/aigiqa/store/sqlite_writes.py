"""Queued writers on a SQLite database: ``BEGIN IMMEDIATE`` and a ``flock`` beside the file.

:func:`queue_sqlite_writers` sets an engine up so that a connection whose execution options
carry ``aigiqa_write=True`` begins with ``BEGIN IMMEDIATE`` (takes the write lock first and
waits for it: concurrent writers queue instead of failing on a stale read snapshot; other
connections begin with a plain ``BEGIN``). On a SQLite file it also gives a
:class:`FileWriteLock` that the writers of all threads and processes take first: they are woken
as soon as it is free, instead of SQLite's busy handler, which polls with sleeps of up to 100 ms
(a latency tail with several server processes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, event

from aigiqa.store.engine import sqlite_file

#: Execution option of a connection that writes (``conn.execution_options(aigiqa_write=True)``).
WRITE_OPTION = "aigiqa_write"


class FileWriteLock:
    """Exclusive lock of a SQLite file's writers: a thread lock, then ``flock`` of
    ``<file>.writelock`` (other processes). Released by the kernel if a process dies."""

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


def queue_sqlite_writers(engine: Engine) -> FileWriteLock | None:
    """Install the ``BEGIN``/``BEGIN IMMEDIATE`` hooks on a SQLite ``engine`` (before its first
    connection) and return the file's write lock; None for an in-memory database (hooks only)
    or another dialect (nothing installed)."""
    if engine.dialect.name != "sqlite":
        return None
    event.listen(engine, "connect", _driver_autocommit)
    event.listen(engine, "begin", _begin)
    db_file = sqlite_file(engine)
    return None if db_file is None else FileWriteLock(db_file)


def _driver_autocommit(dbapi_connection, connection_record) -> None:  # noqa: ARG001
    dbapi_connection.isolation_level = None  # the "begin" hook below emits BEGIN


def _begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
