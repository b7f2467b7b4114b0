"""write_outputs / build_report: the benchmark's files and its self-contained HTML report."""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pandas as pd
import pytest

from aigiqa.benchmark.report import ReportError, build_report, read_results, write_outputs
from aigiqa.benchmark.results import summarize
from aigiqa.errors import AigiqaError
from test_results import METRICS, make_frame

FAILURES = [
    {"name": "img_0005.png", "path": "/data/img_0005.png", "metric": "noisy:sigma=1",
     "error": "ImageError: truncated <script>alert('x')</script> & more"},
    {"name": "img_0017.png", "path": "/data/img_0017.png", "metric": "noisy:sigma=1",
     "error": "MetricError: image too small (8x8)"},
]


def make_meta() -> dict:
    return {
        "database": "synthetic<db>", "root": "/data", "target": "mos", "score_range": (0.0, 5.0),
        "metrics": METRICS, "failures": FAILURES, "computed": 357, "cached": 3,
        "created": "2026-11-27T09:00:00+00:00", "aigiqa_version": "0.1.0",
    }


@pytest.fixture(scope="module")
def inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = make_frame()
    return frame, summarize(frame, METRICS, target="mos", hyper=("cfg", "steps"), bootstrap=40)


@pytest.fixture()
def written(tmp_path, inputs):
    frame, results = inputs
    out = tmp_path / "run"
    paths = write_outputs(out, frame, results, make_meta())
    return out, paths


def test_write_outputs_writes_every_file_and_no_temp_files(written):
    out, paths = written
    names = {"scores.csv", "results.csv", "results.json", "report.html"}
    assert {p.name for p in paths.values()} == names
    assert all(p.is_file() and p.stat().st_size > 0 and p.parent == out for p in paths.values())
    assert sorted(os.listdir(out)) == sorted(names)  # atomic writes left no temp file behind


def test_every_output_is_synced_before_its_rename(tmp_path, inputs, monkeypatch):
    """The one atomic-write helper (aigiqa.files): each file's bytes reach the disk before the
    rename makes them visible; the CSVs are what ``to_csv`` gives."""
    frame, results = inputs
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda src, dst: (
        events.append(os.path.basename(dst)), real_replace(src, dst))[1])
    paths = write_outputs(tmp_path / "run", frame, results, make_meta())
    assert events == [e for name in ("scores.csv", "results.csv", "results.json", "report.html")
                      for e in ("fsync", name)]
    assert paths["scores"].read_text() == frame.to_csv(index=False)
    assert paths["results_csv"].read_text() == results.to_csv(index=False)


def test_results_json_is_valid_and_round_trips(written, inputs):
    out, _ = written
    _, results = inputs
    text = (out / "results.json").read_text()

    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    payload = json.loads(text, parse_constant=reject)
    assert payload["meta"]["database"] == "synthetic<db>"
    assert payload["meta"]["score_range"] == [0.0, 5.0]
    assert [m["spec"] for m in payload["meta"]["metrics"]] == [m["spec"] for m in METRICS]
    assert len(payload["results"]) == len(results)
    assert any(row["srcc"] is None for row in payload["results"])  # the 2-image generator
    meta, back = read_results(out)
    assert meta["failures"] == FAILURES
    pd.testing.assert_frame_equal(back[results.columns], results, check_dtype=False)


def test_csv_files_hold_the_frame_and_the_table(written, inputs):
    out, _ = written
    frame, results = inputs
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == list(frame.columns)
    assert scores["path"].tolist() == frame["path"].tolist()
    np.testing.assert_allclose(scores["noisy:sigma=1"], frame["noisy:sigma=1"], equal_nan=True)
    table = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    assert len(table) == len(results)
    np.testing.assert_allclose(table["srcc"], results["srcc"], equal_nan=True)


def test_build_report_rebuilds_from_the_folder_alone(written):
    out, _ = written
    (out / "report.html").unlink()
    path = build_report(out)
    assert path == out / "report.html" and path.is_file()
    page = path.read_text()
    for spec in ("perfect", "inverse", "noisy:sigma=1"):
        assert spec in page
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', page)) >= 2
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "<script>" not in page
    assert "synthetic&lt;db&gt;" in page and "MetricError: image too small (8x8)" in page
    for section in ("Per split", "Per generator", "Per hyper-parameter", "cfg", "steps"):
        assert section in page
    assert "Blind split(s)" in page and "test (30 images)" in page


def test_report_marks_the_best_value_and_lower_better(written, inputs):
    out, _ = written
    _, results = inputs
    page = (out / "report.html").read_text()
    summary = page[page.index('id="summary"'):page.index('id="splits"')]
    best_srcc = results[results["group"] == "all"]["srcc"].max()
    assert f"<b>{best_srcc:.3f}" in summary
    assert "\u2193" in summary  # the lower-better metric is marked


def test_missing_results_json_is_a_clear_error(tmp_path):
    with pytest.raises(AigiqaError, match="results.json") as info:
        build_report(tmp_path)
    assert isinstance(info.value, ReportError) and str(tmp_path) in str(info.value)


def test_malformed_results_json_and_missing_scores_are_clear_errors(written):
    out, _ = written
    (out / "scores.csv").unlink()
    with pytest.raises(ReportError, match="scores.csv"):
        build_report(out)
    (out / "results.json").write_text('{"meta": {}, "results": [')
    with pytest.raises(ReportError, match="results.json"):
        build_report(out)


def test_large_scatter_draws_all_metrics(tmp_path):
    rng = np.random.default_rng(3)
    n = 20_000
    mos = rng.uniform(0, 5, n)
    frame = pd.DataFrame({"name": [f"{i}.png" for i in range(n)], "path": "x", "prompt": "p",
                          "generator": np.array(["G1", "G2"])[np.arange(n) % 2],
                          "split": "train", "mos": mos,
                          "perfect": mos, "inverse": -mos + rng.normal(0, 1, n),
                          "noisy:sigma=1": 1 / (1 + np.exp(-(mos - 2.5))) + rng.normal(0, .1, n)})
    results = summarize(frame, METRICS, target="mos", bootstrap=0)
    meta = make_meta() | {"failures": []}
    page = write_outputs(tmp_path, frame, results, meta)["report"].read_text()
    assert "No image failed" in page
    assert "20,000" in page
    assert math.isclose(results.loc[results["metric"] == "perfect", "srcc"].iloc[0], 1.0)


def test_report_of_a_blind_database_with_a_metric_that_always_failed(tmp_path):
    frame = make_frame(n_labelled=0, n_blind=50).drop(columns=["generator"])
    frame["noisy:sigma=1"] = np.nan
    results = summarize(frame, METRICS, target="mos", bootstrap=10)
    assert (results["group"] == "all").all() and results["srcc"].isna().all()
    assert (results["n"] == 0).all()
    meta = make_meta() | {"failures": [{"name": "img_0000.png", "path": "/x/$a$.png",
                                        "metric": "noisy:sigma=1", "error": "boom $x^2$"}]}
    page = write_outputs(tmp_path, frame, results, meta)["report"].read_text()
    assert "No labelled, scored image to plot" in page
    assert "No generator is known" in page and "boom $x^2$" in page
    assert "test (50 images)" in page


def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_temp(written, inputs, monkeypatch):
    out, _ = written
    frame, results = inputs
    before = (out / "results.json").read_bytes()

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(out, frame, results.iloc[:5], make_meta() | {"database": "other"})
    monkeypatch.undo()
    assert (out / "results.json").read_bytes() == before
    assert sorted(os.listdir(out)) == ["report.html", "results.csv", "results.json", "scores.csv"]


def test_unwritable_outputs_are_report_errors_naming_the_file(tmp_path, inputs, written):
    frame, results = inputs
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(ReportError, match="taken: the results folder must be a folder"):
        write_outputs(tmp_path / "taken", frame, results, make_meta())
    assert (tmp_path / "taken").read_text() == "mine"
    out, _ = written
    (out / "report.html").unlink()
    (out / "report.html").mkdir()  # a folder where the report goes: root cannot replace it
    with pytest.raises(ReportError, match=r"report\.html"):
        build_report(out)
    with pytest.raises(ReportError, match=r"report\.html: the results file report\.html must "
                                          r"be a file"):
        write_outputs(out, frame, results, make_meta())
