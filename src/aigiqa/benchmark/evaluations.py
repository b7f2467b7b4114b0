"""What a benchmark run evaluates, chosen from the database: correlations with MOS, or pairwise
accuracy on paired comparisons.

``run_benchmark`` scores a database the same way whatever it is; the evaluation object then
checks the results folder, evaluates the scored frame and writes the files:

- :class:`MosEvaluation` (a MOS database): ``results.summarize`` (SRCC, PLCC, KRCC per split,
  generator and hyper-parameter) and ``report.write_outputs``;
- :class:`~aigiqa.benchmark.preference_run.PreferenceEvaluation` (a preference database, whose
  own rule is its ``accuracy_rule``; or a MOS database's MOS-implied pairs with
  ``pairs_min_gap``): pairwise accuracy, the same files plus the per-group breakdown.

Every evaluation has ``meta`` (merged into the run's metadata; ``meta["evaluation"]`` says which
kind made a results folder), ``check_output(out)``, ``evaluate(frame, metrics)`` → (results,
breakdown or None), ``write(out, frame, results, breakdown, meta)`` → files, and
``summary_lines(results)`` (what ``aigiqa bench`` prints).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from aigiqa.errors import AigiqaError

CORRELATION = "correlation"
PAIRWISE = "pairwise accuracy"


class MosEvaluation:
    """SRCC / PLCC / KRCC / main of every metric against the database's main target."""

    def __init__(self, database, *, bootstrap: int, seed: int) -> None:
        self.target = database.info.main_target
        self.hyper = database.hyper_names
        self.bootstrap, self.seed = bootstrap, seed
        self.meta: dict[str, Any] = {"evaluation": CORRELATION}

    def check_output(self, out) -> None:
        from aigiqa.benchmark import report

        report.check_output_folder(out)

    def evaluate(self, frame: pd.DataFrame, metrics: list[dict]) -> tuple[pd.DataFrame, None]:
        from aigiqa.benchmark.results import summarize

        return summarize(frame, metrics, target=self.target, hyper=self.hyper,
                         bootstrap=self.bootstrap, seed=self.seed), None

    def write(self, out: Path, frame: pd.DataFrame, results: pd.DataFrame, breakdown: None,
              meta: dict) -> dict[str, Path]:
        from aigiqa.benchmark import report

        return report.write_outputs(out, frame, results, meta)

    def summary_lines(self, results: pd.DataFrame) -> list[str]:
        overall = results[results["group"] == "all"]
        w = max([28, *(len(str(m)) + 2 for m in overall["metric"])])
        head = f"{'metric':<{w}}{'n':>7}{'SRCC':>9}{'PLCC':>9}{'KRCC':>9}{'main':>9}  SRCC 95% CI"
        lines = [head, "-" * (len(head) + 8)]
        for _, row in overall.iterrows():
            ci = ""
            if not math.isnan(row.get("srcc_ci_low", math.nan)):
                ci = f"[{row['srcc_ci_low']:.3f}, {row['srcc_ci_high']:.3f}]"
            lines.append(f"{row['metric']:<{w}}{int(row['n']):>7}{fmt(row['srcc']):>9}"
                         f"{fmt(row['plcc']):>9}{fmt(row['krcc']):>9}{fmt(row['main']):>9}  {ci}")
        return lines


def fmt(value: float, digits: int = 4) -> str:
    """A statistic for the terminal: 4 decimals, a dash for NaN."""
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.{digits}f}")


def choose_evaluation(database, *, accuracy_rule: str | None = None,
                      pairs_min_gap: float | None = None, pairs_by: str = "prompt",
                      bootstrap: int = 1000, seed: int = 0):
    """The evaluation of ``database``: pairwise accuracy on its comparisons if it is a
    preference database (rule ``accuracy_rule`` or the database's own); pairwise accuracy on
    the pairs its MOS implies within each ``pairs_by`` (prompt, generator, split or all) if
    ``pairs_min_gap`` is given (pairs whose MOS differ by less are left out; rule
    ``accuracy_rule`` or ``imagereward``); else correlations. Errors name the options as
    ``aigiqa bench`` spells them."""
    from aigiqa.benchmark.preference_run import PreferenceEvaluation
    from aigiqa.databases.preference import PreferenceDatabase

    if pairs_by != "prompt" and pairs_min_gap is None:
        raise AigiqaError(f"--mos-pairs-by {pairs_by!r} goes with --mos-pairs-gap")
    if isinstance(database, PreferenceDatabase):
        if pairs_min_gap is not None:
            raise AigiqaError(f"--mos-pairs-gap is for a MOS database; {database.name} is a "
                              "preference database with its own comparisons")
        return PreferenceEvaluation(
            database.comparisons(), accuracy_rule or database.accuracy_rule,
            source=f"the comparisons of {database.name}", bootstrap=bootstrap, seed=seed)
    if pairs_min_gap is not None:
        return PreferenceEvaluation.from_mos(database, pairs_min_gap, accuracy_rule or
                                             "imagereward", group_by=pairs_by,
                                             bootstrap=bootstrap, seed=seed)
    if accuracy_rule is not None:
        raise AigiqaError(f"--accuracy-rule {accuracy_rule!r}: {database.name} is a MOS "
                          "database; the rule applies to a preference database, or with "
                          "--mos-pairs-gap to the pairs its MOS implies")
    return MosEvaluation(database, bootstrap=bootstrap, seed=seed)
