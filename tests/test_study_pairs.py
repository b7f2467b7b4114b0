"""The study's paired-comparison mode: the pair plan and the store (on SQLite and PostgreSQL:
order, idempotent replays, ownership, values, nothing stored before COMMIT). The web routes and
exports are in test_study_pairs_app.py."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from aigiqa.store import study_pairs as study_pairs_module
from aigiqa.store.study import StudyError, StudyStore, TrialConflict, TrialNotFound
from aigiqa.store.study_domain import ChoiceValueError
from aigiqa.store.study_pairs import PairStore
from aigiqa.study import create_study, plan_pairs
from aigiqa.study.plan_pairs import candidate_pairs, create_pair_study
from studies import PROMPTS, count_choices, pair_database


def planned(url: str, study) -> dict[str, list]:
    """Each subject's pair trials (PairTrialView), in order."""
    out = {}
    with StudyStore(url) as store:
        pairs = PairStore(store)
        for link in study.subjects:
            subject = store.subject_by_token(link.token)
            with store.engine.connect() as conn:
                out[link.label] = list(pairs._plan(conn, subject.id).trials)
    return out


def name(path: str) -> str:
    return Path(path).name


# Planning ---------------------------------------------------------------------------------------
def test_candidate_pairs_within_prompts_and_the_left_out_images():
    names = [f"im{i:02d}.png" for i in range(len(PROMPTS))]
    pairs, alone = candidate_pairs(names, PROMPTS, "prompt")
    assert len(pairs) == 6 + 3 + 1  # C(4,2) + C(3,2) + C(2,2)
    group = dict(zip(names, PROMPTS, strict=True))
    assert all(group[a] == group[b] and a != b for a, b in pairs)
    assert alone == ["im09.png", "im10.png"]  # alone in its prompt; without a prompt
    everything, none_alone = candidate_pairs(names, PROMPTS, "all")
    assert len(everything) == 11 * 10 // 2 and none_alone == []
    with pytest.raises(StudyError, match="group_by='model' is unknown"):
        candidate_pairs(names, PROMPTS, "model")


def test_too_many_candidate_pairs_is_an_error(monkeypatch):
    monkeypatch.setattr(plan_pairs, "MAX_PAIRS", 20)
    names = [f"i{i}" for i in range(8)]
    with pytest.raises(StudyError, match="28 candidate pairs is more than 20"):
        candidate_pairs(names, [None] * 8, "all")


def test_full_plan_sides_repeats_and_practice(tmp_path):
    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=3, training=2, repeats=2, session_size=4, seed=5)
    assert st.mode == "pairs" and st.n_pairs == 10 and st.n_left_out == 2
    trials = planned(url, st)
    practice = None
    for label, mine in trials.items():
        assert len(mine) == st.n_trials[label] == 2 + 10 + 2
        kinds = Counter(t.kind for t in mine)
        assert kinds == {"training": 2, "rating": 10, "repeat": 2}
        assert [t.kind for t in mine[:2]] == ["training"] * 2 and mine[0].note.startswith(
            "Practice pair 1 of 2")
        assert all(t.left_prompt == t.right_prompt and t.left_path != t.right_path for t in mine)
        rated = [frozenset((t.left_path, t.right_path)) for t in mine if t.kind == "rating"]
        assert len(set(rated)) == 10  # every candidate pair once
        first = {frozenset((t.left_path, t.right_path)): t for t in mine if t.kind == "rating"}
        for t in (t for t in mine if t.kind == "repeat"):
            shown = first[frozenset((t.left_path, t.right_path))]
            assert (t.left_path, t.right_path) == (shown.right_path, shown.left_path)  # swapped
            assert t.position > shown.position
        assert [t.session for t in mine] == [1] * 6 + [2] * 4 + [3] * 4
        these = [frozenset((t.left_path, t.right_path)) for t in mine[:2]]
        assert practice in (None, these)  # the same practice pairs for everybody
        practice = these
    # Sides: a fair coin per trial (30 rating trials), seeded.
    lefts = [name(t.left_path) < name(t.right_path) for mine in trials.values() for t in mine
             if t.kind == "rating"]
    assert 5 <= sum(lefts) <= 25
    again = create_pair_study(str(tmp_path / "again.db"), db, subjects=3, training=2,
                              repeats=2, session_size=4, seed=5)
    other = create_pair_study(str(tmp_path / "other.db"), db, subjects=3, training=2,
                              repeats=2, session_size=4, seed=6)

    def shown(url_, st_):
        return [[(name(t.left_path), name(t.right_path), t.kind) for t in mine]
                for mine in planned(url_, st_).values()]
    assert shown(str(tmp_path / "again.db"), again) == shown(url, st)
    assert shown(str(tmp_path / "other.db"), other) != shown(url, st)


def test_balanced_design_gives_each_pair_k_subjects(tmp_path):
    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_pair_study(url, db, subjects=5, design="balanced", judgements_per_pair=2,
                           seed=1)
    counts: Counter = Counter()
    for mine in planned(url, st).values():
        judged = {frozenset((t.left_path, t.right_path)) for t in mine}
        assert len(judged) == len(mine)  # distinct subjects per pair: no pair twice
        counts.update(judged)
    assert sorted(counts.values()) == [2] * 10
    assert max(st.n_trials.values()) - min(st.n_trials.values()) <= 1
    with pytest.raises(StudyError, match="judgements_per_pair=6 is more than subjects=5"):
        create_pair_study(url, db, subjects=5, design="balanced", judgements_per_pair=6)


def test_a_database_without_two_images_of_one_prompt_is_refused(tmp_path):
    db = pair_database(tmp_path / "db", prompts=["a", "b", "c", None])
    with pytest.raises(StudyError, match="no prompt group has two images.*--pair-group all"):
        create_pair_study(str(tmp_path / "s.db"), db, subjects=2)
    st = create_pair_study(str(tmp_path / "s.db"), db, subjects=2, group_by="all")
    assert st.n_pairs == 6 and st.n_left_out == 0


def test_the_trial_selection_step_is_pluggable(tmp_path):
    db = pair_database(tmp_path / "db")
    names = [r.name for r in db]
    candidates, _ = candidate_pairs(names, [r.prompt for r in db])

    class FirstTwo:
        calls: list = []

        def next_pair(self, subject, given):
            self.calls.append((subject, tuple(given)))
            return [3, 7][len(given)] if len(given) < 2 else None

    url = str(tmp_path / "s.db")
    sampler = FirstTwo()
    st = create_pair_study(url, db, subjects=2, sampler=sampler)
    assert sampler.calls == [(0, ()), (0, (3,)), (0, (3, 7)), (1, ()), (1, (3,)), (1, (3, 7))]
    for mine in planned(url, st).values():
        assert {frozenset((name(t.left_path), name(t.right_path))) for t in mine} == {
            frozenset(candidates[3]), frozenset(candidates[7])}


# The store (SQLite and PostgreSQL) ---------------------------------------------------------------
@pytest.fixture
def pair_study(tmp_path, study_db_url):
    db = pair_database(tmp_path / "db")
    st = create_pair_study(study_db_url, db, subjects=2, training=1, repeats=1, seed=2)
    return study_db_url, st


def test_store_rules_replays_conflicts_and_values(pair_study):
    url, st = pair_study
    with StudyStore(url) as store:
        pairs = PairStore(store)
        a, b = (store.subject_by_token(s.token) for s in st.subjects)
        assert a.study.mode == "pairs" and a.study.allow_ties is False
        t0 = pairs.state(a.id).trial
        with pytest.raises(ChoiceValueError, match="does not allow ties"):
            pairs.submit(a, t0.id, "tie", "a-0")
        with pytest.raises(ChoiceValueError, match=r"choice 'up' is not one of \['left', "
                                                   r"'right'\]"):
            pairs.submit(a, t0.id, "up", "a-0")
        with pytest.raises(ChoiceValueError, match="response_ms -5"):
            pairs.submit(a, t0.id, "left", "a-0", -5)
        with pytest.raises(TrialNotFound):  # the other subject's trial
            pairs.submit(b, t0.id, "left", "b-0")
        with pytest.raises(TrialNotFound, match="paired-comparison study"):
            store.submit_rating(a, t0.id, 0.0, "r-0")  # a pair trial takes no rating
        assert count_choices(url) == 0
        first, replayed, state = pairs.submit(a, t0.id, "right", "a-0", 812)
        assert not replayed and state.done == 1 and first.response_ms == 812
        again, replayed, _ = pairs.submit(a, t0.id, "right", "a-0", 812)
        assert replayed and again == first
        double, replayed, _ = pairs.submit(a, t0.id, "left", "a-1")  # a second click
        assert replayed and double == first and double.choice == "right"
        nxt = state.trial
        with pytest.raises(TrialConflict, match="already used"):
            pairs.submit(a, nxt.id, "left", "a-0")
        later = pairs.state(a.id)
        with pytest.raises(TrialConflict, match="not the current trial"):
            pairs.submit(a, planned(url, st)["S01"][3].id, "left", "a-9")
        assert later.done == 1 and count_choices(url) == 1
    with StudyStore(url) as fresh:  # another process, another day: the choice is there
        frame = PairStore(fresh).choices_frame(st.id)
    assert frame[["subject", "position", "kind", "choice", "response_ms"]].values.tolist() == [
        ["S01", 0, "training", "right", 812]]
    assert (frame["left"].iloc[0], frame["right"].iloc[0]) == (name(t0.left_path),
                                                               name(t0.right_path))


def test_a_failure_before_commit_stores_nothing(pair_study, monkeypatch):
    url, st = pair_study

    def broken(*args, **kwargs):
        raise RuntimeError("disk gone")

    with StudyStore(url) as store:
        pairs = PairStore(store)
        subject = store.subject_by_token(st.subjects[0].token)
        trial = pairs.state(subject.id).trial
        monkeypatch.setattr(study_pairs_module, "touch_session", broken)
        with pytest.raises(RuntimeError, match="disk gone"):  # no answer, so no ack
            pairs.submit(subject, trial.id, "left", "x-1")
        assert count_choices(url) == 0 and pairs.state(subject.id).done == 0
        monkeypatch.undo()
        stored, replayed, _ = pairs.submit(subject, trial.id, "left", "x-1")
        assert not replayed and count_choices(url) == 1


def test_concurrent_submits_store_one_choice(pair_study):
    url, st = pair_study
    with StudyStore(url) as store:
        pairs = PairStore(store)
        subject = store.subject_by_token(st.subjects[1].token)
        trial = pairs.state(subject.id).trial
        results = []

        def go(k: int) -> None:
            results.append(pairs.submit(subject, trial.id, ["left", "right"][k % 2], f"c-{k}"))

        threads = [threading.Thread(target=go, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert count_choices(url) == 1
    assert len({r[0] for r in results}) == 1 and sum(not r[1] for r in results) == 1


def test_a_rating_study_takes_no_choice(tmp_path):
    db = pair_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    st = create_study(url, db, subjects=1, training=0)
    with StudyStore(url) as store:
        subject = store.subject_by_token(st.subjects[0].token)
        assert subject.study.mode == "ratings"
        with pytest.raises(TrialNotFound, match="rating study"):
            PairStore(store).submit(subject, store.state(subject.id).trial.id, "left", "z")


