"""AIGIQA-20K reader: the real release files, layouts, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import aigiqa.images
from aigiqa import load_database, validate_database
from aigiqa.databases.aigiqa20k import GENERATORS, INFO, generator_prefix, read_release_layout
from aigiqa.errors import AigiqaError, DatabaseError
from synthetic import header_only_png


# --- helpers ------------------------------------------------------------------------------------
def write_png(path: Path, size: int = 8, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path



TRAIN = pd.DataFrame({
    "name": ["DALLE2_0000.png", "SDXL_Turbo_0001.png", "LCM_SD1.5_0003.png", "SDXL_0004.png"],
    "prompt": ["a cat", "a dog, oil painting", 'a "quoted" bird', "a red car"],
    "mos": [3.5, 0.25, 4.75, 2.0],
})
VAL = pd.DataFrame({"name": ["MJ_0005.png", "IF_0006.png"], "prompt": ["a tree", "a house"]})
TEST = pd.DataFrame({"name": ["SSD1B_0007.png", "Dream_0008.png"], "prompt": ["a boat", "a sun"]})


def write_release(root: Path, *, fmt: str = "csv", header: bool = True, images: str = "split",
                  train: pd.DataFrame = TRAIN, val: pd.DataFrame = VAL,
                  test: pd.DataFrame = TEST) -> Path:
    """A small AIGIQA-20K-format folder; images in train/val/test ('split'), flat, or none."""
    root.mkdir(parents=True, exist_ok=True)
    for split, frame in (("train", train), ("val", val), ("test", test)):
        if fmt == "csv":
            frame.to_csv(root / f"info_{split}.csv", index=False, header=header)
        else:
            frame.to_excel(root / f"info_{split}.xlsx", index=False, header=header)
        if images != "none":
            folder = root / split if images == "split" else root
            for k, name in enumerate(frame["name"]):
                write_png(folder / name, value=k)
    return root


def records_tuple(db):
    return [(r.name, r.prompt, r.generator, r.split, r.targets) for r in db]


# --- the real release ---------------------------------------------------------------------------
def test_real_reference_files_load(shared):
    db = load_database("aigiqa20k", shared / "reference" / "aigiqa20k", check_images=False)
    assert len(db) == 20_000
    assert len(db.generators) == 15
    assert sorted(db.generators) == sorted(GENERATORS.values())
    assert len(db.labelled()) == 14_000
    assert [len(db.subset(split=s)) for s in ("train", "val", "test")] == [14_000, 2_000, 4_000]
    assert all(r.blind for r in db.subset(split="val")) and all(r.blind for r in db.subset(
        split="test"))
    mos = np.array([r.targets["mos"] for r in db.labelled()])
    assert 0 <= mos.min() < 0.2 and 4.9 < mos.max() <= 5
    first = db[0]
    assert first.name == "DALLE2_0000.png" and first.source == "info_train.csv row 2"
    assert first.prompt.startswith("A cyberpunk gopnik")
    assert db.info.main_target == "mos" and db.info.score_range == (0.0, 5.0)
    frame = db.to_frame()
    assert list(frame.columns[:6]) == ["name", "path", "prompt", "generator", "split", "mos"]
    assert frame["mos"].notna().sum() == 14_000


def test_real_generators_use_longest_prefix(shared):
    db = load_database("aigiqa20k", shared / "reference" / "aigiqa20k", check_images=False)
    by_prefix = {}
    for r in db:
        by_prefix.setdefault(generator_prefix(r.name), set()).add(r.generator)
    assert by_prefix["SDXL_Turbo"] == {"SDXL Turbo"}
    assert by_prefix["SDXL"] == {"Stable Diffusion XL"}
    assert by_prefix["LCM_SD1.5"] == {"LCM Stable Diffusion 1.5"}
    assert by_prefix["SD1.5"] == {"Stable Diffusion 1.5"}
    assert all(len(v) == 1 for v in by_prefix.values()) and len(by_prefix) == 15


def test_real_xlsx_and_csv_give_the_same_records(shared, tmp_path):
    ref = shared / "reference" / "aigiqa20k"
    only_xlsx = tmp_path / "xlsx"
    only_xlsx.mkdir()
    for split in ("train", "val", "test"):  # links: the files are read in place
        (only_xlsx / f"info_{split}.xlsx").symlink_to(ref / f"info_{split}.xlsx")
    from_xlsx = load_database("aigiqa20k", only_xlsx, check_images=False)
    from_csv = load_database("aigiqa20k", ref, check_images=False)
    assert from_xlsx[0].source == "info_train.xlsx row 2"
    assert [(r.name, r.prompt, r.generator, r.split) for r in from_xlsx] == [
        (r.name, r.prompt, r.generator, r.split) for r in from_csv]
    a = np.array([r.targets.get("mos", np.nan) for r in from_xlsx])
    b = np.array([r.targets.get("mos", np.nan) for r in from_csv])
    np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)


def test_generator_prefix():
    assert generator_prefix("SDXL_Turbo_0001.png") == "SDXL_Turbo"
    assert generator_prefix("LCM_SD1.5_0003.png") == "LCM_SD1.5"
    assert generator_prefix("SD1.4_12") == "SD1.4"
    assert generator_prefix("nodigits.png") is None
    assert generator_prefix("SDXL_Turbo.png") is None


# --- layouts and formats ------------------------------------------------------------------------
@pytest.mark.parametrize("images", ["split", "flat"])
def test_split_folders_and_flat_layout_with_image_check(tmp_path, images):
    root = write_release(tmp_path / images, images=images)
    db = load_database("aigiqa20k", root, check_images=True)
    assert len(db) == 8 and db.splits == ["train", "val", "test"]
    rec = db.record("SDXL_Turbo_0001.png")
    assert rec.generator == "SDXL Turbo" and rec.targets == {"mos": 0.25}
    expected_folder = root / "train" if images == "split" else root
    assert rec.path == expected_folder / "SDXL_Turbo_0001.png" and rec.path.is_file()
    assert db.record("MJ_0005.png").blind and db.record("MJ_0005.png").split == "val"
    assert validate_database("aigiqa20k", root) == []


def test_csv_without_header_equals_with_header(tmp_path):
    with_header = load_database("aigiqa20k", write_release(tmp_path / "h", images="none"),
                                check_images=False)
    without = load_database("aigiqa20k", write_release(tmp_path / "n", header=False,
                                                       images="none"), check_images=False)
    assert records_tuple(without) == records_tuple(with_header)
    assert without[0].source == "info_train.csv row 1"
    assert with_header[0].source == "info_train.csv row 2"
    assert with_header.record('LCM_SD1.5_0003.png').prompt == 'a "quoted" bird'


def test_xlsx_and_csv_written_from_the_same_frame_agree(tmp_path):
    csv_db = load_database("aigiqa20k", write_release(tmp_path / "c", images="none"),
                           check_images=False)
    xlsx_db = load_database("aigiqa20k", write_release(tmp_path / "x", fmt="xlsx",
                                                       images="none"), check_images=False)
    assert records_tuple(xlsx_db) == records_tuple(csv_db)
    assert xlsx_db[0].source == "info_train.xlsx row 2"


def test_csv_is_preferred_over_xlsx(tmp_path):
    root = write_release(tmp_path, images="none")
    changed = TRAIN.assign(mos=[1.0, 1.0, 1.0, 1.0])
    changed.to_excel(root / "info_train.xlsx", index=False)
    db = load_database("aigiqa20k", root, check_images=False)
    assert db.record("DALLE2_0000.png").targets["mos"] == 3.5
    (root / "info_train.csv").unlink()
    db = load_database("aigiqa20k", root, check_images=False)
    assert db.record("DALLE2_0000.png").targets["mos"] == 1.0


def test_mos_in_val_and_test_is_read_when_present(tmp_path):
    root = write_release(tmp_path, images="none", val=VAL.assign(mos=[1.5, 2.5]))
    db = load_database("aigiqa20k", root, check_images=False)
    assert db.record("MJ_0005.png").targets == {"mos": 1.5}
    assert db.record("SSD1B_0007.png").blind
    assert len(db.labelled()) == 6


def test_read_release_layout_with_own_generators(tmp_path):
    root = tmp_path / "own"
    root.mkdir()
    pd.DataFrame({"name": ["Foo_Bar_01.png", "Baz_2.png"], "prompt": ["x", "y"],
                  "mos": [1.0, 2.0]}).to_csv(root / "info_train.csv", index=False)
    db = read_release_layout(root, INFO, {"Foo_Bar": "Foo Bar 1.0", "Baz": "Baz"},
                             splits=["train"])
    assert [r.generator for r in db] == ["Foo Bar 1.0", "Baz"]
    with pytest.raises(DatabaseError) as err:
        read_release_layout(root, INFO, {"Baz": "Baz"}, splits=["train"])
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("info_train.csv row 2")
    assert "Foo_Bar_01.png" in err.value.problems[0]


# --- bad annotation input -----------------------------------------------------------------------
def test_missing_column_names_file_and_column(tmp_path):
    root = write_release(tmp_path, images="none", train=TRAIN.drop(columns="mos"))
    with pytest.raises(DatabaseError, match=r"info_train\.csv.*missing column\(s\) mos"):
        load_database("aigiqa20k", root, check_images=False)


def test_missing_annotation_file_is_reported(tmp_path):
    root = write_release(tmp_path, images="none")
    (root / "info_test.csv").unlink()
    with pytest.raises(DatabaseError) as err:
        load_database("aigiqa20k", root, check_images=False)
    assert any("info_test" in p and "not found" in p for p in err.value.problems)
    db = load_database("aigiqa20k", root, check_images=False, splits=["train", "val"])
    assert len(db) == 6


def test_all_annotation_problems_of_all_files_are_collected(tmp_path):
    train = TRAIN.copy()
    train.loc[0, "mos"] = np.nan                      # row 2: empty
    train["mos"] = train["mos"].astype(object)
    train.loc[1, "mos"] = "n/a"                       # row 3: not a number
    train.loc[2, "mos"] = 7.5                         # row 4: out of range
    train.loc[3, "name"] = "Unknown_0004.png"         # row 5: unknown generator
    val = pd.concat([VAL, VAL.iloc[[0]]], ignore_index=True)   # duplicate in the same file
    test = TEST.assign(name=["SSD1B_0007.png", "DALLE2_0000.png"])  # duplicate across files
    root = write_release(tmp_path, images="none", train=train, val=val, test=test)
    with pytest.raises(DatabaseError) as err:
        load_database("aigiqa20k", root, check_images=False)
    problems = err.value.problems
    expected = [
        ("info_train.csv row 2", "empty 'mos'"),
        ("info_train.csv row 3", "not a number"),
        ("info_train.csv row 4", "outside the score range"),
        ("info_train.csv row 5", "Unknown_0004.png"),
        ("info_val.csv row 4", "duplicate name 'MJ_0005.png' (first at info_val.csv row 2)"),
        ("info_test.csv row 3", "duplicate name 'DALLE2_0000.png' (first at info_train.csv row 2"),
    ]
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in problems), (where, problems)
    assert len(problems) == len(expected)
    assert validate_database("aigiqa20k", root) == problems
    assert isinstance(err.value, AigiqaError) and "6 annotation problem" in str(err.value)


def test_negative_and_nan_text_mos_are_problems(tmp_path):
    train = TRAIN.assign(mos=[-0.5, "nan", 5.0, 0.0])
    root = write_release(tmp_path, images="none", train=train)
    problems = validate_database("aigiqa20k", root)
    assert len(problems) == 2
    assert problems[0].startswith("info_train.csv row 2") and "-0.5" in problems[0]
    assert problems[1].startswith("info_train.csv row 3") and "'nan'" in problems[1]


def test_empty_name_and_prompt_are_problems(tmp_path):
    train = TRAIN.copy()
    train.loc[1, "name"] = None
    train.loc[2, "prompt"] = "  "
    root = write_release(tmp_path, images="none", train=train)
    problems = validate_database("aigiqa20k", root)
    assert problems == [
        "info_train.csv row 3: empty 'name'",
        "info_train.csv row 4: empty 'prompt'",
    ]


def test_unknown_option_and_split(tmp_path):
    root = write_release(tmp_path, images="none")
    with pytest.raises(DatabaseError, match="unknown option.*'colour'"):
        load_database("aigiqa20k", root, check_images=False, colour="red")
    with pytest.raises(DatabaseError, match="unknown split"):
        load_database("aigiqa20k", root, check_images=False, splits=["dev"])


def test_headerless_file_with_too_many_columns(tmp_path):
    root = write_release(tmp_path, images="none")
    TRAIN.assign(extra=1).to_csv(root / "info_train.csv", index=False, header=False)
    with pytest.raises(DatabaseError, match=r"info_train\.csv: no header row and 4 columns"):
        load_database("aigiqa20k", root, check_images=False)


def test_empty_annotation_file(tmp_path):
    root = write_release(tmp_path, images="none")
    (root / "info_val.csv").write_bytes(b"")
    with pytest.raises(DatabaseError, match=r"info_val\.csv: annotation table is empty"):
        load_database("aigiqa20k", root, check_images=False)


# --- bad images ---------------------------------------------------------------------------------
def test_all_missing_images_are_listed(tmp_path):
    root = write_release(tmp_path)
    for name in ("DALLE2_0000.png", "SDXL_0004.png"):
        (root / "train" / name).unlink()
    (root / "test" / "Dream_0008.png").unlink()
    with pytest.raises(DatabaseError) as err:
        load_database("aigiqa20k", root)
    problems = err.value.problems
    assert len(problems) == 3
    for name, where in (("DALLE2_0000.png", "info_train.csv row 2"),
                        ("SDXL_0004.png", "info_train.csv row 5"),
                        ("Dream_0008.png", "info_test.csv row 3")):
        assert any(name in p and "not found" in p and where in p for p in problems), problems
    assert "3 of 8 images" in str(err.value)
    assert validate_database("aigiqa20k", root) == problems


def test_unreadable_images_are_each_named(tmp_path):
    root = write_release(tmp_path)
    truncated = root / "train" / "DALLE2_0000.png"
    write_png(truncated, size=64)
    truncated.write_bytes(truncated.read_bytes()[:200])
    (root / "train" / "SDXL_Turbo_0001.png").write_bytes(b"")
    (root / "val" / "MJ_0005.png").write_bytes(b"this is not an image")
    (root / "test" / "SSD1B_0007.png").write_bytes(header_only_png(100_000, 100_000, idat=True))
    problems = validate_database("aigiqa20k", root)
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert "DALLE2_0000.png: cannot read image" in text and "info_train.csv row 2" in text
    assert "SDXL_Turbo_0001.png: image file is empty (0 bytes)" in text
    assert "MJ_0005.png: cannot read image" in text and "info_val.csv row 2" in text
    assert "SSD1B_0007.png" in text and "decompression bomb" in text
    assert "info_test.csv row 2" in text
    with pytest.raises(DatabaseError, match="4 of 8 images"):
        load_database("aigiqa20k", root)


def test_decompression_bomb_above_max_pixels(tmp_path, monkeypatch):
    root = write_release(tmp_path)
    write_png(root / "train" / "SDXL_0004.png", size=20)   # 400 pixels
    monkeypatch.setattr(aigiqa.images, "MAX_PIXELS", 100)
    with pytest.raises(DatabaseError) as err:
        load_database("aigiqa20k", root)
    assert len(err.value.problems) == 1
    assert "SDXL_0004.png" in err.value.problems[0]
    assert "exceeds the limit of 100 pixels" in err.value.problems[0]
    assert "info_train.csv row 5" in err.value.problems[0]


def test_header_only_val_file_warns_that_the_split_is_empty(tmp_path):
    root = write_release(tmp_path, val=VAL.head(0))
    with pytest.warns(UserWarning, match=r"info_val\.csv: no rows: the val split is empty"):
        db = load_database("aigiqa20k", root)
    assert db.splits == ["train", "test"]
