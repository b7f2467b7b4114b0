"""``aigiqa study create|export`` (the typer sub-app in aigiqa.study.cli)."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from aigiqa.demo import build_demo
from aigiqa.store.study import StudyStore
from aigiqa.study.cli import app

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
