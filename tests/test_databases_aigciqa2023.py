"""AIGCIQA2023 reader: MOS .mat files written in the release format plus the real xlsx files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from aigiqa import load_database, validate_database
from aigiqa.databases.aigciqa2023 import N_IMAGES
from aigiqa.errors import DatabaseError


def write_mats(root: Path, seed: int = 0, *, std: bool = True) -> dict[str, np.ndarray]:
    """DATA/MOS/mosz{1,2,3}.mat (MOSz, 2400x1) and DATA/STD/SD{1,2,3}.mat (SD)."""
    rng = np.random.default_rng(seed)
    (root / "DATA" / "MOS").mkdir(parents=True, exist_ok=True)
    values = {}
    for k, target in enumerate(("quality", "authenticity", "correspondence"), start=1):
        values[target] = rng.uniform(10, 90, (N_IMAGES, 1))
        scipy.io.savemat(root / "DATA" / "MOS" / f"mosz{k}.mat", {"MOSz": values[target]})
        if std:
            (root / "DATA" / "STD").mkdir(parents=True, exist_ok=True)
            scipy.io.savemat(root / "DATA" / "STD" / f"SD{k}.mat",
                             {"SD": rng.uniform(1, 20, (N_IMAGES, 1))})
    return values


@pytest.fixture
def ref(shared) -> Path:
    return shared / "reference" / "aigciqa2023"


def load(root, ref, **kw):
    return load_database("aigciqa2023", root, check_images=False,
                         prompts_file=ref / "AIGCIQA2023_Prompts.xlsx", **kw)


def test_release_format_with_real_prompt_and_index_files(tmp_path, ref):
    values = write_mats(tmp_path)
    db = load(tmp_path, ref, index_file=ref / "pic-index.xlsx")
    assert len(db) == 2400 and len(db.generators) == 6
    assert db.info.target_names == ("quality", "authenticity", "correspondence")
    rec = db.record("401.png")
    assert rec.generator == "DALL-E" and rec.prompt == "a corgi"
    assert rec.hyper == {"repeat": 2, "category": "Basic", "challenge": "Animals"}
    assert rec.targets["quality"] == pytest.approx(values["quality"][401, 0])
    assert rec.targets["correspondence"] == pytest.approx(values["correspondence"][401, 0])
    assert "authenticity_std" in rec.targets
    assert rec.path == tmp_path / "Image" / "allimg" / "401.png"
    last = db.record("2399.png")
    assert last.generator == "UniDiffuser" and "Ha Long Bay" in last.prompt
    counts = db.to_frame().groupby("generator").size()
    assert (counts == 400).all()


def test_fixed_order_matches_pic_index(tmp_path, ref):
    write_mats(tmp_path, std=False)
    with_index = load(tmp_path, ref, index_file=ref / "pic-index.xlsx")
    without = load(tmp_path, ref)
    assert [(r.generator, r.prompt) for r in with_index] == [
        (r.generator, r.prompt) for r in without]
    assert "quality_std" not in without[0].targets


def test_missing_prompts_and_mos_files_are_all_reported(tmp_path):
    write_mats(tmp_path)
    (tmp_path / "DATA" / "MOS" / "mosz2.mat").unlink()
    with pytest.raises(DatabaseError) as err:
        load_database("aigciqa2023", tmp_path, check_images=False)
    problems = err.value.problems
    assert len(problems) == 2
    assert any("AIGCIQA2023_Prompts.xlsx" in p and "prompts_file=" in p for p in problems)
    assert any("mosz2.mat: file not found" in p for p in problems)


def test_bad_mos_values_and_shapes(tmp_path, ref):
    write_mats(tmp_path)
    bad = np.full((N_IMAGES, 1), 50.0)
    bad[3, 0] = np.nan
    bad[10, 0] = 120.0
    scipy.io.savemat(tmp_path / "DATA" / "MOS" / "mosz1.mat", {"MOSz": bad})
    scipy.io.savemat(tmp_path / "DATA" / "MOS" / "mosz3.mat", {"MOSz": np.ones((10, 1))})
    scipy.io.savemat(tmp_path / "DATA" / "STD" / "SD2.mat", {"std": np.ones((N_IMAGES, 1))})
    problems = validate_database("aigciqa2023", tmp_path,
                                 prompts_file=ref / "AIGCIQA2023_Prompts.xlsx")
    assert len(problems) == 4, problems
    assert any("mosz1.mat entry 4" in p and "not a finite number" in p for p in problems)
    assert any("mosz1.mat entry 11" in p and "outside the score range [0, 100]" in p
               for p in problems)
    assert any("mosz3.mat" in p and "10 values, expected 2400" in p for p in problems)
    assert any("SD2.mat" in p and "no variable 'SD'" in p for p in problems)


def test_prompts_found_in_release_folder_and_missing_option_file(tmp_path, ref):
    write_mats(tmp_path)
    (tmp_path / "AIGCIQA2023_Prompts.xlsx").symlink_to(ref / "AIGCIQA2023_Prompts.xlsx")
    db = load_database("aigciqa2023", tmp_path, check_images=False)
    assert db.record("4.png").prompt == "a girl"
    with pytest.raises(DatabaseError, match="pic-index.xlsx: file not found"):
        load_database("aigciqa2023", tmp_path, check_images=False, index_file="pic-index.xlsx")
