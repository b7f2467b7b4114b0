"""``aigiqa study create|export`` (the typer sub-app in aigiqa.study.cli)."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest
from typer.testing import CliRunner

from aigiqa.demo import build_demo
from aigiqa.store.study import StudyStore
from aigiqa.study.cli import app
from studies import rate_all

runner = CliRunner()


def test_create_writes_links_and_export_writes_csv(tmp_path):
    root = build_demo(tmp_path / "demo", n=10)
    db = tmp_path / "study.db"
    links = tmp_path / "links.csv"
    result = runner.invoke(app, [
        "create", "--database", "demo", "--root", str(root), "--subjects", "3",
        "--design", "balanced", "--ratings-per-image", "2", "--training", "1", "--repeats", "1",
        "--session-size", "4", "--db", str(db), "--links", str(links),
        "--base-url", "http://127.0.0.1:8000/"])
    assert result.exit_code == 0, result.output
    assert "admin: http://127.0.0.1:8000/admin/" in result.output
    table = pd.read_csv(links)
    assert table["subject"].tolist() == ["S01", "S02", "S03"]
    assert table["link"].str.startswith("http://127.0.0.1:8000/s/").all()
    assert table["trials"].sum() == 3 * (1 + 1) + 10 * 2  # training + repeat each, 2 per image
    assert table["token"].iloc[0] not in result.output  # tokens only in the private file

    with StudyStore(db) as store:
        subject = store.subject_by_token(table["token"].iloc[0])
        trial = store.state(subject.id).trial
        store.submit_rating(subject, trial.id, 2.0, "cli-1")
        trial = store.state(subject.id).trial
        store.submit_rating(subject, trial.id, 4.0, "cli-2")
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    raw = pd.read_csv(out / "ratings.csv")
    assert raw["score"].tolist() == [2.0, 4.0] and raw["kind"].tolist() == ["training", "rating"]
    mos = pd.read_csv(out / "mos.csv")
    assert mos["mos"].tolist() == [4.0] and mos["n"].tolist() == [1]
    progress = pd.read_csv(out / "progress.csv")
    assert progress["done"].tolist() == [2, 0, 0]


def test_bad_options_exit_2_with_message(tmp_path):
    root = build_demo(tmp_path / "demo", n=10)
    result = runner.invoke(app, [
        "create", "--database", "demo", "--root", str(root), "--subjects", "2",
        "--design", "balanced", "--ratings-per-image", "5", "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 2
    assert "ratings_per_image=5 is more than subjects=2" in result.output
    result = runner.invoke(app, ["export", "--db", str(tmp_path / "empty.db"),
                                 "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "no study stored" in result.output


def _create(root, db, links, *extra):
    return runner.invoke(app, [
        "create", "--database", "demo", "--root", str(root), "--subjects", "3", "--design",
        "balanced", "--ratings-per-image", "2", "--training", "0", "--db", str(db),
        "--links", str(links), *extra])


def test_links_file_is_private_from_its_creation(tmp_path, monkeypatch):
    root = build_demo(tmp_path / "demo", n=10)
    links = tmp_path / "links.csv"
    links.write_text("old, world-readable\n")
    links.chmod(0o644)
    modes = []
    real_replace = os.replace

    def replace(src, dst):  # the moment the tokens reach the final name
        modes.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    old_umask = os.umask(0)  # a permissive umask must not make the file readable either
    try:
        result = _create(root, tmp_path / "study.db", links)
    finally:
        os.umask(old_umask)
    assert result.exit_code == 0, result.output
    assert modes == [0o600]
    assert stat.S_IMODE(links.stat().st_mode) == 0o600
    assert pd.read_csv(links)["subject"].tolist() == ["S01", "S02", "S03"]


def test_unwritable_links_file_is_refused_before_the_study_exists(tmp_path):
    root = build_demo(tmp_path / "demo", n=10)
    (tmp_path / "links.csv").mkdir()
    db = tmp_path / "study.db"
    result = _create(root, db, tmp_path / "links.csv")
    assert result.exit_code == 2 and "must be a file" in result.output
    with StudyStore(db) as store:
        assert store.study_ids() == []  # no study whose tokens nobody has


def _degenerate_study(tmp_path):
    """3 subjects, 2 ratings per image: the MLE subject model collapses one subject."""
    root = build_demo(tmp_path / "demo", n=10)
    db = tmp_path / "study.db"
    assert _create(root, db, tmp_path / "links.csv").exit_code == 0
    rate_all(str(db), pd.read_csv(tmp_path / "links.csv")["token"], tag="deg")
    return db


def test_mle_export_shows_the_degenerate_fit(tmp_path):
    db = _degenerate_study(tmp_path)
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", "--db", str(db), "--out", str(out), "--method", "mle"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("warning: ")]
    assert len(lines) == 1 and "MLE subject model is degenerate" in lines[0]
    report = json.loads((out / "mos-report.json").read_text())
    assert report["warnings"] == [lines[0].removeprefix("warning: ")]
    assert report["mle"]["degenerate_subjects"]
    assert "RuntimeWarning" not in result.output  # one clean line, not a Python warning too


@pytest.mark.parametrize("mode, extra", [
    ("pairs", ["--scale-hi", "10"]),
    ("pairs", ["--ratings-per-image", "2"]),
    ("ratings", ["--allow-ties"]),
    ("ratings", ["--judgements-per-pair", "2"]),
    ("ratings", ["--pair-group", "all"]),
])
def test_an_option_of_the_other_mode_is_refused_not_ignored(tmp_path, mode, extra):
    store = tmp_path / "study.db"
    result = CliRunner().invoke(app, [
        "create", "--database", "demo", "--root", str(tmp_path / "nowhere"),
        "--subjects", "2", "--db", str(store), "--mode", mode, *extra])
    assert result.exit_code != 0
    assert f"not --mode {mode}" in result.output
    assert extra[0].split("/")[0] in result.output and not store.exists()
