"""The benchmark of a preference database: pairwise accuracy of every metric, with its bootstrap
CI over groups, and the per-group breakdown.

``run_benchmark`` scores the images as for a MOS database (same store, cache and backends);
:class:`PreferenceEvaluation` then computes :func:`~aigiqa.evaluation.pairwise_accuracy` under
one rule and writes the same files as a MOS bench (scores.csv, results.csv, results.json,
report.html) plus ``groups.csv`` (one row per metric and group). The results table has one row
per metric (group ``all``), columns :data:`COLUMNS`.

A comparison whose image has no score for a metric (its scoring failed) is left out of that
metric's accuracy and counted in ``n_left_out``; ``n_failed`` counts those images. Never a
silent drop: both are in the results and the report. The CI resamples groups, so with a single
group (``--mos-pairs-by all``) there is none (NaN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aigiqa.benchmark.evaluations import PAIRWISE, fmt
from aigiqa.errors import AigiqaError, EvaluationError
from aigiqa.evaluation.preference import RULES, mos_pairs, pairwise_accuracy

GROUPS = "groups.csv"
COLUMNS = ("metric", "group", "value", "rule", "ties", "n", "n_failed", "n_groups", "n_pairs",
           "n_comparisons", "n_left_out", "accuracy", "accuracy_ci_low", "accuracy_ci_high")
GROUP_COLUMNS = ("metric", "group", "n_images", "n_pairs", "credit", "accuracy")
TIES = {
    "imagereward": "human ties left out; equal scores count as wrong",
    "hpsv2": "human ties never count as inversions; equal scores broken by list order",
    "pickscore": "a human tie earns 0.5 from any strict prediction; equal scores earn 0",
}
"""How each rule of :func:`~aigiqa.evaluation.pairwise_accuracy` treats ties."""
AVERAGE = {
    "imagereward": "ImageReward's test: correct / counted pairs, pooled over all groups",
    "hpsv2": "HPS v2's ranking accuracy: 1 - inversions / pairs per group, mean over groups",
    "pickscore": "PickScore's evaluation: mean credit over all pairs",
}
"""How each rule averages (and whose evaluation code it follows)."""
PAIR_GROUPS = ("prompt", "generator", "split", "all")
"""What MOS-implied pairs may be drawn within (``all``: every pair of labelled images)."""


class PreferenceEvaluation:
    """Pairwise accuracy of each metric on ``comparisons`` under ``rule`` (see module doc)."""

    def __init__(self, comparisons: pd.DataFrame, rule: str, *, source: str,
                 bootstrap: int, seed: int) -> None:
        if rule not in RULES:
            raise AigiqaError(f"--accuracy-rule {rule!r}: unknown rule; choose one of "
                              f"{', '.join(RULES)}")
        self.comparisons, self.rule = comparisons, rule
        self.bootstrap, self.seed = bootstrap, seed
        self.meta: dict[str, Any] = {
            "evaluation": PAIRWISE, "rule": rule, "ties": TIES[rule], "average": AVERAGE[rule],
            "comparisons": source, "n_comparisons": len(comparisons),
            "n_groups": int(comparisons["group"].nunique()), "bootstrap": bootstrap,
        }

    @classmethod
    def from_mos(cls, database, min_gap: float, rule: str, *, group_by: str = "prompt",
                 bootstrap: int, seed: int) -> PreferenceEvaluation:
        """The pairs a MOS database implies (:func:`mos_pairs`) within each ``group_by``
        (``prompt``, ``generator``, ``split``) or among all its labelled images (``all``)."""
        if group_by not in PAIR_GROUPS:
            raise AigiqaError(f"--mos-pairs-by {group_by!r}: choose one of "
                              f"{', '.join(PAIR_GROUPS)}")
        within = "all labelled images" if group_by == "all" else f"each {group_by}"
        try:
            pairs = mos_pairs(database, min_gap=min_gap,
                              group_by=None if group_by == "all" else group_by)
        except EvaluationError as exc:
            raise AigiqaError(f"--mos-pairs-gap {min_gap:g} --mos-pairs-by {group_by}: "
                              f"{exc}") from None
        if pairs.empty:
            raise AigiqaError(f"--mos-pairs-gap {min_gap:g}: {database.name} has no pair of "
                              f"images within {within} whose MOS differ by that much; give a "
                              "smaller gap or a larger group (--mos-pairs-by)")
        target = database.info.main_target
        return cls(pairs, rule, bootstrap=bootstrap, seed=seed,
                   source=f"pairs implied by {target} of {database.name} within {within} "
                          f"(MOS gap >= {min_gap:g})")

    def check_output(self, out) -> None:
        from aigiqa.benchmark import report
        from aigiqa.files import check_file

        folder = report.check_output_folder(out)
        try:
            check_file(folder / GROUPS, f"the results file {GROUPS}", "--out")
        except AigiqaError as exc:
            raise report.ReportError(str(exc)) from None

    def evaluate(self, frame: pd.DataFrame,
                 metrics: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(results: one row per metric, breakdown: one row per metric and group)."""
        comp = self.comparisons
        compared = pd.unique(np.concatenate([comp["a"].to_numpy(object),
                                             comp["b"].to_numpy(object)]))
        rows, parts = [], []
        for m in metrics:
            spec = str(m["spec"])
            scores = pd.Series(pd.to_numeric(frame[spec], errors="coerce").to_numpy(float),
                               index=frame["name"].to_numpy(object))
            scored = scores[np.isfinite(scores.to_numpy())]
            use = (comp["a"].isin(scored.index) & comp["b"].isin(scored.index)).to_numpy()
            n_scored = int(pd.Index(compared).isin(scored.index).sum())
            row: dict[str, Any] = {
                "metric": spec, "group": "all", "value": "all", "rule": self.rule,
                "ties": TIES[self.rule], "n": n_scored, "n_failed": len(compared) - n_scored,
                "n_comparisons": int(use.sum()), "n_left_out": int((~use).sum()),
                "n_groups": 0, "n_pairs": 0,
            }
            if not use.any():  # every compared image failed: NaN, n_pairs 0
                rows.append(row)
                continue
            try:
                res = pairwise_accuracy(comp[use], scored, rule=self.rule,
                                        lower_better=bool(m.get("lower_better", False)),
                                        bootstrap=self.bootstrap, seed=self.seed)
            except EvaluationError:  # nothing left that the rule counts: NaN, n_pairs 0
                rows.append(row)
                continue
            # one group: resampling groups cannot vary anything, so no interval (not a 0-width one)
            low, high = res.ci if res.ci is not None and res.n_groups > 1 else (np.nan, np.nan)
            row.update(n_groups=res.n_groups, n_pairs=res.n_pairs, accuracy=res.accuracy,
                       accuracy_ci_low=low, accuracy_ci_high=high)
            rows.append(row)
            parts.append(res.per_group.assign(metric=spec))
        results = pd.DataFrame(rows, columns=list(COLUMNS))
        for col in ("accuracy", "accuracy_ci_low", "accuracy_ci_high"):
            results[col] = results[col].astype(float)
        breakdown = (pd.concat(parts, ignore_index=True) if parts
                     else pd.DataFrame(columns=list(GROUP_COLUMNS)))
        return results, breakdown[list(GROUP_COLUMNS)]

    def write(self, out: Path, frame: pd.DataFrame, results: pd.DataFrame,
              breakdown: pd.DataFrame, meta: dict) -> dict[str, Path]:
        """groups.csv, then the files of ``report.write_outputs`` (its report dispatches to
        :mod:`~aigiqa.benchmark.preference_report` by ``meta["evaluation"]``)."""
        from aigiqa.benchmark import report
        from aigiqa.files import atomic_write

        self.check_output(out)
        path = Path(out) / GROUPS
        try:
            with atomic_write(path, f"the results file {GROUPS}", binary=False) as handle:
                breakdown.to_csv(handle, index=False)
        except AigiqaError as exc:
            raise report.ReportError(str(exc)) from exc
        return {**report.write_outputs(out, frame, results, meta), "groups": path}

    def summary_lines(self, results: pd.DataFrame) -> list[str]:
        w = max([28, *(len(str(m)) + 2 for m in results["metric"])])
        head = (f"{'metric':<{w}}{'images':>8}{'groups':>8}{'pairs':>8}{'accuracy':>10}"
                "  95% CI")
        lines = [f"pairwise accuracy on {self.meta['n_comparisons']:,} comparisons in "
                 f"{self.meta['n_groups']:,} groups ({self.meta['comparisons']})",
                 f"rule {self.rule}: {self.meta['average']}; ties: {self.meta['ties']}",
                 head, "-" * (len(head) + 10)]
        for _, row in results.iterrows():
            ci = "" if np.isnan(row["accuracy_ci_low"]) else (
                f"[{row['accuracy_ci_low']:.3f}, {row['accuracy_ci_high']:.3f}]")
            lines.append(f"{row['metric']:<{w}}{int(row['n']):>8}{int(row['n_groups']):>8}"
                         f"{int(row['n_pairs']):>8}{fmt(row['accuracy']):>10}  {ci}")
        left = results[results["n_left_out"] > 0]
        lines += [f"{row['metric']}: {int(row['n_left_out'])} comparison(s) left out (an image "
                  "failed to score)" for _, row in left.iterrows()]
        return lines
