"""Study planning: balanced and full designs, anchors, hidden repeats, sessions, options."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.store.study import StudyError, StudyStore
from aigiqa.store.study_models import StudyImage, Trial
from aigiqa.study import create_study
from aigiqa.study.plan import (
    REPEAT_MIN_GAP,
    assign_images,
    choose_anchors,
    order_trials,
)


def tiny_database(root: Path, n: int = 12, *, with_mos: bool = True) -> Database:
    (root / "img").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        path = root / "img" / f"im{i:02d}.png"
        Image.new("RGB", (8, 8), (i * 20 % 256, 10, 10)).save(path)
        records.append(Record(name=path.name, path=path, prompt=f"prompt {i}",
                              generator=f"G{i % 3}",
                              targets={"mos": float(i % 5) + i / 100} if with_mos else {}))
    info = DatabaseInfo(name="tiny", score_range=(0.0, 5.0), target_names=("mos",))
    return Database(info, records, root)


@pytest.mark.parametrize(("n_images", "subjects", "k"), [(30, 7, 3), (12, 5, 5), (10, 4, 1)])
def test_balanced_design_counts(n_images, subjects, k):
    names = [f"i{i}" for i in range(n_images)]
    out = assign_images(names, subjects, "balanced", k, np.random.default_rng(3))
    per_image = Counter(name for images in out for name in images)
    assert set(per_image) == set(names) and set(per_image.values()) == {k}
    assert all(len(set(images)) == len(images) for images in out)  # distinct subjects
    loads = [len(images) for images in out]
    assert max(loads) - min(loads) <= 1 and sum(loads) == n_images * k


def test_anchors_span_the_mos_range_or_the_generators():
    names = [f"i{i}" for i in range(20)]
    mos = [float(i) / 4 for i in range(20)]  # 0 … 4.75
    anchors = choose_anchors(names, mos, ["g"] * 20, 4, np.random.default_rng(0))
    values = [m for _, m in anchors]
    assert values == sorted(values) and values[0] < 1.0 and values[-1] > 3.5
    gens = [f"g{i % 4}" for i in range(20)]
    blind = choose_anchors(names, [None] * 20, gens, 4, np.random.default_rng(0))
    assert sorted(gens[names.index(nm)] for nm, _ in blind) == ["g0", "g1", "g2", "g3"]
    assert all(m is None for _, m in blind)


def test_order_repeats_and_sessions():
    images = [f"i{i}" for i in range(20)]
    trials = order_trials(images, 3, 6, np.random.default_rng(5))
    ratings = [t.image for t in trials if t.kind == "rating"]
    repeats = [t for t in trials if t.kind == "repeat"]
    assert sorted(ratings) == sorted(images) and ratings != images  # shuffled, each once
    assert len(repeats) == 3 and len(trials) == 23
    for rep in repeats:
        first = next(k for k, t in enumerate(trials) if t.image == rep.image)
        again = trials.index(rep)
        assert again - first > REPEAT_MIN_GAP
    assert Counter(t.session for t in trials) == {1: 6, 2: 6, 3: 6, 4: 5}
    assert [t.session for t in trials] == sorted(t.session for t in trials)
    assert {t.session for t in order_trials(images, 0, 0, np.random.default_rng(0))} == {1}


def test_create_study_stores_the_plan(tmp_path):
    db = tiny_database(tmp_path / "db")
    url = str(tmp_path / "s.db")
    study = create_study(url, db, subjects=4, design="balanced", ratings_per_image=2,
                         training=3, repeats=2, session_size=4, seed=7)
    assert [s.label for s in study.subjects] == ["S01", "S02", "S03", "S04"]
    assert len({s.token for s in study.subjects} | {study.admin_token}) == 5
    assert set(study.n_trials.values()) == {3 + 6 + 2}  # 12 images × 2 / 4 subjects = 6 each
    with StudyStore(url) as store, store.engine.connect() as conn:
        rows = conn.execute(select(Trial.subject_id, Trial.position, Trial.kind, Trial.session,
                                   StudyImage.name, StudyImage.mos, Trial.note)
                            .join(StudyImage, StudyImage.id == Trial.image_id)
                            .order_by(Trial.subject_id, Trial.position)).all()
    by_subject: dict[int, list] = {}
    for r in rows:
        by_subject.setdefault(r.subject_id, []).append(r)
    orders = []
    for trials in by_subject.values():
        assert [t.position for t in trials] == list(range(11))
        head = trials[:3]
        assert [t.kind for t in head] == ["training"] * 3 and all(t.note for t in head)
        assert [t.mos for t in head] == sorted(t.mos for t in head)  # worst anchor first
        assert Counter(t.kind for t in trials[3:]) == {"rating": 6, "repeat": 2}
        orders.append([t.name for t in trials if t.kind == "rating"])
    rated = Counter(name for order in orders for name in order)
    assert set(rated.values()) == {2} and len(rated) == 12
    assert len({tuple(o) for o in orders}) == 4  # every subject has an order of their own


def test_same_seed_same_plan(tmp_path):
    db = tiny_database(tmp_path / "db")
    plans = []
    for k in range(2):
        url = str(tmp_path / f"s{k}.db")
        create_study(url, db, subjects=3, training=2, repeats=1, seed=11)
        with StudyStore(url) as store, store.engine.connect() as conn:
            plans.append(conn.execute(select(Trial.subject_id, Trial.image_id, Trial.kind)
                                      .order_by(Trial.id)).all())
    assert plans[0] == plans[1]


def test_create_study_from_registry_name(tmp_path):
    from aigiqa.demo import build_demo

    root = build_demo(tmp_path / "demo", n=10)
    study = create_study(tmp_path / "s.db", "demo", root, subjects=2, training=2)
    assert study.n_trials == {"S01": 12, "S02": 12}


@pytest.mark.parametrize(("options", "message"), [
    ({"subjects": 0}, "subjects=0"),
    ({"subjects": 2, "design": "nope"}, "design='nope'"),
    ({"subjects": 2, "design": "balanced"}, "ratings_per_image=None"),
    ({"subjects": 2, "design": "balanced", "ratings_per_image": 3}, "more than subjects"),
    ({"subjects": 2, "training": 13}, "training=13"),
    ({"subjects": 6, "design": "balanced", "ratings_per_image": 1, "repeats": 3},
     "repeats=3"),
    ({"subjects": 2, "session_size": -1}, "session_size=-1"),
    ({"subjects": 2, "scale": (5, 0, 1)}, "scale="),
    ({"subjects": 2, "scale": (0, 5, 0)}, "scale="),
])
def test_bad_options_are_errors(tmp_path, options, message):
    db = tiny_database(tmp_path / "db")
    with pytest.raises(StudyError, match=message.replace("(", r"\(")):
        create_study(tmp_path / "s.db", db, **options)


def test_registry_name_needs_root(tmp_path):
    with pytest.raises(StudyError, match="root"):
        create_study(tmp_path / "s.db", "demo", subjects=1)
