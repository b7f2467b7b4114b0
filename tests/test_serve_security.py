"""The scoring service serves only what its operator configured: clients name metric ids, never
options or server files; a metric that cannot load stops the server at start-up."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import _METRICS, metric_from_spec, register_metric
from aigiqa.serve import ServeConfig, create_app
from aigiqa.serve.cli import app as serve_cli
from aigiqa.serve.config import ServeConfigError
from aigiqa.testing.servers import running_server

#: Paths opened by this process (Python's "open" audit event) that contain SENTINEL.
SENTINEL = "aigiqa-sentinel-never-open"
OPENED: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and args and SENTINEL in str(args[0]):
        OPENED.append(str(args[0]))


if not getattr(sys, "_aigiqa_serve_audit", False):  # audit hooks cannot be removed: add once
    sys.addaudithook(_audit)
    sys._aigiqa_serve_audit = True  # type: ignore[attr-defined]


class _Counted(Metric):
    """A registered metric that is never served: counts how often it is created."""

    name: ClassVar[str] = "test_serve_unserved"
    created: ClassVar[int] = 0

    def __init__(self, **options) -> None:
        super().__init__(**options)
        type(self).created += 1

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None):
        return np.zeros(len(images))


def png(size: int = 100) -> bytes:
    pixels = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A readable file the server must never open (its bytes must never be answered)."""
    path = tmp_path_factory.mktemp("secret") / f"{SENTINEL}.mat"
    path.write_bytes(b"TOP-SECRET-BYTES " * 64)
    return path


@pytest.fixture(scope="module")
def own_model(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """The operator's own copy of the LIVE NIQE model, at a path clients must not learn."""
    path = tmp_path_factory.mktemp("operator") / "private-niqe-model.mat"
    shutil.copy(shared / "assets" / "niqe" / "modelparameters.mat", path)
    return path


@pytest.fixture(scope="module")
def client(own_model: Path, shared: Path) -> Iterator[httpx.Client]:
    register_metric(_Counted)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIGIQA_HOME", str(shared))
        config = ServeConfig(metrics=("entropy", f"mine=niqe:checkpoint={own_model}",
                                      "e64=entropy:bins=64"))
        with running_server(create_app(config)) as url, httpx.Client(base_url=url,
                                                                     timeout=30) as http:
            yield http
    _METRICS.pop(_Counted.name, None)


def score(client: httpx.Client, metrics: str) -> httpx.Response:
    return client.post("/v1/score", files=[("files", ("a.png", png()))],
                       data={"metrics": metrics})


def test_served_ids_score_with_the_operators_options(client: httpx.Client,
                                                     own_model: Path) -> None:
    body = score(client, "entropy,mine,e64").json()
    scores = body["results"][0]["scores"]
    image = np.asarray(Image.open(io.BytesIO(png())).convert("RGB"))
    for served_id, spec in {"entropy": "entropy", "mine": f"niqe:checkpoint={own_model}",
                            "e64": "entropy:bins=64"}.items():
        assert scores[served_id] == pytest.approx(metric_from_spec(spec).score([image])[0])


@pytest.mark.parametrize("spec", [
    "niqe:checkpoint={path}", "niqe:model={path}", "mine:checkpoint={path}",
    "brisque:model={path}",
    "effnet-lite0:checkpoint={path}", "blipscore:vocab={path}", "entropy:bins=7:model={path}",
])
def test_file_valued_options_are_refused_untouched(client: httpx.Client, sentinel: Path,
                                                   spec: str) -> None:
    with open(sentinel, "rb"):  # the audit hook does see opens of the sentinel
        pass
    assert OPENED
    OPENED.clear()
    response = score(client, spec.format(path=sentinel))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "fixed by the operator" in detail and "entropy, mine, e64" in detail
    assert OPENED == []  # no file touched
    assert str(sentinel.parent) not in response.text and "SECRET" not in response.text
    if not spec.startswith("entropy:bins=7"):
        assert "name files on the server; clients cannot set them" in detail


def test_refusal_does_not_tell_whether_a_file_exists(client: httpx.Client, sentinel: Path) -> None:
    there = score(client, f"niqe:model={sentinel}")
    missing = score(client, f"niqe:model={sentinel.with_name('missing.mat')}")
    assert there.status_code == missing.status_code == 422
    assert there.json() == missing.json()


@pytest.mark.parametrize(("spec", "message"), [
    ("entropy:bins=7", "options cannot be set by a client"),
    ("e64:bins=256", "options cannot be set by a client"),
    ("test_serve_unserved", "metric 'test_serve_unserved' is not served here"),
    ("sharpness", "metric 'sharpness' is not served here; served metrics: entropy, mine, e64"),
    ("niqe", "metric 'niqe' is not served here"),  # served, but under the id 'mine'
    ("../../etc/passwd", "the metric given is not served here"),
])
def test_only_served_ids_are_scored(client: httpx.Client, spec: str, message: str) -> None:
    _Counted.created = 0
    response = score(client, spec)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert "=7" not in response.text and "=256" not in response.text  # no value echoed
    assert "passwd" not in response.text
    assert _Counted.created == 0  # no metric was created for the client


def test_listing_and_stats_show_ids_never_paths(client: httpx.Client, own_model: Path) -> None:
    score(client, "entropy:bins=5")  # another client's attempt leaves no trace
    listed = {m["id"]: m for m in client.get("/v1/metrics").json()}
    assert list(listed) == ["entropy", "mine", "e64"]
    assert listed["mine"]["name"] == "niqe" and listed["mine"]["file_options"] == ["checkpoint"]
    assert listed["mine"]["options"] == {"block_size": 96}
    stats = client.get("/v1/stats").json()
    assert set(stats["batching"]) == {"entropy", "mine", "e64"}
    for path in ("/v1/metrics", "/v1/stats", "/openapi.json"):
        text = client.get(path).text
        assert own_model.name not in text and str(own_model.parent) not in text
        assert "bins=5" not in text


def test_startup_fails_on_a_missing_or_corrupt_model(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mat"
    corrupt.write_bytes(b"MATLAB 5.0 MAT-file, but not really" + bytes(200))
    for spec, file in [("niqe:checkpoint=/nonexistent.mat", "/nonexistent.mat"),
                       (f"niqe:checkpoint={corrupt}", str(corrupt)),
                       ("brisque:checkpoint=/nonexistent-brisque", "/nonexistent-brisque")]:
        with pytest.raises(ServeConfigError) as error:
            create_app(ServeConfig(metrics=("entropy", spec)))
        message = str(error.value)
        assert "\n" not in message and spec in message and file in message
        assert message.startswith("--metrics:")


def test_cli_exits_at_startup_naming_spec_and_file(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(app))
    runner = CliRunner()
    bad = runner.invoke(serve_cli, ["--metrics", "entropy,niqe:checkpoint=/nonexistent.mat"])
    assert bad.exit_code == 2 and calls == []
    lines = bad.output.strip().splitlines()
    assert len(lines) == 1 and "niqe:checkpoint=/nonexistent.mat" in lines[0], bad.output
    for args in ([], ["--metrics", ""], ["--metrics", " , "]):
        empty = runner.invoke(serve_cli, args)
        assert empty.exit_code == 2 and "--metrics" in empty.output, empty.output
    assert calls == []


def test_labels_and_duplicate_ids() -> None:
    config = ServeConfig(metrics=("entropy", "e64=entropy:bins=64", "niqe:block_size=48"))
    from aigiqa.serve.served import parse_served

    assert [(s.id, s.spec) for s in parse_served(config.metrics)] == [
        ("entropy", "entropy"), ("e64", "entropy:bins=64"), ("niqe", "niqe:block_size=48")]
    with pytest.raises(ServeConfigError, match="id 'entropy' is used by 2 entries.*label"):
        ServeConfig(metrics=("entropy", "entropy:bins=64")).validate()
    with pytest.raises(ServeConfigError, match="id 'x' is used by 2"):
        ServeConfig(metrics=("x=entropy", "x=sharpness")).validate()
    with pytest.raises(ServeConfigError, match="must be letters, digits"):
        ServeConfig(metrics=("bad id=entropy",)).validate()
    with pytest.raises(ServeConfigError, match="no metric to serve"):
        ServeConfig().validate()
