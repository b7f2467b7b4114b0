"""Record / Database contract: order, uniqueness, frames, subsets."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.errors import DatabaseError

INFO = DatabaseInfo("toy", (0.0, 5.0), ("mos",))


def _records():
    return [
        Record("a.png", Path("a.png"), "p a", "G1", "train", {"mos": 1.0}, {"cfg": 3},
               "f.csv row 2"),
        Record("b.png", Path("b.png"), "p b", "G2", "train", {"mos": 2.0}, {"cfg": 7},
               "f.csv row 3"),
        Record("c.png", Path("c.png"), "p c", "G1", "test", {}, {}, "g.csv row 2"),
    ]


def test_sequence_and_queries():
    db = Database(INFO, _records(), "/data")
    assert len(db) == 3 and db[0].name == "a.png" and [r.name for r in db] == ["a.png", "b.png",
                                                                              "c.png"]
    assert db.splits == ["train", "test"]
    assert db.generators == ["G1", "G2"]
    assert db.hyper_names == ["cfg"]
    assert [r.name for r in db.labelled()] == ["a.png", "b.png"]
    assert db.record("c.png").blind and not db.record("a.png").blind
    with pytest.raises(KeyError, match="no image named 'z.png'"):
        db.record("z.png")


def test_to_frame_columns_and_blind_nan():
    frame = Database(INFO, _records(), "/data").to_frame()
    assert list(frame.columns) == ["name", "path", "prompt", "generator", "split", "mos", "cfg"]
    assert frame.loc[1, "mos"] == 2.0 and math.isnan(frame.loc[2, "mos"])


def test_subset():
    db = Database(INFO, _records(), "/data")
    assert [r.name for r in db.subset(split="train")] == ["a.png", "b.png"]
    assert [r.name for r in db.subset(["c.png", "a.png"])] == ["c.png", "a.png"]


def test_duplicates_are_all_named():
    recs = _records() + [Record("a.png", Path("x"), source="h.csv row 9"),
                         Record("c.png", Path("y"), source="h.csv row 10")]
    with pytest.raises(DatabaseError) as info:
        Database(INFO, recs, "/data")
    assert len(info.value.problems) == 2
    assert "h.csv row 9" in str(info.value) and "first at f.csv row 2" in str(info.value)
    assert "h.csv row 10" in str(info.value)
