"""Opening the store's database: a plain path is a SQLite file, anything with ``://`` a URL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from aigiqa.errors import AigiqaError
from aigiqa.files import check_folder, reason

#: The first 16 bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Seconds a SQLite connection waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_S = 60.0


def make_engine(
    url_or_path: str | Path | None = None,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    **kwargs,
) -> Engine:
    """Create an Engine: ``None`` → in-memory SQLite, a path → SQLite file (folders created),
    a URL (``sqlite:///…``, ``postgresql+psycopg://…``) → as is (``postgres://`` and
    ``postgresql://`` get the psycopg 3 driver). No ``pool_pre_ping`` by default: it would cost a
    round trip per checkout; pass ``pool_pre_ping=True`` where a server restart must go unnoticed.

    SQLite connections get ``journal_mode=WAL``, ``synchronous=NORMAL`` (durable against a killed
    process) and ``foreign_keys=ON`` through a connect-event hook. Extra ``kwargs`` go to
    ``sqlalchemy.create_engine``. ``pool_size``/``max_overflow`` size the connection pool of a
    file or server database; an in-memory SQLite database has one shared connection and
    ignores them.
    """
    pool = {k: v for k, v in (("pool_size", pool_size), ("max_overflow", max_overflow))
            if v is not None}
    if _in_memory(url_or_path):
        engine = create_engine(
            "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool, **kwargs
        )
    elif "://" in str(url_or_path):
        url = _with_driver(str(url_or_path))
        try:
            engine = create_engine(url, **pool, **kwargs)
        except ModuleNotFoundError as exc:
            raise AigiqaError(
                f"{_hide_password(url)}: the database driver {exc.name!r} is not installed "
                "(for PostgreSQL: pip install 'psycopg[binary]')"
            ) from exc
        except ArgumentError as exc:
            raise AigiqaError(f"{_hide_password(url)}: not a database URL ({exc})") from exc
    else:
        path = Path(url_or_path).expanduser().absolute()
        if path.is_dir():
            raise AigiqaError(f"{path}: the score store must be a file, not a folder")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            check_folder(path.parent, "the database's folder")  # names a file in the way
            raise AigiqaError(f"{path}: cannot create the database's folder ({reason(exc)})") \
                from exc
        engine = create_engine(
            f"sqlite:///{path}", connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **pool, **kwargs
        )
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def check_sqlite_file(path: Path, what: str = "the score store", option: str = "--store") -> None:
    """Raise AigiqaError naming ``path`` unless it is a SQLite file (or not there yet) that this
    process can write, in a folder it can write in (WAL creates ``-wal``/``-shm`` files beside
    it). Nothing is changed: a file that is not a database is left as it is, never replaced."""
    if path.exists() and not path.is_file():
        raise AigiqaError(f"{path}: {what} must be a SQLite file, and this is not a regular file; "
                          f"choose another {option}")
    check_folder(path.parent, f"the folder of {what}", option)  # SQLite's WAL files go there
    if not path.exists():
        return
    try:
        with open(path, "r+b") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise AigiqaError(f"{path}: {what} cannot be written ({reason(exc)}); make it writable or "
                          f"choose another {option}") from None
    if head and head != SQLITE_HEADER:
        raise AigiqaError(f"{path}: not a SQLite database, so it cannot be {what} (the file was "
                          f"left unchanged); move it away or choose another {option}")


def sqlite_path(url_or_path: str | Path | None) -> Path | None:
    """The SQLite file a plain path names (absolute), as ``make_engine`` opens it; None for a
    URL or an in-memory database."""
    if _in_memory(url_or_path) or "://" in str(url_or_path):
        return None
    return Path(url_or_path).expanduser().absolute()  # type: ignore[arg-type]


def sqlite_file(engine: Engine) -> Path | None:
    """The database file of a SQLite engine; None for an in-memory one or another dialect."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        return None
    return None if database.startswith("file:") else Path(database)


def _in_memory(url_or_path: str | Path | None) -> bool:
    """In-memory SQLite: None, "", ":memory:", "sqlite://" or "sqlite:///:memory:"."""
    text = "" if url_or_path is None else str(url_or_path)
    return text in ("", ":memory:", "sqlite://", "sqlite:///:memory:")


def _with_driver(url: str) -> str:
    """``postgres://`` and ``postgresql://`` (no driver named) → the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _hide_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


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
