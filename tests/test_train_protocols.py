"""Training protocols: cross:DB (train on one database, test on another) and the name-blind mode
(a spy model sees what a model is given)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import aigiqa.metrics.learned.backbones  # noqa: F401  (registers the backbone regressors)
from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.databases.registry import load_database
from aigiqa.demo import build_demo
from aigiqa.errors import MetricError, SplitError
from aigiqa.evaluation import evaluate
from aigiqa.images import load_image
from aigiqa.metrics.learned.backbones import EfficientNetLite0
from aigiqa.metrics.learned.base import LearnedMetric
from aigiqa.splits import is_split_spec, resolve_split
from aigiqa.training import TrainConfig, train
from aigiqa.training.cli import app

FAST = {"epochs": 2, "batch_size": 8, "lr": 3e-3, "progress": False}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Database:
    return load_database("demo", build_demo(tmp_path_factory.mktemp("src") / "demo", n=30,
                                            seed=1))


def other_database(root: Path) -> Database:
    """A second database the test writes: demo images (another seed) with two targets on other
    scales, quality = 1 + 1.8 * demo MOS (1–10) and a random alignment; two images unlabelled."""
    demo = load_database("demo", build_demo(root / "demo", n=14, seed=7))
    rng = np.random.default_rng(0)
    records = []
    for i, rec in enumerate(demo.records):
        targets = ({} if i < 2 else {"quality": 1 + 1.8 * rec.targets["mos"],
                                     "alignment": float(rng.uniform(1, 5))})
        records.append(Record(name=rec.name, path=rec.path, prompt=rec.prompt,
                              generator=rec.generator, split="all", targets=targets))
    info = DatabaseInfo(name="other", score_range=(1, 10), target_names=("quality", "alignment"))
    return Database(info, records, demo.root)


def test_cross_trains_on_the_source_and_tests_on_every_labelled_image_of_db(source, tmp_path):
    other = other_database(tmp_path)
    metric = EfficientNetLite0(size=32, backbone_lr=0)
    result = train(metric, source, TrainConfig(split="cross:other:quality", **FAST), other)
    labelled = [r for r in other.records if "quality" in r.targets]
    assert result.test is not None and result.test["n"] == len(labelled) == 12
    proto = result.protocol
    assert proto["kind"] == "cross" and proto["name_blind"] is True
    assert proto["train"]["database"] == proto["val"]["database"] == "demo"
    assert proto["test"] == {"database": "other", "root": str(other.root), "target": "quality",
                             "images": 12}
    assert proto["train"]["images"] + proto["val"]["images"] == len(source.labelled())
    assert "0.15 of the training part held out" in proto["val"]["from"]
    assert "4-parameter logistic" in proto["target_mapping"]
    assert "demo mos" in proto["target_mapping"] and "other quality" in proto["target_mapping"]
    # the test numbers are the trained metric's scores of DB's images against DB's target
    scores = metric.score([load_image(r.path) for r in labelled],
                          [r.prompt for r in labelled])
    truth = np.array([r.targets["quality"] for r in labelled])
    assert evaluate(scores, truth)["srcc"] == pytest.approx(result.test["srcc"], abs=1e-9)
    assert evaluate(scores, truth)["plcc"] == pytest.approx(result.test["plcc"], abs=1e-9)


def test_cross_target_defaults_to_the_main_one_and_bad_specs_are_named(source, tmp_path):
    other = other_database(tmp_path)
    assert resolve_split(source, "cross:other") == {"train": [r.name for r in source.labelled()]}
    with pytest.raises(SplitError, match="has no target 'mos'.*quality, alignment"):
        train(EfficientNetLite0(size=32), source, TrainConfig(split="cross:other:mos", **FAST),
              other)
    with pytest.raises(SplitError, match="tests on 'agiqa3k', but the test database given"):
        train(EfficientNetLite0(size=32), source, TrainConfig(split="cross:agiqa3k", **FAST),
              other)
    with pytest.raises(SplitError, match="give it"):
        train(EfficientNetLite0(size=32), source, TrainConfig(split="cross:other", **FAST))
    with pytest.raises(SplitError, match="for cross:DB splits"):
        train(EfficientNetLite0(size=32), source, TrainConfig(split="official", **FAST), other)
    with pytest.raises(SplitError, match="cross:DB or cross:DB:TARGET"):
        resolve_split(source, "cross:")
    assert is_split_spec("cross:agiqa3k:alignment") and is_split_spec("Cross:demo")
    fitted = EfficientNetLite0(size=32, backbone_lr=0).fit(source, "cross:other:alignment",
                                                           test_database=other, **FAST)
    assert fitted.fit_result.protocol["test"]["target"] == "alignment"
    assert fitted.fit_result.test["n"] == 12


def test_cli_cross_with_a_second_demo(tmp_path):
    root = build_demo(tmp_path / "a", n=30, seed=1)
    other = build_demo(tmp_path / "b", n=16, seed=9)
    out = tmp_path / "run"
    args = ["--metric", "effnet-lite0:size=32:backbone_lr=0", "--database", "demo", "--root",
            str(root), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--workers",
            "0", "--no-progress"]
    res = CliRunner().invoke(app, [*args, "--split", "cross:demo", "--test-root", str(other)])
    assert res.exit_code == 0, res.output
    assert "tested on demo mos, name-blind" in res.output
    result = json.loads((out / "result.json").read_text())
    assert result["protocol"]["test"]["images"] == result["test"]["n"] == 16
    assert result["name_blind"] is True and result["protocol"]["split"] == "cross:demo"
    meta = torch.load(out / "model.pt", weights_only=True)["aigiqa"]
    assert meta["protocol"]["test"]["database"] == "demo"
    from aigiqa.metrics.registry import metric_from_spec

    trained = metric_from_spec(result["bench_spec"]).provenance()
    assert trained["training"]["split"] == "cross:demo"
    assert trained["training"]["name_blind"] is True
    bad = CliRunner().invoke(app, [*args, "--split", "cross:demo"])
    assert bad.exit_code != 0 and "needs it" in str(bad.exception)
    bad = CliRunner().invoke(app, [*args, "--test-root", str(other)])
    assert bad.exit_code != 0 and "--test-root is for --split cross:DB" in str(bad.exception)


# Name-blind --------------------------------------------------------------------------------------
class Spy(LearnedMetric):
    """A tiny model that records every input its forward is given."""

    name: ClassVar[str] = "spy"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    seen: ClassVar[list[Any]] = []

    def build_model(self) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(3, 1))

    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None):
        return torch.from_numpy(np.ascontiguousarray(image[:16, :16])).permute(2, 0, 1).float()

    def forward(self, model, batch, prompts):
        type(self).seen.append((batch, list(prompts or [])))
        return model(batch / 255).squeeze(1)


class NameSpy(Spy):
    reads_names = True

    def model_text(self, prompt: str, name: str, generator: str) -> str:
        return f"{generator}|{name}|{prompt}"


def _texts() -> list[str]:
    assert all(isinstance(batch, torch.Tensor) for batch, _ in Spy.seen)
    return [t for _, texts in Spy.seen for t in texts]


def test_by_default_the_model_sees_no_file_name_or_generator(source):
    Spy.seen.clear()
    train(Spy(), source, TrainConfig(split="public:7/1/2", **FAST))
    texts = _texts()
    assert len(texts) >= len(source.labelled())  # training and prediction batches
    forbidden = {r.name.lower() for r in source} | {r.name.rsplit(".", 1)[0].lower()
                                                     for r in source}
    forbidden |= {r.generator.lower() for r in source if r.generator}
    assert not [t for t in texts if any(f in t.lower() for f in forbidden)]
    assert set(texts) <= {r.prompt for r in source}


def test_a_model_that_reads_names_needs_the_flag_and_then_gets_them(source):
    with pytest.raises(MetricError, match="allow-names"):
        train(NameSpy(), source, TrainConfig(split="public:7/1/2", **FAST))
    Spy.seen.clear()
    result = train(NameSpy(), source, TrainConfig(split="public:7/1/2", allow_names=True,
                                                   **FAST))
    assert result.protocol["name_blind"] is False
    expected = {f"{r.generator}|{r.name}|{r.prompt}" for r in source.labelled()}
    assert set(_texts()) == expected  # every labelled image, in some part, with its names
    Spy.seen.clear()
    train(Spy(), source, TrainConfig(split="public:7/1/2", allow_names=True, **FAST))
    assert set(_texts()) <= {r.prompt for r in source}  # a model that asks for none gets none


class PromptSpy(Spy):
    needs_prompt: ClassVar[bool] = True


def test_scoring_gives_the_model_pixels_and_prompts_only(source):
    records = source.records[:4]
    Spy.seen.clear()
    PromptSpy().score([r.path for r in records], [r.prompt for r in records])  # paths in
    assert _texts() == [r.prompt for r in records]  # and _texts: tensors only
