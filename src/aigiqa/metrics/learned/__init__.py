"""Trainable (torch) quality models: the LearnedMetric base, backbone regressors and the classics.

Importing this package is cheap (no torch); each metric module imports torch when a model is built.
"""

from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric

__all__ = ["LEARNED_DEFAULTS", "LearnedMetric"]
