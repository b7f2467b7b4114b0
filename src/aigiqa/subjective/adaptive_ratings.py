"""Adaptive absolute ratings: spend the next ratings where the MOS is least certain.

Given the ratings so far as a per-image table (``image, n, std``: e.g. the ``table`` of
:func:`~aigiqa.subjective.compute_mos`, or any table with those columns), :func:`plan_ratings`
allocates a budget of further ratings one at a time, greedily:

- each image's rating standard deviation is estimated with shrinkage toward the pooled one,
  s̃² = ((n − 1) s² + ν₀ s₀²) / (n − 1 + ν₀), ν₀ = ``prior_df`` (6; a sample std of 2–3 ratings is
  too noisy to trust alone; an image with fewer than 2 ratings gets s₀), s₀² the pooled
  variance (Σ (n − 1) s² / Σ (n − 1));
- every image is first brought to ``min_ratings``;
- then ``objective="variance"`` gives the next rating to the image whose squared standard
  error s̃²/n falls the most (s̃²/n − s̃²/(n + 1)): greedy is optimal for the total error
  variance Σ s̃²/n, which is what rank correlations to the truth depend on (the result is
  n ∝ s̃, Neyman's allocation); ``objective="widest"`` gives it to the image whose CI is
  widest now (minimises the largest CI; n ∝ s̃²).

CIs are BT.500's normal ones, ``ci95 = 1.95996 · s̃ / √n`` (as in :mod:`aigiqa.subjective.stats`).
The uniform design is the baseline (benchmarks/adaptive.py compares them at equal budget).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import pandas as pd

from aigiqa.subjective.ratings import RatingsError
from aigiqa.subjective.stats import Z95

__all__ = ["OBJECTIVES", "plan_ratings"]

OBJECTIVES = ("variance", "widest")


def _check(table: pd.DataFrame, items: Sequence[str] | None) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise RatingsError(f"plan_ratings: expected a DataFrame (image, n, std), got "
                           f"{type(table).__name__}")
    missing = [c for c in ("image", "n", "std") if c not in table.columns]
    if missing:
        raise RatingsError(f"plan_ratings: missing column(s) {missing} (columns: "
                           f"{list(table.columns)}); pass compute_mos(...).table or a table "
                           "with image, n, std")
    frame = table[["image", "n", "std"]].reset_index(drop=True)
    problems = []
    n = pd.to_numeric(frame["n"], errors="coerce").to_numpy(float)
    std = pd.to_numeric(frame["std"], errors="coerce").to_numpy(float)
    for k in range(len(frame)):
        name = frame["image"].iloc[k]
        if not (isinstance(name, str) and name):
            problems.append(f"row {k + 1}: image {name!r} is not a non-empty string")
        if not (np.isfinite(n[k]) and n[k] >= 0 and n[k] == int(n[k])):
            problems.append(f"row {k + 1} ({name!r}): n={frame['n'].iloc[k]!r} is not a count")
        elif n[k] >= 2 and not (np.isfinite(std[k]) and std[k] >= 0):
            problems.append(f"row {k + 1} ({name!r}): std={frame['std'].iloc[k]!r} with "
                            f"{int(n[k])} ratings")
    dup = frame["image"][frame["image"].duplicated()].unique().tolist()
    if dup:
        problems.append(f"images listed twice: {dup[:5]}")
    if items is not None:
        given = list(items)
        if len(set(given)) != len(given):
            problems.append("items lists an image twice")
        unknown = sorted(set(frame["image"]) - set(given))
        if unknown:
            problems.append(f"images not in items: {unknown[:5]}")
    if problems:
        raise RatingsError(f"plan_ratings: {len(problems)} problem(s) in the table", problems)
    frame = frame.assign(n=n.astype(np.int64), std=std)
    if items is not None:
        frame = frame.set_index("image").reindex(list(items)).rename_axis("image").reset_index()
        frame["n"] = frame["n"].fillna(0).astype(np.int64)
    return frame


def plan_ratings(table: pd.DataFrame, budget: int, *, items: Sequence[str] | None = None,
                 objective: str = "variance", min_ratings: int = 2,
                 prior_df: float = 6.0) -> pd.DataFrame:
    """Where to spend ``budget`` more ratings (module doc for the rule).

    ``items``: every image of the study (images absent from ``table`` have no rating yet;
    default: the table's images). Returns one row per image, in ``items`` (or table) order:
    image, n, std (the shrunk estimate used), ci95 (now; inf below 1 rating), extra (ratings
    to add), ci95_after.
    """
    if objective not in OBJECTIVES:
        raise RatingsError(f"plan_ratings: unknown objective {objective!r}; choose one of "
                           f"{list(OBJECTIVES)}")
    if not (isinstance(budget, (int, np.integer)) and budget >= 0):
        raise RatingsError(f"plan_ratings: budget must be an integer >= 0, got {budget!r}")
    if not (isinstance(min_ratings, (int, np.integer)) and min_ratings >= 1):
        raise RatingsError(f"plan_ratings: min_ratings must be an integer >= 1, got "
                           f"{min_ratings!r}")
    if not (np.isfinite(prior_df) and prior_df >= 0):
        raise RatingsError(f"plan_ratings: prior_df must be >= 0, got {prior_df!r}")
    frame = _check(table, items)
    if frame.empty:
        raise RatingsError("plan_ratings: no images to plan for")
    n = frame["n"].to_numpy(np.int64)
    std = frame["std"].to_numpy(float)
    df = np.where((n >= 2) & np.isfinite(std), n - 1, 0).astype(float)
    if df.sum() == 0:
        raise RatingsError("plan_ratings: no image has 2 ratings yet, so the rating spread is "
                           "unknown; rate every image min_ratings times first (a uniform start)")
    s0 = np.sum(df * np.nan_to_num(std) ** 2) / df.sum()
    var = (df * np.nan_to_num(std) ** 2 + prior_df * s0) / (df + prior_df) if prior_df > 0 \
        else np.where(df > 0, np.nan_to_num(std) ** 2, s0)
    var = np.maximum(var, 1e-12 * max(s0, 1e-300))  # an image rated identically still gains
    extra = np.zeros(len(n), np.int64)
    left = int(budget)
    count = n.copy()
    # first bring every image to min_ratings, a level at a time (fewest first, noisiest first)
    for level in range(int(count.min()), min_ratings):
        low = np.flatnonzero(count == level)
        take = low[np.argsort(-var[low], kind="stable")][:left]
        count[take] += 1
        extra[take] += 1
        left -= len(take)

    def gain(k: int) -> float:
        c = count[k]
        return var[k] / c if objective == "widest" else var[k] / (c * (c + 1))

    heap = [(-gain(k), k) for k in range(len(n))]
    heapq.heapify(heap)
    for _ in range(left):
        _, k = heapq.heappop(heap)
        count[k] += 1
        extra[k] += 1
        heapq.heappush(heap, (-gain(k), k))
    sd = np.sqrt(var)
    with np.errstate(divide="ignore"):
        now = np.where(n > 0, Z95 * sd / np.sqrt(np.maximum(n, 1)), np.inf)
        after = np.where(count > 0, Z95 * sd / np.sqrt(np.maximum(count, 1)), np.inf)
    out = pd.DataFrame({"image": frame["image"].to_numpy(object), "n": n, "std": sd,
                        "ci95": now, "extra": extra, "ci95_after": after})
    out.attrs.update(budget=int(budget), objective=objective, pooled_std=float(np.sqrt(s0)))
    return out
