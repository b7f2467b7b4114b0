"""Training: losses, parts of a split, learning on a generated database, CLI, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter
from typer.testing import CliRunner

import aigiqa.metrics.learned.backbones  # noqa: F401  (registers the backbone regressors)
from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.demo import build_demo
from aigiqa.errors import MetricError, SplitError
from aigiqa.evaluation import evaluate
from aigiqa.images import load_image
from aigiqa.metrics.learned.backbones import EfficientNetLite0
from aigiqa.training import TrainConfig, make_loss, train
from aigiqa.training.cli import app
from aigiqa.training.data import carve_validation, training_parts
from aigiqa.training.losses import plcc_loss, rank_loss

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread."""


def blur_database(root: Path, n: int = 60, seed: int = 0) -> Database:
    """Random textures blurred by a known amount; MOS falls with the blur (+ a little noise)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        base = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        texture = Image.fromarray(base).resize((64, 64), Image.Resampling.NEAREST)
        blur = float(rng.uniform(0, 3))
        path = root / f"img{i:03d}.png"
        texture.filter(ImageFilter.GaussianBlur(blur)).save(path)
        split = "train" if i % 5 < 3 else ("val" if i % 5 == 3 else "test")
        mos = 5 - 1.5 * blur + float(rng.normal(0, 0.2))
        records.append(Record(name=path.name, path=path, prompt=f"texture {i}",
                              generator=f"g{i % 3}", split=split, targets={"mos": mos}))
    info = DatabaseInfo(name="blur", score_range=(0, 5), target_names=("mos",))
    return Database(info, records, root)


# Losses -----------------------------------------------------------------------------------------
def test_losses():
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert float(plcc_loss(2 * y + 1, y)) == pytest.approx(0, abs=1e-6)
    assert float(plcc_loss(-y, y)) == pytest.approx(1, abs=1e-6)
    assert float(rank_loss(y, y)) < float(rank_loss(-y, y))
    assert float(rank_loss(y, torch.ones(4))) == 0  # every pair ties
    both = make_loss("plcc+rank")
    assert float(both(-y, y)) == pytest.approx(float(plcc_loss(-y, y) + rank_loss(-y, y)))
    assert float(make_loss("l1")(y + 1, y)) == pytest.approx(1)
    assert float(make_loss("mse")(y + 2, y)) == pytest.approx(4)
    pred = torch.tensor([0.5, 0.1, 0.9, 0.2], requires_grad=True)
    make_loss("plcc")(pred, y).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    with pytest.raises(MetricError, match="unknown loss"):
        make_loss("huber")


# Parts ------------------------------------------------------------------------------------------
def test_parts_official_and_folds(tmp_path):
    db = blur_database(tmp_path, n=30)
    parts = training_parts(db, "official", 0, 0.15)
    assert {k: len(v) for k, v in parts.items()} == {"train": 18, "val": 6, "test": 6}
    fold = training_parts(db, "fold:1", 3, 0.25)
    assert not set(fold["val"]) & set(fold["train"]) and not set(fold["test"]) & set(fold["train"])
    assert len(fold["train"]) + len(fold["val"]) + len(fold["test"]) == 30
    assert fold == training_parts(db, "fold:1", 3, 0.25)
    train, val = carve_validation(db, [r.name for r in db], 1 / 3, seed=0)
    assert len(val) == 10 and not set(train) & set(val)
    per_generator = {g: sum(db.record(n).generator == g for n in val) for g in ("g0", "g1", "g2")}
    assert set(per_generator.values()) <= {3, 4}  # stratified
    assert val != carve_validation(db, [r.name for r in db], 1 / 3, seed=1)[1]
    with pytest.raises(SplitError, match="validation"):
        training_parts(blur_database(tmp_path, n=5), "official", 0, 0.15)


def test_bad_settings_are_named(tmp_path):
    db = blur_database(tmp_path, n=10)
    with pytest.raises(MetricError, match="epochs=0"):
        train(EfficientNetLite0(size=32), db, TrainConfig(epochs=0))
    with pytest.raises(MetricError, match="unknown loss"):
        train(EfficientNetLite0(size=32), db, TrainConfig(loss="nope"))


# Learning ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_training_beats_chance_on_a_generated_database(tmp_path):
    db = blur_database(tmp_path, n=60)
    metric = EfficientNetLite0(size=64, backbone_lr=0)
    result = train(metric, db, TrainConfig(epochs=25, batch_size=12, lr=3e-3, loss="mse+plcc",
                                           progress=False))
    assert result.test is not None and result.test["n"] == 12
    assert result.test["srcc"] > 0.6, result.test
    test = db.subset(split="test")
    scores = metric.score([load_image(r.path) for r in test])  # the trained metric, end to end
    truth = np.array([r.targets["mos"] for r in test])
    assert evaluate(scores, truth)["srcc"] == pytest.approx(result.test["srcc"], abs=1e-9)


@pytest.mark.slow
def test_cli_writes_a_checkpoint_that_bench_specs_use(tmp_path):
    root = build_demo(tmp_path / "demo", n=40, seed=1)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["--metric", "effnet-lite0:size=32:backbone_lr=0",
                                   "--database", "demo", "--root", str(root), "--out", str(out),
                                   "--epochs", "3", "--batch-size", "8", "--workers", "0",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "test: SRCC" in res.output
    result = json.loads((out / "result.json").read_text())
    assert result["sizes"] == {"train": 28, "val": 4, "test": 8}
    assert result["split"] == "official" and result["seed"] == 0
    assert len(result["history"]) == 3 and 1 <= result["best_epoch"] <= 3
    from aigiqa.metrics.registry import metric_from_spec

    metric = metric_from_spec(result["bench_spec"])
    assert metric.options["checkpoint"] == str((out / "model.pt").resolve())
    from aigiqa.databases.registry import load_database

    db = load_database("demo", root)
    test = [r for r in db if r.split == "test"]
    scores = metric.score([load_image(r.path) for r in test])
    truth = np.array([r.targets["mos"] for r in test])
    assert evaluate(scores, truth)["srcc"] == pytest.approx(result["test"]["srcc"], abs=1e-9)


# Kill and resume --------------------------------------------------------------------------------
_SCRIPT = ("import aigiqa.metrics.learned.backbones; from aigiqa.training.cli import app; app()")


def _train_cmd(root: Path, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-c", _SCRIPT, "--metric", "effnet-lite0:size=32:backbone_lr=0.3",
            "--database", "demo", "--root", str(root), "--out", str(out), "--epochs", "4",
            "--batch-size", "8", "--lr", "3e-3", "--workers", str(workers), "--no-progress"]


def _epochs_done(out: Path) -> int:
    try:
        return int(torch.load(out / "last.pt", weights_only=False)["epoch"])
    except (FileNotFoundError, EOFError, RuntimeError, KeyError):
        return 0


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path):
    root = build_demo(tmp_path / "demo", n=40, seed=2)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_cmd(root, ref, 0), env=ENV, check=True, capture_output=True,
                   timeout=600)
    proc = subprocess.Popen(_train_cmd(root, killed, 2), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while _epochs_done(killed) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= _epochs_done(killed) < 4
    subprocess.run(_train_cmd(root, killed, 2), env=ENV, check=True, capture_output=True,
                   timeout=600)
    a = torch.load(ref / "last.pt", weights_only=False)
    b = torch.load(killed / "last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 4
    assert a["history"] == b["history"]
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=0)
    best_a = torch.load(ref / "model.pt", weights_only=True)["state_dict"]
    best_b = torch.load(killed / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    ra = json.loads((ref / "result.json").read_text())
    rb = json.loads((killed / "result.json").read_text())
    assert ra["test"] == rb["test"]


def test_resume_refuses_other_settings(tmp_path):
    db = blur_database(tmp_path, n=20)
    out = tmp_path / "run"
    config = TrainConfig(epochs=1, batch_size=4, out=out, progress=False)
    train(EfficientNetLite0(size=32, backbone_lr=0), db, config)
    assert (out / "last.pt").is_file() and (out / "model.pt").is_file()
    with pytest.raises(MetricError, match="other settings"):
        train(EfficientNetLite0(size=32, backbone_lr=0), db,
              TrainConfig(epochs=1, batch_size=4, lr=0.1, out=out, progress=False))


def test_fit_trains_the_metric_in_place(tmp_path):
    db = blur_database(tmp_path, n=20)
    metric = EfficientNetLite0(size=32, backbone_lr=0)
    untrained_key = metric.key
    images = [load_image(r.path) for r in db][:4]
    before = metric.score(images)
    assert metric.fit(db, "official", epochs=2, batch_size=4, progress=False) is metric
    result = metric.fit_result  # the one protocol: fit(database, split=SPEC) -> self
    assert result.best_epoch in (1, 2) and len(result.history) == 2
    assert metric.key != untrained_key  # cached scores of the untrained model are not reused
    assert not np.allclose(metric.score(images), before)
