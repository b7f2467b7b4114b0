"""AGIQA-3K and AGIQA-1K readers: the real release files plus written bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aigiqa import load_database, validate_database
from aigiqa.errors import DatabaseError


def test_agiqa3k_real_file(shared):
    db = load_database("agiqa3k", shared / "reference" / "agiqa3k", check_images=False)
    assert len(db) == 2982
    assert db.info.target_names[0] == "quality" and "alignment" in db.info.target_names
    assert len(db.generators) == 6
    assert len(db.labelled()) == 2982
    rec = db.record("sd1.5_highcorr_000.jpg")
    assert rec.generator == "Stable Diffusion 1.5"
    assert rec.hyper["variant"] == "highcorr" and rec.hyper["cfg"] == "high"
    assert rec.hyper["steps"] == "default" and rec.hyper["prompt_index"] == 0
    assert db.record("midjourney_lowstep_005.jpg").hyper["steps"] == "low"
    assert set(rec.targets) == {"quality", "alignment", "quality_std", "alignment_std"}
    frame = db.to_frame()
    raw = pd.read_csv(shared / "reference" / "agiqa3k" / "data.csv")
    np.testing.assert_allclose(frame["quality"], raw["mos_quality"])
    np.testing.assert_allclose(frame["alignment_std"], raw["std_align"])
    assert frame["style"].notna().sum() == raw["style"].notna().sum()
    counts = frame.groupby("generator").size()
    assert counts["Stable Diffusion 1.5"] == 1200 and counts["DALL-E 2"] == 290


def _agiqa3k_frame(shared, n=4):
    return pd.read_csv(shared / "reference" / "agiqa3k" / "data.csv").head(n)


def test_agiqa3k_bad_rows_all_reported(shared, tmp_path):
    frame = _agiqa3k_frame(shared)
    frame.loc[0, "mos_quality"] = 9.0
    frame.loc[1, "name"] = "Imagen_normal_001.jpg"
    frame.loc[2, "mos_align"] = np.nan
    frame.loc[3, "name"] = frame.loc[0, "name"]
    frame.to_csv(tmp_path / "data.csv", index=False)
    problems = validate_database("agiqa3k", tmp_path)
    assert len(problems) == 4, problems
    assert problems[0].startswith("data.csv row 2") and "outside the score range" in problems[0]
    assert any(p.startswith("data.csv row 3") and "Imagen_normal_001.jpg" in p for p in problems)
    assert any(p.startswith("data.csv row 4") and "empty 'mos_align'" in p for p in problems)
    assert any(p.startswith("data.csv row 5") and "duplicate name" in p for p in problems)


def test_agiqa3k_images_in_release_folder(shared, tmp_path):
    frame = _agiqa3k_frame(shared, 3)
    frame.to_csv(tmp_path / "data.csv", index=False)
    folder = tmp_path / "AGIQA-3K"
    folder.mkdir()
    for name in frame["name"][:2]:
        Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / name)
    with pytest.raises(DatabaseError) as err:
        load_database("agiqa3k", tmp_path)
    assert len(err.value.problems) == 1 and frame["name"][2] in err.value.problems[0]
    Image.new("RGB", (8, 8)).save(folder / frame["name"][2])
    db = load_database("agiqa3k", tmp_path)
    assert db[0].path == folder / frame["name"][0]


def test_agiqa3k_missing_file_and_column(tmp_path, shared):
    with pytest.raises(DatabaseError, match=r"data\.csv: annotation file not found"):
        load_database("agiqa3k", tmp_path, check_images=False)
    _agiqa3k_frame(shared).drop(columns="mos_align").to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(DatabaseError, match=r"missing column\(s\) mos_align"):
        load_database("agiqa3k", tmp_path, check_images=False)


def test_agiqa1k_real_file(shared):
    root = shared / "reference" / "agiqa1k"
    with pytest.warns(UserWarning, match=r"rows 1080, 1081: 'dreamStudio_8_9_1_1\.jpg'"):
        db = load_database("agiqa1k", root, check_images=False)
    assert len(db) == 1078      # 1,080 rows less the two ambiguous ones (module docstring)
    assert db.generators == ["Stable Diffusion 2.0", "Stable Inpainting 1.0"]
    assert len(db.labelled()) == 1078
    rec = db.record("deepai_0_0_1_0.jpg")
    assert rec.prompt == "bird, driving aircraft, wild, anime style"
    assert rec.hyper == {"object": "bird", "second_object": "driving aircraft", "place": "wild",
                         "style": "anime style"}
    assert rec.source == "AIGC_MOS_Zscore.xlsx row 4"
    mos = np.array([r.targets["mos"] for r in db])
    assert mos.min() >= 0 and mos.max() <= 5
    with pytest.raises(KeyError):
        db.record("dreamStudio_8_9_1_1.jpg")


def test_agiqa1k_other_duplicates_are_errors(shared, tmp_path):
    frame = pd.read_excel(shared / "reference" / "agiqa1k" / "AIGC_MOS_Zscore.xlsx").head(5)
    frame.loc[4, "Image"] = frame.loc[1, "Image"]
    frame.loc[2, "MOS"] = 6.0
    frame.to_excel(tmp_path / "AIGC_MOS_Zscore.xlsx", index=False)
    problems = validate_database("agiqa1k", tmp_path)
    assert problems == [
        "AIGC_MOS_Zscore.xlsx row 4: 'MOS' = 6 is outside the score range [0, 5]",
        f"AIGC_MOS_Zscore.xlsx row 6: duplicate name {frame.loc[1, 'Image']!r} "
        "(first at AIGC_MOS_Zscore.xlsx row 3)",
    ]


def test_agiqa1k_images_in_file_folder(shared, tmp_path):
    frame = pd.read_excel(shared / "reference" / "agiqa1k" / "AIGC_MOS_Zscore.xlsx").head(2)
    frame.to_excel(tmp_path / "AIGC_MOS_Zscore.xlsx", index=False)
    (tmp_path / "file").mkdir()
    for name in frame["Image"]:
        Image.new("RGB", (8, 8)).save(tmp_path / "file" / name, format="JPEG")
    db = load_database("agiqa1k", tmp_path)
    assert [r.path.parent.name for r in db] == ["file", "file"]
    shutil.rmtree(tmp_path / "file")
    assert len(validate_database("agiqa1k", tmp_path)) == 2
