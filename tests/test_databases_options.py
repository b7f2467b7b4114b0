"""Reader options from text (`--option key=value`), typed from each reader's signature."""

from __future__ import annotations

import pytest

from aigiqa.databases.options import parse_options, reader_options
from aigiqa.databases.registry import get_reader, list_databases
from aigiqa.errors import DatabaseError


def test_csv_options_are_typed():
    assert parse_options("csv", [
        "file=scores.csv", "name_column=image", "target_columns=mos=MOS,alignment=align",
        "score_range=1,5", "hyper_columns=steps,cfg", "sheet=1", "columns=image,MOS",
        "image_dir=/data/imgs",
    ]) == {
        "file": "scores.csv", "name_column": "image",
        "target_columns": {"mos": "MOS", "alignment": "align"}, "score_range": (1.0, 5.0),
        "hyper_columns": ["steps", "cfg"], "sheet": 1, "columns": ["image", "MOS"],
        "image_dir": "/data/imgs",
    }
    assert parse_options("csv", ["target_columns=MOS", "sheet=Data"]) == {
        "target_columns": "MOS", "sheet": "Data"}
    assert parse_options("csv", ["target_columns=q,a"]) == {"target_columns": ["q", "a"]}
    assert parse_options("csv", None) == {}


def test_other_readers_options():
    assert parse_options("aigiqa20k", ["splits=train,test"]) == {"splits": ["train", "test"]}
    assert parse_options("pku-aigiqa-4k", ["score_range=0,5"]) == {"score_range": (0.0, 5.0)}
    assert parse_options("agiqa3k", ["image_dir=imgs"]) == {"image_dir": "imgs"}
    for name in list_databases():   # every built-in reader's annotations can be read
        assert "follow_symlinks" not in reader_options(get_reader(name))


@pytest.mark.parametrize("pairs, message", [
    (["nope=1"], "--option nope: csv has no such option (options: file, name_column, "),
    (["file"], "--option 'file': expected key=value"),
    (["=x"], "--option '=x': expected key=value"),
    (["file=a.csv", "file=b.csv"], "--option file: given twice"),
    (["score_range=x"], "--option score_range='x': expected 2 numbers separated by ',' "
                        "(e.g. 1,5)"),
    (["score_range=1,b"], "--option score_range='1,b': 'b' is not a number"),
    (["target_columns=mos=MOS,align"], "--option target_columns='mos=MOS,align': expected "
                                       "key=value pairs"),
    (["follow_symlinks=true"], "--option follow_symlinks: use --follow-symlinks instead"),
])
def test_bad_options_are_one_line_errors_naming_the_option(pairs, message):
    with pytest.raises(DatabaseError) as err:
        parse_options("csv", pairs)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_unknown_database():
    with pytest.raises(DatabaseError, match="unknown database 'nope'"):
        parse_options("nope", ["a=b"])
