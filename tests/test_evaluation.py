"""Evaluation protocol: agreement with scipy.stats, logistic maps, bootstrap and paired tests."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import aigiqa
from aigiqa import evaluation as ev
from aigiqa.errors import AigiqaError, EvaluationError


def _data(n: int, seed: int = 0, noise: float = 0.5, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    pred = truth + rng.normal(scale=noise, size=n)
    if decimals is not None:
        truth, pred = np.round(truth, decimals), np.round(pred, decimals)
    return pred, truth


# -- point estimates -----------------------------------------------------------------------------
@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_matches_scipy_with_and_without_ties(decimals):
    pred, truth = _data(300, seed=1, decimals=decimals)
    if decimals is not None:
        assert len(np.unique(pred)) < len(pred)  # really has ties
    result = ev.evaluate(pred, truth)
    assert result["srcc"] == pytest.approx(stats.spearmanr(pred, truth).statistic, abs=1e-12)
    krcc = stats.kendalltau(pred, truth, variant="b").statistic
    assert result["krcc"] == pytest.approx(krcc, abs=1e-12)
    assert result["plcc_raw"] == pytest.approx(stats.pearsonr(pred, truth).statistic, abs=1e-12)
    assert result["n"] == 300
    assert result["main"] == pytest.approx((result["srcc"] + result["plcc"]) / 2)


def test_public_api_exports_evaluate():
    pred, truth = _data(50)
    assert aigiqa.evaluate(pred, truth) == ev.evaluate(pred, truth)


@pytest.mark.parametrize("fit", ["logistic4", "logistic5"])
def test_logistic_improves_plcc_on_a_sigmoidal_relation(fit):
    rng = np.random.default_rng(2)
    pred = rng.uniform(-4, 4, size=400)
    truth = 1 + 3 / (1 + np.exp(-1.7 * pred)) + rng.normal(scale=0.1, size=400)
    result = ev.evaluate(pred, truth, fit=fit)
    assert result["fit_used"] == fit
    assert result["plcc"] > result["plcc_raw"] + 0.02
    assert result["plcc"] > 0.98
    mapping = ev.fit_logistic(pred, truth, fit)
    grid = np.linspace(-6, 6, 500)
    assert np.all(np.diff(mapping(grid)) >= -1e-12)  # monotone non-decreasing
    # rmse is measured after the map, in target units (noise sd 0.1)
    assert 0.08 < result["rmse"] < 0.13


def test_fitted_params_are_the_vqeg_forms():
    rng = np.random.default_rng(3)
    pred = rng.uniform(0, 10, size=200)
    truth = 5 / (1 + np.exp(-(pred - 4) / 1.5)) + 0.1 * pred + rng.normal(scale=0.05, size=200)
    b1, b2, b3, b4 = ev.fit_logistic(pred, truth, "logistic4").params
    vqeg4 = (b1 - b2) / (1 + np.exp(-(pred - b3) / abs(b4))) + b2
    np.testing.assert_allclose(ev.fit_logistic(pred, truth, "logistic4")(pred), vqeg4)
    assert b3 == pytest.approx(4.3, abs=0.5) and abs(b4) == pytest.approx(1.5, abs=0.4)
    m5 = ev.fit_logistic(pred, truth, "logistic5")
    c1, c2, c3, c4, c5 = m5.params
    vqeg5 = c1 * (0.5 - 1 / (1 + np.exp(c2 * (pred - c3)))) + c4 * pred + c5
    np.testing.assert_allclose(m5(pred), vqeg5)
    assert np.sqrt(np.mean((vqeg5 - truth) ** 2)) < 0.07  # the 5-parameter form fits this exactly
    assert c4 == pytest.approx(0.1, abs=0.05)


def test_no_fit_and_linear_fallback(monkeypatch):
    pred, truth = _data(200, seed=4)
    none = ev.evaluate(pred, truth, fit="none")
    assert none["fit_used"] == "none"
    assert none["plcc"] == pytest.approx(none["plcc_raw"])
    assert none["rmse"] == pytest.approx(np.sqrt(np.mean((pred - truth) ** 2)))

    def broken(*args, **kwargs):
        raise RuntimeError("no convergence")

    monkeypatch.setattr(ev.point, "_fit_logistic_z", broken)
    linear = ev.evaluate(pred, truth)
    assert linear["fit_used"] == "linear"
    assert linear["plcc"] == pytest.approx(linear["plcc_raw"])  # PLCC is affine-invariant
    slope, intercept = np.polyfit(pred, truth, 1)
    expected_rmse = np.sqrt(np.mean((slope * pred + intercept - truth) ** 2))
    assert linear["rmse"] == pytest.approx(expected_rmse)


def test_lower_better_flips_the_sign():
    pred, truth = _data(200, seed=5)
    good = ev.evaluate(pred, truth)
    flipped = ev.evaluate(-pred, truth, lower_better=True)
    for key in ("srcc", "krcc", "plcc", "plcc_raw", "rmse", "main"):
        assert flipped[key] == pytest.approx(good[key], abs=1e-6)
    wrong_way = ev.evaluate(-pred, truth)
    assert wrong_way["srcc"] < 0 and wrong_way["krcc"] < 0 and wrong_way["plcc_raw"] < 0
    assert wrong_way["plcc"] == pytest.approx(-good["plcc"], abs=1e-6)  # sign kept after the map
    assert wrong_way["main"] < 0


def test_constant_predictions_give_zero_not_nan():
    _, truth = _data(100, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = ev.evaluate(np.full(100, 3.0), truth)
        boot = ev.bootstrap_ci(np.full(100, 3.0), truth, n_resamples=50)
    for key in ("srcc", "krcc", "plcc", "plcc_raw", "main"):
        assert result[key] == 0.0
    assert result["fit_used"] == "constant"
    assert result["rmse"] == pytest.approx(np.std(truth))
    assert all(interval == (0.0, 0.0) for interval in boot.values())


@pytest.mark.parametrize(
    ("pred", "truth", "words"),
    [
        ([1, 2, np.nan, 4, np.nan], [1, 2, 3, 4, 5], ["pred", "2 non-finite", "index 2"]),
        ([1, 2, 3, 4], [1, np.inf, 3, 4], ["truth", "1 non-finite", "index 1"]),
        ([1, 2, 3, 4], [1, 2, 3], ["4 values", "truth has 3"]),
        ([1, 2], [1, 2], ["at least 3", "got 2"]),
        ([[1, 2], [3, 4]], [1, 2], ["1-D"]),
        (["a", "b", "c"], [1, 2, 3], ["not numeric"]),
    ],
)
def test_bad_input_is_an_evaluation_error(pred, truth, words):
    with pytest.raises(EvaluationError) as info:
        ev.evaluate(pred, truth)
    assert isinstance(info.value, AigiqaError)
    for word in words:
        assert word in str(info.value)


def test_unknown_fit_is_named():
    pred, truth = _data(10)
    with pytest.raises(EvaluationError, match="logistic3"):
        ev.evaluate(pred, truth, fit="logistic3")


# -- bootstrap -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "decimals"), [(37, None), (200, 1), (230, 0)])
def test_resampled_statistics_equal_scipy_on_each_resample(n, decimals):
    pred, truth = _data(n, seed=n, decimals=decimals)
    counts = ev.bootstrap_counts(n, 12, seed=7)
    assert counts.shape == (n, 12) and np.all(counts.sum(axis=0) == n)
    res = ev.resampling.Resampled(truth, counts)
    srcc, krcc, plcc = res.srcc(pred), res.krcc(pred), res.pearson(pred)
    for r in range(12):
        idx = np.repeat(np.arange(n), counts[:, r].astype(int))
        a, b = pred[idx], truth[idx]
        assert srcc[r] == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-5)
        assert krcc[r] == pytest.approx(stats.kendalltau(a, b, variant="b").statistic, abs=1e-5)
        assert plcc[r] == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-9)


def test_bootstrap_ci_contains_estimate_narrows_and_is_seeded():
    small_pred, small_truth = _data(100, seed=8, noise=0.8)
    big_pred, big_truth = _data(1600, seed=8, noise=0.8)
    small = ev.bootstrap_ci(small_pred, small_truth, n_resamples=400, seed=1)
    big = ev.bootstrap_ci(big_pred, big_truth, n_resamples=400, seed=1)
    point = ev.evaluate(small_pred, small_truth)
    assert set(small) == {"srcc", "plcc", "krcc", "main"}
    for stat, (lo, hi) in small.items():
        assert lo < point[stat] < hi
        assert big[stat][1] - big[stat][0] < 0.5 * (hi - lo)  # ~1/sqrt(16) as wide
    assert ev.bootstrap_ci(small_pred, small_truth, n_resamples=400, seed=1) == small
    assert ev.bootstrap_ci(small_pred, small_truth, n_resamples=400, seed=2) != small
    wider = ev.bootstrap_ci(small_pred, small_truth, n_resamples=400, seed=1, level=0.99)
    assert wider["srcc"][0] < small["srcc"][0] and wider["srcc"][1] > small["srcc"][1]


def test_paired_bootstrap_detects_a_better_metric_not_a_copy():
    rng = np.random.default_rng(9)
    truth = rng.normal(size=300)
    better = truth + rng.normal(scale=0.3, size=300)
    worse = truth + rng.normal(scale=1.5, size=300)
    test = ev.paired_bootstrap(better, worse, truth, statistic="srcc", n_resamples=500)
    assert test["difference"] > 0.2
    assert test["p_value"] < 0.01
    assert test["ci"][0] > 0
    assert test["a"] == pytest.approx(ev.evaluate(better, truth)["srcc"])
    swapped = ev.paired_bootstrap(worse, better, truth, n_resamples=500)
    assert swapped["difference"] == pytest.approx(-test["difference"])
    assert swapped["p_value"] < 0.01
    for statistic in ("plcc", "krcc", "main"):
        copy = ev.paired_bootstrap(better, better.copy(), truth, statistic=statistic,
                                   n_resamples=200)
        assert copy["difference"] == 0 and copy["p_value"] == 1.0
    flipped = ev.paired_bootstrap(better, -worse, truth, lower_better_b=True, n_resamples=200)
    assert flipped["b"] == pytest.approx(test["b"])


def test_paired_bootstrap_rejects_unknown_statistic():
    pred, truth = _data(20)
    with pytest.raises(EvaluationError, match="rmse"):
        ev.paired_bootstrap(pred, pred, truth, statistic="rmse")


def test_evaluate_many_table():
    pred, truth = _data(300, seed=10)
    preds = {"good": pred, "inverted": -pred, "noise": np.random.default_rng(0).normal(size=300)}
    table = ev.evaluate_many(preds, truth, lower_better={"inverted": True}, bootstrap=200, seed=3)
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == ["good", "inverted", "noise"] and table.index.name == "metric"
    for col in ("srcc", "krcc", "plcc", "plcc_raw", "rmse", "main", "n", "fit_used",
                "srcc_ci_low", "srcc_ci_high", "plcc_ci_low", "krcc_ci_high", "main_ci_low"):
        assert col in table.columns
    single = ev.evaluate(pred, truth)
    for key in ("srcc", "krcc", "plcc", "plcc_raw", "rmse", "main"):
        assert table.loc["good", key] == pytest.approx(single[key])
        assert table.loc["inverted", key] == pytest.approx(single[key], abs=1e-6)
    ci = ev.bootstrap_ci(pred, truth, n_resamples=200, seed=3)
    assert (table.loc["good", "srcc_ci_low"], table.loc["good", "srcc_ci_high"]) == \
        pytest.approx(ci["srcc"])
    assert table.loc["noise", "srcc_ci_low"] < 0 < table.loc["noise", "srcc_ci_high"]
    plain = ev.evaluate_many(preds, truth, bootstrap=0)
    assert not any(c.endswith("_ci_low") for c in plain.columns)


def test_evaluate_many_errors_name_the_metric():
    pred, truth = _data(30)
    bad = pred.copy()
    bad[4] = np.nan
    with pytest.raises(EvaluationError, match="'broken'.*index 4"):
        ev.evaluate_many({"ok": pred, "broken": bad}, truth, bootstrap=0)
    with pytest.raises(EvaluationError, match="missing"):
        ev.evaluate_many({"ok": pred}, truth, lower_better={"missing": True})


def test_bootstrap_on_real_mos_scale(shared):
    """The AIGIQA-20K train MOS (as released) with a synthetic predictor."""
    frame = pd.read_csv(shared / "reference" / "aigiqa20k" / "info_train.csv")
    truth = frame["mos"].to_numpy(float)[:1500]
    pred = truth + np.random.default_rng(11).normal(scale=0.6, size=len(truth))
    ci = ev.bootstrap_ci(pred, truth, n_resamples=300)
    point = ev.evaluate(pred, truth)
    assert point["srcc"] == pytest.approx(stats.spearmanr(pred, truth).statistic)
    for stat, (lo, hi) in ci.items():
        assert lo < point[stat] < hi


def test_chunked_resampling_gives_the_same_intervals(monkeypatch):
    pred, truth = _data(250, seed=12, decimals=1)
    whole = ev.bootstrap_ci(pred, truth, n_resamples=120, seed=4)
    counts = ev.bootstrap_counts(250, 120, seed=4)
    monkeypatch.setattr(ev.resampling, "CHUNK_ELEMENTS", 250 * 7)  # 7 resamples per chunk
    chunked = ev.bootstrap_ci(pred, truth, n_resamples=120, seed=4)
    for stat, interval in whole.items():  # same resamples; sums in another order
        assert chunked[stat] == pytest.approx(interval, abs=1e-9)
    np.testing.assert_array_equal(ev.bootstrap_counts(250, 120, seed=4), counts)


def test_same_numbers_without_threadpoolctl(monkeypatch):
    pred, truth = _data(200, seed=13)
    with_limits = ev.evaluate_many({"m": pred}, truth, bootstrap=50)
    monkeypatch.setattr(ev.point, "ThreadpoolController", None)
    pd.testing.assert_frame_equal(ev.evaluate_many({"m": pred}, truth, bootstrap=50), with_limits)
