"""aigiqa generate run on tiny random diffusers pipelines: layout, determinism, resume after a
deleted image and after SIGKILL, NaN / black outputs, missing pipelines, the generated reader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("open_clip")

from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from aigiqa import load_database  # noqa: E402
from aigiqa.cli import app  # noqa: E402
from aigiqa.errors import AigiqaError, GenerateError  # noqa: E402
from aigiqa.generate import make_plan, read_generators, read_plan, run_plan, write_plan  # noqa: E402
from aigiqa.generate.state import read_log  # noqa: E402
from aigiqa.testing.pipelines import clip_tokenizer, tiny_sd_pipeline  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROMPTS = [(f"a photo of thing {i}", "") for i in range(12)]


def toml(pipelines: dict[str, Path], count: int = 4, sizes: str = '["64x64", "64x48"]') -> str:
    text = ""
    for i, (name, folder) in enumerate(pipelines.items()):
        text += (f'[generators.{name}]\nprefix = "{name.upper()}"\npipeline = "{folder}"\n'
                 f"count = {count + i}\nsteps = [2, 1]\ncfg = [7.5, 1.0]\nsizes = {sizes}\n\n")
    return text


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipes")
    tok = clip_tokenizer()
    return {"good": tiny_sd_pipeline(root / "good", seed=1, tokenizer=tok),
            "black": tiny_sd_pipeline(root / "black", seed=2, decoder_bias=-10.0, tokenizer=tok),
            "nan": tiny_sd_pipeline(root / "nan", seed=3, decoder_bias=float("nan"),
                                    tokenizer=tok)}


@pytest.fixture(scope="module")
def plan_file(pipes, tmp_path_factory):
    root = tmp_path_factory.mktemp("plan")
    gens = root / "gens.toml"
    gens.write_text(toml({"tiny": pipes["good"], "other": pipes["good"]}))
    path = root / "plan.csv"
    write_plan(make_plan(PROMPTS, read_generators(gens), seed=7), path)
    return path


@pytest.fixture(scope="module")
def first_run(plan_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "db"
    start = time.perf_counter()
    result = run_plan(plan_file, out, device="cpu", batch_size=3)
    return out, result, time.perf_counter() - start


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_release_layout_tables_and_reader(first_run, plan_file, pipes):
    out, result, seconds = first_run
    plan = read_plan(plan_file)
    assert (result.generated, result.skipped, result.failed) == (9, 0, 0)
    assert result.tables == {"ok": 9, "failed": 0, "truncated": 0}
    for _, row in plan.iterrows():
        image = pixels(out / row["split"] / row["name"])
        assert image.shape == (row["height"], row["width"], 3)
        assert image.std() > 0  # a random network's output, not a constant
    for split in ("train", "val", "test"):
        info = pd.read_csv(out / f"info_{split}.csv", keep_default_na=False)
        assert list(info.columns) == ["name", "prompt", "mos"]
        rows = plan[plan["split"] == split]
        assert info["name"].tolist() == rows["name"].tolist()
        assert info["prompt"].tolist() == rows["prompt"].tolist()
        assert (info["mos"] == "").all()
    hyper = pd.read_csv(out / "hyperparameters.csv")
    assert hyper["name"].tolist() == plan["name"].tolist()
    assert set(hyper["scheduler"]) == {"DDIMScheduler"}
    assert hyper["weights_sha256"].str.fullmatch("[0-9a-f]{64}").all()
    assert hyper["weights_sha256"].nunique() == 1  # both generators use one pipeline folder
    assert hyper["versions"].str.contains("diffusers=").all()
    assert (hyper["seed"].to_numpy() == plan["seed"].to_numpy()).all()
    db = load_database("generated", out)
    assert len(db) == 9 and db.generators == ["other", "tiny"]
    rec = db.record(plan["name"].iloc[0])
    assert rec.generator == plan["generator"].iloc[0] and rec.blind
    assert rec.hyper == {"steps": int(plan["steps"].iloc[0]), "cfg": float(plan["cfg"].iloc[0]),
                         "size": f"{plan['width'].iloc[0]}x{plan['height'].iloc[0]}",
                         "scheduler": "DDIMScheduler"}
    assert db.hyper_names == ["steps", "cfg", "size", "scheduler"]
    print(f"\n{seconds / 9:.3f} s per 64x64 image (2 steps max, batch 3, CPU, with loading)")


def test_same_plan_same_pixels_and_rerun_skips(first_run, plan_file, tmp_path):
    out, _, _ = first_run
    again = run_plan(plan_file, out, device="cpu", batch_size=3)
    assert (again.generated, again.skipped) == (0, 9)
    other = tmp_path / "db2"
    run_plan(plan_file, other, device="cpu", batch_size=3)
    for path in sorted(out.glob("*/*.png")):
        assert np.array_equal(pixels(path), pixels(other / path.parent.name / path.name)), path


def test_deleted_image_is_made_again_alone(first_run, plan_file, tmp_path):
    out, _, _ = first_run
    import shutil

    copy = tmp_path / "db"
    shutil.copytree(out, copy)
    victim = sorted(copy.glob("*/*.png"))[4]
    before = victim.read_bytes()
    others = {p: p.stat().st_mtime_ns for p in copy.glob("*/*.png") if p != victim}
    victim.unlink()
    result = run_plan(plan_file, copy, device="cpu", batch_size=3)
    assert (result.generated, result.skipped) == (1, 8)
    assert {p: p.stat().st_mtime_ns for p in others} == others  # nothing else rewritten
    # alone in its batch now: same seed, same pixels up to batch-size rounding in the BLAS
    diff = np.abs(pixels(victim).astype(int) - np.frombuffer(before, np.uint8).size * 0
                  - pixels_from_bytes(before).astype(int))
    assert diff.max() <= 2, diff.max()


def pixels_from_bytes(data: bytes) -> np.ndarray:
    import io

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def test_sigkill_mid_run_then_resume(pipes, tmp_path):
    gens = tmp_path / "g.toml"
    gens.write_text(toml({"tiny": pipes["good"]}, count=24, sizes='["64x64"]'))
    plan_file = tmp_path / "plan.csv"
    write_plan(make_plan(PROMPTS, read_generators(gens), seed=2), plan_file)
    out = tmp_path / "db"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aigiqa.cli", "generate", "run", str(plan_file), "--out", str(out),
         "--device", "cpu", "--batch-size", "1"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    log = out / ".aigiqa-generate" / "log.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done = {n for n, e in read_log(out).items() if e["status"] == "ok"}
    assert 2 <= len(done) < 24
    assert not (out / "hyperparameters.csv").exists()  # tables come at the end of a run
    torn = out / "train" / ".TINY_0001.png.x1y2.tmp"  # what a kill inside a write leaves
    torn.write_bytes(b"\x89PNG half")
    result = run_plan(plan_file, out, device="cpu", batch_size=3)
    assert result.skipped == len(done) and result.generated == 24 - len(done)
    assert not list(out.rglob("*.tmp"))
    images = sorted(out.glob("*/*.png"))
    assert len(images) == 24 and all(pixels(p).size for p in images)
    assert len(load_database("generated", out)) == 24


def test_nan_and_black_outputs_are_failures(pipes, tmp_path):
    gens = tmp_path / "g.toml"
    gens.write_text(toml({"black": pipes["black"], "nan": pipes["nan"], "good": pipes["good"]},
                         count=2, sizes='["64x64"]'))
    plan = tmp_path / "plan.csv"
    write_plan(make_plan(PROMPTS, read_generators(gens), seed=1), plan)
    out = tmp_path / "db"
    result = run_plan(plan, out, device="cpu")
    assert (result.generated, result.failed) == (4, 5)
    failures = pd.read_csv(out / "failures.csv", keep_default_na=False)
    assert failures["generator"].tolist() == ["black"] * 2 + ["nan"] * 3
    assert failures["reason"].iloc[0].startswith("all-black output")
    assert failures["reason"].iloc[-1].startswith("NaN/inf in the output")
    for name in failures["name"]:
        assert not list(out.glob(f"*/{name}"))
    db = load_database("generated", out)
    assert db.generators == ["good"]
    again = run_plan(plan, out, device="cpu")
    assert (again.generated, again.failed, again.skipped) == (0, 0, 9)
    retried = run_plan(plan, out, device="cpu", retry_failed=True)
    assert (retried.failed, retried.skipped) == (5, 4)


def test_bad_inputs_one_line_errors(plan_file, pipes, tmp_path):
    gens = tmp_path / "g.toml"
    gens.write_text(toml({"gone": tmp_path / "missing"}, count=1))
    plan = tmp_path / "plan.csv"
    write_plan(make_plan(PROMPTS, read_generators(gens), seed=1), plan)
    with pytest.raises(GenerateError, match=r"generator 'gone': pipeline folder .*missing not "
                       r"found; save a diffusers pipeline there"):
        run_plan(plan, tmp_path / "db", device="cpu")
    hub = tmp_path / "hub.csv"
    frame = read_plan(plan)
    frame["pipeline"] = "nobody-aigiqa/no-such-model"
    write_plan(frame, hub)
    with pytest.raises(GenerateError, match=r"'nobody-aigiqa/no-such-model' is not in the Hugging "
                       r"Face cache; get it with `huggingface-cli download"):
        run_plan(hub, tmp_path / "db", device="cpu")
    with pytest.raises(GenerateError, match="--device 'gpu' is invalid"):
        run_plan(plan_file, tmp_path / "db", device="gpu")
    with pytest.raises(GenerateError, match="unknown generator.*nope"):
        run_plan(plan_file, tmp_path / "db", device="cpu", only=["nope"])
    sched = tmp_path / "sched.csv"
    frame = read_plan(plan_file).head(1).assign(scheduler="NoSuchScheduler")
    write_plan(frame, sched)
    with pytest.raises(GenerateError, match="scheduler 'NoSuchScheduler' is not a diffusers"):
        run_plan(sched, tmp_path / "db3", device="cpu")
    # a plan that changes an image already made in the folder
    one = tmp_path / "one.csv"
    write_plan(read_plan(plan_file).head(2), one)
    run_plan(one, tmp_path / "db4", device="cpu")
    changed = read_plan(one)
    changed.loc[1, "seed"] = 12345
    write_plan(changed, one)
    with pytest.raises(GenerateError, match=r"one.csv row 3: image .* other seed"):
        run_plan(one, tmp_path / "db4", device="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "aigiqa.cli", "generate", "run", str(plan), "--out",
         str(tmp_path / "db5"), "--device", "cpu"],
        env=dict(os.environ, PYTHONPATH=str(REPO / "src")), capture_output=True, text=True,
        timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: generator 'gone': pipeline folder")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_run_and_bench_per_generator_and_hyper(first_run, plan_file, tmp_path):
    import shutil

    out, _, _ = first_run
    db_root = tmp_path / "db"
    shutil.copytree(out, db_root)
    result = CliRunner().invoke(app, ["generate", "run", str(plan_file), "--out", str(db_root),
                                      "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "generated 0, finished before 9" in result.output
    # ratings attached by hand (what a study gives): MOS in info_train.csv
    info = pd.read_csv(db_root / "info_train.csv")
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        info = pd.read_csv(db_root / f"info_{split}.csv")
        info["mos"] = rng.uniform(1, 5, len(info))
        info.to_csv(db_root / f"info_{split}.csv", index=False)
    res = tmp_path / "res"
    bench = CliRunner().invoke(app, [
        "bench", "--database", "generated", "--root", str(db_root), "--metrics", "sharpness",
        "--store", str(tmp_path / "s.sqlite"), "--out", str(res), "--bootstrap", "0",
        "--no-progress"], catch_exceptions=False)
    assert bench.exit_code == 0, bench.output
    groups = pd.read_csv(res / "results.csv")
    assert {"all", "generator", "steps", "cfg", "size", "scheduler"} <= set(groups["group"])
    assert set(groups.loc[groups["group"] == "generator", "value"]) == {"tiny", "other"}
    assert set(groups.loc[groups["group"] == "size", "value"]) <= {"64x64", "64x48"}


def test_a_prompt_longer_than_the_context_is_truncated_and_counted(pipes, tmp_path):
    """diffusers keeps the first 77 tokens (BOS + 75 + EOS) of a CLIP prompt; the run counts the
    rest in hyperparameters.csv and in the tables, and the image equals the truncated prompt's."""
    tok = clip_tokenizer()
    long = " ".join(f"red{i % 10}" for i in range(120))
    ids = tok(long).input_ids
    kept = tok.decode(ids[1:tok.model_max_length - 1])
    assert len(ids) > tok.model_max_length and len(tok(kept).input_ids) == tok.model_max_length
    gens = tmp_path / "g.toml"
    gens.write_text(toml({"good": pipes["good"]}, count=2, sizes='["64x64"]'))
    outs = {}
    for label, prompt in (("long", long), ("kept", kept)):
        plan = tmp_path / f"{label}.csv"
        write_plan(make_plan([(prompt, ""), (prompt, "")], read_generators(gens), seed=3), plan)
        outs[label] = (tmp_path / label, run_plan(plan, tmp_path / label, device="cpu"))
    out, result = outs["long"]
    assert result.truncated == 2 and result.tables["truncated"] == 2
    hyper = pd.read_csv(out / "hyperparameters.csv")
    assert hyper["prompt_tokens_dropped"].tolist() == [len(ids) - tok.model_max_length] * 2
    assert outs["kept"][1].truncated == 0
    for name in hyper["name"]:
        [a] = list(out.glob(f"*/{name}"))
        [b] = list(outs["kept"][0].glob(f"*/{name}"))
        assert np.array_equal(pixels(a), pixels(b))
    runner = CliRunner().invoke(app, ["generate", "run", str(tmp_path / "long.csv"), "--out",
                                      str(out), "--device", "cpu"])
    assert runner.exit_code == 0, runner.output
    assert "truncated prompts: 2 images" in runner.output


@pytest.mark.parametrize("fsyncs_left", [2, 4])  # an image write fails; the log append fails
def test_a_full_disk_stops_with_a_clear_error_and_corrupts_nothing(first_run, plan_file,
                                                                   tmp_path, monkeypatch,
                                                                   fsyncs_left):
    import errno
    import json

    clean, _, _ = first_run
    out = tmp_path / "db"
    real, calls = os.fsync, [0]

    def full_disk(fd):
        calls[0] += 1
        if calls[0] > fsyncs_left:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(AigiqaError, match="No space left on device"):
        run_plan(plan_file, out, device="cpu", batch_size=3)
    monkeypatch.setattr(os, "fsync", real)
    assert not list(out.rglob("*.tmp"))
    log = out / ".aigiqa-generate" / "log.jsonl"
    log_text = log.read_text() if log.exists() else ""
    assert all(json.loads(line) for line in log_text.splitlines())  # no torn or half entry
    kept = {name for name, e in read_log(out).items() if e["status"] == "ok"}
    for path in out.glob("*/*.png"):
        pixels(path)  # every image on disk decodes
    again = run_plan(plan_file, out, device="cpu", batch_size=3)
    assert again.skipped == len(kept) and again.generated == 9 - len(kept)
    for path in clean.glob("*/*.png"):
        redo = out / path.relative_to(clean)
        assert np.abs(pixels(redo).astype(int) - pixels(path).astype(int)).max() <= 2
