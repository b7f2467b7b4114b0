"""Maximum-likelihood subject model (ITU-T P.913 (06/2021); Li & Bampis 2017; Li et al. 2020).

Model (content-oblivious, sureal ``MLE_CO``): the rating of image e by subject s is

    X_es = ψ_e + Δ_s + υ_s · N(0, 1)

with true quality ψ_e, subject bias Δ_s and subject inconsistency υ_s ≥ 0. Repeats are further
independent observations; missing (image, subject) pairs are simply absent (incomplete designs).

Solver: the alternating projection of P.913 / Li et al. 2020 (sureal ``MLE_CO_AP``), whose fixed
point is the maximum-likelihood estimate (the same one sureal's belief-propagation ``MLE_CO``
reaches). Start: ψ_e = mean rating of e, Δ_s = mean of ``x − ψ_e`` over the ratings of s. Repeat:

1. residuals ``r = x − ψ_e − Δ_s``; υ_s = their standard deviation over the ratings of s (ddof 0);
2. ψ_e = mean of ``x − Δ_s`` over the ratings of e, weighted by ``1 / (υ_s² + 1e-8)``;
3. Δ_s = mean of ``x − ψ_e`` over the ratings of s;

until ``‖ψ_new − ψ_old‖₂ < tol`` (1e-8) or ``max_iter`` (1000) iterations. Finally the biases are
shifted to mean zero over subjects (ψ shifted the other way; the likelihood is unchanged).

Uncertainty (inverse Fisher information, as sureal): ``se(ψ_e) = (Σ_{s rated e} υ_s⁻²)^-1/2``,
``se(Δ_s) = υ_s / √N_s``; the 95 % interval of υ_s is ``υ_s·√(N_s / χ²_{N_s}(0.975))`` …
``υ_s·√(N_s / χ²_{N_s}(0.025))``. A subject needs at least two ratings (else υ_s is undefined).

Degeneracy: the likelihood of this model is unbounded; when images have few raters, the
iteration can collapse one subject's υ_s to ~0 (the MOS of the images it rated then *is* its
ratings). sureal's solvers reach the same point. It is detected (υ_s < 1e-4 · median υ), listed
in ``SubjectModel.degenerate`` and warned about, never hidden.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from aigiqa.subjective.ratings import RatingsError
from aigiqa.subjective.stats import group_count, group_mean

__all__ = ["DEGENERATE", "SubjectModel", "degeneracy_message", "fit_subject_model"]

_EPS = 1e-8


@dataclass(frozen=True)
class SubjectModel:
    """Fitted MLE subject model; arrays are indexed by image or subject code."""

    quality: np.ndarray  # ψ_e (n_images,)
    quality_se: np.ndarray  # (n_images,)
    bias: np.ndarray  # Δ_s (n_subjects,)
    bias_se: np.ndarray
    inconsistency: np.ndarray  # υ_s (n_subjects,)
    inconsistency_lo: np.ndarray  # 95 % interval of υ_s
    inconsistency_hi: np.ndarray
    n_iter: int
    converged: bool
    loglik: float  # log-likelihood per rating
    degenerate: np.ndarray  # codes of subjects whose υ_s collapsed to ~0


#: How the degeneracy warning starts (``compute_mos`` also puts it in ``MosResult.warnings``).
DEGENERATE = "MLE subject model is degenerate"


def degeneracy_message(subjects: list[str]) -> str:
    """The warning about a degenerate fit whose collapsed subjects are ``subjects``."""
    return (f"{DEGENERATE}: the inconsistency of subject(s) {subjects} collapsed to ~0, so the "
            "MOS of the images they rated equals their ratings (unbounded likelihood; too few "
            "ratings per image?). Prefer method 'zscore' or 'bias_removed' for these data.")


def fit_subject_model(score: np.ndarray, image: np.ndarray, subject: np.ndarray, n_images: int,
                      n_subjects: int, *, tol: float = 1e-8, max_iter: int = 1000,
                      subject_names: np.ndarray | None = None) -> SubjectModel:
    """Fit ψ, Δ, υ by alternating projection on per-rating arrays (codes index images/subjects).

    ``subject_names`` (n_subjects,) only serve error messages.
    """
    names = np.arange(n_subjects) if subject_names is None else subject_names
    n_s = group_count(subject, n_subjects)
    if (n_s < 2).any():
        raise RatingsError(
            f"the MLE subject model needs >= 2 ratings per subject; {int((n_s < 2).sum())} "
            "subject(s) have fewer (remove them or use another method)",
            [f"subject {names[i]!r}: {c} rating(s)" for i, c in enumerate(n_s) if c < 2])
    psi = group_mean(score, image, n_images)
    delta = group_mean(score - psi[image], subject, n_subjects)
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        resid = score - psi[image] - delta[subject]
        r_mean = group_mean(resid, subject, n_subjects)
        upsilon = np.sqrt(group_mean((resid - r_mean[subject]) ** 2, subject, n_subjects))
        weight = 1.0 / (upsilon**2 + _EPS)
        psi_new = group_mean(score - delta[subject], image, n_images, weights=weight[subject])
        delta = group_mean(score - psi_new[image], subject, n_subjects)
        n_iter += 1
        change = float(np.linalg.norm(psi_new - psi))
        psi = psi_new
        if change < tol:
            converged = True
            break
    info = np.bincount(image, weights=1.0 / upsilon[subject] ** 2, minlength=n_images)
    with np.errstate(divide="ignore"):
        quality_se = 1.0 / np.sqrt(info)
        bias_se = upsilon / np.sqrt(n_s)
    lo = upsilon * np.sqrt(n_s / stats.chi2.ppf(0.975, df=n_s))
    hi = upsilon * np.sqrt(n_s / stats.chi2.ppf(0.025, df=n_s))
    shift = float(np.mean(delta))
    delta = delta - shift
    psi = psi + shift
    loglik = float(np.mean(stats.norm.logpdf(score, loc=psi[image] + delta[subject],
                                             scale=upsilon[subject])))
    degenerate = np.flatnonzero(upsilon < 1e-4 * np.median(upsilon))
    if len(degenerate):
        warnings.warn(degeneracy_message([str(names[i]) for i in degenerate]), RuntimeWarning,
                      stacklevel=3)
    return SubjectModel(quality=psi, quality_se=quality_se, bias=delta, bias_se=bias_se,
                        inconsistency=upsilon, inconsistency_lo=lo, inconsistency_hi=hi,
                        n_iter=n_iter, converged=converged, loglik=loglik,
                        degenerate=degenerate)
