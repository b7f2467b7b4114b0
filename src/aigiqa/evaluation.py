"""Evaluation protocol: SRCC, KRCC, PLCC after a logistic mapping, RMSE, the NTIRE 2024 score,
bootstrap confidence intervals and a paired bootstrap test of two metrics.

Conventions
-----------
- ``srcc`` is Spearman's rho (average ranks for ties), ``krcc`` Kendall's tau-b, ``plcc_raw``
  Pearson's r of the raw predictions: the same numbers as ``scipy.stats.spearmanr``,
  ``kendalltau`` and ``pearsonr``.
- ``plcc`` and ``rmse`` are computed after mapping the predictions onto the target scale with a
  monotone VQEG logistic (``logistic4`` by default, ``logistic5``) or no mapping (``none``).
  The mapping is fitted in the direction of the rank correlation (increasing when
  ``srcc >= 0``, decreasing otherwise), and ``plcc`` carries that direction's sign, so a metric
  whose sign is wrong shows negative SRCC *and* PLCC instead of a flattering positive PLCC.
  When the logistic fit fails (no convergence, non-finite values, or a fit worse than the best
  straight line, which the logistic family contains as a limit) a linear map is used instead;
  ``fit_used`` says which map was applied.
- ``main`` = (srcc + plcc) / 2, the score of the NTIRE 2024 AIGC quality challenge.
- Constant predictions (or a constant target) have no defined correlation: srcc, krcc, plcc and
  plcc_raw are reported as ``0.0`` (``fit_used = "constant"``), never NaN.
- ``lower_better=True`` negates the predictions first, so a good metric has positive correlations.

Bootstrap: resamples draw n images with replacement (the same resamples for every metric, so
metrics are compared on the same images). SRCC and KRCC are recomputed exactly on every resample
(ranks and Kendall's tau-b with all ties, including the duplicates a resample creates); PLCC is the
correlation of the *mapped* predictions on each resample with the mapping fitted once on the full
sample (the common practice: refitting a logistic a thousand times is slow and unstable).
Confidence intervals are percentile intervals. All resamples are computed at once with numpy
(ranks from draw counts, Kendall's tau-b by an exact blocked pair count in O(R n sqrt(n)); see
``_resampled_kendall``), in chunks of about :data:`CHUNK_ELEMENTS` images x resamples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from aigiqa.errors import EvaluationError

try:  # one BLAS thread: the many small matmuls/fits here are slower with contended threads
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - optional
    ThreadpoolController = None

FITS = ("logistic4", "logistic5", "none")
CI_STATS = ("srcc", "plcc", "krcc", "main")
MIN_PAIRS = 3

__all__ = [
    "CI_STATS",
    "FITS",
    "FittedMap",
    "bootstrap_ci",
    "evaluate",
    "evaluate_many",
    "fit_logistic",
    "logistic4",
    "logistic5",
    "paired_bootstrap",
]


_blas = {"controller": None, "depth": 0}


def _one_blas_thread(func: Callable) -> Callable:
    """Run ``func`` with BLAS/LAPACK limited to one thread (threadpoolctl, when installed).

    The work here is many small matrix products and least-squares steps; on a busy machine
    multi-threaded BLAS spends most of its time waiting for cores (measured 6x slower on 2 cores).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if ThreadpoolController is None or _blas["depth"]:
            limits = nullcontext()
        else:
            if _blas["controller"] is None:
                _blas["controller"] = ThreadpoolController()
            limits = _blas["controller"].limit(limits=1, user_api="blas")
        _blas["depth"] += 1
        try:
            with limits:
                return func(*args, **kwargs)
        finally:
            _blas["depth"] -= 1

    return wrapper


# -- mapping functions ---------------------------------------------------------------------------
def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``, elementwise."""
    return (b1 - b2) * special.expit((np.asarray(x, float) - b3) / abs(b4)) + b2


def logistic5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """VQEG 5-parameter logistic ``b1 (0.5 - 1 / (1 + exp(b2 (x - b3)))) + b4 x + b5``."""
    x = np.asarray(x, float)
    return b1 * (0.5 - special.expit(-b2 * (x - b3))) + b4 * x + b5


@dataclass(frozen=True)
class FittedMap:
    """A fitted monotone map prediction → target scale; call it on predictions (shape (n,)).

    ``kind`` is the map applied: ``logistic4``, ``logistic5``, ``linear`` (fallback: ``params`` =
    slope, intercept), ``none`` (identity) or ``constant`` (``params`` = the target mean).
    ``direction`` is +1 or -1: the map is a non-decreasing function of ``direction * pred`` and the
    VQEG ``params`` apply to ``direction * pred``.
    """

    kind: str
    params: tuple[float, ...]
    direction: float = 1.0

    def __call__(self, pred: np.ndarray) -> np.ndarray:
        x = self.direction * np.asarray(pred, float)
        if self.kind == "logistic4":
            return logistic4(x, *self.params)
        if self.kind == "logistic5":
            return logistic5(x, *self.params)
        if self.kind == "linear":
            return self.params[0] * x + self.params[1]
        if self.kind == "constant":
            return np.full(x.shape, self.params[0])
        return x


@_one_blas_thread
def fit_logistic(pred: np.ndarray, truth: np.ndarray, fit: str = "logistic4",
                 direction: float | None = None) -> FittedMap:
    """Fit the monotone map ``fit`` (logistic4 | logistic5 | none) from predictions to targets.

    pred, truth: shape (n,). ``direction`` (+1/-1) defaults to the sign of the rank correlation.
    Falls back to a least-squares line (``kind="linear"``) when the logistic fit fails.
    """
    pred, truth = _check_pair(pred, truth)
    if fit not in FITS:
        raise EvaluationError(f"unknown fit {fit!r}: choose one of {', '.join(FITS)}")
    if fit == "none":
        return FittedMap("none", ())
    if np.ptp(pred) == 0 or np.ptp(truth) == 0:
        return FittedMap("constant", (float(np.mean(truth)),))
    if direction is None:
        direction = _direction(pred, truth)
    x = direction * pred
    mu, sd = float(x.mean()), float(x.std())
    z = (x - mu) / sd  # fitted on standardised predictions for conditioning
    line = _fit_line(x, truth)
    line_sse = float(np.sum((line(x) - truth) ** 2))
    try:
        fitted = _fit_logistic_z(z, truth, fit, mu, sd, direction)
        sse = float(np.sum((fitted(pred) - truth) ** 2))
    except (RuntimeError, ValueError, FloatingPointError):
        fitted, sse = None, math.inf
    if fitted is None or not math.isfinite(sse) or sse > line_sse * (1 + 1e-9) + 1e-12:
        return FittedMap("linear", line.params, direction)
    return fitted


def _direction(pred: np.ndarray, truth: np.ndarray) -> float:
    """+1 or -1: the sign of Spearman's rho, then of Pearson's r, else +1."""
    for value in (_srcc(pred, truth), _pearson(pred, truth)):
        if value != 0:
            return 1.0 if value > 0 else -1.0
    return 1.0


def _fit_line(x: np.ndarray, y: np.ndarray) -> FittedMap:
    """Least-squares non-decreasing line y ≈ a x + b (slope clipped at 0)."""
    xc = x - x.mean()
    slope = max(float(np.dot(xc, y - y.mean()) / np.dot(xc, xc)), 0.0)
    return FittedMap("linear", (slope, float(y.mean() - slope * x.mean())))


MAX_FIT_EVALUATIONS = 500
#: Smallest logistic4 scale on standardised predictions (a step; keeps the fit away from 0/0).
MIN_SCALE = 1e-6


def _fit_logistic_z(z: np.ndarray, y: np.ndarray, fit: str, mu: float, sd: float,
                    direction: float) -> FittedMap:
    """Least-squares non-decreasing logistic on standardised z; params on the direction*pred scale.

    Both forms use scipy's bounded trust-region reflective fit (logistic4: height >= 0 and
    scale >= :data:`MIN_SCALE`; logistic5: b1, b2, b4 >= 0). Not MINPACK's Levenberg-Marquardt:
    its iterates depend on the memory alignment of its work arrays (the last bits, then up to
    ~1e-10 in PLCC on step-like fits), so the same scores gave different results from one process
    to the next; these fits are a function of the inputs alone. Iterations are capped at
    :data:`MAX_FIT_EVALUATIONS`; a capped fit (a flat ridge when only one tail of the sigmoid lies
    in the data) is kept, its SSE being within ~1e-4 of the optimum, unless it is worse than a line.
    """
    lo, span = float(y.min()), float(np.ptp(y))
    mid = float(np.median(z))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if fit == "logistic4":
            def f4(q):
                base, height, centre, scale = q
                return base + height * special.expit((z - centre) / scale) - y

            def j4(q):
                base, height, centre, scale = q
                u = (z - centre) / scale
                e = special.expit(u)
                slope = height * e * (1 - e) / scale
                return np.column_stack([np.ones_like(z), e, -slope, -slope * u])

            q = optimize.least_squares(
                f4, [lo, span, mid, 1.0], jac=j4, method="trf",
                bounds=([-np.inf, 0.0, -np.inf, MIN_SCALE], [np.inf] * 4),
                max_nfev=MAX_FIT_EVALUATIONS,
            ).x
            base, height, centre, scale = map(float, q)
            params = (base + height, base, mu + sd * centre, sd * scale)
        else:
            def f5(q):
                b1, b2, b3, b4, b5 = q
                return b1 * (special.expit(b2 * (z - b3)) - 0.5) + b4 * z + b5 - y

            def j5(q):
                b1, b2, b3, b4, b5 = q
                e = special.expit(b2 * (z - b3))
                d = b1 * e * (1 - e)
                return np.column_stack([e - 0.5, d * (z - b3), -d * b2, z, np.ones_like(z)])

            q = optimize.least_squares(
                f5, [span, 1.0, mid, 1e-3 * span, float(y.mean())], jac=j5, method="trf",
                bounds=([0.0, 0.0, -np.inf, 0.0, -np.inf], [np.inf] * 5),
                max_nfev=MAX_FIT_EVALUATIONS,
            ).x
            b1, b2, b3, b4, b5 = map(float, q)
            params = (b1, b2 / sd, mu + sd * b3, b4 / sd, b5 - b4 * mu / sd)
    if not all(math.isfinite(v) for v in params):
        raise ValueError("non-finite logistic parameters")
    return FittedMap(fit, params, direction)


# -- point estimates -----------------------------------------------------------------------------
@_one_blas_thread
def evaluate(pred: np.ndarray, truth: np.ndarray, *, lower_better: bool = False,
             fit: str = "logistic4") -> dict:
    """Correlations of predictions with subjective scores.

    pred, truth: shape (n,), n >= 3, finite. Returns ``srcc``, ``krcc``, ``plcc`` (after the
    ``fit`` map), ``plcc_raw``, ``rmse`` (after the map, in target units), ``main`` =
    (srcc + plcc) / 2, ``n``, ``fit`` (asked) and ``fit_used`` (applied: logistic4, logistic5,
    linear, none or constant). Constant inputs give 0.0 correlations.
    """
    pred, truth = _check_pair(pred, truth)
    if fit not in FITS:
        raise EvaluationError(f"unknown fit {fit!r}: choose one of {', '.join(FITS)}")
    return _evaluate(-pred if lower_better else pred, truth, fit)[0]


def _evaluate(pred: np.ndarray, truth: np.ndarray, fit: str) -> tuple[dict, FittedMap]:
    """evaluate() on checked, direction-adjusted arrays; also returns the fitted map."""
    mapping = fit_logistic(pred, truth, fit)
    mapped = mapping(pred)
    srcc = _srcc(pred, truth)
    plcc = mapping.direction * _pearson(mapped, truth)
    return {
        "srcc": srcc,
        "krcc": _krcc(pred, truth),
        "plcc": float(plcc),
        "plcc_raw": _pearson(pred, truth),
        "rmse": float(np.sqrt(np.mean((mapped - truth) ** 2))),
        "main": float((srcc + plcc) / 2),
        "n": int(len(pred)),
        "fit": fit,
        "fit_used": mapping.kind,
    }, mapping


def _check_pair(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    """Both as 1-D float arrays of equal length >= 3 with finite values, or EvaluationError."""
    arrays = []
    for label, values in (("pred", pred), ("truth", truth)):
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"{label} is not numeric: {exc}") from None
        if arr.ndim != 1:
            raise EvaluationError(f"{label} must be 1-D, got shape {arr.shape}")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise EvaluationError(
                f"{label} has {bad.size} non-finite value(s) (NaN or inf); first at index "
                f"{bad[0]} ({arr[bad[0]]})"
            )
        arrays.append(arr)
    pred, truth = arrays
    if len(pred) != len(truth):
        raise EvaluationError(f"pred has {len(pred)} values but truth has {len(truth)}")
    if len(pred) < MIN_PAIRS:
        raise EvaluationError(f"need at least {MIN_PAIRS} (pred, truth) pairs, got {len(pred)}")
    return pred, truth


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r; 0.0 when either side is constant."""
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float(np.dot(xc, xc)) * float(np.dot(yc, yc)))
    if den == 0 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.clip(np.dot(xc, yc) / den, -1.0, 1.0))


def _srcc(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho with average ranks; 0.0 when either side is constant."""
    return _pearson(stats.rankdata(x, method="average"), stats.rankdata(y, method="average"))


def _krcc(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b; 0.0 when either side is constant."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(stats.kendalltau(x, y, variant="b").statistic)


# -- bootstrap -----------------------------------------------------------------------------------
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


def _distributions(items: list[tuple[np.ndarray, FittedMap]], truth: np.ndarray,
                   n_resamples: int, seed: int,
                   wanted: tuple[str, ...] = CI_STATS) -> list[dict[str, np.ndarray]]:
    """Bootstrap distributions (each shape (n_resamples,)) of ``wanted`` for each
    (direction-adjusted prediction, fitted map) in ``items``, all on the same resamples."""
    parts: list[dict[str, list[np.ndarray]]] = [{k: [] for k in wanted} for _ in items]
    for counts in _count_chunks(len(truth), n_resamples, seed):
        res = _Resampled(truth, counts)
        for part, (pred, mapping) in zip(parts, items, strict=True):
            for key, values in _resampled_stats(res, pred, mapping, wanted).items():
                part[key].append(values)
    return [{k: np.concatenate(v) for k, v in part.items()} for part in parts]


class _Resampled:
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


def _percentile_ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise EvaluationError(f"level must be in (0, 1), got {level}")


def _resampled_stats(res: _Resampled, pred: np.ndarray, mapping: FittedMap,
                     wanted: tuple[str, ...] = CI_STATS) -> dict[str, np.ndarray]:
    """Bootstrap distributions, each shape (R,), of the statistics in ``wanted``."""
    out: dict[str, np.ndarray] = {}
    if "srcc" in wanted or "main" in wanted:
        out["srcc"] = res.srcc(pred)
    if "plcc" in wanted or "main" in wanted:
        if mapping.kind == "constant":
            out["plcc"] = np.zeros(res.counts.shape[1])
        else:
            out["plcc"] = mapping.direction * res.pearson(mapping(pred))
    if "main" in wanted:
        out["main"] = (out["srcc"] + out["plcc"]) / 2
    if "krcc" in wanted:
        out["krcc"] = res.krcc(pred)
    return {k: out[k] for k in wanted}


@_one_blas_thread
def bootstrap_ci(pred: np.ndarray, truth: np.ndarray, *, n_resamples: int = 1000, seed: int = 0,
                 level: float = 0.95, lower_better: bool = False,
                 fit: str = "logistic4") -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of srcc, plcc, krcc and main.

    pred, truth: shape (n,). Returns ``{stat: (low, high)}``. PLCC uses the map fitted once on
    the full sample (see the module docstring). Same seed → same intervals.
    """
    pred, truth = _check_pair(pred, truth)
    _check_level(level)
    if lower_better:
        pred = -pred
    mapping = fit_logistic(pred, truth, fit)
    dists = _distributions([(pred, mapping)], truth, n_resamples, seed)[0]
    return {k: _percentile_ci(v, level) for k, v in dists.items()}


@_one_blas_thread
def paired_bootstrap(pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray, *,
                     statistic: str = "srcc", n_resamples: int = 1000, seed: int = 0,
                     level: float = 0.95, lower_better_a: bool = False,
                     lower_better_b: bool = False, fit: str = "logistic4") -> dict:
    """Paired bootstrap test of two metrics scored on the same images.

    pred_a, pred_b, truth: shape (n,). ``statistic``: srcc | plcc | krcc | main. Both metrics
    are evaluated on the same resamples. Returns ``statistic``, ``a``, ``b`` (full-sample values),
    ``difference`` (a - b), ``ci`` (percentile CI of the difference) and ``p_value``: two-sided,
    ``min(1, 2 min(P*(d <= 0), P*(d >= 0)))`` with P* = (count + 1) / (R + 1) over the resampled
    differences d, so identical metrics give 1 and a metric better on every resample gives
    2 / (R + 1).
    """
    if statistic not in CI_STATS:
        raise EvaluationError(f"unknown statistic {statistic!r}: choose one of {CI_STATS}")
    _check_level(level)
    pred_a, truth = _check_pair(pred_a, truth)
    pred_b, _ = _check_pair(pred_b, truth)
    pred_a = -pred_a if lower_better_a else pred_a
    pred_b = -pred_b if lower_better_b else pred_b
    values, items = [], []
    for pred in (pred_a, pred_b):
        result, mapping = _evaluate(pred, truth, fit)
        values.append(result[statistic])
        items.append((pred, mapping))
    dist_a, dist_b = _distributions(items, truth, n_resamples, seed, (statistic,))
    diff = dist_a[statistic] - dist_b[statistic]
    r = len(diff)
    p_low = (np.count_nonzero(diff <= 0) + 1) / (r + 1)
    p_high = (np.count_nonzero(diff >= 0) + 1) / (r + 1)
    return {
        "statistic": statistic,
        "a": values[0],
        "b": values[1],
        "difference": values[0] - values[1],
        "ci": _percentile_ci(diff, level),
        "p_value": float(min(1.0, 2 * min(p_low, p_high))),
        "n": len(truth),
        "n_resamples": r,
    }


@_one_blas_thread
def evaluate_many(preds: Mapping[str, np.ndarray], truth: np.ndarray, *,
                  lower_better: Mapping[str, bool] | None = None, bootstrap: int = 1000,
                  seed: int = 0, level: float = 0.95, fit: str = "logistic4") -> pd.DataFrame:
    """Evaluate several metrics on the same images: one row per metric (index ``metric``).

    preds: metric name → predictions, shape (n,) each; truth: shape (n,). Columns: srcc, krcc,
    plcc, plcc_raw, rmse, main, n, fit_used and, when ``bootstrap > 0``, ``<stat>_ci_low`` and
    ``<stat>_ci_high`` for srcc, plcc, krcc, main (all metrics share the same resamples).
    """
    lower_better = dict(lower_better or {})
    unknown = sorted(set(lower_better) - set(preds))
    if unknown:
        raise EvaluationError(f"lower_better names metrics without predictions: {unknown}")
    if bootstrap < 0:
        raise EvaluationError(f"bootstrap must be >= 0, got {bootstrap}")
    _check_level(level)
    truth_arr = truth
    rows, items = [], []
    for name, values in preds.items():
        try:
            pred, truth_arr = _check_pair(values, truth)
        except EvaluationError as exc:
            raise EvaluationError(f"metric {name!r}: {exc.message}") from None
        if lower_better.get(name, False):
            pred = -pred
        result, mapping = _evaluate(pred, truth_arr, fit)
        rows.append({"metric": name, **result})
        del rows[-1]["fit"]
        items.append((pred, mapping))
    if bootstrap and items:
        dists = _distributions(items, np.asarray(truth_arr, float), bootstrap, seed)
        for row, dist in zip(rows, dists, strict=True):
            for stat, values in dist.items():
                row[f"{stat}_ci_low"], row[f"{stat}_ci_high"] = _percentile_ci(values, level)
    columns = ["metric", "srcc", "krcc", "plcc", "plcc_raw", "rmse", "main", "n", "fit_used"]
    if bootstrap:
        columns += [f"{s}_ci_{end}" for s in CI_STATS for end in ("low", "high")]
    return pd.DataFrame(rows, columns=columns).set_index("metric")

