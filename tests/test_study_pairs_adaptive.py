"""Adaptive pairs studies (``--sampler adaptive``): the plan holds only training, each further
pair is chosen when its subject needs it, from every subject's stored choices; stored
atomically (SQLite and PostgreSQL), the same after a restart or in another process, never a
pair twice for a subject, within the groups, not uniform; the app's rules and exports hold."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from aigiqa.store.study import StudyError, StudyStore, TrialConflict, TrialNotFound
from aigiqa.store.study_models import Trial
from aigiqa.store.study_pairs import PairStore
from aigiqa.study.app import create_app
from aigiqa.study.cli import app as study_cli
from aigiqa.study.pairs_export import comparisons_table, pair_scores, position_bias
from aigiqa.study.plan_pairs import create_pair_study
from studies import PROMPTS, choose_all, count_choices, pair_database


def image_no(path: str) -> int:
    return int(Path(path).stem[2:])  # img/im07.png → 7


def count_trials(url: str) -> int:
    with StudyStore(url) as store, store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Trial)).scalar_one())


def better_wins(trial) -> str:
    """A rater without noise: the image with the larger number is better."""
    return "left" if image_no(trial.left_path) > image_no(trial.right_path) else "right"


def answer(pairs: PairStore, store: StudyStore, token: str, steps: int, tag: str) -> list:
    """The subject answers up to ``steps`` trials (better_wins); the (left, right) shown."""
    subject = store.subject_by_token(token)
    shown = []
    for n in range(steps):
        trial = pairs.state(subject.id).trial
        if trial is None:
            break
        shown.append((image_no(trial.left_path), image_no(trial.right_path)))
        pairs.submit(subject, trial.id, better_wins(trial), f"{tag}-{n}")
    return shown


# Planning ---------------------------------------------------------------------------------------
def test_the_plan_holds_only_training_and_refuses_fixed_options(tmp_path):
    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=3, training=2, adaptive=True, pairs_per_subject=6)
    assert st.n_trials == {"S01": 8, "S02": 8, "S03": 8}
    assert count_trials(url) == 3 * 2  # training only
    with StudyStore(url) as store:
        assert store.study(st.id).design == "adaptive"
        progress = PairStore(store).progress(st.id)
    assert progress["total"].tolist() == [8, 8, 8] and progress["done"].tolist() == [0, 0, 0]
    for kwargs, message in [
            ({"repeats": 1}, "repeats: not with the adaptive sampler"),
            ({"design": "balanced", "judgements_per_pair": 1}, "design, judgements_per_pair"),
            ({"pairs_per_subject": 0}, "pairs_per_subject=0 is invalid"),
            ({"pairs_per_subject": 9, "training": 2}, "11 is more than the 10 candidate")]:
        with pytest.raises(StudyError, match=message):
            create_pair_study(url, db, subjects=2, **{"adaptive": True, "pairs_per_subject": 3,
                                                     **kwargs})
    with pytest.raises(StudyError, match="pairs_per_subject is the budget"):
        create_pair_study(url, db, subjects=2, pairs_per_subject=3)


def test_cli_options_that_do_not_combine(tmp_path):
    root = tmp_path / "csvdb"
    db = pair_database(root, prompts=PROMPTS[:-1] + ["p4"])
    (root / "scores.csv").write_text("\n".join(
        ["name,prompt,mos"] + [f"img/{r.name},{r.prompt},1" for r in db]) + "\n")
    base = ["create", "--database", "csv", "--root", str(root), "--subjects", "2", "--db",
            str(tmp_path / "s.db"), "--option", "file=scores.csv", "--option",
            "prompt_column=prompt", "--option", "score_range=0,5"]
    runner = CliRunner()
    ok = runner.invoke(study_cli, [*base, "--mode", "pairs", "--sampler", "adaptive",
                                   "--pairs-per-subject", "4", "--training", "1"])
    assert ok.exit_code == 0, ok.output
    assert "adaptive sampler: 4 pairs per subject" in ok.output and "10 trials" in ok.output
    tokens = re.findall(r"S0\d: /s/(\S+)", ok.output)
    choose_all(str(tmp_path / "s.db"), tokens)  # through PairStore.state, as the page does
    out = tmp_path / "out"
    exported = runner.invoke(study_cli, ["export", "--db", str(tmp_path / "s.db"), "--out",
                                         str(out)])
    assert exported.exit_code == 0, exported.output
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert len(comparisons) == 10 and Counter(comparisons["kind"]) == {"training": 2,
                                                                        "rating": 8}
    report = json.loads((out / "pairs-report.json").read_text())
    assert report["position_bias"]["overall"]["left"] + \
        report["position_bias"]["overall"]["right"] == 8
    for extra, message in [
            (["--mode", "pairs", "--sampler", "adaptive"], "needs --pairs-per-subject"),
            (["--mode", "pairs", "--sampler", "adaptive", "--pairs-per-subject", "3",
              "--repeats", "2"], "--repeats: not with --sampler adaptive"),
            (["--mode", "pairs", "--pairs-per-subject", "3"], "only with --sampler adaptive"),
            (["--mode", "pairs", "--sampler", "smart"], "--sampler 'smart' is unknown"),
            (["--sampler", "adaptive"], "--sampler: only for --mode pairs")]:
        bad = runner.invoke(study_cli, [*base, *extra])
        assert bad.exit_code == 2 and message in bad.output, (extra, bad.output)


# The store (SQLite and PostgreSQL) ---------------------------------------------------------------
def test_trials_are_chosen_as_answered_within_groups_never_twice(tmp_path, study_db_url):
    db = pair_database(tmp_path / "db")
    url = study_db_url
    st = create_pair_study(url, db, subjects=3, training=1, adaptive=True, pairs_per_subject=8,
                           session_size=4, seed=4)
    group = dict(zip((image_no(str(r.path)) for r in db), PROMPTS, strict=True))
    with StudyStore(url) as store:
        pairs = PairStore(store)
        for k, link in enumerate(st.subjects):
            subject = store.subject_by_token(link.token)
            seen = []
            for n in range(20):
                state = pairs.state(subject.id)
                assert state.total == 9 and state.done == n
                # trials appear as they are answered: this subject has one not answered
                with store.engine.connect() as conn:
                    mine = conn.execute(select(func.count()).select_from(Trial).where(
                        Trial.subject_id == subject.id)).scalar_one()
                if state.trial is None:
                    assert n == 9 and mine == 9
                    break
                assert mine == n + 1
                t = state.trial
                assert (t.kind, t.session) == (("training", 1) if n == 0 else
                                               ("rating", 1 + (n - 1) // 4))
                assert state.session_start == (n in (0, 5))
                a, b = image_no(t.left_path), image_no(t.right_path)
                assert group[a] == group[b] is not None  # within one prompt
                seen.append(frozenset((a, b)))
                pairs.submit(subject, t.id, better_wins(t), f"s{k}-{n}")
            assert len(seen) == 9 and len(set(seen)) == 9  # never a pair twice
            # the budget spreads over the prompts (the fewest comparisons first)
            assert set(Counter(group[min(p)] for p in seen[1:])) == {"p0", "p1", "p2"}
        progress = pairs.progress(st.id)
        assert progress["done"].tolist() == [9, 9, 9] and progress["total"].tolist() == [9] * 3
        assert progress["sessions_done"].tolist() == progress["sessions"].tolist() == [2, 2, 2]
        frame = comparisons_table(pairs, st.id)
    assert len(frame) == 27 and Counter(frame["kind"]) == {"training": 3, "rating": 24}
    assert (frame["outcome"] == "b").all()  # b: the larger name, the better image
    scores = pair_scores(frame, "prompt")
    assert set(scores["group"]) == {"p0", "p1", "p2"}
    bias = position_bias(frame)["overall"]
    assert bias["left"] + bias["right"] == 24 and 0 < bias["left"] < 24  # sides: a coin


def test_replays_conflicts_and_ownership_hold(tmp_path, study_db_url):
    db = pair_database(tmp_path / "db")
    st = create_pair_study(study_db_url, db, subjects=2, training=0, adaptive=True,
                           pairs_per_subject=3)
    with StudyStore(study_db_url) as store:
        pairs = PairStore(store)
        a, b = (store.subject_by_token(s.token) for s in st.subjects)
        t0 = pairs.state(a.id).trial
        with pytest.raises(TrialNotFound):  # another subject's trial
            pairs.submit(b, t0.id, "left", "b-0")
        first, replayed, state = pairs.submit(a, t0.id, "left", "a-0")
        assert not replayed and state.done == 1 and state.trial.id != t0.id
        again, replayed, state2 = pairs.submit(a, t0.id, "right", "a-0")
        assert replayed and again == first and state2.trial == state.trial  # nothing new
        with pytest.raises(TrialConflict, match="already used"):
            pairs.submit(a, state.trial.id, "left", "a-0")
        assert count_choices(study_db_url) == 1 and count_trials(study_db_url) == 2
    with StudyStore(study_db_url) as fresh:  # another process: the stale trial is a 409
        pairs = PairStore(fresh)
        a = fresh.subject_by_token(st.subjects[0].token)
        current = pairs.state(a.id).trial
        assert current == state.trial
        pairs.submit(a, current.id, "right", "a-1")
        assert pairs.submit(a, t0.id, "right", "a-2")[0] == first  # answered: a replay
        with pytest.raises(TrialNotFound):  # not chosen (yet): no such trial
            pairs.submit(a, max(current.id, t0.id) + 1000, "left", "a-3")


def test_concurrent_requests_for_one_subject_store_one_trial(tmp_path, study_db_url):
    db = pair_database(tmp_path / "db")
    st = create_pair_study(study_db_url, db, subjects=2, training=0, adaptive=True,
                           pairs_per_subject=4)
    states, errors = [], []
    with StudyStore(study_db_url) as one, StudyStore(study_db_url) as two:
        stores = [(one, PairStore(one)), (two, PairStore(two))]  # two server processes
        subject = one.subject_by_token(st.subjects[0].token)
        start = threading.Barrier(4)

        def ask(k: int) -> None:
            store, pairs = stores[k % 2]
            start.wait()
            try:
                states.append(pairs.state(subject.id))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=ask, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and len(states) == 4
    assert len({s.trial.id for s in states}) == 1 and count_trials(study_db_url) == 1


def run_study(url: str, tokens: list[str], rounds: int, processes: int = 1,
              restart_every: int = 0) -> list:
    """Subjects take turns answering one trial each (better_wins), through ``processes``
    stores in turn (server processes sharing the database), one of them replaced by a new
    store every ``restart_every`` steps (a server restart). The (left, right) pairs shown."""
    shown = []
    stores = [StudyStore(url) for _ in range(processes)]
    pairs = [PairStore(s) for s in stores]
    try:
        for step in range(rounds * len(tokens)):
            k = step % processes
            if restart_every and step % restart_every == restart_every - 1:
                stores[k].close()
                stores[k] = StudyStore(url)
                pairs[k] = PairStore(stores[k])
            shown += answer(pairs[k], stores[k], tokens[step % len(tokens)], 1, f"r{step}")
    finally:
        for s in stores:
            s.close()
    return shown


def test_a_restart_or_another_process_continues_with_the_same_choices(tmp_path):
    db = pair_database(tmp_path / "db", prompts=[None] * 12)
    runs = []
    for k, (processes, restart_every) in enumerate([(1, 0), (2, 7)]):
        url = str(tmp_path / f"run{k}.db")
        st = create_pair_study(url, db, subjects=3, training=0, adaptive=True, seed=9,
                               pairs_per_subject=20, group_by="all")
        runs.append(run_study(url, [s.token for s in st.subjects], 20, processes,
                              restart_every))
    assert len(runs[0]) == 60  # past the sampler's checkpoints (10, 20, 30, ...)
    assert runs[1] == runs[0]


def test_the_chosen_pairs_are_not_uniform(tmp_path):
    """Noise-free raters on 16 images: once the order is roughly known, a pair of far-apart
    images has a sure outcome, and the sampler spends its comparisons on images close in
    quality. Uniform pairs: mean distance (n + 1)/3 = 5.67 (sd of a mean of 120: 0.36), 27 of
    the 120 pairs (22.5 %) within 2."""
    db = pair_database(tmp_path / "db", prompts=[None] * 16)
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=4, training=0, adaptive=True, seed=1,
                           pairs_per_subject=40, group_by="all")
    shown = run_study(url, [s.token for s in st.subjects], 40)
    late = np.array([abs(a - b) for a, b in shown[40:]])  # after 10 per subject
    assert len(late) == 120
    assert late.mean() < 0.7 * 17 / 3 and (late <= 2).mean() > 1.4 * 27 / 120


# The web app ------------------------------------------------------------------------------------
def test_the_app_serves_chosen_trials_with_its_rules(tmp_path):
    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=2, training=1, adaptive=True, pairs_per_subject=2)
    token = st.subjects[0].token
    with TestClient(create_app(url)) as client:
        page = client.get(f"/s/{token}")
        csrf = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page.text).group(1)
        for n in range(3):
            state = client.get(f"/api/s/{token}/state").json()
            trial = state["trial"]
            assert state["total"] == 3 and state["done"] == n
            assert client.get(trial["left_url"]).status_code == 200
            body = {"trial_id": trial["id"], "choice": "left", "submission_id": f"w-{n}"}
            assert client.post(f"/api/s/{token}/choices", json=body).status_code == 403
            r = client.post(f"/api/s/{token}/choices", json=body,
                            headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200, r.text
            replay = client.post(f"/api/s/{token}/choices", json=body,
                                 headers={"X-CSRF-Token": csrf})
            assert replay.status_code == 200 and replay.json()["state"] == r.json()["state"]
        assert r.json()["state"]["finished"] is True
        again = client.post(f"/api/s/{token}/choices", headers={"X-CSRF-Token": csrf},
                            json={"trial_id": trial["id"], "choice": "right",
                                  "submission_id": "w-9"})  # answered already: a replay
        assert again.status_code == 200 and again.json()["choice"]["submission_id"] == "w-2"
        other = st.subjects[1].token
        assert client.get(trial["left_url"].replace(token, other)).status_code == 404
        first = client.get(f"/api/s/{other}/state").json()["trial"]
        csrf2 = re.search(r'name="csrf-token" content="([0-9a-f]{64})"',
                          client.get(f"/s/{other}").text).group(1)
        ok = client.post(f"/api/s/{other}/choices", headers={"X-CSRF-Token": csrf2},
                         json={"trial_id": first["id"], "choice": "left", "submission_id": "o"})
        nxt = ok.json()["state"]["trial"]
        reused = client.post(f"/api/s/{other}/choices", headers={"X-CSRF-Token": csrf2},
                             json={"trial_id": nxt["id"], "choice": "left",
                                   "submission_id": "o"})
        assert reused.status_code == 409 and "already used" in reused.json()["detail"]
        text = client.get(st.admin_path + "/comparisons.csv").text
        assert len(text.strip().splitlines()) == 1 + 3 + 1
        admin = client.get(st.admin_path)
        assert admin.status_code == 200 and "4 of 6 pairs compared" in admin.text
        assert "design adaptive" in admin.text
        assert "<td>3 / 3</td>" in admin.text and "<td>1 / 3</td>" in admin.text
