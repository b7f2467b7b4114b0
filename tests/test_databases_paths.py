"""Hostile image names and symbolic links: every reader keeps its image paths inside its folder.

Each reader gets names that leave the folder (``..``, absolute) and a symbolic link inside the
folder that points out; each refusal is a problem naming the file and row, listed together with
the other annotation problems, and ``follow_symlinks=True`` lets links (only links) point out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from aigiqa import load_database, validate_database
from aigiqa.demo import build_demo
from aigiqa.errors import DatabaseError
from test_databases_aigciqa2023 import write_mats
from test_databases_aigiqa20k import TRAIN, VAL, write_png, write_release
from test_databases_pku_evalmuse import PKU, TRAIN_ITEMS, write_evalmuse, write_pku


@pytest.fixture
def outside(tmp_path) -> Path:
    """A readable image outside every database root of the test."""
    return write_png(tmp_path / "outside" / "secret.png")


# --- the path rules -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, why", [
    ("../x.png", "'..' part"),
    ("deepai_/../../x.png", "'..' part"),
    ("a/../b.png", "'..' part"),
    ("..\\x.png", "'..' part"),
    ("/etc/passwd", "absolute path"),
    ("\\\\server\\share\\x.png", "absolute path"),
    ("C:\\x.png", "drive letter"),
    ("x\x00.png", "NUL byte"),
    ("M/\ud800.png", "unencodable"),
    (".", "names no file"),
    ("./", "names no file"),
])
def test_names_that_leave_the_folder(name, why):
    from aigiqa.databases.paths import name_problem

    assert why in name_problem(name)


@pytest.mark.parametrize("name", ["a.png", "SDXL_Turbo_0001.png", "model/x.png", "./x.png",
                                  "..x.png", "x..png", "a b (1).jpg", "bild_ü.png"])
def test_ordinary_names_pass(name):
    from aigiqa.databases.paths import name_problem

    assert name_problem(name) is None


def test_image_root_links(tmp_path, outside):
    from aigiqa.databases.paths import ImageRoot

    root = tmp_path / "db"
    write_png(root / "a.png")
    (root / "inner.png").symlink_to(root / "a.png")               # inside → inside: fine
    (root / "out.png").symlink_to(outside)                        # inside → outside: refused
    (root / "dangling.png").symlink_to(tmp_path / "nowhere.png")  # dangling, points out
    (root / "sub").symlink_to(outside.parent, target_is_directory=True)
    (root / "loop.png").symlink_to(root / "loop.png")             # a loop: the image check's
    problems: list[str] = []
    inside = ImageRoot(root)
    assert inside.path(root, "loop.png", "r1", problems) == root / "loop.png"   # "not found"
    assert inside.path(root, "inner.png", "r2", problems) == root / "inner.png"
    assert inside.path(root, "missing.png", "r3", problems) == root / "missing.png"
    assert inside.path(root, "out.png", "r4", problems) is None
    assert inside.path(root, "dangling.png", "r5", problems) is None
    assert inside.path(root, "sub/secret.png", "r6", problems) is None
    assert [p.split(":")[0] for p in problems] == ["r4", "r5", "r6"]
    assert "symbolic link to " + str(outside) in problems[0] and "--follow-symlinks" in problems[0]
    assert "through a symbolic link" in problems[2]
    followed = ImageRoot(root, follow_symlinks=True)
    more: list[str] = []
    assert followed.path(root, "out.png", "r4", more) == root / "out.png" and more == []
    assert followed.path(root, "../x.png", "r7", more) is None and "'..'" in more[0]


def test_root_given_as_a_link_is_resolved_once(tmp_path):
    from aigiqa.databases.paths import ImageRoot

    real = tmp_path / "real"
    write_png(real / "a.png")
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    problems: list[str] = []
    alias = tmp_path / "alias"
    assert ImageRoot(alias).path(alias, "a.png", "r2", problems) == alias / "a.png"
    assert problems == []


# --- AIGIQA-20K (and the demo, same layout) -----------------------------------------------------
def test_aigiqa20k_refuses_escaping_names_and_links(tmp_path, outside):
    train = TRAIN.copy()
    train.loc[1, "name"] = "../SDXL_Turbo_0001.png"
    train.loc[2, "name"] = str(outside)
    root = write_release(tmp_path / "db", train=train)
    link = root / "train" / TRAIN.loc[3, "name"]
    link.unlink()
    link.symlink_to(outside)
    problems = validate_database("aigiqa20k", root)
    assert problems[0].startswith("info_train.csv row 3: image name '../SDXL_Turbo_0001.png'")
    assert problems[1].startswith(f"info_train.csv row 4: image name {str(outside)!r} is an "
                                  "absolute path")
    assert problems[2].startswith("info_train.csv row 5: image name 'SDXL_0004.png' is a "
                                  "symbolic link")
    assert len(problems) == 3     # a refused name is not also reported for its generator
    with pytest.raises(DatabaseError) as err:
        load_database("aigiqa20k", root, check_images=False, follow_symlinks=True)
    assert err.value.problems == problems[:2]  # the link is followed; the names still refused


def test_aigiqa20k_split_folder_linked_outside(tmp_path):
    root = write_release(tmp_path / "db")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(root / "val", elsewhere)
    (root / "val").symlink_to(elsewhere, target_is_directory=True)
    problems = validate_database("aigiqa20k", root)
    assert [p.split(":")[0] for p in problems] == ["info_val.csv row 2", "info_val.csv row 3"]
    assert all(f"which is (through a symbolic link) {elsewhere}" in p for p in problems)
    db = load_database("aigiqa20k", root, follow_symlinks=True)   # images checked and read
    assert db.record(VAL.loc[0, "name"]).path == root / "val" / VAL.loc[0, "name"]


def test_demo_refuses_a_link_out(tmp_path, outside):
    root = build_demo(tmp_path / "demo", n=10, seed=1)
    image = sorted((root / "train").glob("*.png"))[0]
    image.unlink()
    image.symlink_to(outside)
    problems = validate_database("demo", root)
    assert len(problems) == 1 and problems[0].startswith("info_train.csv row ")
    assert f"{image.name!r} is a symbolic link to {outside}" in problems[0]
    assert len(load_database("demo", root, follow_symlinks=True)) == 10


# --- AGIQA-1K and AGIQA-3K ----------------------------------------------------------------------
def test_agiqa1k_name_from_the_issue(shared, tmp_path, outside):
    root = tmp_path / "db" / "agiqa1k"
    root.mkdir(parents=True)
    frame = pd.read_excel(shared / "reference" / "agiqa1k" / "AIGC_MOS_Zscore.xlsx").head(3)
    # resolved from root/file/, this names tmp/outside/secret.png
    frame.loc[1, "Image"] = "deepai_/../../../../outside/secret.png"
    frame.to_excel(root / "AIGC_MOS_Zscore.xlsx", index=False)
    for name in frame["Image"][[0, 2]]:
        write_png(root / "file" / name)
    assert (root / "file" / frame.loc[1, "Image"]).resolve() == outside
    problems = validate_database("agiqa1k", root)
    assert problems == [
        "AIGC_MOS_Zscore.xlsx row 3: image name 'deepai_/../../../../outside/secret.png' has a "
        "'..' part; names must stay inside the image folder"]


def test_agiqa3k_link_out_and_image_dir(shared, tmp_path, outside):
    root = tmp_path / "db"
    folder = root / "AGIQA-3K"
    frame = pd.read_csv(shared / "reference" / "agiqa3k" / "data.csv").head(3)
    frame.to_csv(write_png(folder / frame.loc[0, "name"]).parent.parent / "data.csv",
                 index=False)
    write_png(folder / frame.loc[1, "name"])
    (folder / frame.loc[2, "name"]).symlink_to(outside)
    problems = validate_database("agiqa3k", root)
    assert len(problems) == 1 and problems[0].startswith("data.csv row 4: image name")
    assert "symbolic link" in problems[0]
    assert len(load_database("agiqa3k", root, follow_symlinks=True)) == 3
    # image_dir= chosen by the user may lie anywhere; the names stay inside it
    images = tmp_path / "images"
    shutil.copytree(folder, images, symlinks=True)
    problems = validate_database("agiqa3k", root, image_dir=str(images))
    assert len(problems) == 1 and "symbolic link" in problems[0]


# --- AIGCIQA2023 --------------------------------------------------------------------------------
def test_aigciqa2023_link_out(shared, tmp_path, outside):
    root = tmp_path / "db"
    write_mats(root)
    (root / "Image" / "allimg").mkdir(parents=True)
    (root / "Image" / "allimg" / "5.png").symlink_to(outside)
    prompts = shared / "reference" / "aigciqa2023" / "AIGCIQA2023_Prompts.xlsx"
    with pytest.raises(DatabaseError) as err:
        load_database("aigciqa2023", root, check_images=False, prompts_file=prompts)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("image 5: image name '5.png' is a symbolic link")
    db = load_database("aigciqa2023", root, check_images=False, prompts_file=prompts,
                       follow_symlinks=True)
    assert db.record("5.png").path == root / "Image" / "allimg" / "5.png"


# --- PKU-AIGIQA-4K and EvalMuse-40K -------------------------------------------------------------
def test_pku_names_and_image_prompts(tmp_path, outside):
    frame = PKU.copy()
    frame.loc[0, "Image_prompt"] = str(outside)
    frame.loc[1, "Generated_image"] = "../../outside/secret.png"
    root = write_pku(tmp_path / "db", frame, images=False)
    (root / "All").mkdir()
    (root / "All" / PKU.loc[2, "Generated_image"]).symlink_to(outside)
    problems = validate_database("pku-aigiqa-4k", root)
    assert problems[0].startswith(f"annotation.xlsx row 2: image prompt {str(outside)!r} is an "
                                  "absolute path")
    assert problems[1].startswith("annotation.xlsx row 3: image name '../../outside/secret.png' "
                                  "has a '..' part")
    assert problems[2].startswith("annotation.xlsx row 4: image name 'T2I_DALLE_0001.jpg' is a "
                                  "symbolic link")
    assert len(problems) == 3


def test_evalmuse_img_paths(tmp_path, outside):
    train = [dict(item) for item in TRAIN_ITEMS]
    train[0]["img_path"] = "images/../../outside/secret.png"
    train[1]["img_path"] = str(outside)
    root = write_evalmuse(tmp_path / "db", train=train[:2], test=[])
    (root / "images" / "Linked").symlink_to(outside.parent, target_is_directory=True)
    (root / "test.json").write_text(json.dumps([{"prompt": "p", "img_path": "Linked/secret.png",
                                                 "total_score": []}]))
    problems = validate_database("evalmuse-40k", root)
    assert problems[0].startswith("train_list.json item 1: img_path '../../outside/secret.png' "
                                  "has a '..' part")
    assert problems[1].startswith(f"train_list.json item 2: img_path {str(outside)!r} is an "
                                  "absolute path")
    assert problems[2].startswith("test.json item 1: img_path 'Linked/secret.png' is in ")
    assert "through a symbolic link" in problems[2] and len(problems) == 3


# --- csv ----------------------------------------------------------------------------------------
def test_csv_names_stay_in_image_dir(tmp_path, outside):
    root = tmp_path / "db"
    images = tmp_path / "imgs"     # image_dir= outside the root: the user's choice, allowed
    for name in ("a.png", "b.png"):
        write_png(images / name)
    (images / "c.png").symlink_to(outside)
    pd.DataFrame({"image": ["a.png", "b.png", "c.png", "../outside/secret.png", str(outside)],
                  "MOS": [1, 2, 3, 4, 5]}).to_csv(write_png(root / "x.png").parent / "s.csv",
                                                  index=False)
    options = dict(file="s.csv", name_column="image", target_columns="MOS", score_range=(1, 5),
                   image_dir=str(images))
    problems = validate_database("csv", root, **options)
    assert [p.split(":")[0] for p in problems] == ["s.csv row 4", "s.csv row 5", "s.csv row 6"]
    assert "symbolic link" in problems[0] and "'..' part" in problems[1]
    assert "absolute path" in problems[2]
    with pytest.raises(DatabaseError) as err:
        load_database("csv", root, follow_symlinks=True, **options)
    assert len(err.value.problems) == 2
