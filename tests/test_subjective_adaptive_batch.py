"""Batch mode of the adaptive sampler: each batch is a maximum spanning tree of the comparison
graph weighted by the criterion (checked by brute force on small graphs), served by next_pair
with exclusions and already-seen pairs respected, rebuilt when used up, deterministic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from aigiqa.errors import ComparisonError
from aigiqa.subjective.adaptive import AdaptivePairSampler
from aigiqa.subjective.adaptive_batch import max_spanning_tree
from aigiqa.subjective.simulate import simulate_pair_raters


def names(n):
    return [f"x{k}" for k in range(n)]


def upper(rng, n):
    gain = np.full((n, n), -np.inf, np.float32)
    rows, cols = np.triu_indices(n, 1)
    gain[rows, cols] = rng.random(len(rows)).astype(np.float32)
    return gain


def is_spanning_tree(pairs, n):
    if len(pairs) != n - 1 or len(set(pairs)) != len(pairs):
        return False
    adj = np.zeros((n, n))
    for i, j in pairs:
        adj[i, j] = adj[j, i] = 1
    return connected_components(adj, directed=False)[0] == 1


def total(gain, pairs):
    return float(sum(gain[i, j] for i, j in pairs))


def test_tree_is_the_maximum_spanning_tree_by_brute_force():
    """On 5 items (10 edges), every (n − 1)-subset of edges is enumerated: the tree returned
    is a spanning tree and none weighs more."""
    rng = np.random.default_rng(0)
    n = 5
    for _ in range(20):
        gain = upper(rng, n)
        pairs = max_spanning_tree(gain)
        assert is_spanning_tree(pairs, n)
        assert all(i < j for i, j in pairs)
        edges = list(zip(*np.triu_indices(n, 1), strict=True))
        best = max(total(gain, sub) for sub in itertools.combinations(edges, n - 1)
                   if is_spanning_tree(list(sub), n))
        assert total(gain, pairs) == pytest.approx(best, rel=1e-6)
        values = [gain[i, j] for i, j in pairs]
        assert values == sorted(values, reverse=True)  # most valuable pair first


def test_tree_beats_random_spanning_trees_and_skips_non_edges():
    rng = np.random.default_rng(1)
    n = 30
    gain = upper(rng, n)
    gain[0, 1:] = 0.0  # zero-valued edges are still edges (scipy reads a 0 as "no edge")
    gain[3, 4] = gain[5, 9] = -np.inf  # excluded: never in the tree
    pairs = max_spanning_tree(gain)
    assert is_spanning_tree(pairs, n)
    assert (3, 4) not in pairs and (5, 9) not in pairs
    best = total(gain, pairs)
    # scipy's Kruskal on the same graph (positive weights 2 − gain; a 0 there is "no edge")
    kruskal = minimum_spanning_tree(np.where(np.isfinite(gain), 2.0 - gain, 0.0))
    assert kruskal.nnz == n - 1
    assert best == pytest.approx(2.0 * (n - 1) - kruskal.sum(), rel=1e-6)
    for _ in range(200):  # random spanning trees: each new item joins a random earlier one
        perm = rng.permutation(n)
        tree = [tuple(sorted((int(perm[k]), int(perm[rng.integers(k)])))) for k in range(1, n)]
        tree = [p for p in tree if np.isfinite(gain[p])]
        if len(tree) == n - 1:
            assert total(gain, tree) <= best + 1e-6
    gain[0, 1:] = -np.inf  # item 0 cut off: a spanning forest of the rest
    forest = max_spanning_tree(gain)
    assert len(forest) == n - 2 and all(0 not in p for p in forest)


def run_batch(n, steps, seed=0, exclude=(), subjects=3, refit=0.0):
    raters = simulate_pair_raters(n, 1.0, 3, seed=5)
    s = AdaptivePairSampler(names(n), seed=seed, batch="mst", refit=refit)
    out = []
    for t in range(steps):
        subject = t % subjects if subjects else None
        a, b = s.next_pair(subject=subject, exclude=exclude)
        s.update(a, b, raters.judge(int(a[1:]), int(b[1:]), t % 3), subject=subject)
        out.append((a, b))
    return s, out


def test_next_pair_serves_the_tree_then_builds_a_new_one():
    n = 12
    s = AdaptivePairSampler(names(n), seed=3, batch="mst", refit=0)
    s.update("x0", "x1", "a")
    s.update("x2", "x3", "b")
    tree = [tuple(sorted((s.items[i], s.items[j]))) for i, j in
            max_spanning_tree(s.information())]
    served = []
    for _ in range(n - 1):  # no updates: the batch is served as built, best pair first
        a, b = s.next_pair()
        served.append(tuple(sorted((a, b))))
    assert served == tree
    assert not s._batch_pairs
    s.next_pair()  # used up: a new tree is built from the posterior
    assert len(s._batch_pairs) == n - 2


def test_every_batch_covers_every_item():
    n = 10
    out = run_batch(n, 3 * (n - 1), subjects=0)[1]
    for k in range(3):  # each batch of n − 1 pairs touches every item
        batch = out[k * (n - 1):(k + 1) * (n - 1)]
        assert {x for p in batch for x in p} == set(names(n))


def test_batches_respect_exclusions_and_seen_pairs():
    n = 8
    exclude = [("x0", "x1"), ("x2", "x5")]
    s, out = run_batch(n, 40, exclude=exclude, refit=0.3)  # refits rebuild the tree, too
    assert s.n_refits >= 1
    bad = {frozenset(p) for p in exclude}
    assert all(frozenset(p) not in bad and p[0] != p[1] for p in out)
    for subject in range(3):  # a subject gets no repeat while unseen pairs are left (28)
        theirs = [frozenset(p) for t, p in enumerate(out) if t % 3 == subject]
        assert len(set(theirs)) == len(theirs)


def test_batch_mode_is_deterministic_and_checked():
    first, again = run_batch(9, 30)[1], run_batch(9, 30)[1]
    assert first == again
    assert run_batch(9, 30, seed=1)[1] != first
    with pytest.raises(ComparisonError, match="batch"):
        AdaptivePairSampler(names(4), batch="tree")
    s = AdaptivePairSampler(names(3), batch="mst")
    with pytest.raises(ComparisonError, match="no pair left"):
        s.next_pair(exclude=[("x0", "x1"), ("x1", "x2"), ("x0", "x2")])
