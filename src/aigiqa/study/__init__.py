"""Subjective study tool: plan a study, serve the rating web app, export ratings and MOS (or,
in the paired-comparison mode, comparisons, scaled scores and position bias).

Public API: :func:`create_study` (→ :class:`Study` with subject links and an admin token),
:func:`create_pair_study` (the same for a paired-comparison study),
:func:`aigiqa.study.app.create_app` (FastAPI app; imported lazily, it needs the web extras),
:func:`export_study`. The data access lives in :mod:`aigiqa.store.study`.
"""

from __future__ import annotations

from aigiqa.store.study import StudyError
from aigiqa.study.export import export_study
from aigiqa.study.plan import DESIGNS, Study, SubjectLink, create_study
from aigiqa.study.plan_pairs import create_pair_study

__all__ = ["DESIGNS", "Study", "StudyError", "SubjectLink", "create_pair_study", "create_study",
           "export_study"]
