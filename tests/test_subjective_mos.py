"""compute_mos end to end: truth recovery, rescaling rules, screening, errors, demo ratings."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aigiqa.errors import AigiqaError
from aigiqa.subjective import MosResult, RatingsError, compute_mos, list_methods, read_ratings
from aigiqa.subjective.simulate import simulate_ratings


@pytest.fixture(scope="module")
def study():
    """300 images x 21 subjects on a 0-100 slider, one subject clicking at random."""
    return simulate_ratings(300, 21, seed=2026, random_subjects=1, bias_sd=8.0,
                            inconsistency=(4.0, 14.0))


def srcc(a, b) -> float:
    return float(stats.spearmanr(a, b).statistic)


def test_list_methods_documents_each_rule():
    methods = list_methods()
    assert set(methods) == {"mos", "zscore", "bias_removed", "mle"}
    assert all(len(desc) > 20 for desc in methods.values())


@pytest.mark.parametrize("method", ["mos", "zscore", "bias_removed", "mle"])
def test_every_method_recovers_the_truth(study, method):
    res = compute_mos(study.ratings, method=method, scale=(0, 100), target_range=(0, 5))
    assert isinstance(res, MosResult)
    t = res.table
    assert list(t.columns[:4]) == ["image", "mos", "std", "se"] and {"ci95", "n", "sos"} <= set(t)
    assert len(t) == 300 and t["image"].is_unique
    assert srcc(t["mos"], study.quality.loc[t["image"]]) > 0.98
    assert (t["ci95"] > 0).all() and (t["std"] > 0).all()
    assert res.report["split_half"]["srcc"] > 0.9
    assert res.report["method"] == method and res.report["n_ratings"] == 300 * 21
    assert json.loads(json.dumps(res.report)) == res.report  # plain JSON types only
    if method != "mle":
        assert list(res.rejected["subject"]) and study.random_subjects[0] in set(
            res.rejected["subject"])
        assert (t["n"] <= 21).all() and (t["n"] >= 20 - len(res.rejected)).all()


def test_mle_recovers_bias_and_inconsistency(study):
    res = compute_mos(study.ratings, method="mle", scale=(0, 100))
    assert res.report["mle"]["converged"] and res.report["mle"]["degenerate_subjects"] == []
    subj = res.subjects.set_index("subject")
    honest = [s for s in subj.index if s not in study.random_subjects]
    bias_err = subj.loc[honest, "bias"] - study.bias.loc[honest]
    assert np.abs(bias_err - bias_err.mean()).max() < 2.0  # biases up to ~16 on 0-100
    ratio = subj.loc[honest, "inconsistency"] / study.inconsistency.loc[honest]
    assert ratio.between(0.8, 1.2).all()
    assert subj["inconsistency"].idxmax() == study.random_subjects[0]
    assert (subj["inconsistency_lo"] < subj["inconsistency"]).all()
    assert (subj["inconsistency"] < subj["inconsistency_hi"]).all()
    assert (subj["bias_ci95"] > 0).all()
    assert res.rejected.empty and list(res.rejected.columns[:2]) == ["subject", "reason"]
    # the MLE down-weights the random subject: closer to the truth than the plain mean
    plain = compute_mos(study.ratings, method="mos", screen=False)
    truth = study.quality.loc[res.table["image"]].to_numpy()
    assert np.abs(res.table["mos"] - truth).mean() < np.abs(plain.table["mos"] - truth).mean()


def test_rescaling_rules(study):
    raw = compute_mos(study.ratings, method="mos", screen=False)
    scaled = compute_mos(study.ratings, method="mos", screen=False, scale=(0, 100),
                         target_range=(0, 5))
    np.testing.assert_allclose(scaled.table["mos"], raw.table["mos"] / 20)
    np.testing.assert_allclose(scaled.table["ci95"], raw.table["ci95"] / 20)
    np.testing.assert_allclose(scaled.table["sos"], raw.table["sos"])  # SOS stays raw
    assert scaled.report["rescale"] == {"target_range": [0.0, 5.0], "rule": "scale",
                                        "gain": 0.05, "offset": 0.0}
    z = compute_mos(study.ratings, method="zscore", screen=False)
    zmm = compute_mos(study.ratings, method="zscore", screen=False, target_range=(0, 5))
    assert zmm.table["mos"].min() == pytest.approx(0) and zmm.table["mos"].max() == (
        pytest.approx(5))
    gain = 5 / (z.table["mos"].max() - z.table["mos"].min())
    np.testing.assert_allclose(zmm.table["std"], gain * z.table["std"])
    z3 = compute_mos(study.ratings, method="zscore", screen=False, target_range=(1, 5),
                     rescale="sigma3")
    np.testing.assert_allclose(z3.table["mos"], 3 + z.table["mos"] * 4 / 6)
    mle = compute_mos(study.ratings, method="mle", scale=(0, 100))
    mle5 = compute_mos(study.ratings, method="mle", scale=(0, 100), target_range=(0, 5))
    np.testing.assert_allclose(mle5.table["mos"], mle.table["mos"] / 20)
    np.testing.assert_allclose(mle5.subjects["inconsistency"], mle.subjects["inconsistency"] / 20)
    with pytest.raises(RatingsError, match="pass scale=\\(lo, hi\\)"):
        compute_mos(study.ratings, method="mle", target_range=(0, 5))
    with pytest.raises(RatingsError, match="unknown rescale"):
        compute_mos(study.ratings, target_range=(0, 5), rescale="zz")


def test_sos_parameter_is_reported_with_a_scale(study):
    res = compute_mos(study.ratings, method="mos", scale=(0, 100), screen=False)
    assert res.report["sos_a"] > 0
    assert "sos_a" not in compute_mos(study.ratings, method="mos", screen=False).report


def test_bad_options_and_inputs_are_errors(study):
    r = study.ratings
    with pytest.raises(RatingsError, match="unknown MOS method 'dmos'"):
        compute_mos(r, method="dmos")
    with pytest.raises(RatingsError, match="pass screen=False"):
        compute_mos(r, method="mle", screen=True)
    with pytest.raises(RatingsError, match="outside the scale"):
        compute_mos(r, scale=(0, 50))
    with pytest.raises(RatingsError, match="unknown subject"):
        compute_mos(r, subjects=["S000"])
    one = pd.concat([r, pd.DataFrame({"subject": ["lonely"], "image": ["img00000"],
                                      "score": [40.0]})])
    for method in ("zscore", "mle"):
        with pytest.raises(RatingsError, match=">= 2") as info:
            compute_mos(one, method=method, screen=False)
        assert "lonely" in str(info.value)
    res = compute_mos(one, method="mos", screen=False)  # a plain mean is defined
    assert int(res.table.set_index("image").loc["img00000", "n"]) == 22
    flat = pd.concat([r, pd.DataFrame({"subject": ["flat"] * 3, "image": ["a", "b", "c"],
                                       "score": [50.0] * 3})])
    with pytest.raises(RatingsError, match="all equal"):
        compute_mos(flat, method="zscore")


def test_image_whose_raters_are_all_rejected_is_an_error(study):
    r = study.ratings
    liar = study.random_subjects[0]
    extra = pd.DataFrame({"subject": [liar], "image": ["only-the-liar"], "score": [3.0]})
    with pytest.raises(RatingsError, match="no rating left") as info:
        compute_mos(pd.concat([r, extra]), method="zscore")
    assert "only-the-liar" in str(info.value)


def test_image_with_one_rating_is_counted_not_dropped():
    rows = pd.DataFrame({"subject": ["a", "b", "a", "b", "a"], "image": list("xxyyz"),
                         "score": [1.0, 2.0, 3.0, 5.0, 4.0]})
    res = compute_mos(rows, method="mos", screen=False)
    t = res.table.set_index("image")
    assert t.loc["z", "mos"] == 4.0 and t.loc["z", "n"] == 1 and np.isnan(t.loc["z", "ci95"])
    assert res.report["images_with_one_rating"] == 1


def test_mle_degeneracy_is_warned_and_reported():
    sim = simulate_ratings(60, 14, seed=7, random_subjects=2, bias_sd=8.0,
                           inconsistency=(3.0, 14.0), missing=0.3)
    with pytest.warns(RuntimeWarning, match="degenerate"):
        res = compute_mos(sim.ratings, method="mle")
    assert res.report["mle"]["degenerate_subjects"] == ["S005"]


def test_csv_round_trip_and_demo_ratings(tmp_path):
    from aigiqa.demo import build_demo

    root = build_demo(tmp_path / "demo", n=20, seed=0)
    path = root / "ratings.csv"  # already in the format read_ratings reads
    ratings = read_ratings(path)
    res = compute_mos(ratings, method="mos", screen=False, scale=(0, 100), target_range=(0, 5))
    info = pd.concat([pd.read_csv(root / f"info_{s}.csv") for s in ("train", "val", "test")])
    expected = info.set_index("name")["mos"].loc[res.table["image"]]
    np.testing.assert_allclose(res.table["mos"], expected, atol=1e-6)
    out = res.to_csv(tmp_path / "mos.csv")
    back = pd.read_csv(out)
    assert list(back.columns) == ["image", "mos", "std", "se", "ci95", "n", "sos"]
    np.testing.assert_allclose(back["mos"], res.table["mos"], rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 21 raters, no degeneracy expected on the demo
        mle = compute_mos(ratings, method="mle", scale=(0, 100), target_range=(0, 5))
    assert srcc(mle.table["mos"], res.table["mos"]) > 0.95


def test_mle_degeneracy_is_in_the_result_for_every_writer():
    sim = simulate_ratings(60, 14, seed=7, random_subjects=2, bias_sd=8.0,
                           inconsistency=(3.0, 14.0), missing=0.3)
    with pytest.warns(RuntimeWarning, match="degenerate") as caught:
        res = compute_mos(sim.ratings, method="mle")
    assert res.warnings == [str(caught[0].message)]  # the same text as the warning
    assert res.report["warnings"] == res.warnings and "S005" in res.warnings[0]
    clean = compute_mos(sim.ratings, method="mos", screen=False)
    assert clean.warnings == [] and clean.report["warnings"] == []


def test_to_csv_names_a_file_it_cannot_write(tmp_path):
    res = compute_mos(pd.DataFrame({"subject": ["a", "b"], "image": ["x", "x"],
                                    "score": [1.0, 2.0]}), method="mos", screen=False)
    (tmp_path / "taken").mkdir()
    with pytest.raises(AigiqaError, match="taken.*MOS CSV"):
        res.to_csv(tmp_path / "taken")
    assert res.to_csv(tmp_path / "mos.csv").read_text().startswith("image,mos")
