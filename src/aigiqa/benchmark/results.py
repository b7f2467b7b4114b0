"""The benchmark results table: every metric evaluated on all records, per split, per generator
and per hyper-parameter value.

The numbers come from :mod:`aigiqa.evaluation`; this module only chooses the records of each
group (labelled, scored) and collects one row per (metric, group, value).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from aigiqa.errors import AigiqaError
from aigiqa.evaluation import CI_STATS, evaluate, evaluate_many

STATS = ("srcc", "krcc", "plcc", "plcc_raw", "rmse", "main")
CI_COLUMNS = tuple(f"{s}_ci_{end}" for s in CI_STATS for end in ("low", "high"))
COLUMNS = ("metric", "group", "value", "n", "n_failed", *STATS, *CI_COLUMNS)
MIN_N = 3
"""Groups with fewer labelled, scored images than this get NaN statistics."""
MAX_LEVELS = 10
"""A numeric hyper-parameter with more distinct values than this is binned into quantiles."""
N_BINS = 4
"""Number of quantile bins (quartiles) for such a hyper-parameter."""


def summarize(
    frame: pd.DataFrame,
    metrics: list[dict],
    *,
    target: str,
    hyper: Sequence[str] = (),
    bootstrap: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Evaluate every metric column of ``frame`` against ``target``, overall and per group.

    ``frame``: ``Database.to_frame()`` plus one float column per metric, named by its ``spec``
    (NaN where the image failed). ``metrics``: dicts with at least ``spec`` and ``lower_better``.
    Returns one row per (metric, group, value), columns :data:`COLUMNS`:

    - group ``all`` (value ``all``): every labelled record, with bootstrap 95% CIs of
      srcc/plcc/krcc/main when ``bootstrap > 0`` (NaN otherwise and in the other groups);
    - group ``split``: each split that has labelled records;
    - group ``generator``: each generator with labelled records (records without one are left out);
    - one group per name in ``hyper``: each value, or, for a numeric hyper-parameter with more
      than :data:`MAX_LEVELS` distinct values, :data:`N_BINS` quantile bins of the labelled
      records (value ``"[lo, hi]"``, edges shared by all metrics); records without the value are
      left out of that group.

    Records whose target is NaN (blind) never enter. ``n`` counts the labelled records scored
    by the metric; ``n_failed`` the labelled records of the group whose score is NaN (they are
    left out of the statistics). A group with ``n < 3`` gets NaN statistics.
    """
    if target not in frame.columns:
        raise AigiqaError(f"summarize: no target column {target!r} in the scores "
                          f"(columns: {', '.join(map(str, frame.columns))})")
    missing = [m.get("spec") for m in metrics if m.get("spec") not in frame.columns]
    if missing:
        raise AigiqaError(f"summarize: no score column for metric(s) {missing}")
    absent = [h for h in hyper if h not in frame.columns]
    if absent:
        raise AigiqaError(f"summarize: no hyper-parameter column(s) {absent} in the scores")

    truth_all = pd.to_numeric(frame[target], errors="coerce")
    labelled = frame.loc[truth_all.notna()].reset_index(drop=True)
    truth = truth_all[truth_all.notna()].to_numpy(dtype=float)
    groups = list(_groups(labelled, hyper))

    preds = {str(m["spec"]): pd.to_numeric(labelled[str(m["spec"])], errors="coerce")
             .to_numpy(dtype=float) for m in metrics}
    lower = {str(m["spec"]): bool(m.get("lower_better", False)) for m in metrics}
    overall = _overall(preds, truth, lower, bootstrap, seed) if bootstrap > 0 else {}
    rows: list[dict[str, Any]] = []
    for name, pred in preds.items():
        scored = np.isfinite(pred)
        for group, value, mask in groups:
            use = mask & scored
            row: dict[str, Any] = {
                "metric": name, "group": group, "value": value,
                "n": int(use.sum()), "n_failed": int((mask & ~scored).sum()),
            }
            if group == "all" and name in overall:
                row.update(overall[name])
            else:
                row.update(_stats(pred[use], truth[use], lower[name]))
            rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["n"] = table["n"].astype(int)
    table["n_failed"] = table["n_failed"].astype(int)
    for col in (*STATS, *CI_COLUMNS):
        table[col] = table[col].astype(float)
    return table


def _groups(labelled: pd.DataFrame, hyper: Sequence[str]) -> Iterator[tuple[str, str, np.ndarray]]:
    """(group, value, boolean mask over ``labelled``) for every group of the results table."""
    n = len(labelled)
    yield "all", "all", np.ones(n, dtype=bool)
    for column in ("split", "generator"):
        if column not in labelled.columns:
            continue
        values = labelled[column]
        for value in dict.fromkeys(values.dropna()):
            yield column, str(value), (values == value).to_numpy()
    for name in hyper:
        yield from ((name, v, m) for v, m in _hyper_levels(labelled[name]))


def _hyper_levels(values: pd.Series) -> list[tuple[str, np.ndarray]]:
    """Levels of one hyper-parameter: each distinct value, or quantile bins when many numbers."""
    known = values.notna().to_numpy()
    numbers = pd.to_numeric(values, errors="coerce")
    numeric = bool(known.any()) and bool(numbers[known].notna().all())
    if numeric and numbers[known].nunique() > MAX_LEVELS:
        bins = pd.qcut(numbers, N_BINS, duplicates="drop")
        levels = []
        for interval in bins.cat.categories:
            lo = numbers[bins == interval].min()
            hi = numbers[bins == interval].max()
            levels.append((f"[{lo:.4g}, {hi:.4g}]", (bins == interval).to_numpy()))
        return levels
    if numeric:
        order = sorted(numbers[known].unique())
        return [(_fmt_number(v), ((numbers == v) & values.notna()).to_numpy()) for v in order]
    text = values.map(str).where(values.notna())
    return [(v, (text == v).to_numpy()) for v in dict.fromkeys(text[known])]


def _fmt_number(v: float) -> str:
    """A hyper-parameter value as text: ``7`` not ``7.0``, otherwise up to 6 significant digits."""
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


def _stats(pred: np.ndarray, truth: np.ndarray, lower: bool) -> dict[str, float]:
    """Point statistics of one group (all NaN when fewer than :data:`MIN_N` images)."""
    out = dict.fromkeys((*STATS, *CI_COLUMNS), float("nan"))
    if len(pred) < MIN_N:
        return out
    result = evaluate(pred, truth, lower_better=lower)
    out.update({k: float(result[k]) for k in STATS})
    return out


def _overall(preds: dict[str, np.ndarray], truth: np.ndarray, lower: dict[str, bool],
             bootstrap: int, seed: int) -> dict[str, dict[str, float]]:
    """Statistics with bootstrap CIs on all labelled images, per metric (its scored images).

    Metrics scored on the same images share one ``evaluate_many`` call (the resampling is the
    costly part and the same resamples then serve every metric of the call).
    """
    by_mask: dict[bytes, list[str]] = {}
    for name, pred in preds.items():
        by_mask.setdefault(np.isfinite(pred).tobytes(), []).append(name)
    out: dict[str, dict[str, float]] = {}
    for names in by_mask.values():
        use = np.isfinite(preds[names[0]])
        if use.sum() < MIN_N:
            continue
        table = evaluate_many({n: preds[n][use] for n in names}, truth[use],
                              lower_better={n: lower[n] for n in names},
                              bootstrap=bootstrap, seed=seed)
        for name in names:
            found = table.loc[name]
            out[name] = {k: float(found[k]) if k in found.index else float("nan")
                         for k in (*STATS, *CI_COLUMNS)}
    return out
