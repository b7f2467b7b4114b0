"""Property-based checks of the live service against its own OpenAPI schema (schemathesis)."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aigiqa.serve import ServeConfig, create_app
from aigiqa.testing.servers import running_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("schema")
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    (folder / "a.png").write_bytes(buf.getvalue())
    config = ServeConfig(allow_dir=folder, max_images=64, max_request_bytes=1 << 20,
                         max_pixels=1 << 20, timeout_s=20,
                         metrics=("entropy", "sharpness", "e64=entropy:bins=64"))
    with running_server(create_app(config)) as url:
        yield url


#: Metric lists swapped into some generated bodies (None: keep the generated strings); contrast
#: is registered but not served, entropy:bins=64 has an option (both refused).
KNOWN = [None, ["entropy"], ["sharpness", "e64"], ["contrast"], ["entropy:bins=64"]]
OPERATIONS = [("GET", "/healthz"), ("GET", "/v1/metrics"), ("GET", "/v1/stats"),
              ("POST", "/v1/score")]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_live_service_conforms_to_its_schema(live_url: str, method: str, path: str) -> None:
    """Up to 30 generated requests per operation: no 5xx, every answer as documented; for the
    scoring operation also two valid requests (one image missing): scored, as documented."""
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == set(OPERATIONS)
    operation = schema[path][method]
    statuses: list[int] = []

    @given(case=operation.as_strategy(), known=st.sampled_from(KNOWN))
    @settings(max_examples=30, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def check(case, known: list[str] | None) -> None:
        if known is not None and isinstance(case.body, dict) and "metrics" in case.body:
            case.body["metrics"] = known  # reach the scoring path too, not only 422s
        response = case.call_and_validate(base_url=live_url, checks=CHECKS)
        statuses.append(response.status_code)

    check()
    assert statuses and max(statuses) < 500
    print(method, path, sorted(Counter(statuses).items()))
    if method == "POST":  # the scoring path itself, whatever the generator drew this time
        for images in ([{"path": "a.png"}], [{"path": "a.png"}, {"path": "missing.png"}]):
            case = operation.Case(body={"images": images, "metrics": ["entropy", "e64"]},
                                  media_type="application/json")
            response = case.call_and_validate(base_url=live_url, checks=CHECKS)
            assert response.status_code == 200, response.text  # scored, per-item errors in it
            results = response.json()["results"]
            assert set(results[0]["scores"]) == {"entropy", "e64"} and not results[0]["errors"]
            assert all(r["error"] and not r["scores"] for r in results[1:])


def test_schema_documents_both_request_bodies(live_url: str) -> None:
    import httpx

    spec = httpx.get(f"{live_url}/openapi.json").json()
    content = spec["paths"]["/v1/score"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert spec["components"]["schemas"]["ScoreRequest"]["required"] == ["images", "metrics"]
    assert Path(spec["components"]["schemas"]["ImageRef"]["properties"]["path"]["type"]) == Path(
        "string")
