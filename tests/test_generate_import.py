"""aigiqa generate import (images made elsewhere, filed under the plan's names) and the lock
that keeps two runs/imports off one output folder (a real second process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigiqa import load_database
from aigiqa.cli import app
from aigiqa.errors import GenerateError
from aigiqa.generate import make_plan, read_generators, read_plan, write_plan
from aigiqa.generate.importer import import_images
from aigiqa.generate.state import read_log

REPO = Path(__file__).resolve().parents[1]
TOML = """
[generators.api]
prefix = "API"
external = true
count = 5
steps = [1]
cfg = [0.0]
sizes = ["64x48", "32x32"]

[generators.other]
prefix = "OTH"
external = true
count = 2
steps = [1]
cfg = [0.0]
sizes = ["32x32"]
"""


@pytest.fixture
def setup(tmp_path):
    gens = tmp_path / "gens.toml"
    gens.write_text(TOML)
    plan_file = tmp_path / "plan.csv"
    write_plan(make_plan([(f"prompt {i}", "") for i in range(6)], read_generators(gens),
                         seed=3), plan_file)
    plan = read_plan(plan_file)
    rows = plan[plan["generator"] == "api"].reset_index(drop=True)
    src = tmp_path / "from"
    (src / "batch").mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = []
    for i, row in rows.iterrows():
        pixels = rng.integers(0, 256, (row["height"], row["width"], 4), dtype=np.uint8)
        if i % 2:  # a lossless WebP with alpha: converted, alpha dropped
            name = f"batch/out{i}.webp"
            Image.fromarray(pixels, "RGBA").save(src / name, lossless=True, exact=True)
        else:
            name = f"out{i}.png"
            Image.fromarray(pixels[..., :3], "RGB").save(src / name)
        files.append((row["name"], name, pixels[..., :3]))
    mapping = tmp_path / "map.csv"
    pd.DataFrame([(n, f) for n, f, _ in files], columns=["name", "file"]).to_csv(mapping,
                                                                                 index=False)
    return plan_file, plan, src, mapping, files


def test_import_files_images_tables_and_log(setup, tmp_path):
    plan_file, plan, src, mapping, files = setup
    out = tmp_path / "db"
    result = import_images(plan_file, "api", src, mapping, out)
    assert (result.imported, result.skipped) == (5, 0)
    assert result.tables == {"ok": 5, "failed": 0, "truncated": 0}
    split = dict(zip(plan["name"], plan["split"], strict=True))
    for name, _, pixels in files:
        path = out / split[name] / name
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            assert np.array_equal(np.asarray(im), pixels)  # lossless: the same pixels
    log = read_log(out)
    assert {n for n, _, _ in files} == set(log) and all(e["device"] == "imported"
                                                        for e in log.values())
    db = load_database("generated", out)
    assert len(db) == 5 and db.generators == ["api"]
    assert not list(out.rglob("*.tmp"))
    again = import_images(plan_file, "api", src, mapping, out)
    assert (again.imported, again.skipped) == (0, 5)


def test_cli_import_then_run_counts_them_finished(setup, tmp_path):
    plan_file, _, src, mapping, _ = setup
    out = tmp_path / "db"
    runner = CliRunner()
    result = runner.invoke(app, ["generate", "import", str(plan_file), "--generator", "api",
                                 "--from", str(src), "--map", str(mapping), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "imported 5 images of api" in result.output
    result = runner.invoke(app, ["generate", "run", str(plan_file), "--out", str(out),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "generated 0" in result.output and "tables: 5 images" in result.output
    assert len(pd.read_csv(out / "hyperparameters.csv")) == 5


def _rewrite(mapping: Path, edit) -> None:
    edit(pd.read_csv(mapping, dtype=str)).to_csv(mapping, index=False)


def _set(row: int, column: str, value=None, *, like: int | None = None):
    """An edit of the map: cell (row, column) = value (or the cell of row ``like``)."""
    def edit(table: pd.DataFrame) -> pd.DataFrame:
        table.loc[row, column] = table.at[like, column] if like is not None else value
        return table
    return edit


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.iloc[:-1], r"1 of the 5 planned images of 'api' are not in"),
    (_set(4, "name", like=0), r"row 6: duplicate name"),
    (_set(4, "name", "OTH_0001.png"),
     r"row 6: name 'OTH_0001.png' is an image of generator 'other'"),
    (_set(4, "name", "NOPE_0001.png"), r"row 6: .* not in the plan"),
    (_set(4, "file", "../plan.csv"), r"row 6: file .* '\.\.' part"),
    (_set(4, "file", "/etc/passwd"), r"row 6: file .* absolute"),
    (_set(4, "file", "gone.png"), r"row 6: file 'gone.png' not found"),
    (_set(4, "file", like=0), r"row 6: .* also the image of"),
])
def test_count_and_place_faults_name_map_row(setup, tmp_path, edit, match):
    plan_file, _, src, mapping, _ = setup
    _rewrite(mapping, edit)
    out = tmp_path / "db"
    with pytest.raises(GenerateError, match=match) as info:
        import_images(plan_file, "api", src, mapping, out)
    assert str(mapping) in str(info.value)
    assert not list(out.glob("*/*.png")) and not (out / "info_train.csv").exists()


def test_size_format_and_link_faults(setup, tmp_path):
    plan_file, plan, src, mapping, files = setup
    name, first, _ = files[0]
    Image.new("RGB", (40, 40)).save(src / first)  # not the planned size
    (src / files[2][1]).write_bytes(b"not an image at all")
    outside = tmp_path / "outside.png"
    Image.new("RGB", (8, 8)).save(outside)
    os.symlink(outside, src / "link.png")
    _rewrite(mapping, _set(4, "file", "link.png"))
    out = tmp_path / "db"
    with pytest.raises(GenerateError) as info:
        import_images(plan_file, "api", src, mapping, out)
    text = str(info.value)
    row = plan.set_index("name").loc[name]
    assert f"row 2: {src / first} is 40x40, the plan has {row['width']}x{row['height']}" in text
    assert "row 4: " in text and "cannot read image" in text
    assert "row 6: file 'link.png' is a symbolic link" in text
    assert "nothing imported" in text and not list(out.glob("*/*.png"))
    with pytest.raises(GenerateError, match="unknown generator 'nope'"):
        import_images(plan_file, "nope", src, mapping, out)
    (tmp_path / "bad.csv").write_text("image,path\nx,y\n")
    with pytest.raises(GenerateError, match=r"bad.csv: missing column\(s\) name, file"):
        import_images(plan_file, "api", src, tmp_path / "bad.csv", out)


def test_an_image_already_there_from_another_file_is_refused(setup, tmp_path):
    plan_file, _, src, mapping, files = setup
    out = tmp_path / "db"
    import_images(plan_file, "api", src, mapping, out)
    name = files[0][0]
    row = read_plan(plan_file).set_index("name").loc[name]
    Image.new("RGB", (int(row["width"]), int(row["height"])), (9, 9, 9)).save(src / "new.png")
    _rewrite(mapping, _set(0, "file", "new.png"))
    with pytest.raises(GenerateError, match=rf"row 2: '{name}' is already in .* \(imported from"
                                            " another file\\); delete"):
        import_images(plan_file, "api", src, mapping, out)
    (out / row["split"] / name).unlink()
    assert import_images(plan_file, "api", src, mapping, out).imported == 1


HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from aigiqa.generate.state import folder_lock
    with folder_lock(Path(sys.argv[1]), "run"):
        print("locked", flush=True)
        time.sleep(120)
""")


def test_a_second_process_on_one_folder_is_refused_until_the_first_is_killed(setup, tmp_path):
    plan_file, _, src, mapping, _ = setup
    out = tmp_path / "db"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE,
                              env=env, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(GenerateError, match=rf"aigiqa generate run \(pid {holder.pid}\) is "
                                                "writing this folder"):
            import_images(plan_file, "api", src, mapping, out)
        proc = subprocess.run([sys.executable, "-m", "aigiqa.cli", "generate", "run",
                               str(plan_file), "--out", str(out)], env=env, text=True,
                              capture_output=True, timeout=120)
        assert proc.returncode == 2 and "is writing this folder" in proc.stderr, proc.stderr
        assert not list(out.glob("*/*.png"))
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        holder.stdout.close()
    assert import_images(plan_file, "api", src, mapping, out).imported == 5  # lock released
