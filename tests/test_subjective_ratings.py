"""Reading and validating raw ratings: every bad input is an error naming the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aigiqa.errors import AigiqaError
from aigiqa.subjective import RatingsError, read_ratings, validate_ratings
from aigiqa.subjective.ratings import encode


def write(tmp_path, text: str, name: str = "ratings.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_keeps_text_ids_and_order(tmp_path):
    path = write(tmp_path, "subject,image,score,session,extra\n007,a.png,3.5,1,x\n"
                           "010,b.png,4,2,y\n007,b.png, 2 ,1,z\n")
    frame = read_ratings(path)
    assert list(frame.columns) == ["subject", "image", "score", "session"]
    assert list(frame["subject"]) == ["007", "010", "007"]
    assert frame["score"].dtype == np.float64
    assert list(frame["score"]) == [3.5, 4.0, 2.0]
    assert list(frame["session"]) == ["1", "2", "1"]


def test_errors_are_aigiqa_errors_naming_file_and_line(tmp_path):
    path = write(tmp_path, "subject,image,score\ns1,a,3\ns1,b,\ns2,a,good\ns2,b,inf\n")
    with pytest.raises(RatingsError) as info:
        read_ratings(path)
    assert isinstance(info.value, AigiqaError)
    text = str(info.value)
    assert "not a finite number in 3 row(s)" in text
    assert f"{path} line 3" in text and f"{path} line 4: 'good'" in text
    assert f"{path} line 5" in text and f"{path} line 2" not in text


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path, "name,rater,rating\na,R1,3\n")
    with pytest.raises(RatingsError, match=r"missing column\(s\) \['subject', 'image', 'score'\]"):
        read_ratings(path)


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(RatingsError, match="not found"):
        read_ratings(tmp_path / "nope.csv")
    with pytest.raises(RatingsError, match="no ratings"):
        read_ratings(write(tmp_path, "subject,image,score\n"))


def test_empty_ids_are_errors(tmp_path):
    path = write(tmp_path, "subject,image,score\n,a,3\ns1,,2\ns1,b,2\n")
    with pytest.raises(RatingsError, match="empty 'subject' in 1 row") as info:
        read_ratings(path)
    assert "line 2" in str(info.value)
    frame = pd.DataFrame({"subject": ["s1", "s1"], "image": [None, "b"], "score": [1, 2]})
    with pytest.raises(RatingsError, match="empty 'image'.*\n  - row 0"):
        validate_ratings(frame)


def test_scale_check_lists_each_out_of_range_score():
    frame = pd.DataFrame({"subject": ["a", "a", "b"], "image": ["x", "y", "x"],
                          "score": [0.0, 5.5, -1.0]})
    with pytest.raises(RatingsError, match=r"2 score\(s\) outside the scale \[0, 5\]") as info:
        validate_ratings(frame, scale=(0, 5))
    assert info.value.problems == ["row 1: 5.5", "row 2: -1.0"]
    assert len(validate_ratings(frame, scale=(-1, 5.5))) == 3
    with pytest.raises(RatingsError, match="lo < hi"):
        validate_ratings(frame, scale=(5, 0))


def test_unknown_and_unrated_subjects_images():
    frame = pd.DataFrame({"subject": ["a", "b", "zz"], "image": ["x", "y", "x"],
                          "score": [1.0, 2.0, 3.0]})
    with pytest.raises(RatingsError, match=r"1 rating\(s\) of unknown subject") as info:
        validate_ratings(frame, subjects=["a", "b"])
    assert info.value.problems == ["row 2: 'zz'"]
    with pytest.raises(RatingsError, match=r"1 listed image\(s\) have no rating") as info:
        validate_ratings(frame, images=["x", "y", "w"])
    assert info.value.problems == ["w"]
    ok = validate_ratings(frame, subjects=["a", "b", "zz"], images=["y", "x"])
    assert len(ok) == 3


def test_encode_sessions_repeats_and_image_order():
    frame = validate_ratings(pd.DataFrame({
        "subject": ["b", "a", "a", "a", "b"], "image": ["y", "x", "x", "y", "x"],
        "score": [1.0, 2.0, 3.0, 4.0, 5.0], "session": ["2", "1", "2", "1", "2"]}))
    enc = encode(frame)
    assert list(enc.subjects) == ["a", "b"] and list(enc.images) == ["y", "x"]
    assert enc.n_repeated == 1  # a rated x twice
    assert list(enc.groups.itertuples(index=False, name=None)) == [("a", "1"), ("a", "2"),
                                                                   ("b", "2")]
    assert list(enc.group) == [2, 0, 1, 0, 2]
    enc2 = encode(frame, images=["x", "y"])
    assert list(enc2.image) == [1, 0, 0, 1, 0]


def test_scale_checked_on_read_names_the_file_and_csv_line(tmp_path):
    path = write(tmp_path, "subject,image,score\na,x,10\nb,x,-1\na,y,50\nb,y,101\n")
    assert len(read_ratings(path)) == 4  # no scale: any finite score
    with pytest.raises(RatingsError, match="2 score") as info:
        read_ratings(path, scale=(0, 100))
    assert info.value.problems == [f"{path} line 3: -1", f"{path} line 5: 101"]
