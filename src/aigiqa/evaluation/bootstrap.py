"""Bootstrap confidence intervals, the paired bootstrap test and ``evaluate_many``.

Every function draws its resamples from :func:`aigiqa.evaluation.resampling.bootstrap_counts`'s
stream, so metrics evaluated together are compared on the same resamples.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from aigiqa.errors import EvaluationError
from aigiqa.evaluation.point import (
    CI_STATS,
    FittedMap,
    _check_pair,
    _evaluate,
    _one_blas_thread,
    fit_logistic,
)
from aigiqa.evaluation.resampling import Resampled, _count_chunks


def _distributions(items: list[tuple[np.ndarray, FittedMap]], truth: np.ndarray,
                   n_resamples: int, seed: int,
                   wanted: tuple[str, ...] = CI_STATS) -> list[dict[str, np.ndarray]]:
    """Bootstrap distributions (each shape (n_resamples,)) of ``wanted`` for each
    (direction-adjusted prediction, fitted map) in ``items``, all on the same resamples."""
    parts: list[dict[str, list[np.ndarray]]] = [{k: [] for k in wanted} for _ in items]
    for counts in _count_chunks(len(truth), n_resamples, seed):
        res = Resampled(truth, counts)
        for part, (pred, mapping) in zip(parts, items, strict=True):
            for key, values in _resampled_stats(res, pred, mapping, wanted).items():
                part[key].append(values)
    return [{k: np.concatenate(v) for k, v in part.items()} for part in parts]


def _percentile_ci(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise EvaluationError(f"level must be in (0, 1), got {level}")


def _resampled_stats(res: Resampled, pred: np.ndarray, mapping: FittedMap,
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


