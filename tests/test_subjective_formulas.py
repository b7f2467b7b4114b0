"""aigiqa.subjective against formulas written out independently (loops, pandas, scipy.optimize)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from aigiqa.subjective import compute_mos
from aigiqa.subjective.simulate import simulate_ratings
from aigiqa.subjective.stats import sos_parameter, split_half_srcc


def bt500_by_hand(ratings: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """BT.500 beta2 screening, one image and one rating at a time."""
    count = {s: {"p": 0, "q": 0, "n": 0} for s in ratings["subject"].unique()}
    for _, rows in ratings.groupby("image"):
        x = rows[value].to_numpy()
        mu, sigma = x.mean(), x.std()
        beta2 = stats.kurtosis(x, fisher=False) if sigma > 0 else np.nan
        k = 2.0 if 2 <= beta2 <= 4 else np.sqrt(20)
        for subject, v in zip(rows["subject"], x, strict=True):
            count[subject]["n"] += 1
            if sigma > 0 and v >= mu + k * sigma:
                count[subject]["p"] += 1
            if sigma > 0 and v <= mu - k * sigma:
                count[subject]["q"] += 1
    out = pd.DataFrame(count).T.sort_index()
    out["ratio"] = (out.p + out.q) / out.n
    with np.errstate(invalid="ignore"):
        out["asym"] = (out.p - out.q).abs() / (out.p + out.q)
    out["rejected"] = (out.ratio > 0.05) & (out.asym < 0.3)
    return out


@pytest.mark.parametrize("missing", [0.0, 0.4])
def test_bt500_matches_hand_computation(missing):
    sim = simulate_ratings(50, 15, seed=3, missing=missing, random_subjects=1, step=1.0)
    res = compute_mos(sim.ratings, method="mos", split_half=0)
    hand = bt500_by_hand(sim.ratings)
    assert_same_screening(res, hand)
    assert set(sim.random_subjects) <= set(res.rejected["subject"])
    assert all("BT.500" in r for r in res.rejected["reason"])


def test_bt500_asymmetry_condition_keeps_one_sided_subjects():
    # seed chosen so that two subjects have > 5 % outliers with 0.3 <= |P-Q|/(P+Q) < 0.5
    sim = simulate_ratings(30, 10, seed=2, random_subjects=2, step=1.0, bias_sd=10.0,
                           inconsistency=(2, 20))
    res = compute_mos(sim.ratings, method="mos", split_half=0)
    hand = bt500_by_hand(sim.ratings)
    window = hand[(hand.ratio > 0.05) & (hand.asym >= 0.3) & (hand.asym < 0.5)]
    assert len(window) >= 1
    assert_same_screening(res, hand)
    assert not set(window.index) & set(res.rejected["subject"])


def assert_same_screening(res, hand):
    subj = res.subjects.set_index("subject").loc[hand.index]
    np.testing.assert_array_equal(subj["p"], hand["p"].astype(int))
    np.testing.assert_array_equal(subj["q"], hand["q"].astype(int))
    np.testing.assert_allclose(subj["ratio_outside"], hand["ratio"].astype(float))
    assert list(subj["rejected"]) == list(hand["rejected"])
    assert set(res.rejected["subject"]) == set(hand.index[hand["rejected"]])


def test_bt500_consensus_image_has_no_outliers():
    # every subject agrees on image c: no rating of c may count as high or low
    votes = {"a": (1, 2, 5), "b": (2, 3, 5), "c": (3, 1, 5), "d": (2, 2, 5)}
    rows = [(s, img, v) for s, vals in votes.items() for img, v in zip("xyc", vals, strict=True)]
    res = compute_mos(pd.DataFrame(rows, columns=["subject", "image", "score"]), method="mos",
                      split_half=0)
    assert res.subjects["p"].sum() == 0 and res.subjects["q"].sum() == 0


def test_zscore_per_session_and_mos_statistics():
    sim = simulate_ratings(40, 8, seed=5, sessions=2, missing=0.2, repeats=0.1)
    r = sim.ratings.copy()
    grouped = r.groupby(["subject", "session"])["score"]
    r["z"] = (r["score"] - grouped.transform("mean")) / grouped.transform("std", ddof=1)
    by_image = r.groupby("image")["z"]
    res = compute_mos(sim.ratings, method="zscore", screen=False, split_half=0)
    t = res.table.set_index("image")
    np.testing.assert_allclose(t["mos"], by_image.mean().loc[t.index], atol=1e-12)
    np.testing.assert_allclose(t["std"], by_image.std(ddof=1).loc[t.index], atol=1e-12)
    np.testing.assert_array_equal(t["n"], by_image.size().loc[t.index])
    se = by_image.std(ddof=1) / np.sqrt(by_image.size())
    np.testing.assert_allclose(t["ci95"], 1.95996 * se.loc[t.index], atol=1e-12)
    np.testing.assert_allclose(t["sos"], r.groupby("image")["score"].std().loc[t.index])
    assert res.report["n_subject_sessions"] == 16
    assert res.report["n_repeated_ratings"] > 0


def test_mle_is_the_maximum_likelihood():
    """Ours is the maximum of the likelihood, shown without trusting any optimiser's stopping
    point: the analytic gradient is ~0 there, the Hessian is positive definite and the Newton
    step to the exact optimum is tiny; and a tightly converged generic optimiser finds nothing
    more likely."""
    sim = simulate_ratings(30, 12, seed=11, missing=0.1, inconsistency=(3.0, 10.0))
    res = compute_mos(sim.ratings, method="mle", split_half=0, mle_tol=1e-12)
    images, subjects = list(res.table["image"]), list(res.subjects["subject"])
    e = pd.Index(images).get_indexer(sim.ratings["image"])
    s = pd.Index(subjects).get_indexer(sim.ratings["subject"])
    x = sim.ratings["score"].to_numpy()
    n_e, n_s = len(images), len(subjects)

    def unpack(theta):  # psi per image, bias per subject (summing to 0), log inconsistency
        bias = np.append(theta[n_e:n_e + n_s - 1], -theta[n_e:n_e + n_s - 1].sum())
        return theta[:n_e], bias, np.exp(theta[n_e + n_s - 1:])

    def nll(theta):
        psi, bias, ups = unpack(theta)
        return -stats.norm.logpdf(x, psi[e] + bias[s], ups[s]).sum()

    def grad(theta):
        psi, bias, ups = unpack(theta)
        r = x - psi[e] - bias[s]
        w = r / ups[s] ** 2
        g_bias = -np.bincount(s, w, n_s)
        return np.concatenate([-np.bincount(e, w, n_e), g_bias[:-1] - g_bias[-1],
                               np.bincount(s, 1 - (r / ups[s]) ** 2, n_s)])

    start = np.concatenate([sim.ratings.groupby("image")["score"].mean().loc[images],
                            np.zeros(n_s - 1), np.full(n_s, np.log(8.0))])
    numeric = optimize.approx_fprime(start, nll, 1e-6)
    np.testing.assert_allclose(grad(start), numeric, rtol=1e-4, atol=1e-3)  # the gradient is right

    assert res.report["mle"]["degenerate_subjects"] == []
    ours = np.concatenate([res.table["mos"], res.subjects["bias"][:-1],
                           np.log(res.subjects["inconsistency"])])
    g = grad(ours)
    assert np.max(np.abs(g)) < 1e-6  # a stationary point (|g| ~ 1e-1 to 1e2 at the start)
    eye = np.eye(len(ours))
    hessian = np.array([(grad(ours + 1e-5 * eye[i]) - grad(ours - 1e-5 * eye[i])) / 2e-5
                        for i in range(len(ours))])
    hessian = (hessian + hessian.T) / 2
    assert np.linalg.eigvalsh(hessian).min() > 0  # a minimum of the NLL, not a saddle
    assert np.max(np.abs(np.linalg.solve(hessian, g))) < 1e-5  # within 1e-5 of the optimum

    tight = optimize.minimize(nll, start, jac=grad, method="BFGS",
                              options={"gtol": 1e-10, "maxiter": 100_000})
    assert nll(ours) <= tight.fun + 1e-9  # at least as likely as a tightly converged optimiser
    assert res.report["mle"]["loglik_per_rating"] == pytest.approx(-nll(ours) / len(x))


def test_sos_parameter_recovers_a():
    mos = np.linspace(1.2, 4.8, 30)
    sos = np.sqrt(0.2 * (mos - 1) * (5 - mos))
    assert sos_parameter(mos, sos, (1, 5)) == pytest.approx(0.2)
    sos[3] = np.nan  # images with one rating are left out
    assert sos_parameter(mos, sos, (1, 5)) == pytest.approx(0.2)


def test_split_half_srcc_is_seeded_and_tracks_noise():
    def srcc(noise, seed=0):
        sim = simulate_ratings(150, 12, seed=1, inconsistency=(noise, noise + 1))
        r = sim.ratings
        img = pd.factorize(r["image"])[0]
        subj = pd.factorize(r["subject"])[0]
        return split_half_srcc(r["score"].to_numpy(), img, subj, 150, np.arange(12),
                               n_splits=10, seed=seed)

    a, b = srcc(3.0), srcc(3.0)
    assert a == b
    assert srcc(3.0, seed=1)["srcc"] != a["srcc"]
    low_noise, high_noise = a["srcc"], srcc(30.0)["srcc"]
    assert 0.9 < low_noise <= 1 and high_noise < low_noise - 0.1
    assert a["spearman_brown"] == pytest.approx(2 * low_noise / (1 + low_noise))
    assert a["n_splits"] == 10 and a["min_images"] == 150


def test_bt500_rejecting_everyone_rejects_no_one():
    # 5 subjects, 10 images: each subject is once the lone high and once the lone low rating
    rows = []
    for i in range(5):
        for s in range(5):
            rows.append((f"s{s}", f"hi{i}", 10.0 if s == i else 0.0))
            rows.append((f"s{s}", f"lo{i}", 0.0 if s == i else 10.0))
    res = compute_mos(pd.DataFrame(rows, columns=["subject", "image", "score"]), method="mos",
                      split_half=0)
    assert (res.subjects["ratio_outside"] == 0.2).all() and (res.subjects["asymmetry"] == 0).all()
    assert res.report["screening"]["all_rejected_so_none"] is True
    assert res.rejected.empty and not res.subjects["rejected"].any()
