"""Preference readers: the real ImageReward test file, small HPD v2 and Pick-a-Pic files."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pandas as pd
import pytest

from aigiqa.comparisons import check_comparisons
from aigiqa.databases import load_database, validate_database
from aigiqa.databases.pickapic import extract_pickapic_images
from aigiqa.databases.preference import PreferenceDatabase
from aigiqa.errors import AigiqaError, ComparisonError, DatabaseError


def test_imagereward_real_test_file(shared):
    root = shared / "reference" / "imagereward"
    items = json.loads((root / "test.json").read_text())
    db = load_database("imagereward-test", root, check_images=False)
    assert isinstance(db, PreferenceDatabase) and db.accuracy_rule == "imagereward"
    assert len(db.groups) == 466 and len(db) == 2720
    comp = db.comparisons()
    assert list(comp.columns)[:5] == ["group", "a", "b", "outcome", "annotator"]
    assert len(comp) == sum(math.comb(len(it["generations"]), 2) for it in items)
    # every comparison agrees with the ranks in the file (lower rank is better, equal = tie)
    rank = {g: r for it in items for g, r in zip(it["generations"], it["ranking"], strict=True)}
    expected = [("a" if rank[a] < rank[b] else "b" if rank[a] > rank[b] else "tie")
                for a, b in zip(comp["a"], comp["b"], strict=True)]
    assert comp["outcome"].tolist() == expected
    n_ties = sum(1 for it in items for i in range(len(it["ranking"]))
                 for j in range(i + 1, len(it["ranking"])) if it["ranking"][i] == it["ranking"][j])
    assert (comp["outcome"] == "tie").sum() == n_ties > 0
    rec = db.record(items[0]["generations"][0])
    assert rec.prompt == items[0]["prompt"] and rec.hyper["group"] == items[0]["id"]
    assert rec.path == root / items[0]["generations"][0] and rec.blind
    sub = db.subset(items[0]["generations"][:3])
    assert isinstance(sub, PreferenceDatabase) and len(sub.comparisons()) == 3


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_hpdv2_rank_and_raw_annotations(tmp_path):
    (tmp_path / "test").mkdir()
    _write(tmp_path / "test.json", [
        {"prompt": "a cat", "image_path": ["c0.jpg", "c1.jpg", "c2.jpg"], "rank": [2, 0, 1],
         "raw_annotations": [[2, 0, 1], [1, 0, 2]], "user_hash": ["u1", "u2"]},
        {"prompt": "a dog", "image_path": ["d0.jpg", "d1.jpg"], "rank": [0, 1],
         "raw_annotations": [[0, 1]], "user_hash": ["u3"]},
    ])
    db = load_database("hpdv2", tmp_path, check_images=False)
    assert db.accuracy_rule == "hpsv2"
    comp = db.comparisons()
    assert db.groups == ["1", "2"] and len(db) == 5
    assert comp[["a", "b", "outcome"]].values.tolist() == [
        ["c0.jpg", "c1.jpg", "b"], ["c0.jpg", "c2.jpg", "b"], ["c1.jpg", "c2.jpg", "a"],
        ["d0.jpg", "d1.jpg", "a"]]
    assert db.record("c0.jpg").path == tmp_path / "test" / "c0.jpg"
    raw = load_database("hpdv2", tmp_path, check_images=False, annotations="raw").comparisons()
    assert len(raw) == 7 and raw["annotator"].tolist() == ["u1"] * 3 + ["u2"] * 3 + ["u3"]
    assert raw["outcome"].tolist()[3:6] == ["b", "a", "a"]
    with pytest.raises(DatabaseError, match="annotations='x'"):
        load_database("hpdv2", tmp_path, annotations="x")
    # images are checked like any database's
    assert len(validate_database("hpdv2", tmp_path)) == 5


@pytest.mark.parametrize("item, message", [
    ({"id": "g", "prompt": "p", "generations": ["a.png", "b.png"], "ranking": [1, 2, 3]},
     "'ranking' has 3 entries for 2 images"),
    ({"id": "g", "prompt": "p", "generations": ["a.png"], "ranking": [1]},
     "a group needs at least two images"),
    ({"id": "g", "prompt": "p", "generations": ["a.png", "a.png"], "ranking": [1, 2]},
     "image 'a.png' is listed twice"),
    ({"id": "g", "prompt": "p", "generations": ["a.png", "b.png"], "ranking": [1, "x"]},
     "ranking[1] = 'x' is not a finite number"),
    ({"id": "g", "prompt": "p", "generations": ["../a.png", "b.png"], "ranking": [1, 2]},
     "has a '..' part"),
    ({"id": "g", "generations": ["a.png", "b.png"], "ranking": [1, 2]}, "missing 'prompt'"),
])
def test_imagereward_bad_items_name_file_and_item(tmp_path, item, message):
    good = {"id": "h", "prompt": "q", "generations": ["c.png", "d.png"], "ranking": [1, 1]}
    _write(tmp_path / "test.json", [good, item])
    with pytest.raises(DatabaseError) as err:
        load_database("imagereward-test", tmp_path, check_images=False)
    assert isinstance(err.value, AigiqaError)
    assert any(p.startswith("test.json item 2: ") and message in p for p in err.value.problems)


def test_imagereward_all_tie_group_and_duplicates(tmp_path):
    items = [{"id": "g", "prompt": "p", "generations": ["a.png", "b.png", "c.png"],
              "ranking": [1, 1, 1]}]
    _write(tmp_path / "test.json", items)
    comp = load_database("imagereward-test", tmp_path, check_images=False).comparisons()
    assert comp["outcome"].tolist() == ["tie"] * 3   # rule: an all-tie group gives ties only
    _write(tmp_path / "test.json", items + [dict(items[0], generations=["d.png", "e.png",
                                                                         "f.png"])])
    with pytest.raises(DatabaseError, match="duplicate group id 'g'"):
        load_database("imagereward-test", tmp_path, check_images=False)
    _write(tmp_path / "test.json", items + [dict(items[0], id="h")])
    with pytest.raises(DatabaseError, match="duplicate name 'a.png'"):
        load_database("imagereward-test", tmp_path, check_images=False)


def _pickapic(folder: Path, rows: list[dict], name: str = "test-00000-of-00001.parquet") -> Path:
    base = {"caption": "a cat", "has_label": True, "are_different": True, "user_id": 7,
            "model_0": "sdxl", "model_1": "sd15", "jpg_0": b"", "jpg_1": b""}
    (folder / "data").mkdir(exist_ok=True)
    path = folder / "data" / name
    pd.DataFrame([{**base, **r} for r in rows]).to_parquet(path)
    return path


def test_pickapic_shards(tmp_path):
    _pickapic(tmp_path, [
        {"image_0_uid": "u1", "image_1_uid": "u2", "label_0": 1.0, "label_1": 0.0,
         "jpg_0": b"one", "jpg_1": b"two"},
        {"image_0_uid": "u2", "image_1_uid": "u3", "label_0": 0.5, "label_1": 0.5, "user_id": 8},
        {"image_0_uid": "u3", "image_1_uid": "u1", "label_0": 0.0, "label_1": 1.0},
        {"image_0_uid": "u4", "image_1_uid": "u5", "label_0": 0.0, "label_1": 0.0,
         "has_label": False},
        {"image_0_uid": "u6", "image_1_uid": "u6", "label_0": 1.0, "label_1": 0.0,
         "are_different": False},
        {"caption": "a dog", "image_0_uid": "u7", "image_1_uid": "u8", "label_0": 1.0,
         "label_1": 0.0},
    ])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        db = load_database("pick-a-pic", tmp_path, check_images=False)
    text = " ".join(str(w.message) for w in caught)
    assert "1 row(s) without a label" in text and "1 row(s) showing the same image" in text
    comp = db.comparisons()
    assert comp[["group", "a", "b", "outcome", "annotator"]].values.tolist() == [
        ["a cat", "u1", "u2", "a", "7"], ["a cat", "u2", "u3", "tie", "8"],
        ["a cat", "u3", "u1", "b", "7"], ["a dog", "u7", "u8", "a", "7"]]
    assert db.record("u1").generator == "sdxl" and db.record("u2").generator == "sd15"
    assert db.accuracy_rule == db.subset(["u1", "u2"]).accuracy_rule == "pickscore"
    assert db.record("u1").path == tmp_path / "images" / "u1.jpg"
    assert extract_pickapic_images(tmp_path, tmp_path / "images") == 2
    assert (tmp_path / "images" / "u2.jpg").read_bytes() == b"two"
    assert not list((tmp_path / "images").glob(".*"))  # written through a temporary file


def test_pickapic_extract_refuses_an_id_with_a_folder_part(tmp_path):
    _pickapic(tmp_path, [{"image_0_uid": "u1", "image_1_uid": "../../escape", "label_0": 1.0,
                          "label_1": 0.0, "jpg_0": b"one", "jpg_1": b"evil"}])
    with pytest.raises(DatabaseError, match=r"row 1: image_1_uid '../../escape' is not a plain"):
        extract_pickapic_images(tmp_path, tmp_path / "out" / "images")
    assert not list(tmp_path.rglob("escape*"))


@pytest.mark.parametrize("row, message", [
    ({"image_0_uid": "u1", "image_1_uid": "u2", "label_0": 0.7, "label_1": 0.3},
     "labels (label_0, label_1) = (0.7, 0.3) are not"),
    ({"image_0_uid": "u1", "image_1_uid": "u1", "label_0": 1.0, "label_1": 0.0},
     "image 'u1' is compared with itself"),
    ({"caption": "other", "image_0_uid": "u1", "image_1_uid": "u9", "label_0": 1.0,
      "label_1": 0.0}, "image 'u1' has caption 'other'"),
])
def test_pickapic_bad_rows_name_file_and_row(tmp_path, row, message):
    good = {"image_0_uid": "u1", "image_1_uid": "u2", "label_0": 1.0, "label_1": 0.0}
    _pickapic(tmp_path, [good, row])
    with pytest.raises(DatabaseError) as err:
        load_database("pick-a-pic", tmp_path, check_images=False)
    assert any(p.startswith("test-00000-of-00001.parquet row 2: ") and message in p
               for p in err.value.problems)
    with pytest.raises(DatabaseError, match="no parquet shards 'validation-"):
        load_database("pick-a-pic", tmp_path, split="validation")


def test_comparison_table_errors_name_rows():
    frame = pd.DataFrame({"a": ["x", "y", "z", ""], "b": ["y", "y", "w", "q"],
                          "outcome": ["a", "b", "left", "a"]})
    with pytest.raises(ComparisonError) as err:
        check_comparisons(frame, "pairs.csv")
    assert err.value.problems == [
        "pairs.csv row 2: image 'y' is compared with itself",
        "pairs.csv row 3: outcome 'left' is not one of ['a', 'b', 'tie']",
        "pairs.csv row 4: image names a='', b='q' must be non-empty strings"]
    with pytest.raises(ComparisonError, match="unknown image"):
        check_comparisons(frame.iloc[:1], known={"x"})
    with pytest.raises(ComparisonError, match="missing column"):
        check_comparisons(frame[["a", "b"]])


def test_pickapic_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    _pickapic(tmp_path, [{"image_0_uid": "u1", "image_1_uid": "u2", "label_0": 1.0,
                          "label_1": 0.0}])
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DatabaseError, match=r"needs pyarrow \(pip install 'aigiqa\[preference"):
        load_database("pick-a-pic", tmp_path, check_images=False)
