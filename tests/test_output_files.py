"""Hostile store files and output folders through the `aigiqa` command: every case ends with one
line naming the path and what to do (exit 2), before any scoring, and nothing stored is lost.

Read-only cases use ``chattr +i`` when the tests run as root (root ignores permission bits) and
``chmod`` otherwise; they are skipped, saying why, only where neither works."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from aigiqa.cli import main
from aigiqa.demo import build_demo


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (file or folder) cannot be written, even by root, inside the block."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    done = chattr and subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True)
    if not done or done.returncode != 0:
        why = "not installed" if not chattr else done.stderr.strip()
        pytest.skip(f"as root only an immutable file is read-only, and chattr +i fails: {why}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run ``aigiqa ARGS`` in this process as the console script does: (exit code, out, err).
    Anything but an AigiqaError (a traceback for the user) propagates and fails the test."""
    monkeypatch.setattr(sys, "argv", ["aigiqa", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    return info.value.code or 0, captured.out, captured.err


def one_error_line(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return build_demo(tmp_path_factory.mktemp("demo") / "db", n=10, seed=1)


def bench(monkeypatch, capsys, demo: Path, store: Path, out: Path) -> tuple[int, str, str]:
    return cli(monkeypatch, capsys, "bench", "--database", "demo", "--root", demo, "--metrics",
               "sharpness", "--store", store, "--out", out, "--bootstrap", 0, "--no-progress")


def rows(store: Path) -> int:
    with contextlib.closing(sqlite3.connect(store)) as conn:
        return conn.execute("SELECT count(*) FROM scores").fetchone()[0]


@pytest.fixture
def filled_store(demo, tmp_path, monkeypatch, capsys) -> Path:
    store = tmp_path / "kept" / "s.sqlite"
    code, _, err = bench(monkeypatch, capsys, demo, store, tmp_path / "first")
    assert code == 0, err
    assert rows(store) == 10
    return store


def test_store_that_is_not_sqlite(demo, tmp_path, monkeypatch, capsys):
    store = tmp_path / "s.sqlite"
    junk = os.urandom(4096)
    store.write_bytes(junk)
    code, _, err = bench(monkeypatch, capsys, demo, store, tmp_path / "res")
    assert code == 2
    one_error_line(err, str(store), "not a SQLite database", "--store")
    assert store.read_bytes() == junk  # left as it was
    assert not (tmp_path / "res").exists()


def test_damaged_sqlite_store(demo, tmp_path, monkeypatch, capsys, filled_store):
    data = bytearray(filled_store.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the header survives, the schema page does not
    filled_store.write_bytes(bytes(data))
    code, _, err = bench(monkeypatch, capsys, demo, filled_store, tmp_path / "res")
    assert code == 2
    one_error_line(err, str(filled_store), "malformed", "backup")
    assert filled_store.read_bytes() == bytes(data)


def test_read_only_store_file(demo, tmp_path, monkeypatch, capsys, filled_store):
    before = filled_store.read_bytes()
    with read_only(filled_store):
        code, _, err = bench(monkeypatch, capsys, demo, filled_store, tmp_path / "res")
    assert code == 2
    one_error_line(err, str(filled_store), "cannot be written", "--store")
    assert filled_store.read_bytes() == before and rows(filled_store) == 10


def test_store_in_a_read_only_folder(demo, tmp_path, monkeypatch, capsys, filled_store):
    with read_only(filled_store.parent):
        code, _, err = bench(monkeypatch, capsys, demo, filled_store, tmp_path / "res")
        new_code, _, new_err = bench(monkeypatch, capsys, demo, filled_store.parent / "new.db",
                                     tmp_path / "res")
    assert code == 2 and new_code == 2
    one_error_line(err, str(filled_store.parent), "folder of the score store", "writable")
    one_error_line(new_err, str(filled_store.parent), "writable")
    assert rows(filled_store) == 10 and not (filled_store.parent / "new.db").exists()


def test_store_below_a_regular_file(demo, tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = bench(monkeypatch, capsys, demo, tmp_path / "file" / "s.sqlite",
                         tmp_path / "res")
    assert code == 2
    one_error_line(err, str(tmp_path / "file"), "a file is there", "--store")


def test_out_in_a_read_only_folder_fails_before_scoring(demo, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    store = tmp_path / "s.sqlite"
    with read_only(folder):
        code, _, err = bench(monkeypatch, capsys, demo, store, folder / "res")
    assert code == 2
    one_error_line(err, str(folder / "res"), "results folder", "--out")
    assert not store.exists()  # nothing was scored


@pytest.mark.parametrize("case", ["file", "below-file", "results-file-read-only"])
def test_out_that_cannot_be_a_results_folder(demo, tmp_path, monkeypatch, capsys, case):
    store = tmp_path / "s.sqlite"
    if case == "file":
        out = tmp_path / "results"
        out.write_text("mine")
    elif case == "below-file":
        (tmp_path / "results").write_text("mine")
        out = tmp_path / "results" / "x"
    else:
        out = tmp_path / "results"
        out.mkdir()
        (out / "report.html").write_text("old")
    with read_only(out / "report.html") if case.endswith("read-only") else contextlib.nullcontext():
        code, _, err = bench(monkeypatch, capsys, demo, store, out)
    assert code == 2
    one_error_line(err, "--out")
    assert not store.exists()  # refused before any scoring
    if case != "results-file-read-only":
        assert (tmp_path / "results").read_text() == "mine"


def test_score_out_is_checked_before_scoring(demo, tmp_path, monkeypatch, capsys):
    store = tmp_path / "s.sqlite"
    folder = tmp_path / "a-folder"
    folder.mkdir()
    code, _, err = cli(monkeypatch, capsys, "score", demo / "train", "-m", "sharpness",
                       "--store", store, "--out", folder, "--no-progress")
    assert code == 2
    one_error_line(err, str(folder), "must be a file", "--out")
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        code, _, err = cli(monkeypatch, capsys, "score", demo / "train", "-m", "sharpness",
                           "--store", store, "--out", ro / "scores.csv", "--no-progress")
    assert code == 2
    one_error_line(err, str(ro), "--out")
    assert not store.exists()


def test_score_exits_1_when_images_fail_unless_allowed(demo, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "imgs"
    shutil.copytree(demo / "train", folder)
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "scores.csv"
    args = ["score", folder, "-m", "sharpness,entropy", "--out", out, "--no-progress"]
    code, _, err = cli(monkeypatch, capsys, *args)
    assert code == 1
    assert "4 score(s) failed on 1 of" not in err  # two metrics, one image: 2 scores
    assert "2 score(s) failed on 1 of 8 image(s)" in err and "--allow-failures" in err
    table = pd.read_csv(out)  # the scores are written all the same
    assert len(table) == 8 and table.loc[table["name"] == "broken.png", "sharpness"].isna().all()
    code, _, err = cli(monkeypatch, capsys, *args, "--allow-failures")
    assert code == 0 and "failed: " in err
    good = tmp_path / "good"
    shutil.copytree(demo / "val", good)
    code, _, _ = cli(monkeypatch, capsys, "score", good, "-m", "sharpness", "--no-progress")
    assert code == 0


def test_mos_scale_error_names_the_file_and_csv_line(tmp_path, monkeypatch, capsys):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("subject,image,score\na,x,10\nb,x,20\na,y,150\nb,y,30\n")
    code, _, err = cli(monkeypatch, capsys, "mos", ratings, "--out", tmp_path / "mos.csv",
                       "--scale", "0,100", "--method", "mos")
    assert code == 2
    assert f"{ratings} line 4: 150" in err and "row 2" not in err
    assert not (tmp_path / "mos.csv").exists()


def test_mos_out_is_checked_before_computing(tmp_path, monkeypatch, capsys):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("subject,image,score\na,x,1\nb,x,2\n")
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder):
        code, _, err = cli(monkeypatch, capsys, "mos", ratings, "--out", folder / "mos.csv",
                           "--method", "mos")
    assert code == 2
    one_error_line(err, str(folder), "--out")


def test_demo_ratings_give_the_demo_mos_through_aigiqa_mos(demo, tmp_path, monkeypatch, capsys):
    out = tmp_path / "mos.csv"
    code, _, err = cli(monkeypatch, capsys, "mos", demo / "ratings.csv", "--out", out,
                       "--method", "mos", "--no-screen", "--scale", "0,100",
                       "--target-range", "0,5")
    assert code == 0, err
    table = pd.read_csv(out).set_index("image")["mos"]
    info = pd.concat(pd.read_csv(demo / f"info_{s}.csv") for s in ("train", "val", "test"))
    expected = info.set_index("name")["mos"]
    assert sorted(table.index) == sorted(expected.index)
    assert (table - expected.loc[table.index]).abs().max() < 1e-5
    readme = (demo / "README.txt").read_text()
    assert "subject,image,score" in readme and "aigiqa mos ratings.csv" in readme


def test_a_folder_that_turns_unwritable_during_the_run_keeps_the_scores(demo, tmp_path,
                                                                        monkeypatch):
    from aigiqa.benchmark import report
    from aigiqa.benchmark.runner import run_benchmark
    from aigiqa.databases.registry import load_database
    from aigiqa.errors import AigiqaError

    out = tmp_path / "res"
    out.mkdir()
    store = tmp_path / "s.sqlite"
    monkeypatch.setattr(report, "check_output_folder", lambda folder: Path(folder),
                        raising=False)  # the check passed; the folder changes after it
    db = load_database("demo", demo)
    with read_only(out), pytest.raises(AigiqaError) as info:
        run_benchmark(db, ["sharpness"], store=store, out=out, bootstrap=0, progress=False)
    message = str(info.value)
    assert "\n" not in message and str(out) in message and "kept in the store" in message
    assert rows(store) == 10
