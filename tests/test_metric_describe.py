"""One metadata serializer (``metric_metadata``) behind ``aigiqa metrics list``, the service's
``/v1/metrics`` and the ``metrics`` of benchmark results (that one: tests/test_runner.py)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from aigiqa.cli import app
from aigiqa.metrics.base import Metric
from aigiqa.metrics.describe import metric_metadata
from aigiqa.metrics.registry import list_metrics, metric_class
from aigiqa.serve.served import metric_info

SECRET = "/srv/private/weights.pt"


class _Probe(Metric):
    """Probe for the metadata tests.

    Only the first line of this docstring is its description."""

    name = "describe-probe"
    kind = "classical"
    lower_better = True
    score_range = (0, float("inf"))
    citation = "A. Author, 2024"
    version = "3"
    defaults = {"k": 1, "weights": SECRET, "where": Path("/data")}
    file_options = ("weights",)


def test_class_metadata():
    assert metric_metadata(_Probe) == {
        "name": "describe-probe", "kind": "classical", "lower_better": True,
        "needs_prompt": False, "score_range": [0.0, None],
        "description": "Probe for the metadata tests.", "citation": "A. Author, 2024",
        "version": "3", "file_options": ["weights"],
    }


def test_instance_metadata_adds_spec_key_and_options():
    metric = _Probe(k="2")
    info = metric_metadata(metric)
    assert info == {**metric_metadata(_Probe), "spec": "describe-probe:k=2", "key": metric.key,
                    "options": {"k": 2, "weights": SECRET, "where": "/data"},
                    "provenance": {}}  # Metric.provenance: nothing beyond the options here
    json.dumps(info, allow_nan=False)  # JSON as it is


def test_the_service_shows_the_same_metadata_without_file_values():
    metric = _Probe(k=2)
    shown = metric_info("probe", metric).model_dump()
    # provenance (training databases and their folders on the server) is not shown to clients
    expected = {k: v for k, v in metric_metadata(metric).items()
                if k not in ("spec", "key", "provenance")}
    expected.update(id="probe", options={"k": 2, "where": "/data"}, file_options=["weights"])
    assert shown == expected
    assert SECRET not in json.dumps(shown)


def test_metrics_list_prints_the_metadata():
    out = CliRunner().invoke(app, ["metrics", "list"], catch_exceptions=False).output
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert set(lines) == set(list_metrics())
    for name, line in lines.items():
        info = metric_metadata(metric_class(name))
        assert info["kind"] in line and line.rstrip().endswith(info["description"])
        assert ("lower-better" in line) == info["lower_better"]
        assert ("needs-prompt" in line) == info["needs_prompt"]
