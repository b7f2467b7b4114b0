"""``compute_mos``: from raw ratings to MOS with std, CI95, SOS, screening and subject model.

Pipeline: validate (``ratings.validate_ratings``) → per-rating values of the method → optional
BT.500 screening on those values (``screening``) → per-image statistics over the kept subjects
(``stats``) → optional linear rescaling to ``target_range`` → split-half SRCC.

Methods (``list_methods()``; the sureal model each one reproduces in brackets):

- ``mos``: plain mean of the raw ratings (``MosModel``; with screening ``SubjrejMosModel``).
- ``zscore``: mean of per-subject(-session) z-scores (``ZscoringMosModel`` /
  ``ZscoringSubjrejMosModel``); screening runs on the z-scores.
- ``bias_removed``: ITU-T P.913 subject-bias removal, then the mean (``BiasremvMosModel`` /
  ``BiasremvSubjrejMosModel``); screening runs on the corrected ratings.
- ``mle``: P.913 / Li & Bampis maximum-likelihood subject model with per-subject bias and
  inconsistency (``MaximumLikelihoodEstimationModelContentOblivious`` and its alternating
  projection ``MLE_CO_AP``). It weights subjects by their inconsistency instead of rejecting them,
  so ``screen`` defaults to False and ``screen=True`` is refused (as in sureal).

Output table (one row per image, in ``images`` order or first-seen order): ``image, mos, std,
se, ci95, n, sos``. ``n`` = ratings kept; ``std`` = sample std (ddof 1) of the values averaged
(for ``mle``: of the bias-corrected ratings ``x − Δ_s``); ``se`` = ``std/√n`` (``mle``: the
model's ``(Σ υ_s⁻²)^-1/2``); ``ci95 = 1.95996·se``; ``sos`` = std of the *raw* ratings (rating
scale, never rescaled). ``std``/``se``/``ci95``/``sos`` are NaN for an image with one rating
(counted in ``report["images_with_one_rating"]``).

Split-half SRCC (``report["split_half"]``): ``split_half`` random halvings of the kept subjects
(seeded); SRCC between the two halves' means of the values above (``mle``: bias-corrected ratings
weighted by 1/υ_s²), its mean and std, and the Spearman–Brown estimate for the full panel.

Rescaling (``target_range=(t0, t1)``, e.g. ``(0, 5)`` for AIGIQA-20K; None = no rescaling):
methods on the rating scale (``mos``, ``bias_removed``, ``mle``) map ``scale=(lo, hi)`` linearly
onto the target (``scale`` is then required: it is never guessed from the data). ``zscore`` maps
either the lowest/highest MOS onto t0/t1 (``rescale="minmax"``, default) or z = −3…+3
(``rescale="sigma3"``, values may then leave the range). std, se, ci95 (and the subject biases
and inconsistencies) are multiplied by the same factor; the map is in ``report["rescale"]``.

If screening rejects every subject who rated some image, that image has no MOS: an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aigiqa.subjective.mle import degeneracy_message, fit_subject_model
from aigiqa.subjective.ratings import (
    Encoded,
    RatingsError,
    check_pair,
    encode,
    validate_ratings,
)
from aigiqa.subjective.screening import bt500_screen
from aigiqa.subjective.stats import (
    Z95,
    group_count,
    group_mean,
    group_std,
    sos_parameter,
    split_half_srcc,
)
from aigiqa.subjective.zscore import remove_bias, zscore

__all__ = ["MosResult", "compute_mos", "list_methods"]

_METHODS: dict[str, tuple[str, bool]] = {  # name -> (description, screened by default)
    "mos": ("plain mean of the raw ratings (sureal MosModel / SubjrejMosModel)", True),
    "zscore": ("mean of per-subject(-session) z-scores, ddof 1 (sureal ZscoringMosModel / "
               "ZscoringSubjrejMosModel)", True),
    "bias_removed": ("ITU-T P.913 subject-bias removal, then the mean (sureal "
                     "BiasremvMosModel / BiasremvSubjrejMosModel)", True),
    "mle": ("ITU-T P.913 / Li & Bampis maximum-likelihood model with per-subject bias and "
            "inconsistency (sureal MLE_CO / MLE_CO_AP); no screening", False),
}
_RAW_SCALE = ("mos", "bias_removed", "mle")
RESCALES = ("minmax", "sigma3")


def list_methods() -> dict[str, str]:
    """Method name → one-line description of its rule."""
    return {name: desc for name, (desc, _) in _METHODS.items()}


@dataclass
class MosResult:
    """Result of :func:`compute_mos`.

    ``table``: one row per image (image, mos, std, se, ci95, n, sos); ``rejected``: subjects
    removed by screening with the reason; ``subjects``: one row per subject (n, raw mean/std,
    screening statistics, bias and inconsistency where the method estimates them); ``report``:
    method, counts, rescaling, screening and split-half SRCC summary.
    """

    table: pd.DataFrame
    rejected: pd.DataFrame
    subjects: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """What the numbers cannot show by themselves (e.g. a degenerate MLE fit); also in
        ``report["warnings"]``. Every tool that writes the MOS shows them."""
        return list(self.report.get("warnings", []))

    def to_csv(self, path: str | Path) -> Path:
        """Write ``table`` as CSV (image, mos, std, se, ci95, n, sos), atomically; returns the
        path (AigiqaError naming it if it cannot be written)."""
        from aigiqa.files import write_text

        text = self.table.to_csv(index=False, float_format="%.6g")
        return write_text(Path(path), text, "the MOS CSV")


def compute_mos(ratings: pd.DataFrame, *, method: str = "zscore",
                scale: tuple[float, float] | None = None,
                target_range: tuple[float, float] | None = None, screen: bool | None = None,
                rescale: str = "minmax", subjects: Sequence[str] | None = None,
                images: Sequence[str] | None = None, split_half: int = 20, seed: int = 0,
                mle_tol: float = 1e-8, mle_max_iter: int = 1000) -> MosResult:
    """Compute MOS and statistics from raw ratings (``subject, image, score[, session]``).

    ``scale``: the rating scale (lo, hi): scores outside are an error; needed to rescale raw-scale
    methods and for the SOS parameter. ``screen``: BT.500 screening (None = the method's default).
    ``subjects``/``images``: the study's lists (unknown or unrated ones are errors).
    ``split_half``: number of random splits for the split-half SRCC (0 = skip); ``seed`` seeds them.
    """
    if method not in _METHODS:
        raise RatingsError(f"unknown MOS method {method!r}; choose one of {sorted(_METHODS)}")
    if rescale not in RESCALES:
        raise RatingsError(f"unknown rescale {rescale!r}; choose one of {list(RESCALES)}")
    if screen is None:
        screen = _METHODS[method][1]
    if screen and method == "mle":
        raise RatingsError("method 'mle' models subject inconsistency instead of rejecting "
                           "subjects; pass screen=False (or use 'zscore'/'mos' with screening)")
    if target_range is not None:
        target_range = check_pair(target_range, "target_range")
        if method in _RAW_SCALE and scale is None:
            raise RatingsError(f"method {method!r} rescales the rating scale onto target_range="
                               f"{target_range}: pass scale=(lo, hi) of the rating scale, or "
                               "target_range=None")
    frame = validate_ratings(ratings, scale=scale, subjects=subjects, images=images)
    enc = encode(frame, images)
    report: dict[str, Any] = {
        "method": method, "n_ratings": int(len(enc.score)), "n_subjects": enc.n_subjects,
        "n_images": enc.n_images, "n_subject_sessions": int(len(enc.groups)),
        "n_repeated_ratings": enc.n_repeated, "scale": None if scale is None else list(scale),
        "screen": bool(screen), "warnings": [],
    }
    subj = _subject_table(enc)
    if method == "zscore":
        values, _, _ = zscore(enc)
    elif method == "bias_removed":
        values, bias = remove_bias(enc.score, enc)
        subj["bias"] = bias
    else:
        values = enc.score

    rejected_mask = np.zeros(enc.n_subjects, dtype=bool)
    if screen:
        scr = bt500_screen(values, enc.image, enc.subject, enc.n_images, enc.n_subjects)
        rejected_mask = scr.rejected
        for col in ("p", "q", "ratio_outside", "asymmetry", "rejected"):
            subj[col] = scr.table[col].to_numpy()
        report["screening"] = {"rule": "ITU-R BT.500 beta2 test",
                               "n_rejected": int(rejected_mask.sum()),
                               "all_rejected_so_none": scr.all_rejected}
    keep = ~rejected_mask[enc.subject]
    _check_images_left(enc, keep)
    k_img, k_subj, k_score = enc.image[keep], enc.subject[keep], enc.score[keep]
    n = group_count(k_img, enc.n_images)
    if method == "mle":
        fit = fit_subject_model(k_score, k_img, k_subj, enc.n_images, enc.n_subjects,
                                tol=mle_tol, max_iter=mle_max_iter,
                                subject_names=enc.subjects)
        mos, se = fit.quality, fit.quality_se
        values = enc.score - fit.bias[enc.subject]
        std = group_std(values[keep], k_img, enc.n_images)
        subj["bias"], subj["bias_ci95"] = fit.bias, Z95 * fit.bias_se
        subj["inconsistency"] = fit.inconsistency
        subj["inconsistency_lo"], subj["inconsistency_hi"] = (fit.inconsistency_lo,
                                                              fit.inconsistency_hi)
        collapsed = [str(enc.subjects[i]) for i in fit.degenerate]
        report["mle"] = {"n_iter": fit.n_iter, "converged": fit.converged,
                         "loglik_per_rating": fit.loglik, "tol": mle_tol,
                         "degenerate_subjects": collapsed}
        if collapsed:
            report["warnings"].append(degeneracy_message(collapsed))
    else:
        mos = group_mean(values[keep], k_img, enc.n_images)
        std = group_std(values[keep], k_img, enc.n_images, mean=mos)
        with np.errstate(invalid="ignore"):
            se = std / np.sqrt(n)
    sos = group_std(k_score, k_img, enc.n_images)
    if scale is not None:
        report["sos_a"] = sos_parameter(group_mean(k_score, k_img, enc.n_images), sos,
                                        check_pair(scale, "scale"))
    report["images_with_one_rating"] = int((n == 1).sum())

    gain, offset = _rescale_map(method, mos, scale, target_range, rescale)
    report["rescale"] = {"target_range": None if target_range is None else list(target_range),
                         "rule": None if target_range is None else
                         ("scale" if method in _RAW_SCALE else rescale),
                         "gain": gain, "offset": offset}
    table = pd.DataFrame({"image": enc.images, "mos": gain * mos + offset, "std": gain * std,
                          "se": gain * se, "ci95": gain * Z95 * se, "n": n, "sos": sos})
    for col in ("bias", "bias_ci95", "inconsistency", "inconsistency_lo", "inconsistency_hi"):
        if col in subj:
            subj[col] = gain * subj[col]
    kept_codes = np.flatnonzero(~rejected_mask)
    weights = None if method != "mle" else 1.0 / (fit.inconsistency**2 + 1e-8)
    report["split_half"] = split_half_srcc(values, enc.image, enc.subject, enc.n_images,
                                           kept_codes, n_splits=split_half, seed=seed,
                                           subject_weights=weights)
    rejected = _rejected_table(subj)
    return MosResult(table=table, rejected=rejected, subjects=subj, report=report)


def _subject_table(enc: Encoded) -> pd.DataFrame:
    n = group_count(enc.subject, enc.n_subjects)
    sessions = enc.groups.groupby("subject", sort=True).size().reindex(enc.subjects).to_numpy()
    return pd.DataFrame({"subject": enc.subjects, "n": n, "sessions": sessions,
                         "mean": group_mean(enc.score, enc.subject, enc.n_subjects),
                         "std": group_std(enc.score, enc.subject, enc.n_subjects)})


def _check_images_left(enc: Encoded, keep: np.ndarray) -> None:
    left = group_count(enc.image[keep], enc.n_images)
    empty = np.flatnonzero(left == 0)
    if len(empty):
        raise RatingsError(f"after screening, {len(empty)} image(s) have no rating left (all "
                           "their subjects were rejected); pass screen=False or collect more "
                           "ratings", [str(enc.images[i]) for i in empty])


def _rescale_map(method: str, mos: np.ndarray, scale: tuple[float, float] | None,
                 target_range: tuple[float, float] | None, rescale: str) -> tuple[float, float]:
    """(gain, offset) of the linear map applied to the MOS; (1, 0) without target_range."""
    if target_range is None:
        return 1.0, 0.0
    t0, t1 = target_range
    if method in _RAW_SCALE:
        lo, hi = check_pair(scale, "scale")  # type: ignore[arg-type]
    elif rescale == "sigma3":
        lo, hi = -3.0, 3.0
    else:
        lo, hi = float(np.min(mos)), float(np.max(mos))
        if not hi > lo:
            raise RatingsError("all images have the same MOS: min-max rescaling is undefined; "
                               "use rescale='sigma3' or target_range=None")
    gain = (t1 - t0) / (hi - lo)
    return gain, t0 - gain * lo


def _rejected_table(subj: pd.DataFrame) -> pd.DataFrame:
    cols = ["subject", "reason", "ratio_outside", "asymmetry", "p", "q", "n"]
    if "rejected" not in subj:
        return pd.DataFrame(columns=cols)
    rej = subj[subj["rejected"]].copy()
    rej["reason"] = [
        f"ITU-R BT.500 beta2 test: {100 * r:.1f}% of {n} ratings outside the band (> 5%; "
        f"P={p} high, Q={q} low) and |P-Q|/(P+Q)={a:.2f} < 0.3"
        for r, n, p, q, a in zip(rej["ratio_outside"], rej["n"], rej["p"], rej["q"],
                                 rej["asymmetry"], strict=True)
    ]
    return rej[cols].reset_index(drop=True)
