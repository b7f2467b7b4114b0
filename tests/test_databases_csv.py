"""The generic csv/xlsx reader and the shared table helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aigiqa import load_database, validate_database
from aigiqa.databases.tables import (
    duplicate_problems,
    find_table,
    number_column,
    read_table,
    text_column,
)
from aigiqa.errors import DatabaseError

FRAME = pd.DataFrame({
    "image": ["a.png", "b.png", "c.png", "d.png"],
    "text": ["a cat", "a dog", "a cow", "a pig"],
    "MOS": [1.5, 4.0, None, 3.0],
    "align": [2.0, 3.0, 4.0, 5.0],
    "set": ["train", "train", "test", "test"],
    "model": ["m1", "m2", None, "m1"],
    "steps": [10, 20, 30, 40],
})
OPTIONS = dict(file="scores.csv", name_column="image", prompt_column="text",
               target_columns={"mos": "MOS", "alignment": "align"}, split_column="set",
               generator_column="model", hyper_columns=["steps"], score_range=(1, 5))


def test_generic_csv_maps_columns(tmp_path):
    FRAME.to_csv(tmp_path / "scores.csv", index=False)
    for name in FRAME["image"]:
        Image.new("RGB", (4, 4)).save(tmp_path / name)
    db = load_database("csv", tmp_path, **OPTIONS)
    assert db.info.target_names == ("mos", "alignment") and db.info.score_range == (1.0, 5.0)
    b = db.record("b.png")
    assert (b.prompt, b.generator, b.split) == ("a dog", "m2", "train")
    assert b.targets == {"mos": 4.0, "alignment": 3.0} and b.hyper == {"steps": "20"}
    assert db.record("c.png").targets == {"alignment": 4.0}     # empty MOS: not labelled for mos
    assert len(db.labelled()) == 3 and db.splits == ["train", "test"]
    assert db.record("d.png").source == "scores.csv row 5"


def test_generic_xlsx_headerless_and_image_dir(tmp_path):
    FRAME.to_excel(tmp_path / "scores.xlsx", index=False, header=False)
    db = load_database("csv", tmp_path, check_images=False, file="scores.xlsx",
                       columns=list(FRAME.columns), image_dir="imgs",
                       **{k: v for k, v in OPTIONS.items() if k != "file"})
    assert len(db) == 4 and db[0].source == "scores.xlsx row 1"
    assert db[0].path == tmp_path / "imgs" / "a.png"


def test_generic_csv_problems(tmp_path):
    frame = FRAME.copy()
    frame["MOS"] = frame["MOS"].astype(object)
    frame["align"] = frame["align"].astype(object)
    frame.loc[0, "MOS"] = 0.5
    frame.loc[1, "align"] = "good"
    frame.loc[3, "image"] = "a.png"
    frame.to_csv(tmp_path / "scores.csv", index=False)
    problems = validate_database("csv", tmp_path, **OPTIONS)
    assert problems == [
        "scores.csv row 2: 'MOS' = 0.5 is outside the score range [1, 5]",
        "scores.csv row 3: 'align' is 'good', not a number",
        "scores.csv row 5: duplicate name 'a.png' (first at scores.csv row 2)",
    ]


def test_generic_csv_option_errors(tmp_path):
    FRAME.to_csv(tmp_path / "scores.csv", index=False)
    with pytest.raises(DatabaseError, match="option file="):
        load_database("csv", tmp_path, check_images=False, score_range=(1, 5))
    with pytest.raises(DatabaseError, match="score_range"):
        load_database("csv", tmp_path, check_images=False, file="scores.csv")
    with pytest.raises(DatabaseError, match="low < high"):
        load_database("csv", tmp_path, check_images=False, file="scores.csv",
                      name_column="image", target_columns="MOS", score_range=(5, 1))
    with pytest.raises(DatabaseError, match=r"missing column\(s\) quality"):
        load_database("csv", tmp_path, check_images=False, file="scores.csv",
                      name_column="image", target_columns="quality", score_range=(1, 5))
    with pytest.raises(DatabaseError, match="unknown option.*'prompt_col'"):
        load_database("csv", tmp_path, check_images=False, file="scores.csv",
                      score_range=(1, 5), prompt_col="text")
    with pytest.raises(DatabaseError, match="nope.csv: annotation file not found"):
        load_database("csv", tmp_path, check_images=False, file="nope.csv", score_range=(1, 5))


# --- tables.py ----------------------------------------------------------------------------------
def test_read_table_header_detection_is_case_insensitive(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(" Name ,PROMPT,mos\nx.png,hi,1.5\n")
    table = read_table(path, ("name", "prompt", "mos"))
    assert list(table.frame.columns) == ["name", "prompt", "mos"]
    assert table.where(0) == "t.csv row 2"
    path.write_text("x.png,hi,1.5\ny.png,,2\n")
    table = read_table(path, ("name", "prompt", "mos"))
    assert table.first_row == 1 and len(table) == 2
    problems: list[str] = []
    assert text_column(table, "prompt", problems) == ["hi", None]
    assert problems == ["t.csv row 2: empty 'prompt'"]
    values = number_column(table, "mos", problems, score_range=(0, 5))
    np.testing.assert_array_equal(values, [1.5, 2.0])


def test_read_table_keeps_na_like_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("name,prompt\nNA.png,null\n")
    problems: list[str] = []
    table = read_table(path, ("name", "prompt"))
    assert text_column(table, "name", problems) == ["NA.png"]
    assert text_column(table, "prompt", problems) == ["null"] and problems == []


def test_find_table_prefers_csv(tmp_path):
    assert find_table(tmp_path, "info") is None
    (tmp_path / "info.xlsx").write_bytes(b"")
    assert find_table(tmp_path, "info") == tmp_path / "info.xlsx"
    (tmp_path / "info.csv").write_text("x")
    assert find_table(tmp_path, "info") == tmp_path / "info.csv"


def test_corrupt_xlsx_is_a_database_error(tmp_path):
    (tmp_path / "t.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatabaseError, match=r"t\.xlsx: cannot read annotation table"):
        read_table(tmp_path / "t.xlsx", ("name",))


def test_duplicate_problems_name_both_places():
    assert duplicate_problems(["a", "b", "a", None, None], ["r1", "r2", "r3", "r4", "r5"]) == [
        "r3: duplicate name 'a' (first at r1)"]


def test_xlsx_names_the_sheet_read_and_the_other_sheets(tmp_path):
    path = tmp_path / "scores.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"note": ["read me first"]}).to_excel(book, sheet_name="Notes", index=False)
        FRAME.to_excel(book, sheet_name="Data", index=False)
    options = {**OPTIONS, "file": "scores.xlsx"}
    with pytest.raises(DatabaseError) as err:
        load_database("csv", tmp_path, check_images=False, **options)
    assert str(err.value).startswith(
        f"{path} sheet 'Notes': missing column(s) image, text, MOS, align, set, model, steps "
        "(found: note); expected ")
    assert str(err.value).endswith("; the workbook's other sheets: 'Data'")
    with pytest.raises(DatabaseError, match=r"no sheet 'Scores'; the workbook has 'Notes', 'Data'"):
        read_table(path, ("image", "MOS"), sheet="Scores")
    table = read_table(path, ("image", "MOS"), sheet="Data")
    assert table.sheet == "Data" and table.where(0) == "scores.xlsx sheet 'Data' row 2"
    db = load_database("csv", tmp_path, check_images=False, sheet=1, **options)
    assert db.record("b.png").source == "scores.xlsx sheet 'Data' row 3"
    with pd.ExcelWriter(path) as book:     # the right columns on the first of two sheets
        FRAME.to_excel(book, sheet_name="Data", index=False)
        pd.DataFrame({"note": ["x"]}).to_excel(book, sheet_name="Notes", index=False)
    with pytest.warns(UserWarning, match=r"scores\.xlsx: read the first sheet, 'Data', of "
                                         r"'Data', 'Notes'"):
        db = load_database("csv", tmp_path, check_images=False, **options)
    assert db.record("a.png").source == "scores.xlsx sheet 'Data' row 2"


def test_one_sheet_workbook_rows_keep_the_file_label(tmp_path):
    FRAME.to_excel(tmp_path / "s.xlsx", index=False)
    table = read_table(tmp_path / "s.xlsx", ("image",))
    assert table.sheet == "Sheet1" and table.where(0) == "s.xlsx row 2"


@pytest.mark.parametrize("sep, said", [(";", "';'"), ("\t", "tabs")])
def test_missing_columns_error_names_another_delimiter(tmp_path, sep, said):
    FRAME.to_csv(tmp_path / "scores.csv", index=False, sep=sep)
    with pytest.raises(DatabaseError) as err:
        load_database("csv", tmp_path, check_images=False, **OPTIONS)
    assert f"scores.csv seems to use {said} as delimiter, but .csv files are read with ','" in (
        str(err.value))
    (tmp_path / "info_train.csv").write_text(sep.join(["name", "prompt", "mos"]) + "\n"
                                             + sep.join(["SDXL_0001.png", "a", "1"]) + "\n")
    with pytest.raises(DatabaseError, match=f"seems to use {said} as delimiter"):
        read_table(tmp_path / "info_train.csv", ("name", "prompt", "mos"))
