"""The Ray backend on a local Ray cluster (2 CPUs, started once for the module): same results as
the local runner, a shared score store with it, and a killed actor retried without loss."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray  # (the ray extra is part of [dev]: required, not skipped)
from typer.testing import CliRunner

from aigiqa.benchmark.backends import LocalBackend, make_backend
from aigiqa.benchmark.ray_backend import resource_groups
from aigiqa.benchmark.runner import resolve_metrics, run_benchmark, score_images
from aigiqa.cli import app
from aigiqa.databases.registry import load_database
from aigiqa.demo import build_demo
from aigiqa.errors import AigiqaError
from aigiqa.images import load_image
from aigiqa.store import ScoreStore
from ray_test_metrics import GpuProbe, RayNameProbe, RayProbe, RayPromptProbe, image_digest

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray with 2 CPUs for the whole module; workers can import ray_test_metrics."""
    assert not ray.is_initialized()
    pythonpath = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = build_demo(tmp_path_factory.mktemp("demo") / "demo", n=24)
    return load_database("demo", root, check_images=False)


def _rows(store: Path) -> list[tuple[str, str, float | None]]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT metric_key, input_hash, value FROM scores").fetchall()


def _log(path: Path) -> list[tuple[int, str]]:
    if not path.exists():
        return []
    return [(int(pid), digest) for pid, digest in (line.split() for line in
                                                  path.read_text().splitlines())]


def test_ray_benchmark_equals_local(ray_cluster, demo, tmp_path):
    metrics = ["sharpness", RayPromptProbe()]
    local = run_benchmark(demo, metrics, store=tmp_path / "local.sqlite", progress=False,
                          bootstrap=0, batch_size=4)
    remote = run_benchmark(demo, metrics, store=tmp_path / "ray.sqlite", progress=False,
                           bootstrap=0, batch_size=4, backend="ray", workers=2)
    assert (remote.meta["computed"], remote.meta["cached"]) == (48, 0)
    pd.testing.assert_frame_equal(local.frame, remote.frame, check_exact=True)
    # (the logistic PLCC fit is reproducible to rounding only; the scores themselves exactly)
    pd.testing.assert_frame_equal(local.results, remote.results, rtol=1e-9)
    assert remote.failures == local.failures == []
    assert remote.frame["test-ray-prompt-probe"].min() > 1000  # prompts reached the actors
    assert sorted(_rows(tmp_path / "ray.sqlite")) == sorted(_rows(tmp_path / "local.sqlite"))


def test_a_metric_reading_names_gets_them_on_ray_actors_as_locally(ray_cluster, demo, tmp_path):
    probe = RayNameProbe()
    with pytest.raises(AigiqaError, match="allow_names"):
        run_benchmark(demo, [probe], store=tmp_path / "refused.sqlite", progress=False,
                      bootstrap=0, backend="ray", workers=2)
    local = run_benchmark(demo, [probe, "sharpness"], store=tmp_path / "local.sqlite",
                          progress=False, bootstrap=0, batch_size=4, allow_names=True)
    remote = run_benchmark(demo, [probe, "sharpness"], store=tmp_path / "ray.sqlite",
                           progress=False, bootstrap=0, batch_size=4, backend="ray", workers=2,
                           allow_names=True)
    pd.testing.assert_frame_equal(local.frame, remote.frame, check_exact=True)
    images = [load_image(r.path) for r in demo]
    texts = [probe.model_text(r.prompt, r.name, r.generator) for r in demo]
    expected = RayNameProbe().score(images, texts)
    np.testing.assert_array_equal(remote.frame[probe.spec].to_numpy(), expected)
    blind = RayNameProbe().score(images, [r.prompt for r in demo])  # the prompts alone
    assert (blind != expected).all()
    rows = remote.results[remote.results["group"] == "all"].set_index("metric")
    assert not rows.loc[probe.spec, "name_blind"] and rows.loc["sharpness", "name_blind"]


def test_local_and_ray_runs_resume_each_other(ray_cluster, demo, tmp_path):
    paths = [rec.path for rec in demo]
    store, log = tmp_path / "shared.sqlite", tmp_path / "calls.log"
    probe = RayProbe(log=str(log))
    half = score_images(paths[:12], [probe], store=store, progress=False)  # a half-done run
    assert half.computed == 12
    done_locally = {digest for _, digest in _log(log)}
    log.unlink()
    rest = score_images(paths, [probe], store=store, progress=False, backend="ray", batch_size=4)
    assert (rest.computed, rest.cached) == (12, 12)
    by_ray = [digest for _, digest in _log(log)]
    assert len(by_ray) == 12 == len(set(by_ray))
    assert not set(by_ray) & done_locally, "the Ray run recomputed a cached score"
    assert {pid for pid, _ in _log(log)} != {os.getpid()}  # scored in Ray actors
    expected = [float(load_image(p).mean()) for p in paths]
    np.testing.assert_array_equal(rest.scores.iloc[:, 0].to_numpy(), expected)
    log.unlink()
    again_local = score_images(paths, [probe], store=store, progress=False)
    again_ray = score_images(paths, [probe], store=store, progress=False, backend="ray")
    assert (again_local.computed, again_ray.computed) == (0, 0)
    assert (again_local.cached, again_ray.cached) == (24, 24)
    assert not log.exists(), "a fully cached run computed something"
    pd.testing.assert_frame_equal(again_local.scores, rest.scores)
    with ScoreStore(store) as db:
        assert db.count() == 24


def test_killed_actor_is_retried_without_loss_or_duplicates(ray_cluster, demo, tmp_path):
    paths = [rec.path for rec in demo]
    victim = image_digest(load_image(paths[9]))
    store, log, marker = tmp_path / "s.sqlite", tmp_path / "calls.log", tmp_path / "killed"
    probe = RayProbe(log=str(log), kill_on=victim, marker=str(marker))
    batch_size = 4
    result = score_images(paths, [probe], store=store, progress=False, backend="ray",
                          batch_size=batch_size)
    assert marker.exists(), "the actor was not killed"
    killed_pid = int(marker.read_text())
    assert result.failures == []
    expected = [float(load_image(p).mean()) for p in paths]
    np.testing.assert_array_equal(result.scores.iloc[:, 0].to_numpy(), expected)
    rows = _rows(store)
    assert len(rows) == 24 and len({(k, h) for k, h, _ in rows}) == 24
    assert sorted(v for _, _, v in rows) == sorted(expected)
    calls = _log(log)
    victim_pids = [pid for pid, digest in calls if digest == victim]
    assert victim_pids and killed_pid not in victim_pids, "the victim was scored after the kill"
    repeated = [d for d, k in Counter(d for _, d in calls).items() if k > 1]
    assert len(repeated) < batch_size  # only the killed batch's images before the victim


def test_cli_bench_and_score_with_ray_backend(ray_cluster, demo, tmp_path):
    runner = CliRunner()
    store = tmp_path / "cli.sqlite"
    bench = runner.invoke(app, [
        "bench", "--database", "demo", "--root", str(demo.root), "--metrics", "contrast",
        "--out", str(tmp_path / "out"), "--store", str(store), "--bootstrap", "0",
        "--no-progress", "--backend", "ray",
    ])
    assert bench.exit_code == 0, bench.output
    assert "computed 24, cached 0" in bench.output
    scored = runner.invoke(app, [
        "score", str(demo.root), "--metrics", "contrast", "--store", str(store),
        "--out", str(tmp_path / "scores.csv"), "--no-progress", "--backend", "ray",
    ])
    assert scored.exit_code == 0, scored.output
    frame = pd.read_csv(tmp_path / "scores.csv")
    assert len(frame) == 24 and frame["contrast"].notna().all()
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert "contrast" in set(results["metric"])
    local = score_images(frame["path"].tolist(), ["contrast"], progress=False)
    np.testing.assert_allclose(frame["contrast"].to_numpy(), local.scores["contrast"], rtol=1e-12)


def test_resources_decide_the_actor_pool(ray_cluster, demo, tmp_path):
    backend = make_backend("ray", workers=2)
    assert backend.capacity({"num_cpus": 1.0}) == 2
    assert backend.capacity({"num_cpus": 2.0}) == 1
    assert backend.capacity({"num_cpus": 1.0, "num_gpus": 1.0}) == 0
    with pytest.raises(AigiqaError, match="test-ray-gpu-probe need .*num_gpus"):
        score_images([demo.records[0].path], [GpuProbe()], store=tmp_path / "g.sqlite",
                     progress=False, backend="ray")
    with ScoreStore(tmp_path / "g.sqlite") as db:
        assert db.count() == 0
    groups = resource_groups(resolve_metrics(["sharpness", GpuProbe(), "contrast"]))
    assert groups == [({"num_cpus": 1.0}, [0, 2]), ({"num_cpus": 1.0, "num_gpus": 1.0}, [1])]


def test_backend_options_are_checked(monkeypatch):
    assert isinstance(make_backend("local", workers=2), LocalBackend)
    with pytest.raises(AigiqaError, match="unknown backend 'dask'"):
        make_backend("dask")
    with pytest.raises(AigiqaError, match="--address is only for --backend ray"):
        make_backend("local", address="ray://head:10001")
    with pytest.raises(AigiqaError, match="--address is empty"):
        make_backend("ray", address=" ")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(AigiqaError, match=r"pip install 'aigiqa\[ray\]'"):
        make_backend("ray")
