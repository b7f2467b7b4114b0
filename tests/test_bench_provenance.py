"""The benchmark results and report state which protocol and mode produced each number."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("torch")

import aigiqa.metrics.learned.backbones  # noqa: E402, F401  (registers the backbone regressors)
from aigiqa.benchmark import provenance  # noqa: E402
from aigiqa.benchmark.runner import run_benchmark  # noqa: E402
from aigiqa.databases.registry import load_database  # noqa: E402
from aigiqa.demo import build_demo  # noqa: E402
from aigiqa.metrics.learned.backbones import EfficientNetLite0  # noqa: E402
from aigiqa.metrics.registry import metric_from_spec  # noqa: E402
from aigiqa.training import TrainConfig, train  # noqa: E402

TRAINING = {"split": "public:7/1/2", "name_blind": False,
            "train": {"database": "demo", "root": "/data/demo"}}


def test_describe_says_how_the_weights_were_trained() -> None:
    trained = {"provenance": {"inference_protocol": "", "training": TRAINING}}
    assert provenance.describe(trained, "demo") == {
        "protocol": "trained on demo public:7/1/2; includes its training images",
        "name_blind": False, "inference_protocol": ""}
    assert provenance.describe(trained, "agiqa3k")["protocol"] == "trained on demo public:7/1/2"
    assert provenance.describe(trained, "demo", "/data/demo")["protocol"].endswith("images")
    assert provenance.describe(trained, "demo", "/other")["protocol"] == \
        "trained on demo public:7/1/2"  # another demo folder: other images
    released = {"provenance": {"inference_protocol": "resize"}}
    assert provenance.describe(released, "demo") == {
        "protocol": "not trained here", "name_blind": True, "inference_protocol": "resize"}
    assert provenance.describe({"spec": "old"}, "demo")["protocol"] == "not recorded"
    table = pd.DataFrame({"metric": ["a", "b", "a"], "srcc": [0.1, 0.2, 0.3]})
    out = provenance.annotate(table, [{"spec": "a", **trained}, {"spec": "b", **released}],
                              "demo")
    assert list(out["name_blind"]) == [False, True, False]
    assert list(out["inference_protocol"]) == ["", "resize", ""]


def test_bench_of_a_trained_checkpoint_records_its_protocol(tmp_path) -> None:
    db = load_database("demo", build_demo(tmp_path / "demo", n=36, seed=2))
    metric = EfficientNetLite0(size=32, backbone_lr=0)
    result = train(metric, db, TrainConfig(split="public:7/1/2", epochs=1, batch_size=8,
                                           progress=False, out=tmp_path / "run"))
    scored = metric_from_spec(result.bench_spec)
    bench = run_benchmark(db, [scored, "sharpness"], store=None, out=tmp_path / "bench",
                          progress=False, bootstrap=0)
    rows = bench.results[bench.results["group"] == "all"].set_index("metric")
    trained = rows.loc[scored.spec]
    assert trained["protocol"] == "trained on demo public:7/1/2; includes its training images"
    assert bool(trained["name_blind"]) is True
    assert rows.loc["sharpness", "protocol"] == "not trained here"
    assert rows.loc["sharpness", "inference_protocol"] == ""
    csv = pd.read_csv(tmp_path / "bench" / "results.csv")
    assert {"protocol", "name_blind", "inference_protocol"} <= set(csv.columns)
    report = (tmp_path / "bench" / "report.html").read_text()
    assert 'id="protocols"' in report and "trained on demo public:7/1/2" in report
