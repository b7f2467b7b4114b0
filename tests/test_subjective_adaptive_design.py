"""Adaptive sampling's designs: the default (ranking) criterion against random pairs and the
total-variance criterion, judged by the expected discordance of each design at the true
qualities (free of the outcomes' noise); the left/right order of proposed pairs."""

from __future__ import annotations

import numpy as np
from scipy import stats

from aigiqa.subjective.adaptive import AdaptivePairSampler
from aigiqa.subjective.simulate import design_discordance, simulate_pair_raters


def names(n):
    return [f"x{k}" for k in range(n)]


def expected_discordance(quality, pairs, lapse=0.05):
    """The expected number of pairs a design leaves in the wrong order, without the outcomes'
    noise (the benchmark's yardstick)."""
    i, j = np.array(pairs).T
    return design_discordance(quality, i, j, lapse)


def adaptive_design(n, spread, seed, budget, criterion):
    raters = simulate_pair_raters(n, spread, 5, seed=seed)
    s = AdaptivePairSampler(names(n), seed=seed, criterion=criterion)
    pairs = []
    for t in range(budget):
        a, b = s.next_pair(subject=t % 5)
        s.update(a, b, raters.judge(int(a[1:]), int(b[1:]), t % 5), subject=t % 5)
        pairs.append((int(a[1:]), int(b[1:])))
    return raters.quality, pairs


def test_ranking_design_never_worse_than_random_pairs():
    """The default criterion's designs leave fewer pairs in the wrong order than random pairs
    when qualities are close (0.5 JND, where random pairs are near-optimal) and well spread
    (2 JND), on every seed, and fewer than the total-variance criterion at 2 JND."""
    n, budget = 40, 600
    for spread in (0.5, 2.0):
        for seed in range(3):
            quality, pairs = adaptive_design(n, spread, seed, budget, "ranking")
            rng = np.random.default_rng(seed)
            random_pairs = [tuple(rng.choice(n, 2, replace=False)) for _ in range(budget)]
            ranking = expected_discordance(quality, pairs)
            assert ranking < expected_discordance(quality, random_pairs) / (
                1.01 if spread < 1 else 1.15)
            if spread > 1:
                _, other = adaptive_design(n, spread, seed, budget, "variance")
                assert ranking < expected_discordance(quality, other)


def test_next_pair_sides_are_balanced():
    """The order (a, b) of a proposed pair is a fair coin, not the item order or the
    criterion's: a comes first in the sampler's item order about half the time."""
    s = AdaptivePairSampler(names(30), seed=4)
    rng = np.random.default_rng(1)
    first = 0
    for t in range(400):
        a, b = s.next_pair(subject=t % 4)
        first += s.items.index(a) < s.items.index(b)
        s.update(a, b, str(rng.choice(["a", "b"])), subject=t % 4)
    assert stats.binomtest(first, 400).pvalue > 0.01
