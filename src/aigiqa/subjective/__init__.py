"""Subjective-study processing: ratings → MOS (z-scores, BT.500 screening, P.913 MLE model), and
paired comparisons → scale values (Bradley–Terry, Thurstone Case V).

Public API: :func:`read_ratings`, :func:`compute_mos`, :func:`list_methods`, :class:`MosResult`,
:class:`RatingsError`, :func:`scale_pairs`, :class:`AdaptivePairSampler` (the next pair by
expected information gain), :func:`plan_ratings` (where the next ratings go). See
:mod:`aigiqa.subjective.mos`, :mod:`aigiqa.subjective.pairs`, :mod:`aigiqa.subjective.adaptive`
and :mod:`aigiqa.subjective.adaptive_ratings` for the methods and their rules.
"""

from __future__ import annotations

from aigiqa.subjective.adaptive import AdaptivePairSampler
from aigiqa.subjective.adaptive_ratings import plan_ratings
from aigiqa.subjective.mos import MosResult, compute_mos, list_methods
from aigiqa.subjective.pairs import scale_pairs
from aigiqa.subjective.ratings import RatingsError, read_ratings, validate_ratings

__all__ = ["AdaptivePairSampler", "MosResult", "RatingsError", "compute_mos", "list_methods",
           "plan_ratings", "read_ratings", "scale_pairs", "validate_ratings"]
