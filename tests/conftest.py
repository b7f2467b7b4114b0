"""Shared fixtures: where ../shared is, an offline environment, and store databases (SQLite and
a throwaway PostgreSQL cluster)."""

from __future__ import annotations

import importlib.util
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigiqa.testing.postgres import FAST_SETTINGS, PostgresUnavailable, TempPostgres

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("AIGIQA_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The read-only ../shared folder (reference annotations, assets). Required, not skipped."""
    path = _shared_dir()
    assert (path / "reference").is_dir(), f"../shared not found at {path}; set AIGIQA_SHARED"
    return path


@pytest.fixture
def live_assets(shared: Path, monkeypatch, tmp_path) -> Path:
    """$AIGIQA_HOME/assets = ../shared/assets (the LIVE NIQE/BRISQUE files); a private cache."""
    monkeypatch.setenv("AIGIQA_HOME", str(shared))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return shared / "assets"


# Databases: every store test runs on SQLite and on a throwaway PostgreSQL cluster ---------------
REQUIRE_POSTGRES_ENV = "AIGIQA_REQUIRE_POSTGRES"
_pg_databases = itertools.count()


def _postgres_missing(reason: str) -> None:
    """Fail (CI: AIGIQA_REQUIRE_POSTGRES=1) or skip, saying why PostgreSQL is not there."""
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRE_POSTGRES_ENV}=1) but {reason}",
                    pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason} (set {REQUIRE_POSTGRES_ENV}=1 to fail)")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[TempPostgres]:
    """A throwaway PostgreSQL cluster (initdb in a temp dir, 127.0.0.1, no fsync) for the session;
    stopped and deleted at the end."""
    if importlib.util.find_spec("psycopg") is None:
        _postgres_missing("the psycopg driver is not installed (pip install 'psycopg[binary]')")
    try:
        pg = TempPostgres.start(settings=FAST_SETTINGS)
    except PostgresUnavailable as exc:
        _postgres_missing(f"the cluster cannot start: {exc}")
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def postgres_url(postgres_cluster: TempPostgres) -> Iterator[str]:
    """URL (postgresql+psycopg://…) of a fresh, empty database, dropped after the test."""
    name = f"test_{os.getpid()}_{next(_pg_databases)}"
    url = postgres_cluster.create_database(name)
    try:
        yield url
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLAlchemy URL of an empty store database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def study_db_url(db_url: str) -> str:
    """The store URL of the backend under test (SQLite and PostgreSQL, see ``db_url``)."""
    return db_url


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: on a busy 2-core machine more threads only contend."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_clip_arch(tmp_path_factory) -> str:
    """The name of a reduced ViT-B/32 open_clip architecture (tests/tiny_weights.py), registered
    for the module: random-weight CLIP models built from it load in a fraction of a second."""
    from tiny_weights import TINY_B32, TINY_B32_CONFIG, register_open_clip

    return register_open_clip(tmp_path_factory.mktemp("arch"), TINY_B32, TINY_B32_CONFIG)
