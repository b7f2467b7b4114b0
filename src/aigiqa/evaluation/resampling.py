"""Bootstrap resamples as draw counts, and SRCC / PLCC / KRCC on all of them at once (numpy).

Ranks come from draw counts, Kendall's tau-b from an exact blocked pair count in
O(R n sqrt(n)); see ``_resampled_kendall``. Work goes in chunks of about :data:`CHUNK_ELEMENTS`
images x resamples.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from aigiqa.errors import EvaluationError

CHUNK_ELEMENTS = 4_000_000  # images x resamples handled at once (memory ~ 16 MB per array)


def _count_chunks(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Draw counts of the resamples, in chunks of columns: arrays (n, chunk), float32.

    Resample r draws ``n`` indices uniformly with replacement; resamples are generated in order
    from one ``default_rng(seed)`` stream.
    """
    if n_resamples < 1:
        raise EvaluationError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, CHUNK_ELEMENTS // n))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n), dtype=np.int64)
        flat = idx * size + np.arange(size)[:, None]
        counts = np.bincount(flat.ravel(), minlength=n * size)
        yield counts.reshape(n, size).astype(np.float32)


def bootstrap_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """How often each image is drawn in each resample: shape (n, n_resamples), float32.

    The resamples every bootstrap function of this module uses for this (n, n_resamples, seed).
    """
    return np.concatenate(list(_count_chunks(n, n_resamples, seed)), axis=1)




class Resampled:
    """Statistics of many metrics on the same bootstrap resamples of one ground truth."""

    def __init__(self, truth: np.ndarray, counts: np.ndarray) -> None:
        self.truth = truth
        self.counts = counts  # (n, R)
        self.padded = np.concatenate([counts, np.zeros((1, counts.shape[1]), counts.dtype)])
        self.n = len(truth)
        self.truth_ranks = _resampled_ranks(truth, counts)
        self.kendall_y = _KendallOrder(truth, self.padded)
        self.weights = counts.T.astype(np.float64)  # (R, n)
        self.truth_c = truth - truth.mean()  # centred: sums of squares without cancellation
        self.sum_y = self.weights @ self.truth_c
        self.sum_yy = self.weights @ (self.truth_c * self.truth_c)

    def srcc(self, pred: np.ndarray) -> np.ndarray:
        """Spearman's rho per resample, shape (R,)."""
        rx = _resampled_ranks(pred, self.counts)
        ry = self.truth_ranks
        num = np.einsum("ir,ir->r", rx * self.counts, ry, dtype=np.float64)
        sxx = np.einsum("ir,ir->r", rx * self.counts, rx, dtype=np.float64)
        syy = np.einsum("ir,ir->r", ry * self.counts, ry, dtype=np.float64)
        return _safe_ratio(num, np.sqrt(sxx * syy))

    def pearson(self, mapped: np.ndarray) -> np.ndarray:
        """Pearson's r of (already mapped) predictions with the truth per resample, shape (R,)."""
        w, n = self.weights, self.n
        x = mapped - mapped.mean()
        sx, sxx, sxy = w @ x, w @ (x * x), w @ (x * self.truth_c)
        cov = sxy - sx * self.sum_y / n
        vx = sxx - sx * sx / n
        vy = self.sum_yy - self.sum_y * self.sum_y / n
        out = _safe_ratio(cov, np.sqrt(np.clip(vx, 0, None) * np.clip(vy, 0, None)))
        scale = max(float(np.abs(x).max()), 1e-300)
        out[vx <= 1e-12 * scale * scale * n] = 0.0  # constant on this resample
        return np.clip(out, -1.0, 1.0)

    def krcc(self, pred: np.ndarray) -> np.ndarray:
        """Kendall's tau-b per resample, shape (R,)."""
        return _resampled_kendall(pred, self.kendall_y, self.padded)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return np.clip(out, -1.0, 1.0)


def _resampled_ranks(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Centred average ranks of each image within each resample, shape (n, R), float32.

    An image drawn c times occupies c tied positions; ranks of images not drawn are irrelevant
    (weight 0). Equals ``rankdata`` of the resampled values minus (n + 1) / 2.
    """
    n = len(values)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    c = counts[order]  # (n, R) in sorted order
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    if len(starts) == n:
        ranks_sorted = np.cumsum(c, axis=0) - (c - 1) / 2
    else:
        group_total = np.add.reduceat(c, starts, axis=0)
        group_rank = np.cumsum(group_total, axis=0) - (group_total - 1) / 2
        group_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
        ranks_sorted = group_rank[group_of]
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    ranks -= np.float32((n + 1) / 2)
    return ranks


class _KendallOrder:
    """Sort structure of one variable for the resampled Kendall computation."""

    def __init__(self, values: np.ndarray, padded: np.ndarray) -> None:
        self.values = values
        self.order = np.argsort(values, kind="stable")
        self.tie_starts = _tie_starts(values[self.order])
        self.tied, self.n_tied = _pair_ties(padded[self.order], self.tie_starts)


def _pair_ties(c_sorted: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For tie groups (contiguous rows of c_sorted from ``starts``): (pairs of distinct images
    tied, pairs of resample members tied incl. duplicates), both shape (R,)."""
    sq = np.einsum("ir,ir->r", c_sorted, c_sorted).astype(np.float64)
    if len(starts) == len(c_sorted):
        totals_sq = sq
        totals = np.full_like(sq, len(c_sorted))
    else:
        g = np.add.reduceat(c_sorted, starts, axis=0)
        totals_sq = np.einsum("gr,gr->r", g, g).astype(np.float64)
        totals = g.sum(axis=0, dtype=np.float64)
    return (totals_sq - sq) / 2, (totals_sq - totals) / 2


def _block_size(n: int) -> int:
    """Block size of the Kendall grid: about sqrt(2 n), a multiple of 8, between 8 and 256."""
    return int(min(256, max(8, 8 * round(math.sqrt(2 * n) / 8))))


def _resampled_kendall(pred: np.ndarray, ky: _KendallOrder, padded: np.ndarray) -> np.ndarray:
    """Kendall's tau-b on every bootstrap resample at once, shape (R,).

    ``padded``: draw counts, shape (n + 1, R), last row zeros. Concordant minus discordant pairs
    of a weighted sample (weights = draw counts c) is the quadratic form ``c^T A c / 2`` with
    A_ij = sgn(dx) sgn(dy). Ties are first broken (x by y then index, y by x then index) so both
    orders are permutations; every tied pair then counts +1 and is taken off afterwards with
    per-tie-group weight sums. The form on the permutation is split on a grid of blocks of b
    positions in x order × b ranks in y order: pairs in different x- and y-blocks are counted
    from prefix sums of block weights, pairs within an x-block or within a y-block with small
    dense matrices (batched matmuls). Cost O(R n sqrt(n)) in BLAS; float32, exact integer
    counts up to rounding of the final sums.
    """
    x, y = pred, ky.values
    n = len(x)
    index = np.arange(n)
    ox = np.lexsort((index, y, x))  # x order; ties in x by y, then index
    oy = np.lexsort((index, x, y))  # y order; ties in y by x, then index
    yrank = np.empty(n, dtype=np.int64)
    yrank[oy] = index
    xpos = np.empty(n, dtype=np.int64)
    xpos[ox] = index

    b = _block_size(n)
    nb = -(-n // b)
    fill = np.full(nb * b - n, n)  # padding images: zero weight, ranks after the real ones
    pad = np.arange(n, nb * b)
    pi = np.r_[yrank[ox], pad].reshape(nb, b)  # y-rank of the image at each x position
    sigma = np.r_[xpos[oy], pad].reshape(nb, b)  # x position of the image at each y rank
    cx = padded[np.r_[ox, fill]].reshape(nb, b, -1)
    cy = padded[np.r_[oy, fill]].reshape(nb, b, -1)

    upper = np.sign(np.arange(b)[None, :] - np.arange(b)[:, None]).astype(np.float32)
    # pairs within an x-block
    ax = upper * np.sign(pi[:, None, :] - pi[:, :, None]).astype(np.float32)
    s_x = np.einsum("bkr,bkr->r", ax @ cx, cx).astype(np.float64) / 2
    # pairs within a y-block, in different x-blocks
    other = (sigma[:, None, :] // b) != (sigma[:, :, None] // b)
    ay = upper * (np.sign(sigma[:, None, :] - sigma[:, :, None]) * other).astype(np.float32)
    s_y = np.einsum("bkr,bkr->r", ay @ cy, cy).astype(np.float64) / 2
    # pairs in different x- and y-blocks, counted from the later x-block:
    # G[P, Q] * (sum over p < P of G[p, q < Q] - G[p, q > Q])
    onehot = (pi[:, None, :] // b == np.arange(nb)[None, :, None]).astype(np.float32)
    grid = onehot @ cx  # (x-block P, y-block Q, R): summed weights
    before = np.cumsum(grid, axis=0) - grid  # sum over p < P
    incl = np.cumsum(before, axis=1)  # sum over p < P, q <= Q
    signed = 2 * incl - before - incl[:, -1:]  # (q < Q) - (q > Q)
    s_grid = np.einsum("pqr,pqr->r", grid, signed).astype(np.float64)

    # undo the tie breaking: tied pairs counted +1 above, 0 in tau-b
    c_ox = padded[ox]
    x_starts = _tie_starts(x[ox])
    tied_x, n1 = _pair_ties(c_ox, x_starts)
    tied_y, n2 = ky.tied, ky.n_tied
    if len(ky.tie_starts) == n or len(x_starts) == n:
        tied_xy = np.zeros_like(tied_x)
    else:
        xs, ys = x[ox], y[ox]
        joint = np.flatnonzero(np.r_[True, (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])])
        tied_xy = _pair_ties(c_ox, joint)[0]
    s = s_x + s_y + s_grid - tied_x - tied_y + tied_xy
    n0 = n * (n - 1) / 2
    return _safe_ratio(s, np.sqrt(np.clip(n0 - n1, 0, None) * np.clip(n0 - n2, 0, None)))


def _tie_starts(sorted_values: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])


