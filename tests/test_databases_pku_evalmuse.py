"""PKU-AIGIQA-4K and EvalMuse-40K readers on files written in their release formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from aigiqa import load_database, validate_database
from aigiqa.errors import DatabaseError


def png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (40, 80, 120)).save(path)


# --- PKU-AIGIQA-4K ------------------------------------------------------------------------------
PKU = pd.DataFrame({
    "Generated_image": ["I2I_MJ_0001.jpg", "I2I_SD_0002.jpg", "T2I_DALLE_0001.jpg"],
    "Image_prompt": ["prompt_0001.jpg", "prompt_0002.jpg", None],
    "Text_prompt": ["a castle", "a lake", "a robot"],
    "MOS_q": [55.1, 40.0, 70.2],
    "MOS_a": [50.0, 45.5, 66.0],
    "MOS_c": [60.0, 35.0, 80.0],
})


def write_pku(root: Path, frame: pd.DataFrame = PKU, images: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    frame.to_excel(root / "annotation.xlsx", index=False)
    if images:
        for name in frame["Generated_image"]:
            png(root / "All" / name)
    return root


def test_pku_release_format(tmp_path):
    root = write_pku(tmp_path)
    db = load_database("pku-aigiqa-4k", root)
    assert len(db) == 3 and db.info.target_names == ("quality", "authenticity", "correspondence")
    i2i = db.record("I2I_MJ_0001.jpg")
    assert i2i.targets == {"quality": 55.1, "authenticity": 50.0, "correspondence": 60.0}
    assert i2i.hyper == {"task": "image-to-image",
                         "image_prompt": str(root / "I2I" / "Image_prompt" / "prompt_0001.jpg")}
    t2i = db.record("T2I_DALLE_0001.jpg")
    assert t2i.hyper == {"task": "text-to-image"} and t2i.prompt == "a robot"
    assert t2i.path == root / "All" / "T2I_DALLE_0001.jpg"
    assert t2i.source == "annotation.xlsx row 4"


def test_pku_bad_rows_and_missing_images(tmp_path):
    frame = PKU.copy()
    frame.loc[0, "MOS_q"] = np.nan
    frame.loc[1, "MOS_c"] = 101.0
    frame.loc[2, "Generated_image"] = "I2I_MJ_0001.jpg"
    root = write_pku(tmp_path, frame, images=False)
    problems = validate_database("pku-aigiqa-4k", root)
    assert len(problems) == 3, problems
    assert problems[0] == "annotation.xlsx row 2: empty 'MOS_q'"
    assert problems[1].startswith("annotation.xlsx row 3: 'MOS_c' = 101")
    assert "duplicate name 'I2I_MJ_0001.jpg'" in problems[2]
    root2 = write_pku(tmp_path / "ok", images=False)
    problems = validate_database("pku-aigiqa-4k", root2)
    assert len(problems) == 3 and all("image file not found" in p for p in problems)


def test_pku_score_range_option_and_missing_file(tmp_path):
    frame = PKU.assign(MOS_q=[3.1, 2.0, 4.5], MOS_a=[3.0, 2.2, 4.1], MOS_c=[1.5, 2.5, 5.0])
    root = write_pku(tmp_path, frame)
    assert len(validate_database("pku-aigiqa-4k", root)) == 0     # 0-5 values inside 0-100
    db = load_database("pku-aigiqa-4k", root, check_images=False, score_range=(1, 5))
    assert db.info.score_range == (1.0, 5.0)
    with pytest.raises(DatabaseError, match="annotation.xlsx: annotation file not found"):
        load_database("pku-aigiqa-4k", tmp_path / "All", check_images=False)


# --- EvalMuse-40K -------------------------------------------------------------------------------
TRAIN_ITEMS = [
    {"prompt_id": "00110", "prompt": "A puffin sitting in a booth. Etching", "type": "real",
     "img_path": "SDXL-Turbo/00110.png", "total_score": [4, 3, 3],
     "element_score": {"puffin (animal)": [1, 1, 0]}, "promt_meaningless": [0, 0, 0],
     "split_confidence": [0, 0, 0], "attribute_confidence": [0, 0, 0],
     "fidelity_label": ["normal", "normal", "normal"]},
    {"prompt_id": "00111", "prompt": "two red apples", "type": "synth",
     "img_path": "DALLE3/00111.png", "total_score": [5, 5, 4]},
]
TEST_ITEMS = [{"prompt_id": "00200", "prompt": "a blue cube", "type": "synth",
               "img_path": "Kolors/00200.png", "total_score": []}]


def write_evalmuse(root: Path, train=TRAIN_ITEMS, test=TEST_ITEMS, images: str = "images"):
    root.mkdir(parents=True, exist_ok=True)
    (root / "train_list.json").write_text(json.dumps(train))
    (root / "test.json").write_text(json.dumps(test))
    folder = root / images if images else root
    for item in [*train, *test]:
        if "img_path" in item:
            png(folder / item["img_path"])
    return root


@pytest.mark.parametrize("images", ["images", ""])
def test_evalmuse_release_format(tmp_path, images):
    root = write_evalmuse(tmp_path, images=images)
    db = load_database("evalmuse-40k", root)
    assert len(db) == 3 and db.splits == ["train", "test"]
    rec = db.record("SDXL-Turbo/00110.png")
    assert rec.targets == {"alignment": pytest.approx(10 / 3)}
    assert rec.generator == "SDXL-Turbo" and rec.split == "train"
    assert rec.hyper == {"prompt_id": "00110", "prompt_type": "real"}
    assert rec.path == (root / images if images else root) / "SDXL-Turbo" / "00110.png"
    assert db.record("Kolors/00200.png").blind
    assert len(db.labelled()) == 2


def test_evalmuse_bad_items_all_reported(tmp_path):
    train = [
        {**TRAIN_ITEMS[0], "total_score": [4, 9]},
        {**TRAIN_ITEMS[1], "total_score": []},
        {"prompt": "no path", "total_score": [3]},
        {**TRAIN_ITEMS[0], "total_score": ["x"]},
    ]
    root = write_evalmuse(tmp_path, train=train)
    problems = validate_database("evalmuse-40k", root)
    assert len(problems) == 5, problems
    assert problems[0].startswith("train_list.json item 1") and "9 is outside" in problems[0]
    assert problems[1] == "train_list.json item 2: no 'total_score' ratings"
    assert problems[2] == "train_list.json item 3: missing 'img_path'"
    assert problems[3].startswith("train_list.json item 4") and "'x'" in problems[3]
    assert "duplicate name 'SDXL-Turbo/00110.png'" in problems[4]


def test_evalmuse_missing_and_corrupt_files(tmp_path):
    root = write_evalmuse(tmp_path)
    (root / "test.json").unlink()
    with pytest.raises(DatabaseError, match="test.json: annotation file not found"):
        load_database("evalmuse-40k", root, check_images=False)
    assert len(load_database("evalmuse-40k", root, splits=["train"])) == 2
    (root / "train_list.json").write_text("{not json")
    problems = validate_database("evalmuse-40k", root, splits=["train"])
    assert len(problems) == 1 and "cannot read JSON" in problems[0]
