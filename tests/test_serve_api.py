"""The scoring service over real HTTP: uploads, paths, per-item errors, limits, auth, CLI."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aigiqa.errors import AigiqaError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import _METRICS, metric_class, metric_from_spec, register_metric
from aigiqa.serve import ServeConfig, create_app
from aigiqa.serve.cli import app as serve_cli
from aigiqa.serve.cli import build_config
from aigiqa.serve.config import MAX_PIXELS, ServeConfigError
from aigiqa.testing.servers import running_server
from synthetic import header_only_png

#: What the module's server serves: id -> spec.
SERVED = {"entropy": "entropy", "e64": "entropy:bins=64", "sharpness": "sharpness",
          "contrast": "contrast", "niqe": "niqe", "test_serve_prompted": "test_serve_prompted"}


def png(seed: int, size: tuple[int, int] = (24, 32)) -> bytes:
    """A small random RGB PNG."""
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def flat_png(width: int, height: int) -> bytes:
    """A one-colour PNG (compresses to a few hundred bytes)."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buf, "PNG")
    return buf.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))



class _Prompted(Metric):
    """Test metric that needs a prompt: score = prompt length + mean pixel / 1000."""

    name: ClassVar[str] = "test_serve_prompted"
    needs_prompt: ClassVar[bool] = True

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None):
        self.check_batch(images, prompts)
        assert prompts is not None
        return np.array([len(p) + im.mean() / 1000 for im, p in zip(images, prompts, strict=True)])


class _Slow(Metric):
    """Test metric that takes 2 s per batch (for the per-request timeout)."""

    name: ClassVar[str] = "test_serve_slow"

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None):
        time.sleep(2.0)
        return np.zeros(len(images))


@pytest.fixture(scope="module")
def test_metrics() -> Iterator[None]:
    """Register the test metrics for this module only."""
    for cls in (_Prompted, _Slow):
        register_metric(cls)
    yield
    for cls in (_Prompted, _Slow):
        _METRICS.pop(cls.name, None)


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An allowed folder with two images, a corrupt file, a link out and a file beside it."""
    root = tmp_path_factory.mktemp("serve")
    folder = root / "allowed"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(png(1))
    (folder / "sub" / "b.png").write_bytes(png(2))
    (folder / "corrupt.png").write_bytes(png(3)[:60])
    (root / "secret.png").write_bytes(png(4))
    (folder / "link.png").symlink_to(root / "secret.png")
    (folder / "inner_link.png").symlink_to(folder / "a.png")
    return folder


@pytest.fixture(scope="module")
def server(allowed: Path, test_metrics: None, shared: Path,
           monkeypatch_module: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch_module.setenv("AIGIQA_HOME", str(shared))  # niqe's parameter file
    config = ServeConfig(allow_dir=allowed, max_images=5, max_request_bytes=200_000,
                         max_pixels=100_000, timeout_s=30, max_metrics=3,
                         metrics=tuple(f"{k}={v}" for k, v in SERVED.items()))
    with running_server(create_app(config)) as url, httpx.Client(base_url=url,
                                                                 timeout=30) as client:
        yield client


def upload(client: httpx.Client, images: list[tuple[str, bytes]], metrics: str,
           prompts: list[str] | None = None) -> httpx.Response:
    data = {"metrics": metrics}
    if prompts is not None:
        data["prompts"] = prompts
    return client.post("/v1/score", files=[("files", item) for item in images], data=data)


def test_healthz_and_metric_listing(server: httpx.Client) -> None:
    assert server.get("/healthz").json() == {"status": "ok"}
    listed = {m["id"]: m for m in server.get("/v1/metrics").json()}
    assert list(listed) == list(SERVED)  # the served metrics only, in the operator's order
    entropy = metric_from_spec("entropy")
    assert listed["entropy"]["lower_better"] == entropy.lower_better
    assert listed["entropy"]["options"] == entropy.defaults
    assert listed["e64"]["name"] == "entropy" and listed["e64"]["options"] == {"bins": 64}
    assert listed["test_serve_prompted"]["needs_prompt"] is True
    for info in listed.values():  # JSON has no infinity: an unbounded end is null
        if info["score_range"] is not None:
            high = metric_class(info["name"]).score_range[1]
            assert info["score_range"][1] == (high if np.isfinite(high) else None)
    assert set(server.get("/v1/stats").json()["batching"]) == set(SERVED)


def test_multipart_scores_equal_direct_metric_calls(server: httpx.Client) -> None:
    images = [("x.png", png(10)), ("y.png", png(11, (40, 16)))]
    response = upload(server, images, "e64, sharpness")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["metrics"] == ["e64", "sharpness"]
    for served_id in body["metrics"]:
        expected = metric_from_spec(SERVED[served_id]).score([decoded(d) for _, d in images])
        got = [item["scores"][served_id] for item in body["results"]]
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert [r["name"] for r in body["results"]] == ["x.png", "y.png"]


def test_bad_uploads_fail_only_their_item(server: httpx.Client) -> None:
    images = [("ok.png", png(5)), ("corrupt.png", png(6)[:70]), ("empty.png", b""),
              ("text.png", b"not an image"), ("big.png", flat_png(400, 400))]
    response = upload(server, images, "entropy")
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert set(results[0]["scores"]) == {"entropy"} and results[0]["error"] is None
    assert "cannot read image" in results[1]["error"] and "corrupt.png" in results[1]["error"]
    assert "empty" in results[2]["error"]
    assert "not an image" in results[3]["error"]
    assert "exceeds the limit of 100000 pixels" in results[4]["error"]
    assert all(r["scores"] == {} for r in results[1:])


def test_header_only_bomb_is_rejected_without_decoding(server: httpx.Client) -> None:
    response = upload(server, [("bomb.png", header_only_png(50_000, 50_000))], "entropy")
    assert response.status_code == 200
    assert "decompression bomb" in response.json()["results"][0]["error"]


def test_json_paths_inside_the_allowed_folder(server: httpx.Client, allowed: Path) -> None:
    refs = [{"path": "a.png"}, {"path": str(allowed / "sub" / "b.png")},
            {"path": (allowed / "a.png").as_uri()}, {"path": "inner_link.png"}]
    response = server.post("/v1/score", json={"images": refs, "metrics": ["contrast"]})
    assert response.status_code == 200, response.text
    got = [r["scores"]["contrast"] for r in response.json()["results"]]
    expected = metric_from_spec("contrast").score(
        [decoded(png(1)), decoded(png(2)), decoded(png(1)), decoded(png(1))])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize(("path", "message"), [
    ("../secret.png", "outside the allowed folder"),
    ("sub/../../secret.png", "outside the allowed folder"),
    ("link.png", "outside the allowed folder"),
    ("/etc/passwd", "outside the allowed folder"),
    ("http://example.com/a.png", "fetches nothing from the network"),
    ("missing.png", "no such file"),
    ("corrupt.png", "cannot read image"),
    ("sub", "no such file"),
])
def test_json_paths_refused_per_item(server: httpx.Client, path: str, message: str) -> None:
    body = {"images": [{"path": "a.png"}, {"path": path}], "metrics": ["entropy"]}
    results = server.post("/v1/score", json=body).json()["results"]
    assert "entropy" in results[0]["scores"]
    assert message in results[1]["error"], results[1]
    if path == "link.png":  # the link's target is not revealed
        assert "secret" not in results[1]["error"]


def test_paths_need_an_allowed_folder() -> None:
    with running_server(create_app(ServeConfig(metrics=("entropy",)))) as url:
        body = {"images": [{"path": "a.png"}], "metrics": ["entropy"]}
        results = httpx.post(f"{url}/v1/score", json=body).json()["results"]
    assert "reads no paths" in results[0]["error"] and "--allow-dir" in results[0]["error"]


def test_prompts_reach_prompt_aware_metrics(server: httpx.Client) -> None:
    images = [("p.png", png(8)), ("q.png", png(9))]
    body = upload(server, images, "test_serve_prompted", prompts=["a cat", ""]).json()
    assert body["results"][0]["scores"]["test_serve_prompted"] == pytest.approx(
        5 + decoded(png(8)).mean() / 1000)
    assert "needs a prompt" in body["results"][1]["errors"]["test_serve_prompted"]
    refs = {"images": [{"path": "a.png", "prompt": "dog"}], "metrics": ["test_serve_prompted"]}
    scores = server.post("/v1/score", json=refs).json()["results"][0]["scores"]
    assert scores["test_serve_prompted"] == pytest.approx(3 + decoded(png(1)).mean() / 1000)


def test_asset_metric_is_served(server: httpx.Client) -> None:
    data = png(12, (96, 96))
    response = upload(server, [("n.png", data)], "niqe")
    assert response.status_code == 200, response.text
    body = response.json()
    expected = metric_from_spec("niqe").score([decoded(data)])[0]
    assert body["results"][0]["scores"]["niqe"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("kwargs", "status", "message"), [
    ({"json": {"images": [{"path": "a.png"}], "metrics": ["no_such_metric"]}}, 422,
     "metric 'no_such_metric' is not served here; served metrics: entropy, e64, sharpness"),
    ({"json": {"images": [{"path": "a.png"}], "metrics": ["entropy:bogus=1"]}}, 422,
     "options cannot be set by a client"),
    ({"json": {"images": [{"path": "a.png"}], "metrics": ["entropy:bins=x"]}}, 422,
     "options are fixed by the operator"),
    ({"json": {"images": [], "metrics": ["entropy"]}}, 422, "at least 1 item"),
    ({"json": {"images": [{"path": "a.png"}], "metrics": ["a", "b", "c", "d"]}}, 422,
     "the limit is 3"),
    ({"json": {"images": [{"path": "a.png"}] * 6, "metrics": ["entropy"]}}, 413,
     "6 images in one request; the limit is 5"),
    ({"content": b"{", "headers": {"content-type": "application/json"}}, 422, "json"),
    ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "text/plain"),
    ({"content": b"x" * 200_001, "headers": {"content-type": "application/json"}}, 413,
     "exceeds the limit of 200000 bytes"),
    ({"files": [("files", ("a.png", png(1)))], "data": {"prompts": ["a", "b"],
                                                         "metrics": "entropy"}}, 422,
     "1 files but 2 prompts"),
    ({"files": [("files", ("a.png", png(1)))], "data": {"metrics": "entropy", "x": "1"}}, 422,
     "unknown form field"),
    ({"files": [("files", ("a.png", png(1)))]}, 422, "no metric given"),
    ({"files": [("files", (f"{i}.png", png(1))) for i in range(6)],
      "data": {"metrics": "entropy"}}, 413, "more than 5 images"),
    ({"files": [("files", (f"{i}.png", png(1))) for i in range(20)],
      "data": {"metrics": "entropy"}}, 413, "more than 5 images"),
])
def test_request_level_errors(server: httpx.Client, kwargs: dict, status: int,
                              message: str) -> None:
    response = server.post("/v1/score", **kwargs)
    assert response.status_code == status, response.text
    assert message.lower() in response.text.lower()


def test_streamed_body_over_the_limit_is_refused(server: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:  # no content-length: the limit counts streamed bytes
        for _ in range(30):
            yield b"x" * 10_000
    response = server.post("/v1/score", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "200000 bytes" in response.json()["detail"]


def test_request_timeout_and_a_free_event_loop(test_metrics: None) -> None:
    with running_server(create_app(ServeConfig(timeout_s=1.0,
                                               metrics=("test_serve_slow",)))) as url:
        health: list[float] = []

        def probe() -> None:  # while the metric sleeps in its thread, the loop still answers
            time.sleep(0.3)
            t0 = time.monotonic()
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
            health.append(time.monotonic() - t0)

        prober = threading.Thread(target=probe)
        prober.start()
        started = time.monotonic()
        files = [("files", ("a.png", png(1)))]
        response = httpx.post(f"{url}/v1/score", files=files,
                              data={"metrics": "test_serve_slow"}, timeout=30)
        elapsed = time.monotonic() - started
        prober.join()
    assert health and health[0] < 0.5
    assert response.status_code == 504
    assert "longer than 1 s" in response.json()["detail"]
    assert elapsed < 1.9  # answered at the limit, not when the metric finished


@pytest.fixture(scope="module")
def secured(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    monkeypatch_module.setenv("AIGIQA_API_KEY", "s3cret-key")
    config = build_config(metrics="sharpness")  # key taken from the environment
    with running_server(create_app(config)) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Bearer wrong"}, 401),
    ({"X-API-Key": "s3cret-ke"}, 401),
    ({"Authorization": "Basic s3cret-key"}, 401),
    ({"Authorization": "Bearer s3cret-key"}, 200),
    ({"X-API-Key": "s3cret-key"}, 200),
])
def test_api_key(secured: httpx.Client, headers: dict[str, str], status: int) -> None:
    files = [("files", ("a.png", png(1)))]
    response = secured.post("/v1/score", files=files, data={"metrics": "sharpness"},
                            headers=headers)
    assert response.status_code == status, response.text
    assert secured.get("/v1/metrics", headers=headers).status_code == status
    assert secured.get("/healthz").status_code == 200  # always open
    if status == 401:
        assert "API key" in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_build_config_validates_options(tmp_path: Path) -> None:
    config = build_config(metrics="entropy:bins=64,sharpness", allow_dir=tmp_path, max_batch=4,
                          api_key="k")
    assert config.metrics == ("entropy:bins=64", "sharpness")
    assert config.max_batch == 4 and config.api_key == "k" and config.max_pixels == MAX_PIXELS
    with pytest.raises(AigiqaError, match="unknown metric 'nope'"):
        create_app(build_config(metrics="nope"))
    with pytest.raises(ServeConfigError, match="is not a folder"):
        build_config(metrics="entropy", allow_dir=tmp_path / "missing")
    with pytest.raises(ServeConfigError, match="max_batch=0 must be > 0"):
        ServeConfig(metrics=("entropy",), max_batch=0).validate()


def test_cli_serve_passes_options_to_uvicorn(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    import uvicorn

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    runner = CliRunner()
    result = runner.invoke(serve_cli, ["--port", "9123", "--metrics", "entropy",
                                       "--allow-dir", str(tmp_path), "--max-batch", "8"])
    assert result.exit_code == 0, result.output
    assert calls[0]["port"] == 9123 and calls[0]["host"] == "127.0.0.1"
    paths = {route.path for route in calls[0]["app"].routes}
    assert {"/v1/score", "/v1/metrics", "/healthz"} <= paths
    bad = runner.invoke(serve_cli, ["--metrics", "nope"])
    assert bad.exit_code == 2 and "unknown metric 'nope'" in bad.output
