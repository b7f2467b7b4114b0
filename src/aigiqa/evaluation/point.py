"""Point estimates: the VQEG logistic maps and their fit, SRCC / KRCC / PLCC / RMSE, ``evaluate``.

See :mod:`aigiqa.evaluation` for the conventions.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from aigiqa.errors import EvaluationError

try:  # one BLAS thread: the many small matmuls/fits here are slower with contended threads
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - optional
    ThreadpoolController = None

FITS = ("logistic4", "logistic5", "none")
CI_STATS = ("srcc", "plcc", "krcc", "main")
MIN_PAIRS = 3

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


