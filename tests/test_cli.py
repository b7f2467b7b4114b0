"""End to end through the `aigiqa` command: demo → bench → report → score → ntire → validate."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from aigiqa.cli import app

runner = CliRunner()


def _ok(args):
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "db"
    _ok(["demo", "--out", root, "--n", 40, "--seed", 3])
    return root


def test_bench_writes_results_and_caches(demo_root, tmp_path):
    store, out = tmp_path / "s.sqlite", tmp_path / "res"
    args = ["bench", "--database", "demo", "--root", demo_root, "--metrics",
            "sharpness,entropy", "--store", store, "--out", out, "--bootstrap", 50, "--no-progress"]
    first = _ok(args)
    assert "computed 80, cached 0" in first
    for name in ("results.csv", "results.json", "report.html", "scores.csv"):
        assert (out / name).is_file(), name
    results = pd.read_csv(out / "results.csv")
    overall = results[results["group"] == "all"]
    assert set(overall["metric"]) == {"sharpness", "entropy"}
    assert overall["n"].eq(40).all()
    assert {"split", "generator"} <= set(results["group"])
    assert "sharpness" in first and "SRCC" in first

    second = _ok(args)
    assert "computed 0, cached 80" in second
    assert json.loads((out / "results.json").read_text())["meta"]["cached"] == 80

    (out / "report.html").unlink()
    _ok(["report", out])
    assert (out / "report.html").stat().st_size > 1000


def test_score_own_images(demo_root, tmp_path):
    out = tmp_path / "scores.csv"
    _ok(["score", demo_root / "train", "--metrics", "sharpness,colourfulness", "--out", out,
         "--no-progress"])
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["name", "path", "sharpness", "colourfulness"]
    assert len(frame) == len(list((demo_root / "train").glob("*.png")))
    assert frame["sharpness"].notna().all()

    sub = tmp_path / "output.txt"
    _ok(["ntire", "submit", out, "--column", "sharpness", "--out", sub])
    scored = _ok(["ntire", "score", sub, "--database", "demo", "--root", demo_root,
                  "--split", "train"])
    assert "srcc" in scored and "main" in scored


def test_databases_and_metrics_lists(demo_root):
    assert "aigiqa20k" in _ok(["databases", "list"])
    assert "sharpness" in _ok(["metrics", "list"])
    assert "OK" in _ok(["databases", "validate", "demo", demo_root])
    assert "train" in _ok(["databases", "show", "demo", demo_root])


def test_validate_lists_every_problem(demo_root, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(demo_root, broken)
    images = sorted((broken / "train").glob("*.png"))
    images[0].unlink()
    images[1].unlink()
    images[2].write_bytes(b"")
    result = runner.invoke(app, ["databases", "validate", "demo", str(broken)])
    assert result.exit_code == 1
    for path in images[:3]:
        assert path.name in result.output


def test_errors_exit_2_with_message(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "aigiqa.cli", "bench", "--database", "nope", "--root", str(tmp_path),
         "--metrics", "sharpness", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown database 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mos_from_demo_ratings(demo_root, tmp_path):
    out = tmp_path / "mos.csv"  # the demo's raw ratings.csv is in the format `aigiqa mos` reads
    _ok(["mos", demo_root / "ratings.csv", "--out", out, "--method", "mos", "--scale", "0,100",
         "--target-range", "0,5", "--no-screen", "--report", tmp_path / "rep.json"])
    table = pd.read_csv(out)
    assert {"image", "mos", "std", "ci95"} <= set(table.columns)
    demo_mos = pd.concat(pd.read_csv(demo_root / f"info_{s}.csv") for s in ("train", "val", "test"))
    merged = table.merge(demo_mos, left_on="image", right_on="name", suffixes=("", "_demo"))
    assert len(merged) == 40
    assert (merged["mos"] - merged["mos_demo"]).abs().max() < 1e-4
    assert json.loads((tmp_path / "rep.json").read_text())["n_subjects"] == 21
    bad = runner.invoke(app, ["mos", str(demo_root / "ratings.csv"), "--out", str(out),
                              "--scale", "x"])
    assert bad.exit_code != 0


def test_mos_plans_the_next_ratings(demo_root, tmp_path):
    from aigiqa.subjective import compute_mos, plan_ratings, read_ratings

    out, plan = tmp_path / "mos.csv", tmp_path / "plan.csv"
    text = _ok(["mos", demo_root / "ratings.csv", "--out", out, "--plan-next", 30, "--plan", plan,
                "--plan-objective", "widest"])
    got = pd.read_csv(plan)
    assert got["extra"].sum() == 30 and len(got) == 40 and "plan: 30 more ratings" in text
    want = plan_ratings(compute_mos(read_ratings(demo_root / "ratings.csv")).table, 30,
                        objective="widest")
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert got["ci95_after"].max() < got["ci95"].max()  # the widest intervals got the ratings
    for args, message in ((["--plan-next", "5"], "go together"),
                          (["--plan", str(plan)], "go together"),
                          (["--plan-next", "-1", "--plan", str(tmp_path / "p2.csv")], ">= 0"),
                          (["--plan-next", "5", "--plan", str(tmp_path / "p3.csv"),
                            "--plan-objective", "most"], "'most' is unknown")):
        bad = runner.invoke(app, ["mos", str(demo_root / "ratings.csv"), "--out",
                                  str(tmp_path / "m2.csv"), *args])
        assert bad.exit_code != 0 and message in str(bad.exception), bad.output
    assert not any((tmp_path / f).exists() for f in ("p2.csv", "p3.csv", "m2.csv"))  # checked first


def test_splits_command(demo_root, tmp_path):
    out = tmp_path / "folds.csv"
    text = _ok(["splits", "demo", demo_root, "--split", "fold:1/4", "--seed", 5, "--out", out])
    frame = pd.read_csv(out)
    assert set(frame["split"]) == {"train", "test"} and len(frame) == 40
    assert frame["name"].is_unique
    assert "test" in text
    again = tmp_path / "again.csv"
    _ok(["splits", "demo", demo_root, "--split", "fold:1/4", "--seed", 5, "--out", again])
    assert again.read_text() == out.read_text()


def test_assets_import_and_list(shared, tmp_path, monkeypatch):
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert "missing" in _ok(["assets", "list"])
    imported = _ok(["assets", "import", shared / "assets"])
    assert imported.count("imported") == 3
    listing = {line.split()[0]: line for line in _ok(["assets", "list"]).splitlines()}
    for name in ("niqe/modelparameters.mat", "brisque/allmodel", "brisque/allrange"):
        assert listing[name].endswith(str(tmp_path / "home" / "assets" / name))
    bad = runner.invoke(app, ["assets", "import", str(tmp_path / "nowhere")])
    assert bad.exit_code != 0


def _commands(group, prefix=()):
    import typer.main

    command = typer.main.get_command(group) if not prefix else group
    for name, sub in getattr(command, "commands", {}).items():
        yield (*prefix, name)
        yield from _commands(sub, (*prefix, name))


def test_every_command_has_working_help():
    names = list(_commands(app))
    assert {("bench",), ("train",), ("serve",), ("study", "create"), ("mos",)} <= set(names)
    for name in names:
        result = runner.invoke(app, [*name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_bench_one_split(demo_root, tmp_path):
    out = tmp_path / "res"
    text = _ok(["bench", "--database", "demo", "--root", demo_root, "--metrics", "entropy",
                "--store", tmp_path / "s.sqlite", "--out", out, "--split", "test",
                "--bootstrap", 0, "--no-progress"])
    n_test = sum(1 for _ in open(demo_root / "info_test.csv")) - 1
    assert f"{n_test} images" in text
    results = pd.read_csv(out / "results.csv")
    assert set(results.loc[results["group"] == "split", "value"]) == {"test"}
    bad = runner.invoke(app, ["bench", "--database", "demo", "--root", str(demo_root),
                              "--metrics", "entropy", "--out", str(out), "--split", "nope"])
    assert bad.exit_code != 0 and "has splits" in str(bad.exception)


# --- databases from the command line: --option key=value, --follow-symlinks ---------------------
CSV_OPTIONS = ["--option", "file=scores.csv", "--option", "name_column=image",
               "--option", "target_columns=mos=MOS,alignment=align", "--option", "score_range=1,5",
               "--option", "hyper_columns=steps,cfg", "--option", "split_column=set"]


def _csv_database(root):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "imgs").mkdir(parents=True)
    rows = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            root / f"img{i}.png")
        rows.append({"image": f"img{i}.png", "MOS": 1 + i / 3, "align": 5 - i / 3,
                     "steps": 10 * (1 + i % 2), "cfg": 7, "set": "train" if i < 8 else "test"})
    pd.DataFrame(rows).to_csv(root / "scores.csv", index=False)
    return root


def test_bench_and_databases_on_a_csv_database_with_options(tmp_path):
    root = _csv_database(tmp_path / "db")
    out = tmp_path / "res"
    text = _ok(["bench", "--database", "csv", "--root", root, *CSV_OPTIONS, "--metrics",
                "entropy", "--store", tmp_path / "s.sqlite", "--out", out, "--bootstrap", 0,
                "--no-progress"])
    assert "csv: 12 images, 12 labelled" in text
    results = pd.read_csv(out / "results.csv")
    assert set(results.loc[results["group"] == "split", "value"]) == {"train", "test"}
    steps = results[results["group"] == "steps"]          # hyper_columns=steps,cfg
    assert sorted(steps["value"].astype(str)) == ["10", "20"] and steps["n"].tolist() == [6, 6]
    assert "csv: 12 records, 12 labelled, targets mos, alignment, range (1.0, 5.0)" in _ok(
        ["databases", "show", "csv", root, *CSV_OPTIONS])
    assert "OK" in _ok(["databases", "validate", "csv", root, *CSV_OPTIONS])
    folds = tmp_path / "folds.csv"
    _ok(["splits", "csv", root, *CSV_OPTIONS, "--split", "fold:1/3", "--out", folds])
    assert len(pd.read_csv(folds)) == 12
    sub = tmp_path / "output.txt"
    sub.write_text("".join(f"img{i}.png,{i}\n" for i in range(12)))
    scored = _ok(["ntire", "score", sub, "--database", "csv", "--root", root, *CSV_OPTIONS])
    assert "n     12" in scored and "srcc  1.0" in scored


def test_train_and_study_create_take_database_options(tmp_path):
    root = _csv_database(tmp_path / "db")
    text = _ok(["train", "--metric", "effnet-lite0:size=32:backbone_lr=0", "--database", "csv",
                "--root", root, *CSV_OPTIONS, "--out", tmp_path / "run", "--epochs", 1,
                "--val-fraction", 0.5,
                "--batch-size", 4, "--no-progress"])
    assert "test: SRCC" in text and "(n=4)" in text
    assert json.loads((tmp_path / "run" / "result.json").read_text())["database"] == "csv"
    links = tmp_path / "links.csv"
    text = _ok(["study", "create", "--database", "csv", "--root", root, *CSV_OPTIONS,
                "--subjects", 2, "--training", 0, "--db", tmp_path / "study.db",
                "--links", links])
    assert "2 subjects, 24 trials" in text and len(pd.read_csv(links)) == 2


@pytest.mark.parametrize("args, message", [
    (["--option", "score_range=x"], "error: --option score_range='x': expected 2 numbers"),
    (["--option", "prompt_col=text"], "error: --option prompt_col: csv has no such option"),
    (["--option", "file"], "error: --option 'file': expected key=value"),
])
def test_database_option_errors_are_one_line(tmp_path, args, message):
    root = _csv_database(tmp_path / "db")
    proc = subprocess.run(
        [sys.executable, "-m", "aigiqa.cli", "databases", "show", "csv", str(root),
         *CSV_OPTIONS[:4], *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_refuses_a_link_out_unless_follow_symlinks(demo_root, tmp_path):
    import shutil

    root = tmp_path / "db"
    shutil.copytree(demo_root, root)
    image = sorted((root / "test").glob("*.png"))[0]
    outside = tmp_path / "outside.png"
    image.rename(outside)
    image.symlink_to(outside)
    result = runner.invoke(app, ["databases", "validate", "demo", str(root)])
    assert result.exit_code == 1
    assert f"image name {image.name!r} is a symbolic link to {outside}" in result.output
    assert "info_test.csv row " in result.output and "--follow-symlinks" in result.output
    assert "OK" in _ok(["databases", "validate", "demo", root, "--follow-symlinks"])
    bench = runner.invoke(app, ["bench", "--database", "demo", "--root", str(root), "--metrics",
                                "entropy", "--out", str(tmp_path / "res")])
    assert bench.exit_code != 0 and "symbolic link" in str(bench.exception)


def test_reader_warnings_are_shown(demo_root, tmp_path):
    import shutil

    root = tmp_path / "db"
    shutil.copytree(demo_root, root)
    (root / "info_val.csv").write_text("name,prompt,mos\n")
    shutil.rmtree(root / "val")        # and the val rows of hyperparameters.csv
    hyper = pd.read_csv(root / "hyperparameters.csv")
    val = pd.read_csv(demo_root / "info_val.csv")["name"]
    hyper[~hyper["name"].isin(val)].to_csv(root / "hyperparameters.csv", index=False)
    result = runner.invoke(app, ["databases", "show", "demo", str(root), "--option",
                                 "splits=train,val,test"])
    assert result.exit_code == 0, result.output
    assert f"warning: {root / 'info_val.csv'}: no rows: the val split is empty" in result.output
