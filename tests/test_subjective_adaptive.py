"""Adaptive sampling: the sampler's posterior update (checked against quadrature), its
criterion (against exact mutual information and a brute-force argmax), exclusions, bad input,
the Laplace refit (optimality), a seeded simulation against random pairs; plan_ratings."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from aigiqa.errors import ComparisonError
from aigiqa.subjective import scale_pairs
from aigiqa.subjective.adaptive import AdaptivePairSampler, pair_information, ranking_metric
from aigiqa.subjective.adaptive_criteria import inverse_fisher
from aigiqa.subjective.adaptive_ratings import plan_ratings
from aigiqa.subjective.ratings import RatingsError
from aigiqa.subjective.simulate import simulate_pair_raters

NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(120)
WEIGHTS = WEIGHTS / WEIGHTS.sum()


def names(n):
    return [f"x{k}" for k in range(n)]


def entropy_bits(p):
    return -(special.xlogy(p, p) + special.xlogy(1 - p, 1 - p)) / np.log(2)


def test_update_moves_winner_up_and_shrinks_variances():
    s = AdaptivePairSampler(names(4), prior_sd=1.0, refit=0)
    s.update("x0", "x1", "a")
    sc = s.scores().set_index("item")
    assert sc.loc["x0", "mean"] > 0 > sc.loc["x1", "mean"]
    assert sc.loc["x0", "sd"] < 1 and sc.loc["x1", "sd"] < 1
    assert sc.loc["x2", "mean"] == 0 and sc.loc["x2", "sd"] == 1  # not compared: the prior
    s.update("x1", "x0", "a")  # x1 now wins once too: back to symmetric, still shrinking
    sc2 = s.scores().set_index("item")
    assert abs(sc2.loc["x0", "mean"]) < sc.loc["x0", "mean"]
    assert sc2.loc["x0", "sd"] < sc.loc["x0", "sd"]


@pytest.mark.parametrize("outcome", ["a", "b", "tie"])
@pytest.mark.parametrize("lapse", [0.0, 0.1])
def test_update_is_exact_moment_matching(outcome, lapse):
    """After one judgement, the difference d = s0 - s1 has the mean and variance of the exact
    posterior (prior × likelihood), computed here by Gauss–Hermite quadrature."""
    s = AdaptivePairSampler(names(3), prior_sd=0.8, lapse=lapse, tie_margin=0.3, refit=0)
    s.update("x0", "x2", "a")  # a non-trivial prior for the pair: correlated, shifted
    k = {x: s.items.index(x) for x in ("x0", "x1")}
    u = np.zeros(3)
    u[k["x0"]], u[k["x1"]] = 1, -1
    m0, v0 = u @ s.mean, u @ s.cov @ u
    d = m0 + np.sqrt(v0) * NODES
    sig = np.sqrt(2)
    if outcome == "tie":
        like = special.ndtr((0.3 - d) / sig) - special.ndtr((-0.3 - d) / sig)
    else:
        sign = 1 if outcome == "a" else -1
        like = lapse / 2 + (1 - lapse) * special.ndtr(sign * d / sig)
    w = WEIGHTS * like
    mean = np.sum(w * d) / w.sum()
    var = np.sum(w * d * d) / w.sum() - mean ** 2
    s.update("x0", "x1", outcome)
    assert u @ s.mean == pytest.approx(mean, abs=1e-9)
    assert u @ s.cov @ u == pytest.approx(var, abs=1e-9)


def test_criterion_is_the_mutual_information():
    sig = np.sqrt(2)
    for m, v in itertools.product([0.0, 0.5, 1.5, 3.0], [0.02, 0.3, 1.0, 4.0]):
        d = m + np.sqrt(v) * NODES
        p = special.ndtr(d / sig)
        exact = entropy_bits(np.sum(WEIGHTS * p)) - np.sum(WEIGHTS * entropy_bits(p))
        assert float(pair_information(m, v, sig)) == pytest.approx(exact, abs=3e-3)


def brute_force_best(s, skip):
    """The criterion's maximum over the allowed pairs, from the posterior (mean, cov) alone
    (and, for ``"ranking"``, the weights' Laplacian L it holds since its last refit)."""
    sig2, eps = s.sigma ** 2, s.lapse
    best = -1.0
    n = len(s.items)
    metric = s._metric if s.criterion == "ranking" else np.eye(n)
    for i, j in itertools.combinations(range(n), 2):
        if frozenset((s.items[i], s.items[j])) in skip:
            continue
        a = np.zeros(n)
        a[i], a[j] = 1, -1
        m, u = a @ s.mean, s.cov @ a
        v = a @ u
        if s.criterion == "information":
            c2 = np.pi * np.log(2) * sig2 / 2
            k = np.pi * np.log(2) / 2
            value = (np.exp(-m * m / (2 * (c2 + k * v)))
                     - np.sqrt(c2 / (c2 + v)) * np.exp(-m * m / (2 * (c2 + v))))
        else:  # tr(L C) minus that of the linearised posterior covariance (L = I: the trace)
            t = sig2 + v
            x2 = m * m / t
            pq = eps / 2 * (1 - eps / 2) + (1 - eps) ** 2 * np.exp(-2 * x2 / np.pi) / 4
            fisher = (1 - eps) ** 2 * np.exp(-x2) / (2 * np.pi) / (t * pq)
            after = s.cov - fisher / (1 + fisher * v) * np.outer(u, u)
            value = np.trace(metric @ s.cov) - np.trace(metric @ after)
        best = max(best, value)
    return best


@pytest.mark.parametrize("criterion", ["variance", "information", "ranking"])
def test_next_pair_maximises_the_criterion_by_brute_force(criterion):
    rng = np.random.default_rng(3)
    s = AdaptivePairSampler(names(7), seed=1, criterion=criterion, refit=0.3)
    for _ in range(15):  # online updates and refits (every 30 %)
        a, b = rng.choice(7, 2, replace=False)
        s.update(f"x{a}", f"x{b}", str(rng.choice(["a", "b", "tie"])))
    assert s.n_refits >= 1 and s._since_refit >= 1
    for exclude in ([], [("x0", "x1"), ("x2", "x3"), ("x4", "x0")]):
        skip = {frozenset(p) for p in exclude}
        a, b = s.next_pair(exclude=exclude)
        assert s.expected_information(a, b) == pytest.approx(brute_force_best(s, skip), rel=1e-5)


@pytest.mark.parametrize("lapse", [0.0, 0.05, 0.2])
def test_criteria_use_the_fisher_information_with_lapses(lapse):
    """1/J of the criteria is that of the probit with lapses, ε/2 + (1 − ε) Φ(x):
    t p(1 − p) / ((1 − ε)² φ(x)²), x = m/√t, within 15 % where outcomes are not foregone."""
    x = np.linspace(-2, 2, 41)
    t = 2.0 + 0.3  # σ² + v
    p = lapse / 2 + (1 - lapse) * stats.norm.cdf(x)
    exact = t * p * (1 - p) / ((1 - lapse) ** 2 * stats.norm.pdf(x) ** 2)
    approx = inverse_fisher(x * np.sqrt(t), 0.3, np.sqrt(2), lapse)
    np.testing.assert_allclose(approx, exact, rtol=0.15)


def test_ranking_metric_is_the_derivative_of_the_expected_discordance():
    """w_kl (minus L's off-diagonal) is, up to one constant factor, the derivative in V of a
    pair's probability of being ranked in the wrong order, E Φ(−|Δ|/√V) with Δ ~ N(m, v),
    at V = v (Gauss–Hermite over Δ, central differences in V); L's rows sum to 0, so
    tr(L C) = Σ_{k<l} w_kl Var(s_k − s_l)."""
    rng = np.random.default_rng(0)
    root = rng.normal(size=(5, 5))
    cov = root @ root.T / 5 + np.eye(5) * 0.1
    mean = rng.normal(size=5) * 2
    lap = ranking_metric(mean, cov)
    np.testing.assert_allclose(lap.sum(axis=1), 0, atol=1e-12)
    d = np.diag(cov)
    v = d[:, None] + d[None, :] - 2 * cov
    ratios, total = [], 0.0
    for k, el in itertools.combinations(range(5), 2):
        m, sd = mean[k] - mean[el], np.sqrt(v[k, el])

        def wrong(big_v, m=m, sd=sd):  # |Δ| has a kink at 0: integrate each side
            f = lambda x: stats.norm.pdf(x, m, sd) * special.ndtr(-abs(x) / np.sqrt(big_v))  # noqa: E731
            return integrate.quad(f, -np.inf, 0, epsabs=1e-14)[0] + integrate.quad(
                f, 0, np.inf, epsabs=1e-14)[0]

        h = 1e-4 * v[k, el]
        slope = (wrong(v[k, el] + h) - wrong(v[k, el] - h)) / (2 * h)
        ratios.append(-lap[k, el] / slope)
        total += -lap[k, el] * v[k, el]
    np.testing.assert_allclose(ratios, 4 * np.sqrt(np.pi), rtol=1e-5)
    assert np.trace(lap @ cov) == pytest.approx(total, rel=1e-10)


def test_determinism_and_seed():
    def run(seed):
        raters = simulate_pair_raters(12, 1.0, 3, seed=5)
        s = AdaptivePairSampler(names(12), seed=seed)
        out = []
        for t in range(40):
            a, b = s.next_pair(subject=t % 3)
            s.update(a, b, raters.judge(int(a[1:]), int(b[1:]), t % 3), subject=t % 3)
            out.append((a, b))
        return out, s.scores()

    first, scores = run(0)
    again, scores_again = run(0)
    assert first == again
    pd.testing.assert_frame_equal(scores, scores_again)
    assert run(1)[0] != first


def test_never_a_self_pair_an_excluded_or_an_already_seen_pair():
    rng = np.random.default_rng(0)
    s = AdaptivePairSampler(names(6), seed=2)
    seen = set()
    for t in range(15):  # 15 pairs of 6 items: subject "s" sees each pair exactly once
        exclude = [tuple(rng.choice(names(6), 2, replace=False)) for _ in range(2)]
        if len(seen | {frozenset(p) for p in exclude}) >= 15:
            exclude = []
        a, b = s.next_pair(subject="s", exclude=exclude)
        pair = frozenset((a, b))
        assert a != b and pair not in {frozenset(p) for p in exclude} and pair not in seen
        seen.add(pair)
        s.update(a, b, "a" if t % 2 else "b", subject="s")
    assert len(seen) == 15
    a, b = s.next_pair(subject="s")  # all seen: repeats are allowed again
    assert a != b
    every = list(itertools.combinations(names(6), 2))
    with pytest.raises(ComparisonError, match="no pair left"):
        s.next_pair(exclude=every)


def test_bad_input_errors():
    s = AdaptivePairSampler(names(3))
    with pytest.raises(ComparisonError, match="unknown item 'zz'"):
        s.update("x0", "zz", "a")
    with pytest.raises(ComparisonError, match="outcome 'left'"):
        s.update("x0", "x1", "left")
    with pytest.raises(ComparisonError, match="compared with itself"):
        s.update("x1", "x1", "a")
    with pytest.raises(ComparisonError, match="unknown item"):
        s.next_pair(exclude=[("x0", "nope")])
    with pytest.raises(ComparisonError, match="pairs"):
        s.next_pair(exclude=["x0"])
    assert s.n_updates == 0  # nothing was counted on the way to an error
    with pytest.raises(ComparisonError, match="unique"):
        AdaptivePairSampler(["a", "b", "a"])
    with pytest.raises(ComparisonError, match="2 to 5,000 items, got 1"):
        AdaptivePairSampler(["a"])
    with pytest.raises(ComparisonError, match="one sampler per prompt"):
        AdaptivePairSampler(names(5001))
    with pytest.raises(ComparisonError, match="lapse"):
        AdaptivePairSampler(names(3), lapse=1.5)
    with pytest.raises(ComparisonError, match="unknown model"):
        AdaptivePairSampler(names(3), model="elo")
    with pytest.raises(ComparisonError, match="unknown criterion"):
        AdaptivePairSampler(names(3), criterion="entropy")
    with pytest.raises(ComparisonError, match="unknown image"):
        AdaptivePairSampler(names(3), comparisons=pd.DataFrame(
            {"a": ["x0"], "b": ["q"], "outcome": ["a"]}))


def neg_log_posterior(s, wins, sigma, lapse, tau):
    x = (s[:, None] - s[None, :]) / sigma
    p = lapse / 2 + (1 - lapse) * stats.norm.cdf(x)
    return -np.sum(wins * np.log(p)) + np.sum(s ** 2) / (2 * tau ** 2)


def test_refit_is_the_posterior_mode_and_loading_a_table_matches_updates():
    rng = np.random.default_rng(4)
    rows = []
    for _ in range(60):
        a, b = rng.choice(5, 2, replace=False)
        rows.append({"a": f"x{a}", "b": f"x{b}", "outcome": str(rng.choice(["a", "b", "tie"]))})
    comp = pd.DataFrame(rows)
    s = AdaptivePairSampler(names(5), prior_sd=0.7, refit=0)
    for r in rows:
        s.update(r["a"], r["b"], r["outcome"])
    s.refit_posterior()
    loaded = AdaptivePairSampler(names(5), prior_sd=0.7, comparisons=comp)
    np.testing.assert_allclose(loaded.scores()["mean"], s.scores()["mean"], atol=1e-6)
    wins = np.zeros((5, 5))
    for r in rows:
        i, j = int(r["a"][1:]), int(r["b"][1:])
        if r["outcome"] == "tie":
            wins[i, j] += 0.5
            wins[j, i] += 0.5
        else:
            wins[(i, j) if r["outcome"] == "a" else (j, i)] += 1
    mode = s.scores()["mean"].to_numpy()
    f = lambda z: neg_log_posterior(z, wins, np.sqrt(2), 0.05, 0.7)  # noqa: E731
    grad = [(f(mode + h) - f(mode - h)) / 2e-6 for h in np.eye(5) * 1e-6]
    assert np.max(np.abs(grad)) < 1e-4


def simulate(method, seed, n=50, budget=500, spread=2.0):
    raters = simulate_pair_raters(n, spread, 5, seed=seed)
    s = AdaptivePairSampler(names(n), seed=seed)
    rng = np.random.default_rng(100 + seed)
    rows = []
    for t in range(budget):
        if method == "adaptive":
            a, b = s.next_pair(subject=t % 5)
        else:
            a, b = (f"x{k}" for k in rng.choice(n, 2, replace=False))
        outcome = raters.judge(int(a[1:]), int(b[1:]), t % 5)
        if method == "adaptive":
            s.update(a, b, outcome, subject=t % 5)
        rows.append((a, b, outcome))
    fit = scale_pairs(pd.DataFrame(rows, columns=["a", "b", "outcome"]), "thurstone", alpha=0.01)
    truth = raters.quality[[int(x[1:]) for x in fit["item"]]]
    return stats.spearmanr(fit["score"], truth).statistic


def test_adaptive_beats_random_pairs_at_equal_budget():
    """Well-spread qualities (2 JND): random pairs waste comparisons on foregone outcomes.
    At 10 comparisons per item, adaptive wins on (almost) every seed, and the mean gain is more
    than twice its standard error over seeds."""
    seeds = range(6)
    gain = np.array([simulate("adaptive", k, n=80, budget=800)
                     - simulate("random", k, n=80, budget=800) for k in seeds])
    assert (gain > 0).sum() >= len(gain) - 1
    assert gain.mean() > 2 * gain.std(ddof=1) / np.sqrt(len(gain))


def test_plan_ratings_gives_more_to_noisy_and_unrated_images():
    table = pd.DataFrame({"image": ["calm", "noisy", "mid"], "n": [5, 5, 5],
                          "std": [2.0, 20.0, 8.0]})
    plan = plan_ratings(table, 30, items=["calm", "noisy", "mid", "new"])
    extra = plan.set_index("image")["extra"]
    assert extra.sum() == 30
    assert extra["noisy"] > extra["mid"] > extra["calm"]
    assert extra["new"] >= 2  # brought to min_ratings first
    assert plan.set_index("image").loc["new", "ci95"] == np.inf
    after = plan.set_index("image")["ci95_after"]
    assert (after <= plan.set_index("image")["ci95"]).all()


def test_plan_ratings_variance_greedy_is_the_optimal_allocation():
    table = pd.DataFrame({"image": list("abcd"), "n": [2, 3, 2, 4], "std": [3.0, 9.0, 5.0, 1.0]})
    budget = 9
    plan = plan_ratings(table, budget, prior_df=0.0)  # no shrinkage: var = std², checkable
    var = table["std"].to_numpy() ** 2
    n = table["n"].to_numpy()
    best = min((sum(var / (n + np.array(x))), x) for x in itertools.product(range(budget + 1),
               repeat=4) if sum(x) == budget)
    got = plan["extra"].to_numpy()
    assert sum(var / (n + got)) == pytest.approx(best[0], rel=1e-12)
    widest = plan_ratings(table, budget, prior_df=0.0, objective="widest")
    ci = widest["ci95_after"].to_numpy()
    # minimax: no image could lend a rating to the widest one without becoming wider than it
    k = np.argmax(ci)
    donors = widest["extra"].to_numpy() > 0
    std = table["std"].to_numpy()
    new_n = n + widest["extra"].to_numpy() - 1
    assert all(std[j] / np.sqrt(new_n[j]) >= std[k] / np.sqrt(n[k] + widest["extra"][k])
               for j in np.flatnonzero(donors) if j != k)


def test_plan_ratings_bad_input():
    good = pd.DataFrame({"image": ["a", "b"], "n": [3, 3], "std": [1.0, 2.0]})
    with pytest.raises(RatingsError, match="missing column"):
        plan_ratings(good.drop(columns="std"), 5)
    with pytest.raises(RatingsError, match="objective"):
        plan_ratings(good, 5, objective="random")
    with pytest.raises(RatingsError, match="budget"):
        plan_ratings(good, -1)
    with pytest.raises(RatingsError, match="not a count"):
        plan_ratings(good.assign(n=[3, -1]), 5)
    with pytest.raises(RatingsError, match="not in items"):
        plan_ratings(good, 5, items=["a"])
    with pytest.raises(RatingsError, match="listed twice"):
        plan_ratings(pd.concat([good, good]), 5)
    with pytest.raises(RatingsError, match="no image has 2 ratings"):
        plan_ratings(good.assign(n=[1, 0], std=[np.nan, np.nan]), 5)

