"""summarize: the per-group results table of the benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aigiqa.benchmark.results import COLUMNS, summarize
from aigiqa.errors import AigiqaError

METRICS = [
    {"spec": "perfect", "name": "perfect", "key": "perfect@1:0", "kind": "baseline",
     "lower_better": False, "needs_prompt": False, "score_range": None},
    {"spec": "inverse", "name": "inverse", "key": "inverse@1:0", "kind": "baseline",
     "lower_better": True, "needs_prompt": False, "score_range": None},
    {"spec": "noisy:sigma=1", "name": "noisy", "key": "noisy@1:1", "kind": "baseline",
     "lower_better": False, "needs_prompt": False, "score_range": None},
]


def make_frame(n_labelled: int = 90, n_blind: int = 30, seed: int = 0) -> pd.DataFrame:
    """Synthetic ``to_frame()`` plus score columns: labelled train/val, blind test, 3 generators,
    a few-valued ``cfg`` and a many-valued ``steps``; a generator ``D`` with only 2 labelled."""
    rng = np.random.default_rng(seed)
    n = n_labelled + n_blind
    mos = np.concatenate([rng.uniform(0, 5, n_labelled), np.full(n_blind, np.nan)])
    gens = np.array(["A", "B", "C"])[np.arange(n) % 3]
    gens[:2] = "D"
    split = np.where(np.arange(n) < n_labelled, np.where(np.arange(n) % 5 == 0, "val", "train"),
                     "test")
    frame = pd.DataFrame({
        "name": [f"img_{i:04d}.png" for i in range(n)],
        "path": [f"/data/img_{i:04d}.png" for i in range(n)],
        "prompt": ["a cat"] * n,
        "generator": gens,
        "split": split,
        "mos": mos,
        "cfg": np.array([3.0, 7.5, 12.0])[np.arange(n) % 3][rng.permutation(n)],
        "steps": rng.permutation(np.arange(n) % 40 + 10),
    })
    # perfect: exactly the MOS on labelled rows; random on blind ones (would spoil SRCC if used)
    frame["perfect"] = np.where(np.isnan(mos), rng.uniform(-100, 100, n), mos)
    frame["inverse"] = -2.0 * np.nan_to_num(mos) + rng.normal(0, 0.1, n)
    noisy = np.nan_to_num(mos) + rng.normal(0, 1.0, n)
    noisy[[5, 17, 40]] = np.nan  # failed labelled images
    noisy[n_labelled + 3] = np.nan  # failed blind image: not in n_failed of any labelled group
    frame["noisy:sigma=1"] = noisy
    return frame


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return summarize(make_frame(), METRICS, target="mos", hyper=("cfg", "steps"), bootstrap=60,
                     seed=1)


def rows(table: pd.DataFrame, metric: str, group: str) -> pd.DataFrame:
    return table[(table["metric"] == metric) & (table["group"] == group)]


def test_columns_and_groups(table):
    assert list(table.columns) == list(COLUMNS)
    for spec in ("perfect", "inverse", "noisy:sigma=1"):
        assert rows(table, spec, "all")["value"].tolist() == ["all"]
        assert rows(table, spec, "split")["value"].tolist() == ["val", "train"]  # no blind test
        assert set(rows(table, spec, "generator")["value"]) == {"A", "B", "C", "D"}
        assert rows(table, spec, "cfg")["value"].tolist() == ["3", "7.5", "12"]


def test_perfect_metric_has_srcc_one_everywhere_and_blind_rows_never_enter(table):
    sub = table[(table["metric"] == "perfect") & (table["n"] >= 3)]
    assert len(sub) > 10
    np.testing.assert_allclose(sub["srcc"], 1.0, atol=1e-12)
    np.testing.assert_allclose(sub["krcc"], 1.0, atol=1e-12)
    assert rows(table, "perfect", "all")["n"].item() == 90  # 30 blind rows left out
    assert rows(table, "perfect", "all")["n_failed"].item() == 0


def test_failed_rows_are_left_out_and_counted(table):
    allrow = rows(table, "noisy:sigma=1", "all").iloc[0]
    assert allrow["n"] == 87 and allrow["n_failed"] == 3
    gens = rows(table, "noisy:sigma=1", "generator")
    assert gens["n_failed"].sum() == 3
    assert (gens["n"] + gens["n_failed"]).sum() == 90
    assert 0.3 < allrow["srcc"] < 0.99


def test_lower_better_metric_is_positive(table):
    assert rows(table, "inverse", "all")["srcc"].item() > 0.95
    sub = rows(table, "inverse", "split")
    assert (sub["srcc"] > 0.9).all()


def test_small_group_gets_nan_not_error(table):
    d = rows(table, "perfect", "generator").set_index("value").loc["D"]
    assert d["n"] == 2
    assert np.isnan(d["srcc"]) and np.isnan(d["plcc"]) and np.isnan(d["main"])


def test_many_valued_hyper_is_binned_into_quantiles(table):
    bins = rows(table, "perfect", "steps")
    assert len(bins) == 4
    assert all(v.startswith("[") and v.endswith("]") for v in bins["value"])
    assert bins["n"].sum() == 90  # every labelled record in exactly one bin
    lows = [float(v[1:-1].split(",")[0]) for v in bins["value"]]
    assert lows == sorted(lows)


def test_confidence_intervals_only_on_all_rows(table):
    allrows = table[table["group"] == "all"]
    for stat in ("srcc", "plcc", "krcc", "main"):
        low, high = allrows[f"{stat}_ci_low"], allrows[f"{stat}_ci_high"]
        assert low.notna().all() and high.notna().all()
        assert (low <= allrows[stat] + 1e-9).all() and (allrows[stat] <= high + 1e-9).all()
    noisy = allrows.set_index("metric").loc["noisy:sigma=1"]
    assert noisy["srcc_ci_high"] - noisy["srcc_ci_low"] > 0.005
    assert table.loc[table["group"] != "all", "srcc_ci_low"].isna().all()


def test_no_bootstrap_gives_nan_intervals_and_same_numbers(table):
    plain = summarize(make_frame(), METRICS, target="mos", hyper=("cfg", "steps"), bootstrap=0)
    assert plain["srcc_ci_low"].isna().all()
    pd.testing.assert_series_equal(plain["srcc"], table["srcc"], atol=1e-9)


def test_missing_columns_raise_clear_errors():
    frame = make_frame()
    with pytest.raises(AigiqaError, match="quality"):
        summarize(frame, METRICS, target="quality", bootstrap=0)
    with pytest.raises(AigiqaError, match="absent"):
        summarize(frame, [{"spec": "absent", "lower_better": False}], target="mos", bootstrap=0)
    with pytest.raises(AigiqaError, match="size"):
        summarize(frame, METRICS, target="mos", hyper=("size",), bootstrap=0)


def test_ci_columns_follow_the_evaluations_ci_statistics():
    from aigiqa import evaluation
    from aigiqa.benchmark import results

    assert results.CI_STATS is evaluation.CI_STATS  # one definition
    assert results.CI_COLUMNS == tuple(f"{s}_ci_{end}" for s in evaluation.CI_STATS
                                       for end in ("low", "high"))
