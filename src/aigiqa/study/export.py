"""Exports of a study: raw ratings CSV, MOS (via ``aigiqa.subjective.compute_mos``), consistency.

MOS uses the ``rating`` trials only: training ratings are practice and hidden ``repeat`` ratings
are *excluded* (they measure each subject's consistency, reported by :func:`repeat_consistency`,
and would otherwise weigh the repeated images twice). Z-scores are per subject (not per session:
a session may hold too few ratings for a standard deviation).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aigiqa.files import check_folder, write_text
from aigiqa.store.study import StudyError, StudyStore

if TYPE_CHECKING:
    from aigiqa.subjective import MosResult

RAW_COLUMNS = ["subject", "image", "score", "session", "kind", "time"]


def ratings_csv(store: StudyStore, study_id: int) -> str:
    """Raw ratings as CSV text: ``subject,image,score,session,kind,time``."""
    return store.ratings_frame(study_id)[RAW_COLUMNS].to_csv(index=False)


def study_mos(store: StudyStore, study_id: int, method: str = "mos",
              screen: bool | None = False, save: bool = True) -> MosResult:
    """MOS of the rated images from the ``rating`` trials (repeats and training excluded).

    ``method``/``screen`` go to ``compute_mos`` with the study's scale; ``save`` stores the
    table in ``study_mos``. StudyError if nothing is rated yet.
    """
    from aigiqa.subjective import compute_mos  # scipy: imported when first needed

    study = store.study(study_id)
    frame = store.ratings_frame(study_id)
    rated = frame[frame["kind"] == "rating"][["subject", "image", "score"]]
    if rated.empty:
        raise StudyError(f"study {study_id} has no ratings yet: no MOS to compute")
    n_subjects = rated["subject"].nunique()
    result = compute_mos(rated.reset_index(drop=True), method=method,
                         scale=(study.scale_lo, study.scale_hi), screen=screen,
                         split_half=20 if n_subjects >= 4 else 0)
    if save:
        store.save_mos(study_id, result.table, method)
    return result


def repeat_consistency(frame: pd.DataFrame) -> pd.DataFrame:
    """Per subject: number of repeat pairs and mean |repeat − first rating| (NaN if none)."""
    rows = []
    for subject, group in frame.groupby("subject", sort=True):
        first = group[group["kind"] == "rating"].groupby("image")["score"].first()
        again = group[group["kind"] == "repeat"].set_index("image")["score"]
        pairs = again.index.intersection(first.index)
        diff = (again.loc[pairs] - first.loc[pairs]).abs()
        rows.append({"subject": subject, "repeats": int(len(pairs)),
                     "mean_abs_diff": float(diff.mean()) if len(pairs) else np.nan})
    return pd.DataFrame(rows, columns=["subject", "repeats", "mean_abs_diff"])


def export_study(store_url: str | Path, out: str | Path, *, method: str = "mos",
                 study_id: int | None = None, warn: Callable[[str], None] | None = None,
                 **pair_options) -> dict[str, Path]:
    """Write ``ratings.csv``, ``mos.csv`` and ``mos-report.json`` (if anything is rated) and
    ``progress.csv`` of one study (default: the only or latest one) into ``out``; returns the
    paths by name. What the MOS alone cannot show (e.g. a degenerate MLE fit) is in the report's
    ``warnings`` and goes to ``warn`` (default: ``warnings.warn``, a RuntimeWarning).

    A paired-comparison study writes its own files instead
    (:func:`aigiqa.study.pairs_export.export_pair_study`; ``pair_options``: model, ties,
    alpha)."""
    from aigiqa.study.pairs_export import export_pair_study
    from aigiqa.subjective.mle import DEGENERATE

    out = check_folder(out, "the export folder", "--out")
    with StudyStore(store_url) as store:
        ids = store.study_ids()
        if not ids:
            raise StudyError(f"{store_url}: no study stored")
        sid = ids[-1] if study_id is None else study_id
        if store.study(sid).mode == "pairs":
            return export_pair_study(store, sid, out, warn=warn, **pair_options)
        paths = {"ratings": out / "ratings.csv", "progress": out / "progress.csv"}
        write_text(paths["ratings"], ratings_csv(store, sid), "the ratings export")
        write_text(paths["progress"], store.progress(sid).to_csv(index=False),
                   "the progress export")
        if store.count_ratings(sid):
            try:
                with warnings.catch_warnings():  # passed on below, through ``warn``
                    warnings.filterwarnings("ignore", message=DEGENERATE)
                    result = study_mos(store, sid, method)
            except StudyError:
                result = None  # only training/repeat ratings so far
            if result is not None:
                paths["mos"] = result.to_csv(out / "mos.csv")
                report = json.dumps(result.report, indent=2, default=str)
                paths["mos_report"] = write_text(out / "mos-report.json", report,
                                                 "the MOS report")
                for text in result.warnings:
                    if warn is None:
                        warnings.warn(text, RuntimeWarning, stacklevel=2)
                    else:
                        warn(text)
    return paths
