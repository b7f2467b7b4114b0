"""Each store creates only its own tables: a score store no study table, a study store no score
table (they share none); a file made by older versions, which holds both, still opens in both.

Every test runs on SQLite and on a throwaway PostgreSQL (``db_url`` in tests/conftest.py).
"""

from __future__ import annotations

from sqlalchemy import inspect

from aigiqa.metrics.base import Metric
from aigiqa.store import ScoreBase, ScoreStore, make_engine
from aigiqa.store.study import StudyStore
from aigiqa.store.study_models import StudyBase

SCORE_TABLES = {"metrics", "scores", "file_hashes"}
STUDY_TABLES = {"study_databases", "prompts", "generators", "images", "hyper_parameters",
                "studies", "subjects", "study_sessions", "trials", "ratings", "study_mos",
                "pair_studies", "pair_trials", "pair_choices", "adaptive_pair_studies",
                "adaptive_pair_items"}


class _Constant(Metric):
    name = "constant-test"
    defaults = {"k": 1}

    def score_batch(self, images, prompts):
        return [float(self.options["k"])] * len(images)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_two_stores_share_no_table():
    assert set(ScoreBase.metadata.tables) == SCORE_TABLES
    assert set(StudyBase.metadata.tables) == STUDY_TABLES


def test_a_score_store_creates_only_the_score_tables(db_url):
    ScoreStore(db_url).close()
    assert _tables(db_url) == SCORE_TABLES


def test_a_study_store_creates_only_the_study_tables(db_url):
    StudyStore(db_url).close()
    assert _tables(db_url) == STUDY_TABLES


def test_one_file_can_hold_both_stores(db_url):
    """The layout older versions wrote (every table in every store file) opens in both stores
    with its data."""
    engine = make_engine(db_url)
    ScoreBase.metadata.create_all(engine)
    StudyBase.metadata.create_all(engine)
    engine.dispose()
    metric = _Constant()
    with ScoreStore(db_url) as scores:
        scores.register_metric(metric)
        scores.add([(metric.key, "h", 2.0, None)])
    with StudyStore(db_url) as study:
        assert study.study_ids() == [] and study.count_ratings() == 0
    with ScoreStore(db_url) as scores:
        assert scores.lookup(metric.key, ["h"])["h"].value == 2.0
    assert _tables(db_url) == SCORE_TABLES | STUDY_TABLES
