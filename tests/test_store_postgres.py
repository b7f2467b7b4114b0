"""The store on PostgreSQL and SQLite alike: types, edge values, concurrency, the runner, and the
throwaway cluster (aigiqa.testing.postgres) the tests and the load benchmark run on."""

from __future__ import annotations

import os
import pwd
import random
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError

from aigiqa.benchmark.runner import score_images
from aigiqa.errors import AigiqaError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import register_metric
from aigiqa.store import FileHash, ScoreStore, make_engine
from aigiqa.store.scores import _upsert
from aigiqa.testing.postgres import PostgresUnavailable, TempPostgres, _temp_base, find_pg_bin

REPO = Path(__file__).resolve().parents[1]


class _Key(Metric):
    name = "test-pg-key"


@register_metric
class MeanProbe(Metric):
    """Test metric: mean pixel value; raises on an all-white image, NaN on an all-black one."""

    name: ClassVar[str] = "test-pg-mean-probe"

    def score(self, images, prompts=None):
        means = [float(np.mean(im)) for im in images]
        if any(m == 255.0 for m in means):
            raise ValueError("probe refuses white images")
        return np.array([np.nan if m == 0.0 else m for m in means])


def test_runner_on_postgresql_gives_the_same_scores_as_sqlite(tmp_path, postgres_url):
    rng = np.random.default_rng(3)
    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for i in range(12):
        pixels = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
        pixels[...] = {3: 255, 7: 0}.get(i, pixels)  # one failure, one NaN
        paths.append(folder / f"im{i:02d}.png")
        Image.fromarray(pixels).save(paths[-1])
    metrics = ["test-pg-mean-probe"]
    on_sqlite = score_images(paths, metrics, store=tmp_path / "s.sqlite", progress=False)
    on_pg = score_images(paths, metrics, store=postgres_url, progress=False)
    pd.testing.assert_frame_equal(on_sqlite.scores, on_pg.scores)
    assert on_pg.failures == on_sqlite.failures
    assert {f["name"] for f in on_pg.failures} == {"im03.png", "im07.png"}
    assert (on_pg.computed, on_pg.cached) == (12, 0)
    again = score_images(paths, metrics, store=postgres_url, progress=False)
    assert (again.computed, again.cached) == (0, 12)
    pd.testing.assert_frame_equal(again.scores, on_pg.scores)
    with ScoreStore(postgres_url) as db:
        assert db.engine.dialect.name == "postgresql"
        assert db.count() == 12 and db.count(failed=True) == 2


def test_values_and_big_integers_round_trip_exactly(db_url):
    values = [0.1 + 0.2, 1e-300, 5e-324, 1.7976931348623157e308, -2.5, 0.0]
    with ScoreStore(db_url) as db:
        db.register_metric(_Key())
        key = _Key().key
        db.add((key, f"h{i}", v, None) for i, v in enumerate(values))
        found = db.lookup(key, [f"h{i}" for i in range(len(values))])
        assert [found[f"h{i}"].value for i in range(len(values))] == values
        row = {"path": "/x/big", "size": 2**40 + 1, "mtime_ns": 2**62 + 7,
               "content_hash": "a" * 64, "hashed_at_ns": -(2**62)}
        with db.engine.begin() as conn:
            _upsert(conn, FileHash.__table__, [row], ["path"])
            stored = conn.execute(select(FileHash.__table__)).mappings().one()
        assert dict(stored) == row


def test_non_finite_values_and_nul_characters_are_stored_alike(db_url):
    with ScoreStore(db_url) as db:
        db.register_metric(_Key())
        key = _Key().key
        db.add([(key, "nan", float("nan"), None), (key, "inf", float("-inf"), "why"),
                (key, "nul", None, "bad\0byte")])
        found = db.lookup(key, ["nan", "inf", "nul"])
        assert found["nan"].failed and found["nan"].error == "non-finite score nan"
        assert found["inf"].failed and found["inf"].error == "non-finite score -inf: why"
        assert found["nul"].error == "bad\\x00byte"
        assert db.count(failed=True) == 3


def test_overlong_names_are_refused_on_every_dialect(db_url):
    class Long(Metric):
        name = "m" * 150

    with ScoreStore(db_url) as db, pytest.raises(AigiqaError, match="at most 100") as info:
        db.register_metric(Long())
    assert "name is 150 characters" in str(info.value)


def test_duplicate_keys_in_one_batch(db_url):
    with ScoreStore(db_url) as db:
        db.register_metric(_Key())
        key = _Key().key
        db.add([(key, "h", 1.0, None), (key, "h", 2.0, None)])
        assert db.lookup(key, ["h"])["h"].value == 1.0  # first wins, as across batches
        rows = [{"path": "/p", "size": s, "mtime_ns": 1, "content_hash": "b" * 64,
                 "hashed_at_ns": 1} for s in (1, 2)]
        with db.engine.begin() as conn:
            _upsert(conn, FileHash.__table__, rows, ["path"])
            assert conn.execute(select(FileHash.size)).scalars().all() == [2]  # last wins


def test_concurrent_writers_in_opposite_orders_neither_deadlock_nor_duplicate(db_url):
    with ScoreStore(db_url) as db:
        db.register_metric(_Key())
        key = _Key().key
        rows = [(key, f"h{i:05d}", float(i), None) for i in range(1500)]
        errors: list[BaseException] = []

        def writer(seed: int) -> None:
            mine = rows.copy()
            random.Random(seed).shuffle(mine)
            try:
                db.add(mine)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        assert db.count() == 1500
        found = db.lookup(key, [h for _, h, _, _ in rows])
        assert all(found[h].value == v for _, h, v, _ in rows)


def test_make_engine_names_the_psycopg_driver_and_rejects_bad_urls():
    for url in ("postgresql://u:secret@127.0.0.1:1/db", "postgres://u:secret@127.0.0.1:1/db"):
        engine = make_engine(url)
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        engine.dispose()
    with pytest.raises(AigiqaError, match="not a database URL") as info:
        make_engine("nosuchdb://u:secret@host/db")
    assert "secret" not in str(info.value)


def test_cluster_databases_and_names(postgres_cluster: TempPostgres):
    pg = postgres_cluster
    assert pg.url.startswith("postgresql+psycopg://aigiqa:")
    assert f"@127.0.0.1:{pg.port}/" in pg.url and pg.password not in repr(pg)
    url = pg.create_database("extra_db")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("select current_database()")).scalar_one() == "extra_db"
        assert conn.execute(text("show listen_addresses")).scalar_one() == "127.0.0.1"
    pg.drop_database("extra_db")  # even with the pool's connection still open
    engine.dispose()
    with pytest.raises(OperationalError, match="does not exist"), engine.connect():
        pass
    with pytest.raises(AigiqaError, match="database name"):
        pg.create_database("x; drop database postgres")


def test_cluster_stop_removes_everything(postgres_cluster):  # needs PostgreSQL, like the rest
    pg = TempPostgres.start(dbname="lifecycle")
    root, url = pg.root, pg.url
    assert (pg.data_dir / "PG_VERSION").is_file()
    with create_engine(url).connect() as conn:
        assert conn.execute(text("select 1")).scalar_one() == 1
    if os.geteuid() == 0:
        assert pg.data_dir.stat().st_uid != 0  # initdb ran as a non-root user
    pg.stop()
    pg.stop()  # idempotent
    assert not root.exists()
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    with pytest.raises(OperationalError), engine.connect():
        pass
    engine.dispose()


def test_missing_binaries_raise_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGIQA_PG_BIN", str(tmp_path))
    with pytest.raises(PostgresUnavailable, match="initdb, pg_ctl") as info:
        find_pg_bin()
    assert str(tmp_path) in str(info.value)
    with pytest.raises(PostgresUnavailable):
        TempPostgres.start()


def _run_fixture_probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    probe = tmp_path / "test_probe.py"
    probe.write_text(textwrap.dedent("""
        def test_needs_postgres(postgres_url):
            assert postgres_url
    """))
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), **env}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "-c", os.devnull, "-rs", str(probe)],
        cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=120,
    )


def test_without_postgres_ci_fails_and_local_runs_skip(tmp_path):
    required = _run_fixture_probe(tmp_path, AIGIQA_PG_BIN=str(tmp_path),
                                  AIGIQA_REQUIRE_POSTGRES="1")
    assert required.returncode != 0, required.stdout
    assert "PostgreSQL is required (AIGIQA_REQUIRE_POSTGRES=1)" in required.stdout
    assert "1 error" in required.stdout
    local = _run_fixture_probe(tmp_path, AIGIQA_PG_BIN=str(tmp_path),
                               AIGIQA_REQUIRE_POSTGRES="0")
    assert local.returncode == 0, local.stdout
    assert "1 skipped" in local.stdout and "PostgreSQL tests skipped" in local.stdout


def test_cluster_folder_is_reachable_by_the_server_user(tmp_path, monkeypatch):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    server_user = pwd.getpwuid(os.getuid())  # any account: only "not None" matters
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    assert _temp_base(None) is None  # not root: the usual temp dir
    assert _temp_base(server_user) == "/tmp"  # a root-only temp dir: fall back to /tmp
    shared_tmp = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        shared_tmp.chmod(0o755)
        monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
        assert _temp_base(server_user) == str(shared_tmp)
    finally:
        shared_tmp.rmdir()


def test_server_settings_stay_durable_and_checkpoint_runs(postgres_cluster):
    from aigiqa.testing.postgres import SERVER_SETTINGS

    pg = TempPostgres.start(dbname="tuned", settings=SERVER_SETTINGS)
    try:
        engine = create_engine(pg.url)
        with engine.connect() as conn:
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                assert conn.execute(text(f"show {name}")).scalar_one() == "on"
            assert conn.execute(text("show max_wal_size")).scalar_one() == "4GB"
        engine.dispose()
        pg.checkpoint()
    finally:
        pg.stop()
