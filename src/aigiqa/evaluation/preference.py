"""Pairwise accuracy of a metric's scores on paired comparisons, as each benchmark computes it,
with bootstrap confidence intervals over groups, a per-group breakdown, and pairs implied by MOS.

Rules (``rule=``), from the benchmarks' own evaluation code (d = sign of score(a) - score(b),
h = the human outcome, +1 for a, -1 for b, 0 for a tie):

``imagereward``  ImageReward's test script (``acc`` in its ``test.py``): tied human pairs are
    left out; a pair counts as correct iff d == h, so equal scores are wrong; accuracy = correct
    pairs / counted pairs, pooled over all groups.
``hpsv2``  HPS v2's ranking accuracy (``inversion_score`` in its ``train.py``): the scores are
    turned into ranks (equal scores broken by the images' order in the group, as a sort would);
    a pair is an inversion iff the human and the predicted order strictly disagree (human ties
    are never inversions); a group scores 1 - inversions / pairs, and the accuracy is the mean
    over groups.
``pickscore``  PickScore's evaluation (``agree_on_0 + agree_on_1`` in its ``clip_task.py``):
    a pair scores label_a·[score(a) > score(b)] + label_b·[score(a) < score(b)], labels (1, 0),
    (0, 1) or (0.5, 0.5) for a tie: a tie earns 0.5 from any strict prediction, equal scores earn
    0; accuracy = mean over pairs.

Bootstrap: groups (prompts) are resampled with replacement (the
:func:`~aigiqa.evaluation.resampling.bootstrap_counts` stream), the statistic recomputed on each
resample with the same rule; percentile intervals. Groups with no counted pair (an all-tie group
under ``imagereward``) are listed in the breakdown with ``n_pairs`` 0 and never resampled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aigiqa.comparisons import check_comparisons, comparisons_frame
from aigiqa.errors import EvaluationError
from aigiqa.evaluation.resampling import bootstrap_counts

RULES = ("imagereward", "hpsv2", "pickscore")


@dataclass(frozen=True)
class PairwiseAccuracy:
    """``accuracy`` with its percentile ``ci`` (None without bootstrap), the counts, and
    ``per_group``: one row per group (group, n_images, n_pairs, credit, accuracy)."""

    rule: str
    accuracy: float
    ci: tuple[float, float] | None
    n_pairs: int
    n_groups: int
    per_group: pd.DataFrame
    n_resamples: int = 0


def _as_series(scores, what: str) -> pd.Series:
    if isinstance(scores, pd.Series):
        series = scores
    elif isinstance(scores, Mapping):
        series = pd.Series(dict(scores), dtype=object)
    else:
        raise EvaluationError(f"{what}: expected a mapping name -> value or a pandas Series, got "
                              f"{type(scores).__name__}")
    if not series.index.is_unique:
        dup = series.index[series.index.duplicated()].unique().tolist()[:5]
        raise EvaluationError(f"{what}: duplicate image names {dup}")
    try:
        return series.astype(float)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"{what}: values must be numbers ({exc})") from None


def _comparisons(data) -> pd.DataFrame:
    frame = data.comparisons() if hasattr(data, "comparisons") else data
    return check_comparisons(frame, getattr(getattr(data, "info", None), "name", "comparisons"))


def _lookup(series: pd.Series, names: np.ndarray) -> np.ndarray:
    values = series.reindex(names).to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        missing = list(dict.fromkeys(names[bad].tolist()))
        raise EvaluationError(f"{len(missing)} compared image(s) have no finite score",
                              [f"image {n!r}: score {series.get(n, 'missing')}" for n in missing])
    return values


def _positions(comp: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's a and b position in its group (order of first appearance)."""
    order: dict[tuple[str, str], int] = {}
    counts: dict[str, int] = {}
    pa, pb = np.empty(len(comp), np.int64), np.empty(len(comp), np.int64)
    for i, (g, a, b) in enumerate(zip(comp["group"], comp["a"], comp["b"], strict=True)):
        for name, out in ((a, pa), (b, pb)):
            key = (g, name)
            if key not in order:
                order[key] = counts.get(g, 0)
                counts[g] = order[key] + 1
            out[i] = order[key]
    return pa, pb


def pair_credit(comp: pd.DataFrame, score_a: np.ndarray, score_b: np.ndarray,
                rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(counted, credit) per comparison row under ``rule``: bool and float arrays."""
    if rule not in RULES:
        raise EvaluationError(f"unknown rule {rule!r}; choose one of {list(RULES)}")
    outcome = comp["outcome"].to_numpy()
    h = np.where(outcome == "a", 1, np.where(outcome == "b", -1, 0))
    d = np.sign(score_a - score_b).astype(int)
    if rule == "imagereward":
        counted = h != 0
        return counted, ((d == h) & counted).astype(float)
    if rule == "pickscore":
        return np.ones(len(h), bool), np.where(h != 0, (d == h) * 1.0, 0.5 * (d != 0))
    pa, pb = _positions(comp)
    d = np.where(d == 0, np.where(pa < pb, 1, -1), d)
    return np.ones(len(h), bool), 1.0 - ((h != 0) & (d == -h))


def pairwise_accuracy(comparisons, scores, *, rule: str = "imagereward",
                      lower_better: bool = False, bootstrap: int = 1000, seed: int = 0,
                      level: float = 0.95) -> PairwiseAccuracy:
    """Pairwise accuracy of ``scores`` (image name -> score) on ``comparisons`` (a comparisons
    table or a PreferenceDatabase) under ``rule`` (see the module doc); ``lower_better``
    negates the scores. ``bootstrap`` resamples of the groups give the ``level`` interval."""
    if not 0 < level < 1:
        raise EvaluationError(f"level must be in (0, 1), got {level}")
    if bootstrap < 0:
        raise EvaluationError(f"bootstrap must be >= 0, got {bootstrap}")
    comp = _comparisons(comparisons)
    series = _as_series(scores, "scores")
    sign = -1.0 if lower_better else 1.0
    both = _lookup(series, np.concatenate([comp["a"].to_numpy(dtype=object),
                                           comp["b"].to_numpy(dtype=object)]))
    score_a, score_b = sign * both[:len(comp)], sign * both[len(comp):]
    counted, credit = pair_credit(comp, score_a, score_b, rule)
    work = pd.DataFrame({"group": comp["group"].to_numpy(), "n_pairs": counted.astype(int),
                         "credit": credit})
    per_group = work.groupby("group", sort=False).sum()
    images = pd.concat([comp[["group", "a"]].set_axis(["group", "x"], axis=1),
                        comp[["group", "b"]].set_axis(["group", "x"], axis=1)])
    per_group.insert(0, "n_images", images.groupby("group", sort=False)["x"].nunique())
    with np.errstate(invalid="ignore", divide="ignore"):
        per_group["accuracy"] = per_group["credit"] / per_group["n_pairs"]
    per_group = per_group.reset_index()
    used = per_group[per_group["n_pairs"] > 0]
    if used.empty:
        raise EvaluationError(f"no comparison counts under rule {rule!r} (all pairs are ties?)")
    n_pairs = used["n_pairs"].to_numpy(float)
    group_credit = used["credit"].to_numpy(float)
    group_acc = used["accuracy"].to_numpy(float)

    def statistic(weights: np.ndarray) -> np.ndarray:  # weights: (G,) or (G, R) draw counts
        if rule == "hpsv2":
            return group_acc @ weights / weights.sum(axis=0)
        return group_credit @ weights / (n_pairs @ weights)

    accuracy = float(statistic(np.ones(len(used))))
    ci = None
    if bootstrap:
        counts = bootstrap_counts(len(used), bootstrap, seed).astype(np.float64)
        lo, hi = np.quantile(statistic(counts), [(1 - level) / 2, (1 + level) / 2])
        ci = (float(lo), float(hi))
    return PairwiseAccuracy(rule=rule, accuracy=accuracy, ci=ci, n_pairs=int(n_pairs.sum()),
                            n_groups=len(used), per_group=per_group, n_resamples=bootstrap)


def mos_pairs(truth, *, groups=None, min_gap: float = 0.0, target: str | None = None,
              group_by: str | None = None, max_pairs: int = 20_000_000) -> pd.DataFrame:
    """The comparisons a MOS implies: every pair of images (within each group of ``groups``,
    name -> group, e.g. the prompt; else one group "all"), outcome the higher MOS, a tie for
    equal MOS. With ``min_gap`` > 0, pairs whose MOS differ by less than ``min_gap`` are left
    out (so no ties remain). ``truth``: name -> MOS (a mapping or Series), or a Database: its
    labelled records' ``target`` (default: the main target), grouped by the record field
    ``group_by`` ("prompt", "generator", "split"). More than ``max_pairs`` pairs is an error
    (group the images, e.g. by prompt)."""
    if not np.isfinite(min_gap) or min_gap < 0:
        raise EvaluationError(f"min_gap must be a finite number >= 0, got {min_gap}")
    if hasattr(truth, "labelled"):  # a Database
        target = target or truth.info.main_target
        records = [r for r in truth.labelled() if target in r.targets]
        if not records:
            raise EvaluationError(f"{truth.info.name}: no record has target {target!r}")
        if group_by is not None:
            if group_by not in ("prompt", "generator", "split"):
                raise EvaluationError(f"group_by={group_by!r}: choose prompt, generator or split")
            missing = [r.name for r in records if getattr(r, group_by) is None]
            if missing:
                raise EvaluationError(f"group_by={group_by!r}: no {group_by} for {missing[:5]}")
            groups = {r.name: getattr(r, group_by) for r in records}
        truth = {r.name: r.targets[target] for r in records}
    elif target is not None or group_by is not None:
        raise EvaluationError("target= and group_by= apply to a Database; pass groups= here")
    mos = _as_series(truth, "MOS")
    if not np.isfinite(mos.to_numpy()).all():
        raise EvaluationError("MOS: non-finite values for "
                              f"{mos.index[~np.isfinite(mos.to_numpy())].tolist()[:5]}")
    keys = (pd.Series("all", index=mos.index) if groups is None
            else _as_series_str(groups).reindex(mos.index))
    if keys.isna().any():
        raise EvaluationError(f"groups: no group for {keys.index[keys.isna()].tolist()[:5]}")
    total = int(sum(n * (n - 1) // 2 for n in keys.value_counts()))
    if total > max_pairs:
        raise EvaluationError(f"{total:,} pairs exceed max_pairs={max_pairs:,}; group the images "
                              "(groups=, e.g. by prompt) or raise max_pairs")
    parts = []
    for group, names in keys.groupby(keys, sort=False).groups.items():
        names = np.asarray(names, dtype=object)
        values = mos.loc[names].to_numpy(float)
        i, j = np.triu_indices(len(names), k=1)
        gap = values[i] - values[j]
        keep = np.abs(gap) >= min_gap if min_gap > 0 else np.ones(len(gap), bool)
        parts.append(pd.DataFrame({
            "group": str(group), "a": names[i[keep]], "b": names[j[keep]],
            "outcome": np.where(gap[keep] > 0, "a", np.where(gap[keep] < 0, "b", "tie")),
            "annotator": None, "source": "mos"}))
    frame = pd.concat(parts, ignore_index=True) if parts else comparisons_frame([])
    return frame.astype({"group": str, "a": str, "b": str, "outcome": str})


def _as_series_str(groups) -> pd.Series:
    if isinstance(groups, pd.Series):
        return groups.astype(str)
    if isinstance(groups, Mapping):
        return pd.Series({k: str(v) for k, v in groups.items()}, dtype=object)
    raise EvaluationError(f"groups: expected a mapping name -> group or a Series, got "
                          f"{type(groups).__name__}")
