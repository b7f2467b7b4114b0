"""aigiqa generate run --backend ray on a local Ray with 2 CPU actors: the batches spread over
both, the driver writes and logs them, the local and the Ray run resume each other, and the
pixels are the local run's."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("open_clip")
ray = pytest.importorskip("ray")

from PIL import Image  # noqa: E402

from aigiqa.errors import GenerateError  # noqa: E402
from aigiqa.generate import make_plan, read_generators, read_plan, run_plan, write_plan  # noqa: E402
from aigiqa.generate.state import read_log  # noqa: E402
from aigiqa.testing.pipelines import clip_tokenizer, tiny_sd_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster():
    assert not ray.is_initialized()
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1"}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("rayplan")
    tok = clip_tokenizer()
    text = ""
    for i, name in enumerate(("one", "two")):
        folder = tiny_sd_pipeline(root / name, seed=20 + i, tokenizer=tok)
        text += (f'[generators.{name}]\nprefix = "{name.upper()}"\npipeline = "{folder}"\n'
                 f'count = {4 + 2 * i}\nsteps = [1]\ncfg = [7.5]\nsizes = ["64x64"]\n\n')
    (root / "gens.toml").write_text(text)
    path = root / "plan.csv"
    write_plan(make_plan([(f"prompt {i}", "") for i in range(8)],
                         read_generators(root / "gens.toml"), seed=1), path)
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=int)


def test_ray_run_spreads_batches_and_resumes_a_local_run(ray_cluster, plan_file, tmp_path):
    plan = read_plan(plan_file)
    local = tmp_path / "local"
    run_plan(plan_file, local, device="cpu", batch_size=2)
    out = tmp_path / "ray"
    first = run_plan(plan_file, out, device="cpu", batch_size=2, only=["one"])  # local part
    assert first.generated == 4
    result = run_plan(plan_file, out, device="cpu", batch_size=2, backend="ray")
    assert (result.generated, result.skipped, result.failed) == (6, 4, 0)
    log = read_log(out)
    workers = {log[n].get("worker") for n in plan.loc[plan["generator"] == "two", "name"]}
    assert len(workers) == 2 and None not in workers  # 3 batches of "two" over 2 actors
    hyper = pd.read_csv(out / "hyperparameters.csv")
    assert hyper["name"].tolist() == plan["name"].tolist()
    assert hyper["weights_sha256"].str.fullmatch("[0-9a-f]{64}").all()
    for _, row in plan.iterrows():
        rel = Path(row["split"]) / row["name"]
        diff = np.abs(pixels(out / rel) - pixels(local / rel))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, rel  # CPU thread-count rounding
    assert not list(out.rglob("*.tmp"))
    again = run_plan(plan_file, out, device="cpu", batch_size=2)
    assert (again.generated, again.skipped) == (0, 10)


def test_ray_options_are_checked(ray_cluster, plan_file, tmp_path):
    with pytest.raises(GenerateError, match="--device 'cuda:1' with --backend ray"):
        run_plan(plan_file, tmp_path / "a", device="cuda:1", backend="ray")
    with pytest.raises(GenerateError, match="--device cuda with --backend ray: the Ray "
                                            "cluster has no GPU"):
        run_plan(plan_file, tmp_path / "b", device="cuda", backend="ray")
    with pytest.raises(GenerateError, match="--backend 'dask' is invalid"):
        run_plan(plan_file, tmp_path / "c", backend="dask")
