"""The study's paired-comparison mode over HTTP and in its exports: ownership, CSRF, choice
validation, idempotency; comparisons, scores equal to scale_pairs on the exported comparisons,
position bias; the CLI."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from scipy import stats
from typer.testing import CliRunner

from aigiqa.store.study import StudyStore
from aigiqa.store.study_pairs import PairStore
from aigiqa.study import export_study
from aigiqa.study.app import create_app
from aigiqa.study.cli import app as study_cli
from aigiqa.study.plan_pairs import create_pair_study
from aigiqa.subjective import scale_pairs
from studies import PROMPTS, choose_all, count_choices, pair_database


# The web app ------------------------------------------------------------------------------------
@pytest.fixture
def served(tmp_path):
    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=2, training=1, repeats=1, seed=3,
                           allow_ties=True)
    with TestClient(create_app(url)) as client:
        yield url, st, client


def csrf_of(client, token: str) -> str:
    page = client.get(f"/s/{token}")
    assert page.status_code == 200
    return re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page.text).group(1)


def choose(client, token, trial_id, choice, sid, csrf, **kw):
    return client.post(f"/api/s/{token}/choices", headers={"X-CSRF-Token": csrf},
                       json={"trial_id": trial_id, "choice": choice, "submission_id": sid,
                             **kw})


def test_page_state_and_images_are_the_subjects_own(served):
    url, st, client = served
    a, b = (s.token for s in st.subjects)
    page = client.get(f"/s/{a}")
    assert 'id="left"' in page.text and 'id="right"' in page.text and "/static/pairs.js" in \
        page.text and 'id="choose-tie"' in page.text
    state = client.get(f"/api/s/{a}/state").json()
    assert state["allow_ties"] is True and state["total"] == 1 + 10 + 1
    trial = state["trial"]
    assert trial["kind"] == "training" and trial["prompt"] in {"p0", "p1", "p2"}
    assert not any(".png" in str(v) for v in trial.values())  # no image name revealed
    files = set()
    for side in ("left", "right"):
        r = client.get(trial[f"{side}_url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        files.add(r.content)
        assert client.get(f"/s/{b}/pair/{trial['id']}/{side}").status_code == 404
    assert len(files) == 2  # two different images
    assert client.get(f"/s/{a}/pair/{trial['id']}/middle").status_code == 404
    assert client.get(f"/s/{a}/image/{trial['id']}").status_code == 404  # the rating route
    assert choose(client, b, trial["id"], "left", "b-1", csrf_of(client, b)).status_code == 404
    assert count_choices(url) == 0


def test_csrf_rules(served):
    url, st, client = served
    token = st.subjects[0].token
    csrf = csrf_of(client, token)
    trial = client.get(f"/api/s/{token}/state").json()["trial"]["id"]
    body = {"trial_id": trial, "choice": "left", "submission_id": "c1"}
    path = f"/api/s/{token}/choices"
    assert client.post(path, json=body).status_code == 403
    assert client.post(path, json=body, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    other = csrf_of(client, st.subjects[1].token)
    assert client.post(path, json=body, headers={"X-CSRF-Token": other}).status_code == 403
    form = client.post(path, data={k: str(v) for k, v in body.items()},
                       headers={"X-CSRF-Token": csrf})
    assert form.status_code in (415, 422)
    foreign = client.post(path, json=body, headers={"X-CSRF-Token": csrf,
                                                    "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and count_choices(url) == 0
    assert client.post(path, json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert count_choices(url) == 1


def test_bad_choices_are_422_and_replays_idempotent(served):
    url, st, client = served
    token = st.subjects[0].token
    csrf = csrf_of(client, token)
    trial = client.get(f"/api/s/{token}/state").json()["trial"]["id"]
    bad = choose(client, token, trial, "both", "v1", csrf)
    assert bad.status_code == 422 and "choice 'both' is not one of" in bad.json()["detail"]
    assert choose(client, token, trial, "left", "v1", csrf,
                  response_ms="fast").status_code == 422
    assert choose(client, token, trial, "left", "v1", csrf, extra=1).status_code == 422
    assert count_choices(url) == 0
    first = choose(client, token, trial, "tie", "v1", csrf, response_ms=1500)
    replay = choose(client, token, trial, "tie", "v1", csrf, response_ms=1500)
    double = choose(client, token, trial, "left", "v2", csrf)
    assert first.status_code == replay.status_code == double.status_code == 200
    assert first.json() == replay.json() == double.json()
    assert first.json()["choice"]["choice"] == "tie" and count_choices(url) == 1
    nxt = first.json()["state"]["trial"]["id"]
    assert choose(client, token, nxt, "left", "v1", csrf).status_code == 409  # id reused
    assert choose(client, token, nxt + 1, "left", "v3", csrf).status_code == 409  # not current
    # The rating route refuses a pair trial, whatever the score.
    r = client.post(f"/api/s/{token}/ratings", headers={"X-CSRF-Token": csrf},
                    json={"trial_id": nxt, "value": 1.0, "submission_id": "r1"})
    assert r.status_code == 404


def test_ties_refused_when_not_allowed(tmp_path):
    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=1, training=0)
    token = st.subjects[0].token
    with TestClient(create_app(url)) as client:
        page = client.get(f"/s/{token}")
        assert 'id="choose-tie"' not in page.text
        trial = client.get(f"/api/s/{token}/state").json()["trial"]["id"]
        r = choose(client, token, trial, "tie", "t1", csrf_of(client, token))
        assert r.status_code == 422 and "does not allow ties" in r.json()["detail"]
    assert count_choices(url) == 0


# Exports ----------------------------------------------------------------------------------------
def test_exported_scores_are_scale_pairs_of_the_exported_comparisons(tmp_path):
    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=4, training=1, repeats=2, seed=8,
                           allow_ties=True)
    choose_all(url, [s.token for s in st.subjects], allow_ties=True, seed=1)
    paths = export_study(url, tmp_path / "out")
    comp = pd.read_csv(paths["comparisons"], keep_default_na=False)
    assert len(comp) == sum(st.n_trials.values())
    # The comparisons-table form agrees with the positions shown.
    chosen = np.where(comp["choice"] == "left", comp["left"], comp["right"])
    expected = np.where(comp["choice"] == "tie", "tie", np.where(chosen == comp["a"], "a", "b"))
    assert (comp["outcome"] == expected).all() and (comp["a"] < comp["b"]).all()
    assert set(comp["group"]) == {"p0", "p1", "p2"} and (comp["annotator"] == comp["subject"]).all()
    assert comp["kind"].value_counts().to_dict() == {"rating": 40, "repeat": 8, "training": 4}
    scores = pd.read_csv(paths["scores"], keep_default_na=False)
    rated = comp[comp["kind"] == "rating"].reset_index(drop=True)
    again = scale_pairs(rated[["group", "a", "b", "outcome", "annotator"]], alpha=0.01,
                        by_group=True)
    assert list(scores["item"]) == list(again["item"]) and len(scores) == 9
    for col in ("score", "se", "ci_low", "ci_high"):
        np.testing.assert_allclose(scores[col], again[col], rtol=1e-8, atol=1e-9)
    assert (scores[["wins", "losses", "ties"]].values == again[["wins", "losses",
                                                                 "ties"]].values).all()
    report = json.loads(Path(paths["report"]).read_text())
    assert report["images_left_out"] == 2 and report["candidate_pairs"] == 10
    assert report["scores"]["written"] and report["scores"]["groups"] == 3
    assert sum(r["repeats"] for r in report["repeats"]) == 8
    # Position bias: the share of left among non-tie rating and repeat choices.
    judged = comp[(comp["kind"] != "training") & (comp["choice"] != "tie")]
    k, n = int((judged["choice"] == "left").sum()), len(judged)
    bias = report["position_bias"]["overall"]
    assert (bias["left"], bias["left"] + bias["right"]) == (k, n)
    assert bias["p_value"] == pytest.approx(stats.binomtest(k, n).pvalue, rel=1e-12)


def test_position_bias_of_a_rater_who_always_picks_left(tmp_path):
    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=1, training=0, group_by="all", seed=0)
    token = st.subjects[0].token
    with TestClient(create_app(url)) as client:
        csrf = csrf_of(client, token)
        for k in range(12):
            trial = client.get(f"/api/s/{token}/state").json()["trial"]["id"]
            assert choose(client, token, trial, "left", f"l{k}", csrf).status_code == 200
        page = client.get(st.admin_path)
        assert page.status_code == 200 and "left chosen in\n      100.0 % of 12" in page.text
        comp = pd.read_csv(io.StringIO(client.get(st.admin_path + "/comparisons.csv").text))
        web_scores = client.get(st.admin_path + "/pair-scores.csv?model=thurstone")
        assert client.get(st.admin_path + "/pair-scores.csv?model=nope").status_code == 422
        assert client.get(st.admin_path + "/ratings.csv").status_code == 200
    assert (comp["choice"] == "left").all() and len(comp) == 12
    assert web_scores.status_code == 200
    mine = pd.read_csv(io.StringIO(web_scores.text))
    again = scale_pairs(comp[["a", "b", "outcome"]], "thurstone", alpha=0.01)
    np.testing.assert_allclose(mine["score"], again["score"], rtol=1e-8, atol=1e-9)
    report = json.loads((Path(export_study(url, tmp_path / "out")["report"])).read_text())
    bias = report["position_bias"]["overall"]
    # k = n = 12: p = 2 · 2^-12, Clopper–Pearson lower bound (0.025)^(1/12), upper 1.
    assert bias["left_share"] == 1.0 and bias["p_value"] == pytest.approx(2 * 0.5 ** 12)
    assert bias["ci95"] == pytest.approx([0.025 ** (1 / 12), 1.0])


def test_scores_not_scalable_yet_are_reported_not_written(tmp_path):
    class TwoDisjoint:  # (im00, im01) and (im02, im03): two components within prompt p0
        def next_pair(self, subject, given):
            return [0, 5][len(given)] if len(given) < 2 else None

    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=1, training=0, seed=0, sampler=TwoDisjoint())
    warned = []
    paths = export_study(url, tmp_path / "before", warn=warned.append)
    assert "scores" not in paths and "no rating comparison yet" in warned[0]
    with StudyStore(url) as store:
        pairs = PairStore(store)
        subject = store.subject_by_token(st.subjects[0].token)
        for k in range(2):
            pairs.submit(subject, pairs.state(subject.id).trial.id, "left", f"d{k}")
    paths = export_study(url, tmp_path / "out", warn=warned.append)
    assert "scores" not in paths and len(warned) == 2
    assert "disconnected" in warned[1] and "pair scores not written" in warned[1]
    report = json.loads(Path(paths["report"]).read_text())
    assert report["scores"]["written"] is False and "disconnected" in report["scores"]["reason"]
    assert len(pd.read_csv(paths["comparisons"])) == 2
    with TestClient(create_app(url)) as client:
        r = client.get(st.admin_path + "/pair-scores.csv")
        assert r.status_code == 409 and "disconnected" in r.json()["detail"]


def test_cli_create_and_export_pairs(tmp_path):
    root = tmp_path / "csvdb"
    db = pair_database(root, prompts=PROMPTS[:-1] + ["p4"])  # the csv reader needs prompts
    rows = ["name,prompt,mos"] + [f"img/{r.name},{r.prompt},1" for r in db]
    (root / "scores.csv").write_text("\n".join(rows) + "\n")
    options = ["--option", "file=scores.csv", "--option", "prompt_column=prompt",
               "--option", "score_range=0,5"]
    runner = CliRunner()
    store = tmp_path / "s.db"
    result = runner.invoke(study_cli, [
        "create", "--database", "csv", "--root", str(root), "--subjects", "2", "--db",
        str(store), "--mode", "pairs", "--allow-ties", "--training", "0", "--repeats", "1",
        *options])
    assert result.exit_code == 0, result.output
    assert "10 candidate pairs within each prompt; 2 images alone in their prompt" in \
        result.output
    tokens = re.findall(r"S0\d: /s/(\S+)", result.output)
    assert len(tokens) == 2
    choose_all(str(store), tokens, allow_ties=True)
    result = runner.invoke(study_cli, ["export", "--db", str(store), "--out",
                                       str(tmp_path / "out"), "--model", "thurstone"])
    assert result.exit_code == 0, result.output
    assert "comparisons:" in result.output and "scores:" in result.output
    scores = pd.read_csv(tmp_path / "out" / "pair-scores.csv")
    assert len(scores) == 9 and set(scores["group"]) == {"p0", "p1", "p2"}
    bad = runner.invoke(study_cli, [
        "create", "--database", "csv", "--root", str(root), "--subjects", "2", "--db",
        str(store), "--mode", "duel", *options])
    assert bad.exit_code == 2 and "--mode 'duel' is unknown" in bad.output



def test_the_web_scores_refuse_a_fit_larger_than_their_memory_bound(tmp_path, monkeypatch):
    import aigiqa.study.pairs_app as pairs_app

    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=1, training=0, group_by="all", seed=0)
    token = st.subjects[0].token
    with TestClient(create_app(url)) as client:
        csrf = csrf_of(client, token)
        for k in range(12):
            trial = client.get(f"/api/s/{token}/state").json()["trial"]["id"]
            assert choose(client, token, trial, "left", f"l{k}", csrf).status_code == 200
        n_images = len(set(pd.read_csv(io.StringIO(
            client.get(st.admin_path + "/comparisons.csv").text))[["a", "b"]].stack()))
        monkeypatch.setattr(pairs_app, "MAX_WEB_FIT_ITEMS", n_images - 1)
        refused = client.get(st.admin_path + "/pair-scores.csv")
        monkeypatch.setattr(pairs_app, "MAX_WEB_FIT_ITEMS", n_images)
        allowed = client.get(st.admin_path + "/pair-scores.csv")
    assert refused.status_code == 409
    assert f"{n_images:,} images, more than {n_images - 1:,}" in refused.json()["detail"]
    assert "aigiqa study export" in refused.json()["detail"]
    assert allowed.status_code == 200
