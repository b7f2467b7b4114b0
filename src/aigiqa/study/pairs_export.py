"""Exports of a paired-comparison study: raw comparisons, scaled scores, position bias, repeats.

- **Comparisons** (``comparisons.csv``): one row per stored choice, in the comparisons-table form
  of :mod:`aigiqa.comparisons` (``group``, ``a``, ``b``, ``outcome`` in {a, b, tie},
  ``annotator`` = the subject) plus where the images were shown: ``left``, ``right``, ``choice``
  (left/right/tie), and ``subject``, ``kind``, ``session``, ``position``, ``response_ms``,
  ``time``. ``a``/``b`` are the two names in sorted order (the same pair gives the same a, b on
  either side). ``group`` is the prompt (``group_by="prompt"``) or ``all``.
- **Scores** (``pair-scores.csv``): :func:`aigiqa.subjective.scale_pairs` of the ``rating``
  comparisons (training and hidden repeats excluded, as for MOS), one fit per prompt when the
  pairs are grouped by prompt (images of different prompts are never compared), with a ridge
  ``alpha`` (default :data:`DEFAULT_ALPHA`: a group whose best image won every comparison has no
  finite maximum-likelihood scale). A comparison graph that cannot be scaled yet (e.g. a prompt
  with pairs not judged so far) leaves the scores out, with the reason in the report.
- **Position bias** (in ``pairs-report.json`` and on the admin page): among the non-tie choices of
  rating and repeat trials, the share of ``left``, its exact (Clopper–Pearson) 95 % CI and the
  two-sided exact binomial test of 1/2; overall and per subject.
- **Repeats**: per subject, the hidden repeats (the pair again, sides swapped) that got the same
  answer as the first showing (the same image, or a tie both times).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from aigiqa.errors import ComparisonError
from aigiqa.files import write_text
from aigiqa.store.study import StudyStore
from aigiqa.store.study_pairs import PairStore

COMPARISON_COLUMNS = ["subject", "group", "a", "b", "outcome", "annotator", "left", "right",
                      "choice", "kind", "session", "position", "response_ms", "time"]
#: Ridge prior of the exported scale (choix's convention: alpha · Σ s²).
DEFAULT_ALPHA = 0.01


def comparisons_table(pairs: PairStore, study_id: int) -> pd.DataFrame:
    """The study's raw comparisons (columns :data:`COMPARISON_COLUMNS`)."""
    settings = pairs.settings(study_id)
    raw = pairs.choices_frame(study_id)
    left, right = raw["left"].astype(str), raw["right"].astype(str)
    a = np.where(left <= right, left, right)
    chosen = np.where(raw["choice"] == "left", left, right)
    frame = pd.DataFrame({
        "subject": raw["subject"],
        "group": raw["prompt"].fillna("").astype(str) if settings.group_by == "prompt"
        else "all",
        "a": a, "b": np.where(left <= right, right, left),
        "outcome": np.where(raw["choice"] == "tie", "tie", np.where(chosen == a, "a", "b")),
        "annotator": raw["subject"], "left": left, "right": right, "choice": raw["choice"],
        "kind": raw["kind"], "session": raw["session"], "position": raw["position"],
        "response_ms": raw["response_ms"], "time": raw["time"]})
    return frame[COMPARISON_COLUMNS]


def _bias(choices: pd.Series) -> dict[str, Any]:
    sided = choices[choices != "tie"]
    n, k = int(len(sided)), int((sided == "left").sum())
    out: dict[str, Any] = {"choices": int(len(choices)), "ties": int(len(choices) - n),
                           "left": k, "right": n - k}
    if n:
        test = stats.binomtest(k, n, 0.5)
        ci = test.proportion_ci(0.95, method="exact")
        out.update(left_share=k / n, ci95=[float(ci.low), float(ci.high)],
                   p_value=float(test.pvalue))
    else:
        out.update(left_share=None, ci95=None, p_value=None)
    return out


def position_bias(frame: pd.DataFrame) -> dict[str, Any]:
    """Share of left choices among non-ties (rating and repeat trials), exact 95 % CI, exact
    two-sided binomial p-value against 1/2: ``overall`` and ``subjects`` (label → same)."""
    judged = frame[frame["kind"] != "training"]
    return {"overall": _bias(judged["choice"]),
            "subjects": {str(s): _bias(g["choice"]) for s, g in
                         judged.groupby("subject", sort=True)}}


def repeat_agreement(frame: pd.DataFrame) -> pd.DataFrame:
    """Per subject: hidden repeats answered so far and how many agreed with the first showing."""
    rows = []
    for subject, g in frame.groupby("subject", sort=True):
        first = g[g["kind"] == "rating"].drop_duplicates(["a", "b"]).set_index(["a", "b"])
        again = g[g["kind"] == "repeat"].set_index(["a", "b"])
        both = again.index.intersection(first.index)
        same = int((again.loc[both, "outcome"] == first.loc[both, "outcome"]).sum())
        rows.append({"subject": subject, "repeats": len(both), "agreed": same})
    return pd.DataFrame(rows, columns=["subject", "repeats", "agreed"])


def pair_scores(frame: pd.DataFrame, group_by: str, *, model: str = "bt",
                ties: str = "rao-kupper", alpha: float = DEFAULT_ALPHA,
                max_items: int | None = None) -> pd.DataFrame:
    """scale_pairs of the rating comparisons of ``frame`` (one fit per group when grouped by
    prompt); ComparisonError if there are none or they cannot be scaled, or if one fit has
    more than ``max_items`` images (the fit's Hessian is dense: n² floats)."""
    from aigiqa.subjective import scale_pairs

    rated = frame[frame["kind"] == "rating"].reset_index(drop=True)
    if rated.empty:
        raise ComparisonError("no rating comparison yet: nothing to scale")
    if max_items is not None:
        groups = rated["group"] if group_by == "prompt" else pd.Series(0, index=rated.index)
        sides = pd.concat([pd.DataFrame({"g": groups, "x": rated[c]}) for c in ("a", "b")])
        largest = int(sides.drop_duplicates().groupby("g").size().max())
        if largest > max_items:
            raise ComparisonError(
                f"one fit would scale {largest:,} images, more than {max_items:,} (its memory "
                "grows with the square): run 'aigiqa study export' on the study's store")
    return scale_pairs(rated[["group", "a", "b", "outcome", "annotator"]], model, ties,
                       alpha=alpha, by_group=group_by == "prompt")


def export_pair_study(store: StudyStore, study_id: int, out: Path, *, model: str = "bt",
                      ties: str = "rao-kupper", alpha: float = DEFAULT_ALPHA,
                      warn: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write ``comparisons.csv``, ``progress.csv``, ``pairs-report.json`` and (when the
    comparisons can be scaled) ``pair-scores.csv`` into ``out``; returns the paths by name.
    Why the scores were not written goes to the report and to ``warn`` (default:
    ``warnings.warn``, a RuntimeWarning)."""
    pairs = PairStore(store)
    settings = pairs.settings(study_id)
    frame = comparisons_table(pairs, study_id)
    paths = {"comparisons": out / "comparisons.csv", "progress": out / "progress.csv"}
    write_text(paths["comparisons"], frame.to_csv(index=False), "the comparisons export")
    write_text(paths["progress"], pairs.progress(study_id).to_csv(index=False),
               "the progress export")
    report: dict[str, Any] = {
        "study": study_id, "allow_ties": settings.allow_ties, "group_by": settings.group_by,
        "candidate_pairs": settings.n_pairs, "images_left_out": settings.n_left_out,
        "comparisons": int(len(frame)), "position_bias": position_bias(frame),
        "repeats": repeat_agreement(frame).to_dict(orient="records")}
    try:
        scores = pair_scores(frame, settings.group_by, model=model, ties=ties, alpha=alpha)
    except ComparisonError as exc:
        report["scores"] = {"written": False, "reason": str(exc)}
        text = f"pair scores not written: {exc}"
        if warn is None:
            warnings.warn(text, RuntimeWarning, stacklevel=2)
        else:
            warn(text)
    else:
        paths["scores"] = write_text(out / "pair-scores.csv",
                                     scores.to_csv(index=False, float_format="%.10g"),
                                     "the pair scores export")
        report["scores"] = {"written": True, "model": model, "ties": ties, "alpha": alpha,
                            "items": int(len(scores)),
                            "groups": int(scores.attrs.get("n_groups", 1))}
    paths["report"] = write_text(out / "pairs-report.json",
                                 json.dumps(report, indent=2, default=str), "the pairs report")
    return paths
