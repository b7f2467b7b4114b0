"""StudyStore: normalised image tables, hashed tokens, ordered idempotent ratings, exports.

Every test here runs on SQLite and on a throwaway PostgreSQL (``db_url`` in tests/conftest.py).
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import func, select

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.store.study import (
    PlannedTrial,
    RatingValueError,
    StudyStore,
    TrialConflict,
    TrialNotFound,
    hash_token,
)
from aigiqa.store.study_models import (
    Generator,
    HyperParameter,
    Prompt,
    Rating,
    StudyImage,
    StudySession,
    Subject,
)


def tiny_database(root: Path, n: int = 8, *, with_mos: bool = True) -> Database:
    """n small PNGs under root/img with prompts (two images share each), 3 generators, MOS."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        path = root / "img" / f"im{i:02d}.png"
        Image.new("RGB", (8, 8), (i * 20 % 256, 10, 10)).save(path)
        records.append(Record(
            name=path.name, path=path, prompt=f"prompt {i // 2}", generator=f"G{i % 3}",
            targets={"mos": 1.0 + 3.0 * i / max(1, n - 1)} if with_mos else {},
            hyper={"steps": 10 + i, "cfg": 7.5}))
    info = DatabaseInfo(name="tiny", score_range=(1.0, 5.0), target_names=("mos",))
    return Database(info, records, root)


@pytest.fixture
def store(study_db_url):
    with StudyStore(study_db_url) as s:
        yield s


def _plan(store: StudyStore, db: Database, subjects: int = 2, trials: int = 5):
    """Store a study where subject k rates the first ``trials`` images; 2 trials a session."""
    db_id = store.add_database(db)
    names = [r.name for r in db]
    plan = {f"S{k + 1}": [PlannedTrial(names[0], "training", 1, "anchor")] + [
        PlannedTrial(names[i], "rating", 1 + i // 2) for i in range(trials - 1)]
        for k in range(subjects)}
    return store.insert_study(name="t", database_id=db_id, scale=(0.0, 5.0, 0.5),
                              labels=["bad", "good"], design="full", ratings_per_image=2,
                              session_size=2, n_training=1, n_repeats=0, seed=0, plan=plan)


def _count(store: StudyStore, model) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def test_add_database_normalises_and_is_idempotent(store, tmp_path):
    db = tiny_database(tmp_path / "db", n=8)
    first = store.add_database(db)
    assert store.add_database(db) == first  # same (name, root): reused, nothing duplicated
    assert _count(store, StudyImage) == 8
    assert _count(store, Prompt) == 4  # two images per prompt share one row
    assert _count(store, Generator) == 3
    assert _count(store, HyperParameter) == 16
    with store.engine.connect() as conn:
        rows = conn.execute(select(StudyImage.name, StudyImage.path, StudyImage.mos)
                            .order_by(StudyImage.name)).all()
    assert rows[0].path == "img/im00.png"  # relative to the database root
    assert rows[-1].mos == pytest.approx(4.0)


def test_image_outside_root_is_an_error(store, tmp_path):
    db = tiny_database(tmp_path / "db", n=3)
    moved = Database(db.info, [*db.records[:2], Record(name="far.png", path=tmp_path / "far.png")],
                     tmp_path / "db")
    with pytest.raises(Exception, match="outside the database root"):
        store.add_database(moved)


def test_tokens_are_stored_only_as_hashes(store, tmp_path):
    study_id, admin, tokens = _plan(store, tiny_database(tmp_path / "db"))
    with store.engine.connect() as conn:
        stored = set(conn.execute(select(Subject.token_hash)).scalars())
    assert stored == {hash_token(t) for t in tokens.values()}
    assert not stored & set(tokens.values())
    s1 = store.subject_by_token(tokens["S1"])
    assert s1 is not None and s1.label == "S1" and s1.study.id == study_id
    assert store.subject_by_token(tokens["S1"][:-1] + "x") is None
    assert store.subject_by_token("short") is None
    assert store.subject_by_token("a" * 20 + "/../") is None
    assert store.study_by_admin_token(admin).id == study_id
    assert store.study_by_admin_token(tokens["S1"]) is None  # a subject token is not admin


def test_ratings_in_order_idempotent_and_checked(store, tmp_path):
    _, _, tokens = _plan(store, tiny_database(tmp_path / "db"))
    s1, s2 = store.subject_by_token(tokens["S1"]), store.subject_by_token(tokens["S2"])
    state = store.state(s1.id)
    assert (state.done, state.total, state.sessions, state.session_start) == (0, 5, 2, True)
    assert state.trial.kind == "training" and state.trial.note == "anchor"
    first = state.trial.id

    rating, replayed = store.submit_rating(s1, first, 2.5, "sub-1")
    assert not replayed and rating.value == 2.5 and rating.kind == "training"
    again, replayed = store.submit_rating(s1, first, 2.5, "sub-1")  # same submission id
    assert replayed and again == rating
    other, replayed = store.submit_rating(s1, first, 4.0, "sub-2")  # same trial, new id
    assert replayed and other == rating  # the first rating stands
    assert store.count_ratings() == 1

    nxt = store.state(s1.id).trial
    with pytest.raises(TrialConflict, match="already used"):
        store.submit_rating(s1, nxt.id, 1.0, "sub-1")
    later = store.trial(s1.id, nxt.id + 1)
    with pytest.raises(TrialConflict, match="not the current trial"):
        store.submit_rating(s1, later.id, 1.0, "sub-3")
    with pytest.raises(TrialNotFound):  # S2's trial with S1's identity
        store.submit_rating(s1, store.state(s2.id).trial.id, 1.0, "sub-4")
    for bad in (5.5, -0.5, 1.2, float("nan"), float("inf"), True, "3"):
        with pytest.raises(RatingValueError):
            store.submit_rating(s1, nxt.id, bad, "sub-5")
    with pytest.raises(RatingValueError, match="submission_id"):
        store.submit_rating(s1, nxt.id, 1.0, "bad id with spaces")
    assert store.count_ratings() == 1
    assert store.trial(s2.id, nxt.id) is None  # S1's trial is invisible to S2


ACCEPTED_IDS = ("a", "x" * 64, "A-z_0.9:")
REFUSED_IDS = ("", "x" * 65, "abc\n", "a b", "caf\u00e9", "a/b", 7)


def test_submission_id_rule_is_the_same_in_store_and_app(store, tmp_path):
    """One rule: 1-64 characters of A-Z a-z 0-9 _ . : - (a trailing newline is refused too)."""
    from pydantic import ValidationError

    from aigiqa.study.app import RatingIn

    _, _, tokens = _plan(store, tiny_database(tmp_path / "db"))
    s1 = store.subject_by_token(tokens["S1"])
    for bad in REFUSED_IDS:
        with pytest.raises(RatingValueError, match="submission_id"):
            store.submit_rating(s1, store.state(s1.id).trial.id, 1.0, bad)
        with pytest.raises(ValidationError):
            RatingIn(trial_id=1, value=1.0, submission_id=bad)
    assert store.count_ratings() == 0
    for good in ACCEPTED_IDS:
        _, replayed = store.submit_rating(s1, store.state(s1.id).trial.id, 1.0, good)
        assert not replayed and RatingIn(trial_id=1, value=1.0, submission_id=good)
    assert store.count_ratings() == len(ACCEPTED_IDS)


def test_sessions_progress_and_frame(store, tmp_path):
    study_id, _, tokens = _plan(store, tiny_database(tmp_path / "db"))
    s1 = store.subject_by_token(tokens["S1"])
    values = [0.0, 1.5, 5.0]
    starts = []
    for k, v in enumerate(values):
        state = store.state(s1.id)
        starts.append(state.session_start)
        store.submit_rating(s1, state.trial.id, v, f"id{k}")
    assert starts == [True, False, False]
    state = store.state(s1.id)
    assert state.trial.session == 2 and state.session_start  # the third rating closed session 1
    with store.engine.connect() as conn:
        sessions = conn.execute(select(StudySession.number, StudySession.started_at,
                                       StudySession.finished_at)
                                .where(StudySession.subject_id == s1.id)
                                .order_by(StudySession.number)).all()
    assert sessions[0].started_at is not None and sessions[0].finished_at is not None
    assert sessions[1].started_at is None
    progress = store.progress(study_id).set_index("subject")
    assert progress.loc["S1", ["done", "total", "sessions", "sessions_done"]].tolist() == \
        [3, 5, 2, 1]
    assert progress.loc["S2", "done"] == 0 and progress.loc["S2", "last"] == ""
    frame = store.ratings_frame(study_id)
    assert list(frame.columns) == ["subject", "image", "score", "session", "kind", "time"]
    assert frame["score"].tolist() == values
    assert frame["kind"].tolist() == ["training", "rating", "rating"]
    assert frame["image"].tolist() == ["im00.png", "im00.png", "im01.png"]
    assert frame["time"].str.endswith("Z").all()


def test_concurrent_submits_store_one_rating(store, tmp_path):
    _, _, tokens = _plan(store, tiny_database(tmp_path / "db"))
    s1 = store.subject_by_token(tokens["S1"])
    for rnd in range(3):  # three trials in turn, each hit by 6 clients at once
        trial = store.state(s1.id).trial.id
        answers, errors = [], []
        barrier = threading.Barrier(6)

        def submit(k: int, trial=trial, rnd=rnd, answers=answers, errors=errors,
                   barrier=barrier) -> None:
            barrier.wait()
            try:
                answers.append(store.submit_rating(s1, trial, 0.5 * k, f"c{rnd}-{k}")[0])
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=submit, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(answers) == 6 and len(set(answers)) == 1  # all got the one stored rating
        assert store.count_ratings() == rnd + 1


def test_save_mos_replaces_rows(store, tmp_path):
    study_id, _, _ = _plan(store, tiny_database(tmp_path / "db"))
    table = pd.DataFrame({"image": ["im00.png", "im01.png"], "mos": [1.0, 2.0],
                          "std": [0.5, np.nan], "ci95": [0.3, np.nan], "n": [2, 1]})
    assert store.save_mos(study_id, table, "mos") == 2
    assert store.save_mos(study_id, table.iloc[:1], "mos") == 1
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Rating)).scalar_one() == 0
        from aigiqa.store.study_models import StudyMos
        rows = conn.execute(select(StudyMos.mos, StudyMos.std)).all()
    assert [(r.mos, r.std) for r in rows] == [(1.0, 0.5)]


def test_pool_keeps_its_connections_and_warms_up(store):
    from sqlalchemy.pool import QueuePool

    from aigiqa.store.study import POOL_OVERFLOW, POOL_SIZE

    pool = store.engine.pool
    assert isinstance(pool, QueuePool)  # a file or server database (no in-memory one here)
    assert pool.size() == POOL_SIZE and pool._max_overflow == POOL_OVERFLOW
    store.warm_up(3)
    assert pool.checkedin() >= 3 and pool.checkedout() == 0


def test_cached_trial_needs_a_known_subject_and_their_trial(store, tmp_path):
    _, _, tokens = _plan(store, tiny_database(tmp_path / "db"))
    assert store.cached_trial(tokens["S1"], 1) is None  # nothing looked up yet
    s1, s2 = store.subject_by_token(tokens["S1"]), store.subject_by_token(tokens["S2"])
    trial = store.state(s1.id).trial
    assert store.cached_trial(tokens["S1"], trial.id) == (s1, trial)
    assert store.cached_trial(tokens["S2"], trial.id) is None  # not S2's trial
    assert s2 is not None and store.cached_trial("bad token", trial.id) is None


def test_sqlite_file_detection_and_write_lock(tmp_path):
    from sqlalchemy.pool import QueuePool, StaticPool

    from aigiqa.store.engine import make_engine, sqlite_file

    db = tmp_path / "s.db"
    for spec in (db, f"sqlite:///{db}"):
        engine = make_engine(spec, pool_size=8, max_overflow=2)
        assert sqlite_file(engine) == db
        assert isinstance(engine.pool, QueuePool) and engine.pool.size() == 8
        engine.dispose()
    for memory in (None, "", ":memory:", "sqlite://", "sqlite:///:memory:"):
        engine = make_engine(memory, pool_size=8, max_overflow=2)
        assert sqlite_file(engine) is None and isinstance(engine.pool, StaticPool)
    server = make_engine("postgresql+psycopg://u:p@127.0.0.1:5/x", pool_size=8)
    assert sqlite_file(server) is None and server.pool.size() == 8
    with StudyStore(db) as s:
        _plan(s, tiny_database(tmp_path / "db"))
    assert (tmp_path / "s.db.writelock").is_file()
