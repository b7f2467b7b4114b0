"""Subjective study tool: plan a study, serve the rating web app, export ratings and MOS.

Public API: :func:`create_study` (→ :class:`Study` with subject links and an admin token),
:func:`aigiqa.study.app.create_app` (FastAPI app; imported lazily, it needs the web extras),
:func:`export_study`. The data access lives in :mod:`aigiqa.store.study`.
"""

from __future__ import annotations

from aigiqa.store.study import StudyError
from aigiqa.study.export import export_study
from aigiqa.study.plan import DESIGNS, Study, SubjectLink, create_study

__all__ = ["DESIGNS", "Study", "StudyError", "SubjectLink", "create_study", "export_study"]
