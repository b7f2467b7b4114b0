"""Evaluation protocol: SRCC, KRCC, PLCC after a logistic mapping, RMSE, the NTIRE 2024 score,
bootstrap confidence intervals and a paired bootstrap test of two metrics.

Conventions
-----------
- ``srcc`` is Spearman's rho (average ranks for ties), ``krcc`` Kendall's tau-b, ``plcc_raw``
  Pearson's r of the raw predictions: the same numbers as ``scipy.stats.spearmanr``,
  ``kendalltau`` and ``pearsonr``.
- ``plcc`` and ``rmse`` are computed after mapping the predictions onto the target scale with a
  monotone VQEG logistic (``logistic4`` by default, ``logistic5``) or no mapping (``none``).
  The mapping is fitted in the direction of the rank correlation (increasing when
  ``srcc >= 0``, decreasing otherwise), and ``plcc`` carries that direction's sign, so a metric
  whose sign is wrong shows negative SRCC *and* PLCC instead of a flattering positive PLCC.
  When the logistic fit fails (no convergence, non-finite values, or a fit worse than the best
  straight line, which the logistic family contains as a limit) a linear map is used instead;
  ``fit_used`` says which map was applied.
- ``main`` = (srcc + plcc) / 2, the score of the NTIRE 2024 AIGC quality challenge.
- Constant predictions (or a constant target) have no defined correlation: srcc, krcc, plcc and
  plcc_raw are reported as ``0.0`` (``fit_used = "constant"``), never NaN.
- ``lower_better=True`` negates the predictions first, so a good metric has positive correlations.

Bootstrap: resamples draw n images with replacement (the same resamples for every metric, so
metrics are compared on the same images). SRCC and KRCC are recomputed exactly on every resample
(ranks and Kendall's tau-b with all ties, including the duplicates a resample creates); PLCC is the
correlation of the *mapped* predictions on each resample with the mapping fitted once on the full
sample (the common practice: refitting a logistic a thousand times is slow and unstable).
Confidence intervals are percentile intervals. All resamples are computed at once with numpy
(ranks from draw counts, Kendall's tau-b by an exact blocked pair count in O(R n sqrt(n)); see
``_resampled_kendall``), in chunks of about :data:`CHUNK_ELEMENTS` images x resamples.

Modules: :mod:`.point` (maps, fits, ``evaluate``), :mod:`.resampling` (bootstrap draw counts and
the statistics of all resamples at once), :mod:`.bootstrap` (confidence intervals, the paired
test, ``evaluate_many``), :mod:`.preference` (pairwise accuracy on paired comparisons,
pairs implied by a MOS).
"""

from aigiqa.evaluation.bootstrap import bootstrap_ci, evaluate_many, paired_bootstrap
from aigiqa.evaluation.point import (
    CI_STATS,
    FITS,
    FittedMap,
    evaluate,
    fit_logistic,
    logistic4,
    logistic5,
)
from aigiqa.evaluation.preference import PairwiseAccuracy, mos_pairs, pairwise_accuracy
from aigiqa.evaluation.resampling import bootstrap_counts

__all__ = [
    "CI_STATS",
    "FITS",
    "FittedMap",
    "PairwiseAccuracy",
    "bootstrap_ci",
    "bootstrap_counts",
    "evaluate",
    "evaluate_many",
    "fit_logistic",
    "logistic4",
    "logistic5",
    "mos_pairs",
    "paired_bootstrap",
    "pairwise_accuracy",
]
