"""NTIRE 2024 submission files: write, read, score and every error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aigiqa.errors import AigiqaError, SubmissionError
from aigiqa.evaluation import evaluate
from aigiqa.ntire import read_submission, score_submission, write_submission

NAMES = [f"DALLE2_{i:04d}.png" for i in range(20)]


def _scores(n: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n) * 1.2345678901234567


def test_round_trip_is_exact_and_in_the_challenge_format(tmp_path):
    scores = _scores()
    path = write_submission(tmp_path / "output.txt", NAMES, scores)
    lines = path.read_text().splitlines()
    assert len(lines) == 20  # no header
    name, score = lines[0].split(",")
    assert name == NAMES[0] and float(score) == scores[0]
    read = read_submission(path)
    assert list(read) == NAMES
    assert [read[n] for n in NAMES] == [float(s) for s in scores]  # full precision


def test_reading_tolerates_spaces_blank_lines_and_bom(tmp_path):
    path = tmp_path / "output.txt"
    path.write_text("\ufeffa.png, 1.5\r\n\nb.png,2\n  \nc.png ,-3e-2\n", encoding="utf-8")
    assert read_submission(path) == {"a.png": 1.5, "b.png": 2.0, "c.png": -0.03}


def test_score_submission_equals_evaluate(tmp_path):
    scores = _scores()
    truth = dict(zip(NAMES, scores + np.random.default_rng(1).normal(scale=0.5, size=20),
                     strict=True))
    path = write_submission(tmp_path / "output.txt", NAMES[::-1], scores[::-1])  # any order
    result = score_submission(path, truth)
    expected = evaluate(scores, np.array(list(truth.values())))
    assert result == expected
    assert result["main"] == pytest.approx((result["srcc"] + result["plcc"]) / 2)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name,score\na.png,1\n", ["line 1", "'score'", "no header"]),
        ("a.png,1\nb.png,abc\n", ["line 2", "'abc'", "not a number"]),
        ("a.png,1\nb.png,nan\n", ["line 2", "not finite"]),
        ("a.png,1\nb.png 2\n", ["line 2", "expected 'name,score'"]),
        ("a.png,1,2\n", ["line 1", "expected 'name,score'"]),
        ("a.png,1\nb.png,2\na.png,3\n", ["line 3", "duplicate", "'a.png'", "first at line 1"]),
        (",1\n", ["line 1", "empty image name"]),
        ("\n\n", ["no scores"]),
    ],
)
def test_bad_submission_lines_are_named(tmp_path, text, words):
    path = tmp_path / "output.txt"
    path.write_text(text)
    with pytest.raises(SubmissionError) as info:
        read_submission(path)
    assert isinstance(info.value, AigiqaError)
    assert str(path) in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_every_bad_line_is_reported_at_once(tmp_path):
    path = tmp_path / "output.txt"
    path.write_text("a.png,x\nb.png,1\nc.png,y\n")
    with pytest.raises(SubmissionError) as info:
        read_submission(path)
    assert len(info.value.problems) == 2
    assert "line 1" in info.value.problems[0] and "line 3" in info.value.problems[1]


def test_missing_file(tmp_path):
    with pytest.raises(SubmissionError, match="not found"):
        read_submission(tmp_path / "nope.txt")


def test_missing_and_extra_names_against_the_truth(tmp_path):
    path = tmp_path / "output.txt"
    path.write_text("a.png,1\nb.png,2\nz.png,3\nc.png,4\n")
    truth = {"a.png": 1.0, "b.png": 2.0, "c.png": 3.0, "d.png": 4.0}
    with pytest.raises(SubmissionError) as info:
        score_submission(path, truth)
    text = str(info.value)
    assert "1 image(s) of the truth have no score" in text and "missing: d.png" in text
    assert "1 name(s) are not in the truth" in text and "line 3: extra name 'z.png'" in text


@pytest.mark.parametrize(
    ("names", "scores", "words"),
    [
        (["a.png", "b.png"], [1.0], ["2 names but 1 scores"]),
        (["a.png", "a.png"], [1.0, 2.0], ["item 1", "duplicate", "first at item 0"]),
        (["a,b.png", "c.png"], [1.0, 2.0], ["item 0", "without commas"]),
        ([" a.png", "c.png"], [1.0, 2.0], ["item 0", "surrounding spaces"]),
        (["a.png", "b.png"], [1.0, float("inf")], ["item 1", "b.png", "not finite"]),
        (["a.png", "b.png"], ["x", 2.0], ["item 0", "not a number"]),
        ([], [], ["no scores"]),
    ],
)
def test_write_submission_errors(tmp_path, names, scores, words):
    path = tmp_path / "output.txt"
    with pytest.raises(SubmissionError) as info:
        write_submission(path, names, scores)
    for word in words:
        assert word in str(info.value)
    assert not path.exists()


def test_aigiqa20k_train_names_round_trip(shared, tmp_path):
    """A submission over the real train names, scored against the released train MOS."""
    frame = pd.read_csv(shared / "reference" / "aigiqa20k" / "info_train.csv")
    truth = dict(zip(frame["name"], frame["mos"].astype(float), strict=True))
    mos = frame["mos"].to_numpy(float)
    pred = mos + np.random.default_rng(2).normal(scale=0.5, size=len(frame))
    path = write_submission(tmp_path / "output.txt", frame["name"], pred)
    result = score_submission(path, truth)
    assert result["n"] == 14000
    assert result == evaluate(pred, mos)
    assert 0.5 < result["main"] < 1.0
