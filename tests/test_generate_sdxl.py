"""aigiqa generate run on a tiny random SDXL-style pipeline (two text encoders, text_time
embedding), with its default scheduler and Turbo / LCM-style few-step schedulers set by the
generators file's ``scheduler`` key, at 64x64 and 64x48 on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402

from aigiqa import load_database  # noqa: E402
from aigiqa.generate import make_plan, read_generators, read_plan, run_plan, write_plan  # noqa: E402
from aigiqa.testing.pipelines import tiny_sdxl_pipeline  # noqa: E402

GENERATORS = {  # name: (scheduler line, steps, cfg, sizes)
    "xl": ("", "[2]", "[5.0]", '["64x64", "64x48"]'),
    "turbo": ('scheduler = "EulerAncestralDiscreteScheduler"', "[1]", "[0.0]", '["64x64"]'),
    "lcm": ('scheduler = "LCMScheduler"', "[3, 1]", "[1.0]", '["64x64"]'),
}


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdxl")
    folder = tiny_sdxl_pipeline(root / "pipe", seed=4)
    text = ""
    for name, (scheduler, steps, cfg, sizes) in GENERATORS.items():
        text += (f'[generators.{name}]\nprefix = "{name.upper()}"\npipeline = "{folder}"\n'
                 f"count = 2\nsteps = {steps}\ncfg = {cfg}\nsizes = {sizes}\n{scheduler}\n\n")
    (root / "gens.toml").write_text(text)
    path = root / "plan.csv"
    write_plan(make_plan([(f"a tiny picture {i}", "") for i in range(6)],
                         read_generators(root / "gens.toml"), seed=2), path)
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_sdxl_with_turbo_and_lcm_schedulers(plan_file, tmp_path):
    out = tmp_path / "db"
    result = run_plan(plan_file, out, device="cpu", batch_size=2)
    assert (result.generated, result.failed) == (6, 0)
    plan = read_plan(plan_file)
    hyper = pd.read_csv(out / "hyperparameters.csv")
    schedulers = dict(zip(hyper["generator"], hyper["scheduler"], strict=False))
    assert schedulers == {"xl": "EulerDiscreteScheduler",
                          "turbo": "EulerAncestralDiscreteScheduler", "lcm": "LCMScheduler"}
    assert sorted(hyper.loc[hyper["generator"] == "lcm", "steps"]) == [1, 3]
    for _, row in plan.iterrows():
        image = pixels(out / row["split"] / row["name"])
        assert image.shape == (row["height"], row["width"], 3) and image.std() > 0
    db = load_database("generated", out)
    assert db.generators == ["lcm", "turbo", "xl"]
    assert {r.hyper["scheduler"] for r in db} == set(schedulers.values())
    other = tmp_path / "again"  # the same plan gives the same pixels (ancestral noise too)
    run_plan(plan_file, other, device="cpu", batch_size=2, only=["turbo"])
    for _, row in plan[plan["generator"] == "turbo"].iterrows():
        rel = Path(row["split"]) / row["name"]
        assert np.array_equal(pixels(out / rel), pixels(other / rel)), rel
