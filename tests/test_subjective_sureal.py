"""aigiqa.subjective gives sureal's numbers (Netflix sureal from PyPI, a test dependency).

Each method is compared with the sureal model that implements the same rule, on simulated
studies: complete, incomplete (30 % missing) and with repeated ratings. sureal has no sessions
(tested against written-out formulas in test_subjective_formulas.py).
"""

from __future__ import annotations

import contextlib
import io
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import sureal.subjective_model as sm  # test dependency (pyproject [dev]); required, not skipped
from sureal.dataset_reader import RawDatasetReader

from aigiqa.subjective import compute_mos
from aigiqa.subjective.simulate import simulate_ratings


def sureal_reader(ratings: pd.DataFrame) -> RawDatasetReader:
    """A sureal dataset: one content, one 'dis_video' per image, os = {subject: score(s)}."""
    dis = []
    for i, (image, rows) in enumerate(ratings.groupby("image", sort=False)):
        os_: dict[str, object] = {}
        for subject, scores in rows.groupby("subject")["score"]:
            vals = [float(v) for v in scores]
            os_[subject] = vals if len(vals) > 1 else vals[0]
        dis.append({"content_id": 0, "asset_id": i, "path": image, "os": os_})
    ds = types.SimpleNamespace(ref_videos=[{"content_id": 0, "content_name": "c", "path": "r"}],
                               dis_videos=dis)
    return RawDatasetReader(ds)


def run_sureal(model, ratings: pd.DataFrame, **settings) -> dict:
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model(sureal_reader(ratings)).run_modeling(**settings)


#: sureal's MLE settings, given explicitly so that a change of its defaults cannot move the
#: reference (belief-propagation model; the alternative-projection model's threshold, 1e-8 on
#: the change of the MOS vector, and 1000 iterations are fixed in sureal's code).
SUREAL_MLE_SETTINGS = dict(gradient_method="simplified", numerical_pdf="gaussian",
                           delta_thr=1e-8, force_subjbias_zeromean=True)
#: Our MLE's stopping rule, given explicitly for the same reason.
OUR_MLE_SETTINGS = dict(mle_tol=1e-8, mle_max_iter=1000)


DESIGNS = {
    "complete": dict(missing=0.0),
    "incomplete": dict(missing=0.3),
    "repeats": dict(missing=0.1, repeats=0.2),
}

MOS_MODELS = [
    ("mos", False, "MosModel"),
    ("mos", True, "SubjrejMosModel"),
    ("zscore", False, "ZscoringMosModel"),
    ("zscore", True, "ZscoringSubjrejMosModel"),
    ("bias_removed", False, "BiasremvMosModel"),
    ("bias_removed", True, "BiasremvSubjrejMosModel"),
]


@pytest.fixture(scope="module", params=list(DESIGNS))
def study(request):
    sim = simulate_ratings(60, 14, seed=7, random_subjects=2, bias_sd=8.0,
                           inconsistency=(3.0, 14.0), **DESIGNS[request.param])
    return request.param, sim.ratings


def sureal_image_order(ratings: pd.DataFrame) -> list[str]:
    return list(ratings.groupby("image", sort=False).groups)


@pytest.mark.parametrize(("method", "screen", "model"), MOS_MODELS)
def test_mos_methods_match_sureal(study, method, screen, model):
    design, ratings = study
    ref = run_sureal(getattr(sm, model), ratings)
    ours = compute_mos(ratings, method=method, screen=screen, split_half=0)
    table = ours.table.set_index("image").loc[sureal_image_order(ratings)]
    if screen:
        # sureal's first BT.500 ratio divides by images x max repetitions; ours by the ratings
        # the subject gave (identical for complete designs): compare the raw statistics.
        subj = ours.subjects.set_index("subject").loc[ref["observers"]]
        n_img = len(table)
        reps = ref["raw_scores"].shape[2] if "raw_scores" in ref else 1
        reps = max(reps, int(ratings.groupby(["subject", "image"]).size().max()))
        np.testing.assert_allclose(subj["ratio_outside"] * subj["n"] / (n_img * reps),
                                   ref["observer_rejected_1st_stats"], rtol=1e-12)
        np.testing.assert_allclose(subj["asymmetry"], ref["observer_rejected_2nd_stats"],
                                   rtol=1e-12)
        if design == "complete":
            assert list(subj["rejected"]) == list(ref["observer_rejected"])
            assert subj["rejected"].any(), "the simulated random subjects should be rejected"
        if list(subj["rejected"]) != list(ref["observer_rejected"]):
            return  # different denominators chose different subjects: MOS differs by design
    np.testing.assert_allclose(table["mos"], ref["quality_scores"], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(table["se"], ref["quality_scores_std"], rtol=1e-10)
    np.testing.assert_allclose(table["ci95"], ref["quality_scores_ci95"][0], rtol=1e-10)
    np.testing.assert_allclose(table["std"], ref["quality_ambiguity"], rtol=1e-10)
    if method == "bias_removed":
        subj = ours.subjects.set_index("subject").loc[ref["observers"]]
        np.testing.assert_allclose(subj["bias"], ref["observer_bias"], atol=1e-10)


@pytest.mark.parametrize(("model", "tol"), [
    ("MaximumLikelihoodEstimationModelContentObliviousAlternativeProjection", 1e-9),
    ("MaximumLikelihoodEstimationModelContentOblivious", 1e-5),  # belief propagation, slower
])
def test_mle_matches_sureal(study, model, tol):
    _, ratings = study
    ref = run_sureal(getattr(sm, model), ratings, **SUREAL_MLE_SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the degenerate case is asserted below
        ours = compute_mos(ratings, method="mle", split_half=0, **OUR_MLE_SETTINGS)
    assert ours.report["mle"]["converged"]
    table = ours.table.set_index("image").loc[sureal_image_order(ratings)]
    subj = ours.subjects.set_index("subject").loc[ref["observers"]]
    # atol 1e-6 (scale 0-100): a degenerate subject has inconsistency ~1e-9 here, ~1e-14 there
    close = dict(rtol=tol * 10, atol=1e-6)
    np.testing.assert_allclose(table["mos"], ref["quality_scores"], **close)
    np.testing.assert_allclose(table["se"], ref["quality_scores_std"], **close)
    np.testing.assert_allclose(subj["bias"], ref["observer_bias"], **close)
    np.testing.assert_allclose(subj["inconsistency"], ref["observer_inconsistency"], **close)
    np.testing.assert_allclose(subj["bias_ci95"], ref["observer_bias_ci95"][0], **close)
    lo_half, hi_half = ref["observer_inconsistency_ci95"]
    np.testing.assert_allclose(subj["inconsistency"] - subj["inconsistency_lo"], lo_half, **close)
    np.testing.assert_allclose(subj["inconsistency_hi"] - subj["inconsistency"], hi_half, **close)
    collapsed = np.asarray(ref["observer_inconsistency"]) < 1e-4 * np.median(
        ref["observer_inconsistency"])
    assert sorted(ours.report["mle"]["degenerate_subjects"]) == sorted(
        np.asarray(ref["observers"])[collapsed])
