"""The scoring service and metrics that read names: refused at start-up unless the operator
passes --allow-names; then each image of a request gives its generator (validated, bounded)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import pytest
from PIL import Image

from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import _METRICS, register_metric
from aigiqa.serve import ServeConfig, create_app
from aigiqa.serve.config import ServeConfigError
from aigiqa.testing.servers import running_server


class _Named(Metric):
    """Reads names: records each text it is given; score = length of the text."""

    name: ClassVar[str] = "test_serve_named"
    needs_prompt: ClassVar[bool] = True
    reads_names = True
    seen: ClassVar[list[str]] = []

    def model_text(self, prompt: str, name: str, generator: str) -> str:
        return f"{generator}|{name}|{prompt}"

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None):
        self.check_batch(images, prompts)
        assert prompts is not None
        type(self).seen.extend(prompts)
        return np.array([float(len(p)) for p in prompts])


class _Blind(_Named):
    """The same, name-blind."""

    name: ClassVar[str] = "test_serve_blind"
    reads_names = False


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("allowed")
    (folder / "sub").mkdir()
    (folder / "sub" / "SD1.5_0001.png").write_bytes(_png(1))
    (folder / "MJ_0002.png").write_bytes(_png(2))
    return folder


@pytest.fixture(scope="module")
def metrics() -> Iterator[None]:
    for cls in (_Named, _Blind):
        register_metric(cls)
    yield
    for cls in (_Named, _Blind):
        _METRICS.pop(cls.name, None)


@pytest.fixture(scope="module")
def server(allowed: Path, metrics: None) -> Iterator[httpx.Client]:
    config = ServeConfig(allow_dir=allowed, metrics=("named=test_serve_named",
                                                     "blind=test_serve_blind"),
                         allow_names=True)
    with running_server(create_app(config)) as url, httpx.Client(base_url=url,
                                                                 timeout=30) as client:
        yield client


def test_refused_at_start_up_without_the_flag(allowed: Path, metrics: None) -> None:
    with pytest.raises(ServeConfigError, match="--allow-names"):
        create_app(ServeConfig(allow_dir=allowed, metrics=("test_serve_named",)))


def test_json_requests_give_the_generator_of_each_image(server: httpx.Client) -> None:
    _Named.seen.clear()
    body = {"images": [{"path": "sub/SD1.5_0001.png", "prompt": "a cat", "generator": "SD1.5"},
                       {"path": "MJ_0002.png", "prompt": "a dog"}],
            "metrics": ["named", "blind"]}
    response = server.post("/v1/score", json=body)
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    text = "SD1.5|SD1.5_0001.png|a cat"
    assert first["scores"] == {"named": len(text), "blind": len("a cat")}
    assert "named" not in second["scores"] and "'generator'" in second["errors"]["named"]
    assert second["scores"]["blind"] == len("a dog")  # the other metric still scores it
    assert sorted(_Named.seen) == sorted([text, "a cat", "a dog"])  # blind: prompts only


@pytest.mark.parametrize("generator", ["", "x" * 201, "SD\n1.5", "   "])
def test_a_bad_generator_is_a_422(server: httpx.Client, generator: str) -> None:
    body = {"images": [{"path": "MJ_0002.png", "prompt": "a dog", "generator": generator}],
            "metrics": ["named"]}
    response = server.post("/v1/score", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "generator"


def test_uploads_give_generators_in_order(server: httpx.Client) -> None:
    _Named.seen.clear()
    files = [("files", ("MJ_0002.png", _png(2))), ("files", ("x_1.png", _png(3)))]
    data = {"metrics": "named", "prompts": ["a dog", "a tree"], "generators": ["MJ", "Flux"]}
    response = server.post("/v1/score", files=files, data=data)
    assert response.status_code == 200, response.text
    assert sorted(_Named.seen) == ["Flux|x_1.png|a tree", "MJ|MJ_0002.png|a dog"]
    short = server.post("/v1/score", files=files, data={**data, "generators": ["MJ"]})
    assert short.status_code == 422 and "2 files but 1 generators" in short.json()["detail"]
    bad = server.post("/v1/score", files=files, data={**data, "generators": ["MJ", "x" * 201]})
    assert bad.status_code == 422 and "generators [1]" in bad.json()["detail"]
