"""A throwaway PostgreSQL cluster for tests and benchmarks: ``initdb`` in a temp dir + ``pg_ctl``.

``TempPostgres.start()`` makes a cluster in a fresh temp folder, listening on 127.0.0.1 at a free
port (password auth over TCP) and on a unix socket inside that folder, creates one database and
gives its SQLAlchemy URL (``postgresql+psycopg://…``); ``stop()`` stops the server and deletes the
folder. ``initdb`` refuses to run as root, so under root every server command runs as the system
user ``postgres`` (created if missing) through ``runuser``. Nothing here is for production data.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aigiqa.errors import AigiqaError
from aigiqa.testing.servers import free_port

#: Where Debian puts the server binaries; the newest version found wins unless one is asked for.
PG_ROOT = Path("/usr/lib/postgresql")
#: Environment variable naming a folder with initdb/pg_ctl (overrides the search).
PG_BIN_ENV = "AIGIQA_PG_BIN"
#: System user that runs the server when this process is root.
SERVER_USER = "postgres"
#: The superuser role inside the cluster (password auth over TCP).
ROLE = "aigiqa"
#: Server settings for throughput-only runs (tests): no fsync. Durable runs keep the defaults.
FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
#: Durable server settings for load runs (fsync and synchronous_commit stay on: a commit is
#: acknowledged only once its WAL is on disk): more shared buffers and WAL buffers than the
#: defaults (128MB, 4MB), no timed or WAL-size checkpoint within a run (take one with
#: ``checkpoint()`` before it), no JIT compilation (short queries only).
SERVER_SETTINGS: Mapping[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_buffers": "256MB",
    "wal_buffers": "16MB",
    "checkpoint_timeout": "30min",
    "max_wal_size": "4GB",
    "jit": "off",
}
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailable(AigiqaError):
    """A throwaway PostgreSQL cluster cannot be made or started here (the message says why)."""


def find_pg_bin(version: int | None = None) -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: $AIGIQA_PG_BIN (only it, when set), else
    /usr/lib/postgresql/<version or newest>/bin, else the folder of ``pg_ctl`` on PATH."""
    env = os.environ.get(PG_BIN_ENV)
    candidates: list[Path] = [Path(env)] if env else []
    if env:
        pass
    elif version is not None:
        candidates.append(PG_ROOT / str(version) / "bin")
    elif PG_ROOT.is_dir():
        versions = sorted(
            (p for p in PG_ROOT.iterdir() if p.name.isdigit()), key=lambda p: -int(p.name)
        )
        candidates.extend(p / "bin" for p in versions)
    on_path = shutil.which("pg_ctl")
    if on_path and version is None and not env:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    wanted = f"PostgreSQL {version}" if version else "PostgreSQL"
    raise PostgresUnavailable(
        f"{wanted} server binaries (initdb, pg_ctl) not found in "
        f"{', '.join(map(str, candidates)) or PG_ROOT}; install postgresql"
        f"{'-' + str(version) if version else ''} or set {PG_BIN_ENV}"
    )


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as: None (this user) unless root, then ``postgres``."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    try:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home",
             "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True, capture_output=True, text=True,
        )
        return pwd.getpwnam(SERVER_USER)
    except (OSError, subprocess.CalledProcessError, KeyError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise PostgresUnavailable(
            f"running as root, initdb needs a non-root user; creating user {SERVER_USER!r} "
            f"failed ({detail})"
        ) from exc


def _temp_base(user: pwd.struct_passwd | None) -> str | None:
    """Where the cluster's folder goes: the temp dir, or /tmp when the server user could not
    reach the temp dir (a root-only $TMPDIR)."""
    if user is None:
        return None
    base = Path(tempfile.gettempdir()).absolute()
    for folder in (base, *base.parents):
        if not folder.stat().st_mode & 0o001:  # no search permission for other users
            return "/tmp"
    return str(base)


@dataclass
class TempPostgres:
    """A running throwaway cluster: its folder, port, password and the first database's URL."""

    root: Path
    bin_dir: Path
    port: int
    password: str = field(repr=False)
    dbname: str
    user: pwd.struct_passwd | None = field(repr=False, default=None)
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database made at start (psycopg 3 driver, TCP on 127.0.0.1)."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL of another database of this cluster."""
        return f"postgresql+psycopg://{ROLE}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    # Life cycle ---------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        *,
        dbname: str = "aigiqa",
        version: int | None = None,
        settings: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        attempts: int = 3,
    ) -> TempPostgres:
        """Make, start and return a cluster with database ``dbname``.

        ``settings``: extra server settings (``name → value``, e.g. ``FAST_SETTINGS`` or
        ``{"max_connections": "300"}``). Raises PostgresUnavailable (with the server log's tail)
        if the binaries are missing or the server does not come up within ``timeout_s``.
        """
        _check_name(dbname)
        bin_dir = find_pg_bin(version)
        user = _server_user()
        root = Path(tempfile.mkdtemp(prefix="aigiqa-pg-", dir=_temp_base(user)))
        pg = cls(root, bin_dir, 0, secrets.token_urlsafe(24), dbname, user)
        try:
            pg._initdb()
            last: PostgresUnavailable | None = None
            for _ in range(attempts):  # the free port may be taken between probe and bind
                pg.port = free_port()
                try:
                    pg._pg_ctl_start(settings or {}, timeout_s)
                    break
                except PostgresUnavailable as exc:
                    last = exc
            else:
                assert last is not None
                raise last
            atexit.register(pg.stop)
            pg.create_database(dbname)
        except BaseException:
            pg.stop()
            raise
        return pg

    def stop(self) -> None:
        """Stop the server (fast shutdown, then immediate) and delete the cluster's folder."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if (self.data_dir / "postmaster.pid").exists():
            for mode in ("fast", "immediate"):
                result = self._run(
                    [self.bin_dir / "pg_ctl", "stop", "-D", self.data_dir, "-m", mode, "-w",
                     "-t", "30"],
                    check=False,
                )
                if result.returncode == 0:
                    break
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TempPostgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Databases ----------------------------------------------------------------------------------
    def create_database(self, dbname: str) -> str:
        """Create an empty database owned by the cluster's role; return its URL."""
        _check_name(dbname)
        self._admin_sql(f'CREATE DATABASE "{dbname}"')
        return self.url_for(dbname)

    def checkpoint(self) -> None:
        """Force a checkpoint now (write out dirty buffers before a measured run)."""
        self._admin_sql("CHECKPOINT")

    def drop_database(self, dbname: str) -> None:
        """Drop a database, ending any connection still open to it."""
        _check_name(dbname)
        self._admin_sql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    # Internals ----------------------------------------------------------------------------------
    def _run(self, args: list, *, check: bool = True, env: Mapping[str, str] | None = None,
             timeout: float = 120.0) -> subprocess.CompletedProcess:
        """Run a server binary, as the ``postgres`` user when this process is root."""
        cmd = [str(a) for a in args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user.pw_name, "--", *cmd]
        full_env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", **(env or {})}
        try:
            result = subprocess.run(
                cmd, cwd=self.root, env=full_env, capture_output=True, text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{cmd[0]}: {exc}") from exc
        if check and result.returncode != 0:
            raise PostgresUnavailable(
                f"{' '.join(cmd)} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def _initdb(self) -> None:
        self.socket_dir.mkdir()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self.root.chmod(0o700)
        if self.user is not None:
            for path in (self.root, self.socket_dir, pwfile):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self._run([
            self.bin_dir / "initdb", "-D", self.data_dir, "-U", ROLE, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-instructions",
        ])
        pwfile.unlink()

    def _pg_ctl_start(self, settings: Mapping[str, str], timeout_s: float) -> None:
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            **settings,
        }
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        result = self._run(
            [self.bin_dir / "pg_ctl", "start", "-D", self.data_dir, "-l", self.log_file,
             "-w", "-t", str(int(timeout_s)), "-o", opts],
            check=False, timeout=timeout_s + 30,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"PostgreSQL did not start on 127.0.0.1:{self.port} "
                f"({(result.stderr or result.stdout).strip()}); server log:\n{self._log_tail()}"
            )

    def _log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def _admin_sql(self, sql: str) -> None:
        """Run one statement on the ``postgres`` database through the unix socket with psql."""
        self._run([
            self.bin_dir / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.socket_dir,
            "-p", self.port, "-U", ROLE, "-d", "postgres", "-c", sql,
        ])


def _check_name(dbname: str) -> None:
    if not _DB_NAME.match(dbname):
        raise AigiqaError(
            f"database name {dbname!r}: use 1-63 lower-case letters, digits and underscores"
        )


@contextlib.contextmanager
def temp_postgres(**kwargs) -> Iterator[TempPostgres]:
    """Context manager around ``TempPostgres.start(**kwargs)``; stops and deletes it on exit."""
    pg = TempPostgres.start(**kwargs)
    try:
        yield pg
    finally:
        pg.stop()
