"""ScoreStore: cached metric scores and cached file hashes, read and written in batches.

Scores are keyed by (metric key, input hash); failures are stored too (value NULL, error text).
Every write is its own short transaction and uses insert-on-conflict-do-nothing, so a process
killed at any point loses at most its uncommitted batch and never leaves a duplicate row.
Both dialects store the same thing: rows are written in key order (concurrent PostgreSQL writers
cannot deadlock), a non-finite value is stored as a failure (SQLite would turn NaN into NULL), NUL
characters in error texts are escaped (PostgreSQL text cannot hold them), and names too long for
their column are refused on SQLite too.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, String, Table, delete, func, insert, select
from sqlalchemy.exc import DBAPIError

from aigiqa.chunking import chunks
from aigiqa.digests import sha256_of
from aigiqa.errors import AigiqaError
from aigiqa.store.engine import check_sqlite_file, make_engine, sqlite_file, sqlite_path
from aigiqa.store.score_models import FileHash, MetricInfo, Score, ScoreBase

if TYPE_CHECKING:
    from aigiqa.metrics.base import Metric

T = TypeVar("T")

#: Parameters per IN (...) list or multi-row statement; below SQLite's oldest limit of 999.
CHUNK = 500
#: A file hashed less than this long after its mtime is re-hashed on the next run (a rewrite
#: within the file system's timestamp granularity would otherwise keep the same size and mtime).
RACY_NS = 2_000_000_000
#: Hash files in threads (hashlib releases the GIL) when more than this many need hashing.
THREADED_HASHING_MIN = 16


@dataclass(frozen=True, slots=True)
class StoredScore:
    """A cached score: ``value`` or, for a failure, ``value=None`` and the ``error`` text."""

    value: float | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.value is None


def prompt_input_hash(content_hash: str, prompt: str) -> str:
    """Input hash of an (image, prompt) pair for prompt-aware metrics: sha256 of both."""
    return hashlib.sha256(f"{content_hash}\0{prompt}".encode()).hexdigest()


def _sql(action: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Method decorator: a database error becomes one AigiqaError naming the store."""

    def wrap(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def inner(self: ScoreStore, *args: Any, **kwargs: Any) -> T:
            try:
                return method(self, *args, **kwargs)
            except DBAPIError as exc:
                raise self._error(action, exc) from exc

        return inner

    return wrap


class ScoreStore:
    """The score cache on one database (SQLite file, in-memory SQLite or a SQLAlchemy URL).

    Create with a path, a URL, ``None`` (in memory) or an existing ``engine``; the score tables
    (``ScoreBase``: no study table) are created if missing. Use as a context manager or call
    ``close()``.
    """

    def __init__(self, url_or_path: str | Path | None = None, *, engine: Engine | None = None):
        planned = None if engine is not None else sqlite_path(url_or_path)
        if planned is not None:
            check_sqlite_file(planned)  # before make_engine creates anything
        self.engine = engine if engine is not None else make_engine(url_or_path)
        self.file = sqlite_file(self.engine)
        if self.file is not None and self.file != planned:
            check_sqlite_file(self.file)
        try:
            ScoreBase.metadata.create_all(self.engine)
        except DBAPIError as exc:
            self.engine.dispose()
            raise self._error("opening it", exc) from exc

    def _error(self, action: str, exc: DBAPIError) -> AigiqaError:
        """One line naming the store, what failed and what to do; nothing stored is touched."""
        text = (str(exc.orig or exc).strip().splitlines() or [type(exc).__name__])[0]
        where = self.file or self.engine.url.render_as_string(hide_password=True)
        low = text.lower()
        if "malformed" in low or "not a database" in low or "corrupt" in low:
            todo = ("the file is damaged: restore it from a backup, or move it away and run "
                    "again with a new --store (its scores are then computed again)")
        elif "readonly" in low or "read-only" in low or "unable to open" in low:
            todo = "make the file and its folder writable, or choose another --store"
        else:
            todo = "scores committed before this are kept; fix the cause and run again"
        return AigiqaError(f"{where}: the score store failed while {action} ({text}); {todo}")

    def __repr__(self) -> str:
        return f"ScoreStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Metrics ------------------------------------------------------------------------------------
    @_sql("recording a metric")
    def register_metric(self, metric: Metric) -> None:
        """Record a metric configuration (key, spec, version, options) if not known yet."""
        row = {
            "key": metric.key,
            "name": metric.name,
            "spec": metric.spec,
            "version": str(metric.version),
            "options": json.dumps(metric.options, sort_keys=True, default=str),
        }
        _check_lengths(MetricInfo.__table__, row, f"metric {metric.spec!r}")
        with self.engine.begin() as conn:
            _insert_ignore(conn, MetricInfo.__table__, [row], ["key"])

    # File hashes --------------------------------------------------------------------------------
    @_sql("looking up file hashes")
    def content_hashes(
        self,
        paths: Sequence[str | Path],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[str | None], dict[int, str]]:
        """sha256 of each file's bytes, from the file-hash cache where size and mtime match.

        Returns (hashes, errors): ``hashes[i]`` is None where the file cannot be read, and
        ``errors[i]`` then says why. Only files that are new or changed are read; ``progress``
        is called with the number of paths done after each chunk.
        """
        abspaths = [os.path.abspath(p) for p in paths]
        hashes: list[str | None] = [None] * len(abspaths)
        errors: dict[int, str] = {}
        for chunk_start in range(0, len(abspaths), CHUNK):
            indices = range(chunk_start, min(chunk_start + CHUNK, len(abspaths)))
            stats: dict[int, os.stat_result] = {}
            for i in indices:
                try:
                    st = os.stat(abspaths[i])
                except FileNotFoundError:
                    errors[i] = f"{abspaths[i]}: image file not found"
                    continue
                except OSError as exc:
                    errors[i] = f"{abspaths[i]}: cannot read file ({exc.strerror or exc})"
                    continue
                if not stat.S_ISREG(st.st_mode):
                    errors[i] = f"{abspaths[i]}: not a regular file"
                    continue
                stats[i] = st
            wanted = list({abspaths[i] for i in stats})
            with self.engine.connect() as conn:
                known = {
                    row.path: row
                    for row in conn.execute(
                        select(
                            FileHash.path,
                            FileHash.size,
                            FileHash.mtime_ns,
                            FileHash.content_hash,
                            FileHash.hashed_at_ns,
                        ).where(FileHash.path.in_(wanted))
                    )
                }
            todo: dict[str, os.stat_result] = {}
            for i, st in stats.items():
                row = known.get(abspaths[i])
                if (
                    row is not None
                    and row.size == st.st_size
                    and row.mtime_ns == st.st_mtime_ns
                    and row.hashed_at_ns - row.mtime_ns > RACY_NS
                ):
                    hashes[i] = row.content_hash
                else:
                    todo[abspaths[i]] = st
            if todo:
                fresh, failed = self._hash_files(todo)
                for i in stats:
                    path = abspaths[i]
                    if path in fresh:
                        hashes[i] = fresh[path]["content_hash"]
                    elif path in failed:
                        errors[i] = failed[path]
            if progress is not None:
                progress(len(indices))
        return hashes, errors

    def _hash_files(
        self, todo: dict[str, os.stat_result]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Hash files, write them to the file-hash cache; return (rows by path, errors by path)."""
        paths = list(todo)

        def one(path: str) -> str | OSError:
            try:
                return sha256_of(path)
            except OSError as exc:
                return exc

        if len(paths) > THREADED_HASHING_MIN:
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
                digests = list(pool.map(one, paths))
        else:
            digests = [one(p) for p in paths]
        hashed_at = time.time_ns()
        rows: dict[str, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        for path, digest in zip(paths, digests, strict=True):
            if isinstance(digest, OSError):
                failed[path] = f"{path}: cannot read file ({digest.strerror or digest})"
                continue
            rows[path] = {
                "path": path,
                "size": todo[path].st_size,
                "mtime_ns": todo[path].st_mtime_ns,
                "content_hash": digest,
                "hashed_at_ns": hashed_at,
            }
        if rows:
            with self.engine.begin() as conn:
                _upsert(conn, FileHash.__table__, list(rows.values()), ["path"])
        return rows, failed

    # Scores -------------------------------------------------------------------------------------
    @_sql("looking up scores")
    def lookup(self, metric_key: str, input_hashes: Iterable[str]) -> dict[str, StoredScore]:
        """Cached scores (and failures) of one metric for these input hashes, one query a chunk."""
        wanted = list(dict.fromkeys(input_hashes))
        found: dict[str, StoredScore] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(wanted, CHUNK):
                result = conn.execute(
                    select(Score.input_hash, Score.value, Score.error).where(
                        Score.metric_key == metric_key, Score.input_hash.in_(chunk)
                    )
                )
                for input_hash, value, error in result:
                    found[input_hash] = StoredScore(value, error)
        return found

    @_sql("storing scores")
    def add(self, rows: Iterable[tuple[str, str, float | None, str | None]]) -> None:
        """Store (metric_key, input_hash, value, error) rows in one transaction; a row whose key
        is already stored is left as it is (insert-on-conflict-do-nothing). A NaN or infinite
        value is stored as a failure saying so."""
        records = []
        for k, h, v, e in rows:
            if v is not None and not math.isfinite(v):
                v, e = None, f"non-finite score {v}" + (f": {e}" if e else "")
            error = None if v is not None or e is None else e.replace("\0", "\\x00")
            records.append({"metric_key": k, "input_hash": h, "value": v, "error": error})
        if not records:
            return
        records.sort(key=lambda r: (r["metric_key"], r["input_hash"]))
        with self.engine.begin() as conn:
            for chunk in chunks(records, CHUNK):
                _insert_ignore(conn, Score.__table__, list(chunk), ["metric_key", "input_hash"])

    @_sql("deleting cached failures")
    def forget_failures(self, metric_key: str, input_hashes: Iterable[str]) -> None:
        """Delete cached failures of one metric for these inputs, so they are scored again."""
        wanted = list(dict.fromkeys(input_hashes))
        with self.engine.begin() as conn:
            for chunk in chunks(wanted, CHUNK):
                conn.execute(
                    delete(Score).where(
                        Score.metric_key == metric_key,
                        Score.input_hash.in_(chunk),
                        Score.value.is_(None),
                    )
                )

    @_sql("counting scores")
    def count(self, metric_key: str | None = None, *, failed: bool | None = None) -> int:
        """Number of stored scores, optionally of one metric and only failures/successes."""
        query = select(func.count()).select_from(Score)
        if metric_key is not None:
            query = query.where(Score.metric_key == metric_key)
        if failed is not None:
            query = query.where(Score.value.is_(None) if failed else Score.value.is_not(None))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def open_store(store: ScoreStore | str | Path | Engine | None) -> ScoreStore:
    """A ScoreStore from a store, a path, a URL, an Engine or None (in-memory SQLite)."""
    if isinstance(store, ScoreStore):
        return store
    if isinstance(store, Engine):
        return ScoreStore(engine=store)
    if store is not None and not isinstance(store, str | Path):
        raise AigiqaError(f"store must be a path, a URL or a ScoreStore, not {type(store)!r}")
    return ScoreStore(store)


def _dialect_insert(conn: Connection, table: Table):
    """The dialect's INSERT construct with ON CONFLICT support, or None for other dialects."""
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        return None
    return dialect_insert(table)


def _check_lengths(table: Table, row: dict[str, Any], what: str) -> None:
    """Refuse a text longer than its VARCHAR column (PostgreSQL would, SQLite would not)."""
    for name, value in row.items():
        column_type = table.c[name].type
        if (isinstance(column_type, String) and column_type.length is not None
                and isinstance(value, str) and len(value) > column_type.length):
            raise AigiqaError(
                f"{what}: {name} is {len(value)} characters long; the store allows at most "
                f"{column_type.length}"
            )


def _by_key(rows: list[dict], keys: list[str]) -> list[dict]:
    """Rows with one row per key (the last wins), in key order: concurrent transactions then
    take row locks in the same order and cannot deadlock each other on PostgreSQL."""
    unique = {tuple(row[k] for k in keys): row for row in rows}
    return [unique[key] for key in sorted(unique)]


def _insert_ignore(conn: Connection, table: Table, rows: list[dict], keys: list[str]) -> None:
    """Insert rows, skipping any whose ``keys`` columns are already present (the first of
    several rows with one key wins)."""
    rows = _by_key(list(reversed(rows)), keys)
    stmt = _dialect_insert(conn, table)
    if stmt is not None:
        conn.execute(stmt.on_conflict_do_nothing(index_elements=keys), rows)
        return
    # Portable fallback (inside the caller's transaction): insert only the missing keys.
    cols = [table.c[k] for k in keys]
    existing = {tuple(r) for r in conn.execute(select(*cols).where(cols[0].in_(
        list({row[keys[0]] for row in rows})
    )))}
    fresh = {tuple(row[k] for k in keys): row for row in rows}
    todo = [row for key, row in fresh.items() if key not in existing]
    if todo:
        conn.execute(insert(table), todo)


def _upsert(conn: Connection, table: Table, rows: list[dict], keys: list[str]) -> None:
    """Insert rows, replacing the other columns of rows whose ``keys`` are already present (of
    several rows with one key, the last wins)."""
    rows = _by_key(rows, keys)
    stmt = _dialect_insert(conn, table)
    for chunk in chunks(rows, CHUNK):
        if stmt is not None:
            update = {c: stmt.excluded[c] for c in chunk[0] if c not in keys}
            conn.execute(
                stmt.on_conflict_do_update(index_elements=keys, set_=update), list(chunk)
            )
        else:
            key = table.c[keys[0]]
            conn.execute(delete(table).where(key.in_([row[keys[0]] for row in chunk])))
            conn.execute(insert(table), list(chunk))
