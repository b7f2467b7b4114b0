"""The study web app over HTTP: ownership, validation, idempotency, CSRF, admin exports, and
durability of acknowledged ratings across a SIGKILL of a real uvicorn server."""

from __future__ import annotations

import io
import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.store.study import StudyStore
from aigiqa.store.study_models import Rating
from aigiqa.study import create_study
from aigiqa.study.app import create_app
from aigiqa.testing.servers import free_port, start_study_server
from studies import rate_all

EVIL_PROMPT = 'a cat </script><script>alert("x")</script> & <b>dog</b>'


def tiny_database(root: Path, n: int = 8) -> Database:
    (root / "img").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        path = root / "img" / f"im{i:02d}.png"
        Image.new("RGB", (16, 16), (i * 30 % 256, 40, 90)).save(path)
        records.append(Record(name=path.name, path=path,
                              prompt=EVIL_PROMPT if i == 0 else f"prompt number {i}",
                              generator=f"G{i % 2}", targets={"mos": 1.0 + i * 0.5}))
    info = DatabaseInfo(name="tiny", score_range=(0.0, 5.0), target_names=("mos",))
    return Database(info, records, root)


@pytest.fixture
def study(tmp_path):
    db = tiny_database(tmp_path / "db")
    url = str(tmp_path / "study.db")
    st = create_study(url, db, subjects=3, training=2, repeats=1, session_size=4, seed=3)
    return url, st


@pytest.fixture
def client(study):
    with TestClient(create_app(study[0])) as c:
        yield c


def csrf_of(client, token: str) -> str:
    page = client.get(f"/s/{token}")
    assert page.status_code == 200
    return re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page.text).group(1)


def post(client, token: str, trial_id: int, value, submission_id: str, csrf: str, **kw):
    return client.post(f"/api/s/{token}/ratings", headers={"X-CSRF-Token": csrf},
                       json={"trial_id": trial_id, "value": value,
                             "submission_id": submission_id}, **kw)


def rate(client, token: str, values) -> list[dict]:
    csrf = csrf_of(client, token)
    out = []
    for k, v in enumerate(values):
        trial = client.get(f"/api/s/{token}/state").json()["trial"]
        r = post(client, token, trial["id"], v, f"{token[:6]}-{k}", csrf)
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def n_ratings(url: str) -> int:
    with StudyStore(url) as store:
        return store.count_ratings()


def test_page_shows_prompt_escaped_and_state(client, study):
    token = study[1].subjects[0].token
    page = client.get(f"/s/{token}")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "Content-Security-Policy" in page.headers
    assert "</script><script>alert" not in page.text  # prompt text cannot break out
    state = client.get(f"/api/s/{token}/state").json()
    assert state["done"] == 0 and state["total"] == 2 + 8 + 1 and state["sessions"] == 3
    assert state["trial"]["kind"] == "training" and state["session_start"] is True
    assert "Training image 1 of 2" in state["trial"]["note"]
    image = client.get(state["trial"]["image_url"])
    assert image.status_code == 200
    assert Image.open(io.BytesIO(image.content)).size == (16, 16)


def test_unknown_token_is_404(client):
    fake = "A" * 43
    assert client.get(f"/s/{fake}").status_code == 404
    assert client.get(f"/api/s/{fake}/state").status_code == 404
    assert client.get(f"/s/{fake}/image/1").status_code == 404
    assert post(client, fake, 1, 1.0, "x1", "0" * 64).status_code == 404
    assert client.get(f"/admin/{fake}").status_code == 404


def test_a_token_only_reaches_its_own_trials(client, study):
    a, b = (s.token for s in study[1].subjects[:2])
    trial_a = client.get(f"/api/s/{a}/state").json()["trial"]["id"]
    assert client.get(f"/s/{b}/image/{trial_a}").status_code == 404
    r = post(client, b, trial_a, 2.0, "steal-1", csrf_of(client, b))
    assert r.status_code == 404
    assert n_ratings(study[0]) == 0
    assert client.get(f"/s/{a}/image/{trial_a}").status_code == 200
    # A subject token is no admin token.
    assert client.get(f"/admin/{a}").status_code == 404


@pytest.mark.parametrize("value", [5.1, -0.1, 2.05, 1e308, "high", None, True])
def test_out_of_range_scores_are_422(client, study, value):
    token = study[1].subjects[0].token
    trial = client.get(f"/api/s/{token}/state").json()["trial"]["id"]
    r = post(client, token, trial, value, "v-1", csrf_of(client, token))
    assert r.status_code == 422
    assert n_ratings(study[0]) == 0


def test_nan_is_422(client, study):
    token = study[1].subjects[0].token
    trial = client.get(f"/api/s/{token}/state").json()["trial"]["id"]
    body = f'{{"trial_id": {trial}, "value": NaN, "submission_id": "n1"}}'
    r = client.post(f"/api/s/{token}/ratings", content=body, headers={
        "Content-Type": "application/json", "X-CSRF-Token": csrf_of(client, token)})
    assert r.status_code == 422 and n_ratings(study[0]) == 0


def test_replays_and_double_submits_are_idempotent(client, study):
    token = study[1].subjects[0].token
    csrf = csrf_of(client, token)
    trial = client.get(f"/api/s/{token}/state").json()["trial"]["id"]
    first = post(client, token, trial, 3.5, "sub-a", csrf)
    replay = post(client, token, trial, 3.5, "sub-a", csrf)
    double = post(client, token, trial, 1.0, "sub-b", csrf)  # a second click, new id
    assert first.status_code == replay.status_code == double.status_code == 200
    assert first.json() == replay.json() == double.json()
    assert first.json()["rating"]["value"] == 3.5
    assert n_ratings(study[0]) == 1
    nxt = first.json()["state"]["trial"]["id"]
    assert post(client, token, nxt, 1.0, "sub-a", csrf).status_code == 409  # id reused
    assert post(client, token, nxt + 1, 1.0, "sub-c", csrf).status_code == 409  # not current


def test_csrf_rules(client, study):
    token = study[1].subjects[0].token
    csrf = csrf_of(client, token)
    trial = client.get(f"/api/s/{token}/state").json()["trial"]["id"]
    body = {"trial_id": trial, "value": 1.0, "submission_id": "c1"}
    url = f"/api/s/{token}/ratings"
    assert client.post(url, json=body).status_code == 403  # no token
    assert client.post(url, json=body, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    other = csrf_of(client, study[1].subjects[1].token)
    assert client.post(url, json=body, headers={"X-CSRF-Token": other}).status_code == 403
    form = client.post(url, data={k: str(v) for k, v in body.items()},
                       headers={"X-CSRF-Token": csrf})
    assert form.status_code in (415, 422)  # a cross-site form cannot post JSON
    foreign = client.post(url, json=body, headers={"X-CSRF-Token": csrf,
                                                   "Origin": "http://evil.example"})
    assert foreign.status_code == 403
    assert n_ratings(study[0]) == 0
    same = client.post(url, json=body, headers={"X-CSRF-Token": csrf,
                                                "Origin": "http://testserver"})
    assert same.status_code == 200 and n_ratings(study[0]) == 1


def test_resume_where_left(client, study):
    token = study[1].subjects[1].token
    answers = rate(client, token, [1.0, 2.0, 3.0])
    with TestClient(create_app(study[0])) as fresh:  # a new server process, another day
        state = fresh.get(f"/api/s/{token}/state").json()
    assert state == answers[-1]["state"]
    assert state["done"] == 3 and state["trial"]["position"] == 3


def test_admin_progress_and_exports(client, study):
    url, st = study
    s1, s2 = st.subjects[0].token, st.subjects[1].token
    values1 = [0.0, 5.0] + [0.5 * k for k in range(9)]  # training, then 8 ratings + 1 repeat
    values2 = [1.0, 1.0] + [4.0 - 0.5 * k for k in range(5)]
    rate(client, s1, values1)
    rate(client, s2, values2)
    page = client.get(st.admin_path)
    assert page.status_code == 200
    assert re.search(r"<td>S01</td><td>11 / 11</td>", page.text)
    assert re.search(r"<td>S02</td><td>7 / 11</td>", page.text)
    assert re.search(r"<td>S03</td><td>0 / 11</td>", page.text)

    raw = client.get(st.admin_path + "/ratings.csv")
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(raw.text))
    assert list(frame.columns) == ["subject", "image", "score", "session", "kind", "time"]
    assert len(frame) == 18
    assert frame[frame.subject == "S01"]["score"].tolist() == values1
    assert frame.groupby("kind").size().to_dict() == {"rating": 13, "repeat": 1, "training": 4}
    assert frame[frame.subject == "S01"]["session"].tolist() == [1] * 6 + [2] * 4 + [3]

    mos = pd.read_csv(io.StringIO(client.get(st.admin_path + "/mos.csv").text))
    rated = frame[frame.kind == "rating"]
    expected = rated.groupby("image")["score"].mean()  # repeats and training excluded
    assert set(mos["image"]) == set(expected.index)
    got = mos.set_index("image")["mos"]
    assert (got - expected.loc[got.index]).abs().max() < 1e-5
    assert client.get(st.admin_path + "/mos.csv?method=nope").status_code == 422


def test_mle_export_carries_the_degenerate_fit_warning(tmp_path):
    # 3 subjects, 2 ratings per image: the MLE subject model collapses one subject
    db = tiny_database(tmp_path / "db", n=10)
    url = str(tmp_path / "study.db")
    st = create_study(url, db, subjects=3, design="balanced", ratings_per_image=2, training=0)
    rate_all(url, [link.token for link in st.subjects], tag="deg")
    with TestClient(create_app(url)) as c, pytest.warns(RuntimeWarning, match="degenerate"):
        mle = c.get(st.admin_path + "/mos.csv?method=mle")
        plain = c.get(st.admin_path + "/mos.csv?method=mos")
    assert mle.status_code == 200 and plain.status_code == 200
    assert "MLE subject model is degenerate" in mle.headers["X-Aigiqa-Warning"]
    assert "X-Aigiqa-Warning" not in plain.headers  # nothing to warn about for plain MOS
    assert len(pd.read_csv(io.StringIO(mle.text))) == 10


def test_mos_before_any_rating_is_409(client, study):
    assert client.get(study[1].admin_path + "/mos.csv").status_code == 409


# A real server, killed with SIGKILL -------------------------------------------------------------
def test_sigkill_keeps_every_acknowledged_rating(tmp_path, study_db_url):
    db = tiny_database(tmp_path / "db", n=30)
    url = study_db_url
    st = create_study(url, db, subjects=4, training=0, repeats=0, seed=1)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_study_server(url, port=port, log=tmp_path / "server.log")
    acked: dict[tuple[str, str], float] = {}  # (token, submission id) -> value acknowledged
    sent: dict[str, list[tuple[int, str, float]]] = {s.token: [] for s in st.subjects}
    lock = threading.Lock()

    def rater(token: str, k0: int) -> None:
        with httpx.Client(base_url=base, timeout=5) as c:
            try:
                page = c.get(f"/s/{token}").text
                csrf = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page).group(1)
                for k in range(30):
                    trial = c.get(f"/api/s/{token}/state").json()["trial"]
                    value, sid = float((k + k0) % 11) / 2, f"r{k0}-{k}"
                    sent[token].append((trial["id"], sid, value))
                    r = c.post(f"/api/s/{token}/ratings", headers={"X-CSRF-Token": csrf},
                               json={"trial_id": trial["id"], "value": value,
                                     "submission_id": sid})
                    assert r.status_code == 200, r.text
                    with lock:
                        acked[(token, sid)] = r.json()["rating"]["value"]
            except (httpx.HTTPError, AttributeError):
                return  # the server died under us

    threads = [threading.Thread(target=rater, args=(s.token, i))
               for i, s in enumerate(st.subjects)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for t in threads:
        t.join(timeout=30)
    assert 40 <= len(acked) < 120, "the kill should land while raters are still rating"

    proc = start_study_server(url, port=port, log=tmp_path / "server.log")
    try:
        with StudyStore(url) as store, store.engine.connect() as conn:
            stored = {(r.subject_id, r.submission_id): (r.trial_id, r.value) for r in
                      conn.execute(select(Rating.subject_id, Rating.submission_id,
                                          Rating.trial_id, Rating.value))}
            per_trial = conn.execute(select(func.count()).select_from(Rating)
                                     .group_by(Rating.trial_id)).scalars().all()
            subject_of = {s.token: store.subject_by_token(s.token).id for s in st.subjects}
        assert set(per_trial) == {1}  # no trial rated twice
        for (token, sid), value in acked.items():
            assert stored[(subject_of[token], sid)][1] == value  # every ack is there
        assert len(stored) >= len(acked)  # (at most the in-flight ones more)
        # Replaying the last submission of each subject after the restart stores nothing new.
        with httpx.Client(base_url=base, timeout=5) as c:
            for token, tries in sent.items():
                if not tries:
                    continue
                trial_id, sid, value = tries[-1]
                page = c.get(f"/s/{token}").text
                csrf = re.search(r'content="([0-9a-f]{64})"', page).group(1)
                r = c.post(f"/api/s/{token}/ratings", headers={"X-CSRF-Token": csrf},
                           json={"trial_id": trial_id, "value": value, "submission_id": sid})
                assert r.status_code == 200 and r.json()["rating"]["trial_id"] == trial_id
        assert n_ratings(url) == len(stored) + sum(
            1 for token, tries in sent.items()
            if tries and (subject_of[token], tries[-1][1]) not in stored)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_two_workers_share_the_store(tmp_path):
    db = tiny_database(tmp_path / "db", n=6)
    url = str(tmp_path / "study.db")
    st = create_study(url, db, subjects=3, training=0, seed=2)
    port = free_port()
    proc = start_study_server(url, port=port, log=tmp_path / "server.log", workers=2)
    failures: list[str] = []
    try:
        def rater(token: str) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
                csrf = re.search(r'content="([0-9a-f]{64})"', c.get(f"/s/{token}").text).group(1)
                trial = c.get(f"/api/s/{token}/state").json()["trial"]
                for k in range(6):
                    r = c.post(f"/api/s/{token}/ratings", headers={"X-CSRF-Token": csrf},
                               json={"trial_id": trial["id"], "value": 1.0 + k / 2,
                                     "submission_id": f"w{k}"})
                    if r.status_code != 200:
                        failures.append(r.text)
                        return
                    trial = r.json()["state"]["trial"]
                if trial is not None:
                    failures.append(f"{token[:6]}: not finished")

        threads = [threading.Thread(target=rater, args=(s.token,)) for s in st.subjects]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert failures == []
    with StudyStore(url) as store:
        frame = store.ratings_frame(st.id)
    assert len(frame) == 18
    assert frame.groupby("subject")["score"].apply(list).tolist() == [
        [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]] * 3


def test_images_are_the_files_with_or_without_cached_lookups(tmp_path, study):
    url, st = study
    token = st.subjects[0].token
    with TestClient(create_app(url)) as c:
        trial = c.get(f"/api/s/{token}/state").json()["trial"]
        cached = c.get(trial["image_url"])  # subject and trial known from the state: no thread
    with TestClient(create_app(url)) as fresh:  # nothing cached: looked up in a thread
        first = fresh.get(trial["image_url"])
    with StudyStore(url) as store:
        subject = store.subject_by_token(token)
        file = Path(subject.study.database_root) / store.trial(subject.id, trial["id"]).image_path
    for r in (cached, first):
        assert r.status_code == 200 and r.content == file.read_bytes()
        assert r.headers["content-type"] == "image/png"
        assert r.headers["cache-control"] == "private, max-age=3600"
        assert "content-security-policy" in r.headers
    file.unlink()
    with TestClient(create_app(url)) as fresh:
        fresh.get(f"/api/s/{token}/state")
        assert fresh.get(trial["image_url"]).status_code == 404  # file missing


def test_server_timing_log_has_every_request(tmp_path, study, monkeypatch):
    from aigiqa.study.app import TIMING_ENV

    url, st = study
    monkeypatch.setenv(TIMING_ENV, str(tmp_path / "timing"))
    token = st.subjects[0].token
    with TestClient(create_app(url)) as c:
        rate(c, token, [1.0, 2.5])
        c.get(c.get(f"/api/s/{token}/state").json()["trial"]["image_url"])
        c.get("/healthz")
    (log,) = (tmp_path / "timing").glob("timing-*.tsv")
    rows = [line.split("\t") for line in log.read_text().splitlines()]
    assert all(len(r) == 5 for r in rows)
    kinds = [r[0] for r in rows if r[0] != "lag" and not r[0].startswith("gc")]
    assert kinds == ["page", "state", "post", "state", "post", "state", "image", "other"]
    assert {r[0] for r in rows} <= {*kinds, "lag", "gc0", "gc1", "gc2"}
    posts = [r for r in rows if r[0] == "post"]
    assert all(r[1] == "200" and float(r[3]) >= float(r[4]) > 0 for r in posts)
    assert all(r[4] == "" for r in rows if r[0] != "post")


def test_a_tuned_server_process_gives_blas_one_thread(study):
    """tune_process (the served app): the adaptive samplers' algebra gets one BLAS thread per
    call, whatever the library's default (set to 2 here first)."""
    import gc

    from threadpoolctl import threadpool_info, threadpool_limits

    def blas() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas()
    threadpool_limits(limits=2, user_api="blas")
    assert blas() and max(blas()) == 2
    try:
        app = create_app(study[0], tune_process=True)
        assert blas() == [1] * len(blas())
        with TestClient(app) as c:
            assert c.get("/healthz").status_code == 200
            assert blas() == [1] * len(blas())
    finally:
        gc.unfreeze()
        threadpool_limits(limits=max(before), user_api="blas")
