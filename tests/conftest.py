"""Shared fixtures: where ../shared is, and an offline environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("AIGIQA_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The read-only ../shared folder (reference annotations, assets). Required, not skipped."""
    path = _shared_dir()
    assert (path / "reference").is_dir(), f"../shared not found at {path}; set AIGIQA_SHARED"
    return path


@pytest.fixture
def live_assets(shared: Path, monkeypatch, tmp_path) -> Path:
    """$AIGIQA_HOME/assets = ../shared/assets (the LIVE NIQE/BRISQUE files); a private cache."""
    monkeypatch.setenv("AIGIQA_HOME", str(shared))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return shared / "assets"
