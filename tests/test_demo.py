"""The embedded demo database: layout, determinism, the "demo" reader and that it is informative."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

from aigiqa.databases.registry import load_database
from aigiqa.demo import GENERATORS, build_demo
from aigiqa.errors import AigiqaError, DatabaseError
from aigiqa.images import load_image
from aigiqa.metrics.registry import create_metric

REAL_AIGIQA20K_PREFIXES = {"DALLE2", "DALLE3", "Dream", "IF", "LCM_Pixart", "LCM_SD1.5",
                           "LCM_SDXL", "MJ", "Pixart", "Playground", "SD1.4", "SD1.5", "SDXL",
                           "SDXL_Turbo", "SSD1B"}


def files_of(root: Path) -> dict[str, bytes]:
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in paths}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def demo30(tmp_path_factory) -> Path:
    return build_demo(tmp_path_factory.mktemp("demo") / "db", n=30, seed=0)


@pytest.fixture(scope="module")
def demo120(tmp_path_factory) -> Path:
    return build_demo(tmp_path_factory.mktemp("demo120"), n=120, seed=0)


def copy_demo(src: Path, dst: Path) -> Path:
    for rel, data in files_of(src).items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes(data)
    return dst


def test_same_seed_same_bytes_other_seed_differs(demo30, tmp_path):
    again = files_of(build_demo(tmp_path / "a", n=30, seed=0))
    assert again == files_of(demo30)
    other = files_of(build_demo(tmp_path / "b", n=30, seed=1))
    assert other["info_train.csv"] != again["info_train.csv"]
    pngs = [k for k in again if k.endswith(".png") and k in other]
    assert pngs and any(other[k] != again[k] for k in pngs)


def test_release_layout_and_split_counts(demo30):
    counts = {}
    for split in ("train", "val", "test"):
        rows = read_rows(demo30 / f"info_{split}.csv")
        assert list(rows[0]) == ["name", "prompt", "mos"]
        counts[split] = len(rows)
        for row in rows:
            assert re.fullmatch(r"[A-Za-z]+_\d{4}\.png", row["name"])
            with Image.open(demo30 / split / row["name"]) as im:
                assert (im.format, im.size, im.mode) == ("PNG", (256, 256), "RGB")
    assert counts == {"train": 21, "val": 3, "test": 6}
    hyper = read_rows(demo30 / "hyperparameters.csv")
    assert list(hyper[0]) == ["name", "steps", "cfg"] and len(hyper) == 30
    ratings = read_rows(demo30 / "ratings.csv")
    assert list(ratings[0]) == ["subject", "image", "score"]  # what `aigiqa mos` reads
    assert len(ratings) == 30 * 21
    assert "SYNTHETIC" in (demo30 / "README.txt").read_text()


def test_generator_prefixes_are_not_real_models():
    assert len(GENERATORS) >= 5
    assert not set(GENERATORS) & REAL_AIGIQA20K_PREFIXES


def test_loads_as_demo_database(demo30):
    db = load_database("demo", demo30, check_images=True)
    assert db.name == "demo" and len(db) == 30
    assert "synthetic" in db.info.description.lower()
    assert set(db.generators) == set(GENERATORS.values())
    assert [len(db.subset(split=s)) for s in ("train", "val", "test")] == [21, 3, 6]
    for rec in db:
        assert rec.prompt and "sky" in rec.prompt
        assert 0.0 <= rec.targets["mos"] <= 5.0
        assert isinstance(rec.hyper["steps"], int) and rec.hyper["steps"] >= 1
        assert isinstance(rec.hyper["cfg"], float) and rec.hyper["cfg"] > 0
        assert rec.path.parent.name == rec.split
    assert len({rec.prompt for rec in db}) > 20  # varied scenes
    mos = np.array([rec.targets["mos"] for rec in db])
    assert mos.std() > 0.3


def test_mos_is_mean_of_ratings(demo30):
    ratings: dict[str, list[int]] = {}
    for row in read_rows(demo30 / "ratings.csv"):
        ratings.setdefault(row["image"], []).append(int(row["score"]))
    for row in read_rows(demo30 / "info_train.csv"):
        scores = ratings[row["name"]]
        assert len(scores) == 21 and all(0 <= s <= 100 for s in scores)
        assert float(row["mos"]) == pytest.approx(np.mean(scores) / 20, abs=1e-6)


def test_blind_option_hides_val_and_test_mos(tmp_path):
    root = build_demo(tmp_path, n=20, seed=3, blind=True)
    assert list(read_rows(root / "info_val.csv")[0]) == ["name", "prompt"]
    assert list(read_rows(root / "info_test.csv")[0]) == ["name", "prompt"]
    db = load_database("demo", root)
    assert all(not r.blind for r in db.subset(split="train"))
    assert all(r.blind for r in db if r.split != "train")


def test_rebuild_replaces_previous_demo_but_not_other_folders(demo30, tmp_path):
    root = build_demo(tmp_path / "db", n=40, seed=0)
    build_demo(root, n=30, seed=0)
    assert files_of(root) == files_of(demo30)  # no file of the bigger build is left over
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(AigiqaError, match="not empty"):
        build_demo(other, n=10)
    assert (other / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("kwargs", [{"n": 5}, {"n": 2.5}, {"n": 100_000}, {"seed": -1}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(AigiqaError, match="n=|seed="):
        build_demo(tmp_path / "x", **kwargs)


def test_hyperparameter_rows_must_match_images(demo30, tmp_path):
    root = copy_demo(demo30, tmp_path / "db")
    path = root / "hyperparameters.csv"
    lines = path.read_text().splitlines()
    dropped = lines[1].split(",")[0]
    path.write_text("\n".join([lines[0], *lines[2:], "Crisp_9999.png,20,7.5"]) + "\n")
    with pytest.raises(DatabaseError) as info:
        load_database("demo", root, check_images=False)
    text = str(info.value)
    assert f"no row for image {dropped!r}" in text and "hyperparameters.csv" in text
    assert "hyperparameters.csv row 31" in text and "Crisp_9999.png" in text


def test_bad_hyperparameter_values_name_the_row(demo30, tmp_path):
    root = copy_demo(demo30, tmp_path / "db")
    path = root / "hyperparameters.csv"
    lines = path.read_text().splitlines()
    name2, name3 = lines[2].split(",")[0], lines[3].split(",")[0]
    lines[2] = f"{name2},12.5,7.0"
    lines[3] = f"{name3},20,lots"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatabaseError) as info:
        load_database("demo", root, check_images=False)
    text = str(info.value)
    assert "hyperparameters.csv row 3" in text and "whole number" in text
    assert "hyperparameters.csv row 4" in text and "'lots'" in text


def test_missing_hyperparameter_file_and_bad_option(demo30, tmp_path):
    root = copy_demo(demo30, tmp_path / "db")
    (root / "hyperparameters.csv").unlink()
    with pytest.raises(DatabaseError, match="hyperparameters.csv: hyper-parameter file not"):
        load_database("demo", root, check_images=False)
    with pytest.raises(DatabaseError, match="unknown option"):
        load_database("demo", demo30, check_images=False, colour=True)


def test_baselines_relate_to_mos_as_simulated(demo120):
    """The proof the demo is informative: blur lowers both sharpness and MOS."""
    db = load_database("demo", demo120, check_images=False)
    images = [load_image(rec.path) for rec in db]
    mos = np.array([rec.targets["mos"] for rec in db])
    generator = np.array([rec.name.split("_")[0] for rec in db])
    sharp = create_metric("sharpness").score(images)
    assert sharp[generator == "Blurry"].mean() < 0.5 * sharp[generator == "Crisp"].mean()
    assert mos[generator == "Crisp"].mean() > mos[generator != "Crisp"].mean() + 0.5
    noisy = create_metric("entropy").score(images)
    assert np.median(noisy[generator == "Noisy"]) > np.median(noisy[generator == "Crisp"])
    assert spearmanr(sharp, mos)[0] > 0.2
    steps = np.array([rec.hyper["steps"] for rec in db])
    assert spearmanr(steps, mos)[0] > 0.2  # few steps -> more noise and blur -> lower MOS
    # not trivial: no single cheap baseline explains the MOS
    for name in ("sharpness", "colourfulness", "entropy", "contrast"):
        scores = create_metric(name).score(images)
        assert abs(spearmanr(scores, mos)[0]) < 0.7, name


def test_reading_the_demo_database_does_not_load_the_picture_drawing_builder():
    """The reader needs the generator names only (aigiqa.demo_generators), not the builder."""
    code = ("import sys, aigiqa.databases.demo as reader; "
            "from aigiqa.demo_generators import GENERATORS; "
            "assert reader.GENERATORS is GENERATORS; "
            "assert 'aigiqa.demo' not in sys.modules and 'aigiqa.demo_scenes' not in sys.modules, "
            "'builder imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
