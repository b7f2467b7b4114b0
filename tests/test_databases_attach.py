"""aigiqa databases attach-mos: a study's MOS into a generated database's info files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigiqa import load_database
from aigiqa.cli import app
from aigiqa.databases.attach import attach_mos
from aigiqa.errors import DatabaseError
from aigiqa.generate import make_plan, read_generators, write_plan
from aigiqa.generate.importer import import_images

TOML = """
[generators.api]
prefix = "API"
external = true
count = 10
steps = [1]
cfg = [0.0]
sizes = ["32x32"]
"""


@pytest.fixture
def database(tmp_path):
    """A generated database of 10 images (imported: no diffusion needed), no MOS yet."""
    gens = tmp_path / "gens.toml"
    gens.write_text(TOML)
    plan_file = tmp_path / "plan.csv"
    plan = make_plan([(f"prompt {i}", "") for i in range(10)], read_generators(gens), seed=1)
    write_plan(plan, plan_file)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(len(plan)):
        Image.new("RGB", (32, 32), (20 * i, 50, 90)).save(src / f"{i}.png")
    pd.DataFrame({"name": plan["name"], "file": [f"{i}.png" for i in range(10)]}).to_csv(
        tmp_path / "map.csv", index=False)
    out = tmp_path / "db"
    import_images(plan_file, "api", src, tmp_path / "map.csv", out)
    return out, list(plan["name"])


def mos_file(path, names, values, column="image"):
    pd.DataFrame({column: names, "mos": values, "std": 0.5, "n": 3}).to_csv(path, index=False)
    return path


def test_attach_writes_mos_the_reader_reads(database, tmp_path):
    out, names = database
    values = [round(0.4 * i + 0.3, 3) for i in range(8)]
    result = attach_mos(out, mos_file(tmp_path / "mos.csv", names[:8], values))
    assert (result.attached, result.without) == (8, 2)
    assert sum(r for r, _ in result.splits.values()) == 8
    db = load_database("generated", out)
    got = {r.name: r.targets.get("mos") for r in db}
    assert [got[n] for n in names[:8]] == pytest.approx(values)
    assert got[names[8]] is None and got[names[9]] is None  # not rated: blank, blind
    info = pd.concat(pd.read_csv(out / f"info_{s}.csv", keep_default_na=False)
                     for s in ("train", "val", "test"))
    assert list(info.columns) == ["name", "prompt", "mos"]
    assert sorted(info["name"]) == sorted(names)
    again = attach_mos(out, mos_file(tmp_path / "mos.csv", names[:8], values))  # same values
    assert again.attached == 8


@pytest.mark.parametrize("names, values, match", [
    (["API_9999.png"], [1.0], r"row 2: image 'API_9999.png' is not an image of"),
    (None, ["x"], r"row 2: mos 'x' of .* is not a number"),
    (None, [""], r"row 2: mos '' of .* is not a number"),
    (None, ["nan"], r"row 2: mos 'nan' .* not a number"),
    (None, [7.5], r"row 2: mos 7.5 of .* outside \[0, 5\]"),
])
def test_bad_rows_are_named_and_nothing_is_written(database, tmp_path, names, values, match):
    out, all_names = database
    before = {s: (out / f"info_{s}.csv").read_bytes() for s in ("train", "val", "test")}
    path = mos_file(tmp_path / "mos.csv", names or all_names[:1], values)
    with pytest.raises(DatabaseError, match=match) as info:
        attach_mos(out, path)
    assert str(path) in str(info.value) and "nothing written" in str(info.value)
    assert before == {s: (out / f"info_{s}.csv").read_bytes() for s in before}


def test_duplicates_and_changes_to_existing_mos(database, tmp_path):
    out, names = database
    with pytest.raises(DatabaseError, match=r"row 3: duplicate image .* \(also row 2\)"):
        attach_mos(out, mos_file(tmp_path / "d.csv", [names[0], names[0]], [1.0, 2.0]))
    attach_mos(out, mos_file(tmp_path / "a.csv", names[:2], [1.0, 2.0]))
    with pytest.raises(DatabaseError, match=r"has MOS 1.0 in .*info_\w+.csv row \d+ already; "
                                            "pass --replace"):
        attach_mos(out, mos_file(tmp_path / "b.csv", names[:1], [3.0]))
    attach_mos(out, mos_file(tmp_path / "b.csv", names[:1], [3.0]), replace=True)
    got = {r.name: r.targets.get("mos") for r in load_database("generated", out)}
    assert (got[names[0]], got[names[1]]) == (3.0, 2.0)  # the other MOS kept


def test_cli_attach_mos_and_name_column(database, tmp_path):
    out, names = database
    rng = np.random.default_rng(0)
    path = mos_file(tmp_path / "m.csv", names, rng.uniform(0, 5, 10).round(3), column="name")
    result = CliRunner().invoke(app, ["databases", "attach-mos", str(out), str(path)])
    assert result.exit_code == 0, result.output
    assert "MOS attached to 10 images; 0 without MOS" in result.output
    assert len(load_database("generated", out).labelled()) == 10
    bad = tmp_path / "bad.csv"
    bad.write_text("item,score\na,1\n")
    with pytest.raises(DatabaseError, match=r"bad.csv: needs a name column \(image or name\)"):
        attach_mos(out, bad)
    with pytest.raises(DatabaseError, match=r"info_train.csv: not found"):
        attach_mos(tmp_path / "nowhere", path)
