"""scale_pairs: Bradley-Terry / Thurstone MLE checked by optimality conditions and against
choix; ties (Rao-Kupper, Davidson); graphs without a finite MLE; bad input."""

from __future__ import annotations

import json

import choix
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from aigiqa.databases import load_database
from aigiqa.errors import AigiqaError, ComparisonError
from aigiqa.subjective import scale_pairs


def simulate(seed, n=12, m=400, tie_rate=0.0):
    rng = np.random.default_rng(seed)
    true = rng.normal(size=n)
    rows = []
    for _ in range(m):
        i, j = rng.choice(n, 2, replace=False)
        u = rng.random()
        p = 1 / (1 + np.exp(-(true[i] - true[j])))
        outcome = "tie" if u < tie_rate else ("a" if rng.random() < p else "b")
        rows.append({"a": f"i{i}", "b": f"i{j}", "outcome": outcome})
    return pd.DataFrame(rows), true


def choix_data(comp, names):
    idx = {n: k for k, n in enumerate(names)}
    return [(idx[a], idx[b]) if o == "a" else (idx[b], idx[a])
            for a, b, o in zip(comp["a"], comp["b"], comp["outcome"], strict=True)]


def scores_of(result, names):
    return result.set_index("item")["score"].reindex(names).to_numpy()


def loglik(comp, s, model, ties, tau):
    """Written from the model definitions, pair by pair (no shared code with the module)."""
    total = 0.0
    for a, b, o in zip(comp["a"], comp["b"], comp["outcome"], strict=True):
        w, ell = (a, b) if o != "b" else (b, a)
        x = s[w] - s[ell]
        if ties == "davidson":
            pw, pl = np.exp(s[w]), np.exp(s[ell])
            den = pw + pl + tau * np.sqrt(pw * pl)
            total += np.log((tau * np.sqrt(pw * pl) if o == "tie" else pw) / den)
        elif model == "bt":
            th = tau
            pw, pl = np.exp(s[w]), np.exp(s[ell])
            if o == "tie":
                total += np.log((th**2 - 1) * pw * pl / ((pw + th * pl) * (pl + th * pw)))
            else:
                total += np.log(pw / (pw + th * pl))
        else:
            z = x / np.sqrt(2)
            if o == "tie":
                total += np.log(stats.norm.cdf(z + tau) - stats.norm.cdf(z - tau))
            else:
                total += np.log(stats.norm.cdf(z - tau))
    return total


@pytest.mark.parametrize("seed", [0, 1])
def test_bt_mle_matches_choix_and_its_optimality_conditions(seed):
    comp, _ = simulate(seed)
    res = scale_pairs(comp, "bt")
    names = [f"i{k}" for k in range(12)]
    s = scores_of(res, names)
    # optimality: each item's wins equal their expected number under the fitted model
    pos = {n: k for k, n in enumerate(names)}
    a = comp["a"].map(pos).to_numpy()
    b = comp["b"].map(pos).to_numpy()
    win_a = (comp["outcome"] == "a").to_numpy(float)
    p = 1 / (1 + np.exp(-(s[a] - s[b])))
    residual = np.bincount(a, win_a - p, 12) - np.bincount(b, win_a - p, 12)
    assert np.max(np.abs(residual)) < 1e-8
    assert abs(s.mean()) < 1e-12 and res.attrs["max_gradient"] < 1e-9
    ref = choix.ilsr_pairwise(12, choix_data(comp, names), alpha=0.0, tol=1e-13)
    assert np.max(np.abs((ref - ref.mean()) - s)) < 1e-6
    # standard errors: inverse Fisher information of the centred scale (pseudo-inverse)
    info = np.zeros((12, 12))
    w = p * (1 - p)
    for i, j, wk in zip(a, b, w, strict=True):
        info[[i, j], [i, j]] += wk
        info[i, j] -= wk
        info[j, i] -= wk
    se = np.sqrt(np.diag(np.linalg.pinv(info)))
    assert np.allclose(res.set_index("item")["se"].reindex(names), se, rtol=1e-5)
    assert np.allclose(res["ci_high"] - res["score"], stats.norm.ppf(0.975) * res["se"])
    assert res.attrs["log_likelihood"] == pytest.approx(
        loglik(comp, dict(zip(names, s, strict=True)), "bt", "rao-kupper", 1.0), abs=1e-9)


def test_ridge_matches_choix_map_and_handles_an_item_that_always_wins():
    comp, _ = simulate(3)
    beaten = pd.DataFrame({"a": ["top"] * 5, "b": ["i0", "i1", "i2", "i3", "i4"],
                           "outcome": ["a"] * 5})
    comp = pd.concat([comp, beaten], ignore_index=True)
    with pytest.raises(ComparisonError, match=r"infinite.*\['top'\].*alpha"):
        scale_pairs(comp)
    res = scale_pairs(comp, alpha=0.3)
    names = [f"i{k}" for k in range(12)] + ["top"]
    ref = choix.opt_pairwise(13, choix_data(comp, names), alpha=0.3, tol=1e-13)
    assert np.max(np.abs(ref - scores_of(res, names))) < 1e-6
    top = res.set_index("item").loc["top", "score"]
    weaker = scale_pairs(comp, alpha=0.01).set_index("item").loc["top", "score"]
    assert np.isfinite(top) and weaker > top > 0  # less shrinkage, a higher unbeaten item


@pytest.mark.parametrize("model, ties", [("bt", "rao-kupper"), ("bt", "davidson"),
                                         ("thurstone", "rao-kupper")])
def test_tie_models_are_at_a_maximum_of_the_likelihood(model, ties):
    comp, true = simulate(7, n=8, m=500, tie_rate=0.25)
    res = scale_pairs(comp, model, ties)
    names = res["item"].tolist()
    s = res["score"].to_numpy()
    tau = res.attrs["tie_parameter"]
    assert tau > (1 if (model, ties) == ("bt", "rao-kupper") else 0)

    def f(vec):
        return loglik(comp, dict(zip(names, vec[:-1], strict=True)), model, ties, vec[-1])

    point = np.append(s, tau)
    assert res.attrs["log_likelihood"] == pytest.approx(f(point), abs=1e-8)
    # central-difference gradient of the independent likelihood is zero (the centring
    # constraint aside: the likelihood is shift invariant, so every direction counts)
    h = 1e-5
    grad = [(f(point + h * e) - f(point - h * e)) / (2 * h) for e in np.eye(len(point))]
    assert np.max(np.abs(grad)) < 1e-5
    assert all(f(point + 1e-3 * d) < f(point)
               for d in np.random.default_rng(0).normal(size=(5, len(point))))
    assert stats.spearmanr(scores_of(res, [f"i{k}" for k in range(8)]), true)[0] > 0.8
    counts = res.set_index("item")[["wins", "losses", "ties"]].sum()
    assert counts["ties"] == 2 * (comp["outcome"] == "tie").sum()


def test_thurstone_without_ties_and_drop():
    comp, _ = simulate(2, tie_rate=0.1)
    res = scale_pairs(comp, "thurstone", "drop")
    assert res.attrs["dropped_ties"] == (comp["outcome"] == "tie").sum() > 0
    kept = comp[comp["outcome"] != "tie"]
    names = res["item"].tolist()
    s = res["score"].to_numpy()
    # score equations of the probit model: sum over comparisons of d/ds log Phi(±x/sqrt2) = 0
    pos = {n: k for k, n in enumerate(names)}
    a, b = kept["a"].map(pos).to_numpy(), kept["b"].map(pos).to_numpy()
    sign = np.where(kept["outcome"] == "a", 1.0, -1.0)
    z = sign * (s[a] - s[b]) / np.sqrt(2)
    g = sign * stats.norm.pdf(z) / stats.norm.cdf(z) / np.sqrt(2)
    residual = np.bincount(a, g, len(names)) - np.bincount(b, g, len(names))
    assert np.max(np.abs(residual)) < 1e-8
    assert np.isnan(res.attrs["tie_parameter"])


def test_disconnected_graphs_and_bad_input_are_errors(shared):
    comp = pd.DataFrame({"a": ["x", "y", "p", "q"], "b": ["y", "x", "q", "p"],
                         "outcome": ["a", "a", "a", "a"]})
    with pytest.raises(ComparisonError, match="disconnected: 2 components"):
        scale_pairs(comp)
    with pytest.raises(ComparisonError, match="disconnected"):
        scale_pairs(comp, alpha=1.0)  # a prior does not give two components one scale
    with pytest.raises(ComparisonError, match="outcome 'win'"):
        scale_pairs(comp.assign(outcome=["a", "b", "win", "a"]))
    with pytest.raises(ComparisonError, match="compared with itself"):
        scale_pairs(comp.assign(b=["x", "x", "q", "p"]))
    with pytest.raises(ComparisonError, match="every comparison is a tie"):
        scale_pairs(comp.assign(outcome="tie").iloc[:2])
    with pytest.raises(ComparisonError, match="davidson"):
        scale_pairs(comp, "thurstone", "davidson")
    with pytest.raises(ComparisonError, match="unknown model"):
        scale_pairs(comp, "elo")
    with pytest.raises(ComparisonError, match="level must be"):
        scale_pairs(comp, level=95)
    with pytest.raises(ComparisonError, match="alpha must be"):
        scale_pairs(comp, alpha=-1)
    assert issubclass(ComparisonError, AigiqaError)
    # the real ImageReward file: prompts are separate components; one prompt scales
    root = shared / "reference" / "imagereward"
    db = load_database("imagereward-test", root, check_images=False)
    with pytest.raises(ComparisonError, match="466 components"):
        scale_pairs(db)
    item = json.loads((root / "test.json").read_text())[1]
    one = scale_pairs(db.subset(item["generations"]), alpha=0.01)
    order = one.set_index("item")["score"].reindex(item["generations"])
    assert stats.spearmanr(order, item["ranking"])[0] < -0.9


@pytest.mark.parametrize("model, ties", [("bt", "rao-kupper"), ("bt", "davidson"),
                                         ("thurstone", "rao-kupper")])
def test_tie_model_standard_errors_are_the_inverse_observed_information(model, ties):
    comp, _ = simulate(11, n=6, m=300, tie_rate=0.3)
    res = scale_pairs(comp, model, ties)
    names = res["item"].tolist()
    n = len(names)
    point = np.append(res["score"].to_numpy()[1:] - res["score"].iloc[0],
                      res.attrs["tie_parameter"])  # item 0 fixed at 0: an identified scale

    def f(vec):
        s = dict(zip(names, np.append(0.0, vec[:-1]), strict=True))
        return loglik(comp, s, model, ties, vec[-1])

    k, h = len(point), 1e-4
    hess = np.empty((k, k))
    eye = np.eye(k) * h
    for i in range(k):
        for j in range(k):
            hess[i, j] = (f(point + eye[i] + eye[j]) - f(point + eye[i] - eye[j])
                          - f(point - eye[i] + eye[j]) + f(point - eye[i] - eye[j])) / (4 * h * h)
    cov = np.linalg.inv(-hess)[: n - 1, : n - 1]
    embed = np.vstack([np.zeros(n - 1), np.eye(n - 1)])
    centre = (np.eye(n) - 1.0 / n) @ embed
    se = np.sqrt(np.diag(centre @ cov @ centre.T))
    assert np.allclose(res["se"], se, rtol=1e-4)


def test_rules_for_repeated_pairs_and_cycles():
    comp, _ = simulate(4, n=6, m=200)
    once = scale_pairs(comp)
    twice = scale_pairs(pd.concat([comp, comp], ignore_index=True))  # each judgement counts
    assert np.allclose(twice["score"], once["score"], atol=1e-8)
    assert np.allclose(twice["se"], once["se"] / np.sqrt(2), rtol=1e-6)
    assert (twice["wins"] == 2 * once["wins"]).all()
    cycle = pd.DataFrame({"a": ["x", "y", "z"], "b": ["y", "z", "x"], "outcome": ["a"] * 3})
    flat = scale_pairs(cycle)  # a cycle is data: here it says the three are equal
    assert np.allclose(flat["score"], 0.0, atol=1e-9)


def test_by_group_fits_each_group_alone(shared):
    root = shared / "reference" / "imagereward"
    db = load_database("imagereward-test", root, check_images=False)
    items = json.loads((root / "test.json").read_text())[:5]
    sub = db.subset([g for it in items for g in it["generations"]])
    res = scale_pairs(sub, alpha=0.01, by_group=True)
    assert res["group"].unique().tolist() == [it["id"] for it in items]
    for it in items:
        alone = scale_pairs(sub.subset(it["generations"]), alpha=0.01)
        part = res[res["group"] == it["id"]]
        assert np.allclose(part["score"].to_numpy(), alone["score"].to_numpy(), atol=1e-9)
        assert part["tie_parameter"].nunique(dropna=False) == 1
    with pytest.raises(ComparisonError, match=f"group '{items[0]['id']}': the maximum-likelihood"):
        scale_pairs(sub, by_group=True)  # rank 1 beats all: no finite MLE without a ridge
