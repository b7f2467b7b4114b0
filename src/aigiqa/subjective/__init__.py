"""Subjective-study processing: ratings → MOS (z-scores, BT.500 screening, P.913 MLE model).

Public API: :func:`read_ratings`, :func:`compute_mos`, :func:`list_methods`, :class:`MosResult`,
:class:`RatingsError`. See :mod:`aigiqa.subjective.mos` for the methods and their rules.
"""

from __future__ import annotations

from aigiqa.subjective.mos import MosResult, compute_mos, list_methods
from aigiqa.subjective.ratings import RatingsError, read_ratings, validate_ratings

__all__ = ["MosResult", "RatingsError", "compute_mos", "list_methods", "read_ratings",
           "validate_ratings"]
