"""The score store: engine set-up, unique scores, failures, file-hash cache, batched lookups.

Tests taking ``db_url`` run twice: on a SQLite file and on a throwaway PostgreSQL database.
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from aigiqa.errors import AigiqaError
from aigiqa.metrics.base import Metric
from aigiqa.store import ScoreBase, ScoreStore, make_engine, open_store
from aigiqa.store import scores as store_scores
from aigiqa.store.scores import CHUNK, prompt_input_hash


class _Dummy(Metric):
    name = "test-store-dummy"
    defaults = {"k": 1}


def _pragma(engine, name: str):
    with engine.connect() as conn:
        return conn.execute(text(f"PRAGMA {name}")).scalar_one()


def test_make_engine_path_url_and_memory(tmp_path):
    path = tmp_path / "sub" / "dir" / "s.sqlite"
    engine = make_engine(path)
    assert engine.dialect.name == "sqlite"
    assert engine.url.database == str(path)
    assert _pragma(engine, "journal_mode") == "wal"
    assert _pragma(engine, "foreign_keys") == 1
    assert path.parent.is_dir()
    engine.dispose()
    url_engine = make_engine(f"sqlite:///{tmp_path / 'u.sqlite'}")
    assert url_engine.url.database == str(tmp_path / "u.sqlite")
    assert _pragma(url_engine, "foreign_keys") == 1
    url_engine.dispose()
    memory = make_engine(None)
    assert memory.url.database is None
    assert _pragma(memory, "journal_mode") == "memory"
    with pytest.raises(AigiqaError, match="not a folder"):
        make_engine(tmp_path)


def test_store_creates_its_tables(db_url):
    with ScoreStore(db_url) as db:
        names = set(inspect(db.engine).get_table_names())
    assert names == {"scores", "file_hashes", "metrics"} == set(ScoreBase.metadata.tables)


def test_scores_are_unique_and_first_write_wins(db_url):
    with ScoreStore(db_url) as db:
        metric = _Dummy()
        db.register_metric(metric)
        db.register_metric(metric)  # idempotent
        db.add([(metric.key, "h1", 1.5, None), (metric.key, "h2", None, "broken")])
        db.add([(metric.key, "h1", 9.0, None), (metric.key, "h3", 3.0, None)])
        found = db.lookup(metric.key, ["h1", "h2", "h3", "h4"])
        assert found["h1"].value == 1.5
        assert found["h2"].failed and found["h2"].error == "broken"
        assert found["h3"].value == 3.0
        assert "h4" not in found
        assert db.count() == 3
        assert db.count(metric.key, failed=True) == 1
        assert db.count(metric.key, failed=False) == 2
        assert db.lookup(_Dummy(k=2).key, ["h1"]) == {}


def test_unique_constraint_and_foreign_key_are_enforced(db_url):
    with ScoreStore(db_url) as db:
        scores = ScoreBase.metadata.tables["scores"]
        metric = _Dummy()
        db.register_metric(metric)
        row = {"metric_key": metric.key, "input_hash": "h", "value": 1.0}
        with db.engine.begin() as conn:
            conn.execute(scores.insert(), [row])
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(scores.insert(), [row])
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(scores.insert(), [{**row, "metric_key": "unknown-metric"}])


def test_forget_failures_only_removes_failures(db_url):
    with ScoreStore(db_url) as db:
        metric = _Dummy()
        db.register_metric(metric)
        db.add([(metric.key, "ok", 2.0, None), (metric.key, "bad", None, "x")])
        db.forget_failures(metric.key, ["ok", "bad"])
        assert set(db.lookup(metric.key, ["ok", "bad"])) == {"ok"}


def test_lookup_is_batched_over_chunks(db_url):
    with ScoreStore(db_url) as db:
        metric = _Dummy()
        db.register_metric(metric)
        n = 2 * CHUNK + 7
        db.add((metric.key, f"h{i}", float(i), None) for i in range(n))
        statements: list[str] = []
        from sqlalchemy import event

        event.listen(db.engine, "before_cursor_execute",
                     lambda *a: statements.append(a[2]))
        found = db.lookup(metric.key, [f"h{i}" for i in range(n)])
        assert len(found) == n and found[f"h{n - 1}"].value == n - 1
        assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 3


def test_content_hashes_cache_and_errors(tmp_path, monkeypatch, db_url):
    files = []
    for i in range(5):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(bytes([i]) * (i + 1))
        files.append(f)
    old = time.time_ns() - 3600 * 10**9
    for f in files:
        os.utime(f, ns=(old, old))
    missing = tmp_path / "missing.bin"
    with ScoreStore(db_url) as db:
        hashes, errors = db.content_hashes([*files, missing, tmp_path])
        assert hashes[:5] == [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
        assert hashes[5:] == [None, None]
        assert "not found" in errors[5] and str(missing) in errors[5]
        assert "not a regular file" in errors[6]
        reads: list[str] = []
        real = store_scores.sha256_of
        monkeypatch.setattr(store_scores, "sha256_of", lambda p: reads.append(p) or real(p))
        again, _ = db.content_hashes(files)
        assert again == hashes[:5] and reads == []
        files[2].write_bytes(b"new content")  # new size and mtime → read again
        changed, _ = db.content_hashes(files)
        assert reads == [str(files[2])]
        assert changed[2] == hashlib.sha256(b"new content").hexdigest()
        assert changed[:2] == hashes[:2]


def test_prompt_input_hash_depends_on_prompt():
    h = "ab" * 32
    assert prompt_input_hash(h, "a cat") == prompt_input_hash(h, "a cat")
    assert prompt_input_hash(h, "a cat") != prompt_input_hash(h, "a dog")
    assert len(prompt_input_hash(h, "x")) == 64


def test_open_store_accepts_store_path_engine_and_none(tmp_path):
    db = ScoreStore(None)
    assert open_store(db) is db
    assert open_store(db.engine).engine is db.engine
    assert open_store(tmp_path / "x.sqlite").engine.url.database == str(tmp_path / "x.sqlite")
    assert open_store(None).engine.dialect.name == "sqlite"
    with pytest.raises(AigiqaError, match="store must be"):
        open_store(42)  # type: ignore[arg-type]


def test_a_failing_database_is_one_error_naming_the_store(tmp_path):
    path = tmp_path / "s.sqlite"
    with ScoreStore(path) as db:
        metric = _Dummy()
        db.register_metric(metric)
        db.add([(metric.key, "h", 1.0, None)])
        with db.engine.begin() as conn:  # someone else's damage, mid-run
            conn.execute(text("DROP TABLE scores"))
        with pytest.raises(AigiqaError, match=r"s\.sqlite: the score store failed while "
                                               r"looking up scores \(no such table"):
            db.lookup(metric.key, ["h"])


def test_opening_checks_the_file_and_changes_nothing(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not sqlite at all, but someone's data")
    with pytest.raises(AigiqaError, match="not a SQLite database.*left unchanged"):
        ScoreStore(junk)
    assert junk.read_bytes() == b"not sqlite at all, but someone's data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.sqlite"]  # no -wal, no probe
    (tmp_path / "empty.sqlite").touch()  # an empty file is a new database, as for SQLite
    with ScoreStore(tmp_path / "empty.sqlite") as db:
        assert db.count() == 0
