"""aigiqa generate plan / show: generators files, prompt files, balanced seeded plans, faults."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from typer.testing import CliRunner

from aigiqa.cli import app
from aigiqa.errors import GenerateError
from aigiqa.generate import make_plan, read_generators, read_plan, read_prompts, write_plan
from aigiqa.generate.config import PRESETS, parse_size

runner = CliRunner()
TOML = """
[generators.alpha]
prefix = "A"
pipeline = "org/alpha"
count = 40
steps = [20, 10, 5]
steps_weights = [2, 1, 1]
cfg = [7.5, 3.0]
sizes = ["64x64", "128x64"]
sizes_weights = [3, 1]
scheduler = "DPMSolverMultistepScheduler"

[generators."beta.v2"]
prefix = "B_v2"
pipeline = "org/beta"
count = 25
steps = 8
cfg = [1.0]
sizes = ["64x64"]
negative_prompt = "blurry"
[generators."beta.v2".kwargs]
eta = 0.5
"""


@pytest.fixture
def files(tmp_path):
    gens = tmp_path / "gens.toml"
    gens.write_text(TOML)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"prompt number {i}" for i in range(30)) + "\n\nprompt number 3\n")
    return gens, prompts


def test_plan_rows_balanced_and_deterministic(files):
    gens, prompts = files
    pairs = read_prompts(prompts)
    assert len(pairs) == 30  # the blank line and the repeated prompt are dropped
    specs = read_generators(gens)
    plan = make_plan(pairs, specs, seed=3)
    assert len(plan) == 65 and plan["name"].is_unique
    a = plan[plan["generator"] == "alpha"]
    assert a["name"].iloc[0] == "A_0000.png" and a["name"].iloc[-1] == "A_0039.png"
    assert Counter(a["steps"]) == {20: 20, 10: 10, 5: 10}
    assert Counter(a["cfg"]) == {7.5: 20, 3.0: 20}
    assert Counter(zip(a["width"], a["height"], strict=True)) == {(64, 64): 30, (128, 64): 10}
    assert Counter(a["split"]) == {"train": 28, "val": 4, "test": 8}
    assert set(a["scheduler"]) == {"DPMSolverMultistepScheduler"}
    b = plan[plan["generator"] == "beta.v2"]
    assert b["name"].iloc[0] == "B_v2_0000.png"
    assert set(b["negative_prompt"]) == {"blurry"} and set(b["kwargs"]) == {'{"eta": 0.5}'}
    assert set(b["scheduler"]) == {"default"}
    # 65 images over 30 prompts: each used 2 or 3 times; no generator repeats one below 30
    uses = Counter(plan["prompt"])
    assert len(uses) == 30 and max(uses.values()) - min(uses.values()) <= 1
    assert b["prompt"].is_unique
    assert plan["seed"].between(0, 2**31 - 1).all() and plan["seed"].nunique() == 65
    pd.testing.assert_frame_equal(plan, make_plan(pairs, specs, seed=3))
    other = make_plan(pairs, specs, seed=4)
    assert not other["seed"].equals(plan["seed"]) and not other["prompt"].equals(plan["prompt"])
    # a generator's seeds do not depend on the generators before it
    alone = make_plan(pairs, [specs[1]], seed=3)
    assert alone["seed"].tolist() == b["seed"].tolist()


def test_plan_csv_round_trip_and_show(files, tmp_path):
    gens, prompts = files
    out = tmp_path / "plan.csv"
    result = runner.invoke(app, ["generate", "plan", "--prompts", str(prompts), "--generators",
                                 str(gens), "--out", str(out), "--seed", "5"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "65 images of 2 generators, 30 prompts" in result.output
    plan = read_plan(out)
    expected = make_plan(read_prompts(prompts), read_generators(gens), seed=5)
    pd.testing.assert_frame_equal(plan, expected, check_dtype=False)
    shown = runner.invoke(app, ["generate", "show", str(out)], catch_exceptions=False)
    assert shown.exit_code == 0
    text = shown.output
    assert "65 images, 2 generators, 30 prompts" in text
    for section in ("per split", "per steps", "per cfg", "per size", "per scheduler"):
        assert section in text
    assert "128x64" in text and "beta.v2" in text


def test_aigiqa20k_preset_and_annotations_as_prompts(shared):
    specs = read_generators("aigiqa20k")
    assert specs == read_generators(PRESETS / "aigiqa20k.toml")
    assert len(specs) == 15 and sum(s.count for s in specs) == 20000
    by = {s.name: s for s in specs}
    for name in ("DALLE2", "DALLE3", "MJ"):
        assert by[name].external and not by[name].pipeline
    from aigiqa.databases.aigiqa20k import GENERATORS

    assert {s.prefix for s in specs} == set(GENERATORS)
    pairs = read_prompts(shared / "reference" / "aigiqa20k" / "info_train.csv")
    assert len(pairs) > 10000 and all(p for p, _ in pairs)
    plan = make_plan(pairs, specs, seed=0)
    for spec in specs:
        rows = plan[plan["generator"] == spec.name]
        assert len(rows) == spec.count
        if len(spec.steps) == 3:  # half at the default, a quarter each at ~0.5x and ~0.25x
            default, half, quarter = spec.steps
            assert half == max(1, round(default / 2)) or spec.name == "SDXL_Turbo"
            assert quarter in (max(1, default // 4), max(1, round(default / 4)))
            counts = Counter(rows["steps"])
            assert counts[default] == spec.count // 2
            assert counts[half] == counts[quarter] == spec.count // 4
        assert Counter(rows["split"])["train"] == spec.count * 7 // 10
    uses = Counter(plan["prompt"])
    assert max(uses.values()) - min(uses.values()) <= 1


def test_prompt_csv_with_category(tmp_path):
    path = tmp_path / "p.csv"
    pd.DataFrame({"id": [1, 2, 3], "prompt": ["a cat", " a dog ", "a cat"],
                  "category": ["animal", "pet", "other"]}).to_csv(path, index=False)
    assert read_prompts(path) == [("a cat", "animal"), ("a dog", "pet")]
    plan = make_plan(read_prompts(path), read_generators_text(tmp_path, count=4), seed=0)
    assert set(zip(plan["prompt"], plan["category"], strict=True)) == {("a cat", "animal"),
                                                                       ("a dog", "pet")}


def read_generators_text(tmp_path, count=4, **extra):
    body = {"prefix": '"X"', "pipeline": '"org/x"', "count": str(count), "steps": "[4]",
            "cfg": "[7.5]", "sizes": '["64x64"]', **extra}
    path = tmp_path / "g.toml"
    path.write_text("[generators.x]\n" + "".join(f"{k} = {v}\n" for k, v in body.items()))
    return read_generators(path)


@pytest.mark.parametrize(("extra", "match"), [
    ({"sizes": '["64x60"]'}, r"g.toml \[generators.x\] sizes: size '64x60'.*multiples of 8"),
    ({"sizes": '["big"]'}, "is not WxH"),
    ({"steps": "[0]"}, "steps must be >= 1"),
    ({"count": "0"}, "count must be a positive integer"),
    ({"steps_weights": "[1, 2]"}, "steps_weights has 2 values for 1 steps"),
    ({"dtype": '"half"'}, "dtype 'half' is invalid"),
    ({"colour": '"red"'}, "unknown option.*colour"),
    ({"prefix": '"X_12"'}, "prefix 'X_12'"),
    ({"pipeline": '""'}, "pipeline is required"),
])
def test_generator_faults_name_file_and_table(tmp_path, extra, match):
    with pytest.raises(GenerateError, match=match):
        read_generators_text(tmp_path, **extra)


def test_prefix_clash_unknown_generator_and_bad_files(tmp_path, files):
    gens, prompts = files
    clash = tmp_path / "clash.toml"
    clash.write_text(TOML.replace('prefix = "B_v2"', 'prefix = "a"'))
    with pytest.raises(GenerateError, match="'alpha' and 'beta.v2' share the prefix 'a'"):
        read_generators(clash)
    with pytest.raises(GenerateError, match="unknown generator.*gamma.*has alpha, beta.v2"):
        read_generators(gens, only=["gamma"])
    assert [s.name for s in read_generators(gens, only=["beta.v2"])] == ["beta.v2"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[generators.x\n")
    with pytest.raises(GenerateError, match="bad.toml: not valid TOML"):
        read_generators(bad)
    with pytest.raises(GenerateError, match="generators file not found"):
        read_generators(tmp_path / "none.toml")
    table = tmp_path / "np.csv"
    table.write_text("name,text\na,b\n")
    with pytest.raises(GenerateError, match="np.csv"):
        read_prompts(table)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(GenerateError, match="no prompt"):
        read_prompts(empty)
    with pytest.raises(GenerateError, match="6x6"):
        parse_size("6x6", "here")


def test_plan_file_faults_name_row(tmp_path, files):
    gens, prompts = files
    path = tmp_path / "plan.csv"
    plan = make_plan(read_prompts(prompts), read_generators(gens), seed=0).astype(str)
    plan.loc[3, "width"] = "60"
    plan.loc[5, "steps"] = "many"
    plan.loc[7, "name"] = plan.loc[6, "name"]
    write_plan(plan, path)
    with pytest.raises(GenerateError, match=r"plan.csv row 7: steps 'many' is not a number"):
        read_plan(path)
    plan.loc[5, "steps"] = "4"
    write_plan(plan, path)
    with pytest.raises(GenerateError) as info:
        read_plan(path)
    text = str(info.value)
    assert "row 5: size 60x64 is not a multiple of 8" in text
    assert "row 9: duplicate name 'A_0006.png'" in text
    result = runner.invoke(app, ["generate", "plan", "--prompts", str(prompts), "--generators",
                                 str(gens), "--out", str(path), "--splits", "7:1"])
    assert result.exit_code != 0 and "--splits '7:1'" in str(result.exception)


def test_plan_with_two_pipelines_for_one_generator_is_refused(tmp_path, files):
    gens, prompts = files
    path = tmp_path / "plan.csv"
    plan = make_plan(read_prompts(prompts), read_generators(gens), seed=0)
    plan.loc[2, "pipeline"] = "org/other"
    write_plan(plan, path)
    with pytest.raises(GenerateError, match="row 4: generator 'alpha' has another pipeline than "
                       "at row 2"):
        read_plan(path)


def test_relative_pipeline_folder_is_relative_to_the_toml(tmp_path):
    (tmp_path / "pipes" / "sd.v1").mkdir(parents=True)
    specs = read_generators_text(tmp_path, pipeline='"pipes/sd.v1"')
    assert specs[0].pipeline == str((tmp_path / "pipes" / "sd.v1").resolve())
    assert read_generators_text(tmp_path, pipeline='"org/model"')[0].pipeline == "org/model"


@pytest.mark.parametrize("name", ["../escape.png", "/tmp/abs.png", "sub/dir.png", ".hidden.png",
                                  "A_0001.jpg", ""])
def test_a_plan_name_that_is_not_a_plain_png_name_is_refused(tmp_path, files, name):
    """A plan is a file users edit: its names are joined to the output folder, so a name with a
    folder part could write outside it."""
    gens, prompts = files
    path = tmp_path / "plan.csv"
    plan = make_plan(read_prompts(prompts), read_generators(gens), seed=0).astype(str)
    plan.loc[2, "name"] = name
    write_plan(plan, path)
    with pytest.raises(GenerateError) as info:
        read_plan(path)
    assert "row 4: name" in str(info.value) and "not a plain file name" in str(info.value)
