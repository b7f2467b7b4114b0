"""A metric whose own files are bad ends the run: nothing is cached for it (not a failure of
every image), the message names the file, and once the file is fixed the images score normally.
Also: a metric spec that repeats an option is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import synthetic
from aigiqa.benchmark.runner import score_images
from aigiqa.errors import AssetError, MetricError
from aigiqa.metrics.classical import brisque as brisque_mod
from aigiqa.metrics.registry import metric_from_spec, parse_metric_spec
from aigiqa.store import ScoreStore
from tiny_metrics import TinyConv


def _images(folder: Path, n: int = 6) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"im{i}.png"
        Image.fromarray(synthetic.natural(i, 128, 128)).save(path)
        paths.append(path)
    return paths


def _stored(store: Path) -> int:
    with ScoreStore(store) as db:
        return db.count()


def _fix(name: str, path: Path, assets: Path) -> None:
    """Replace the corrupt model file at ``path`` with a good one."""
    if name == "niqe":
        shutil.copyfile(assets / "niqe" / "modelparameters.mat", path)
    else:
        brisque_mod.load_model("live").save(path)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name,suffix", [("niqe", ".mat"), ("brisque", ".npz")])
def test_corrupt_model_file_ends_the_run_and_caches_nothing(tmp_path, live_assets, name,
                                                            suffix, workers):
    paths = _images(tmp_path / "imgs")
    model = tmp_path / f"bad{suffix}"
    model.write_bytes(b"\x00junk, not a model" * 10)
    store = tmp_path / "s.sqlite"
    spec = f"{name}:checkpoint={model}"
    with pytest.raises(AssetError, match=f"{name}.*{model.name}"):
        score_images(paths, [spec], store=store, workers=workers, batch_size=2, progress=False)
    assert _stored(store) == 0  # no failure cached for any image
    _fix(name, model, live_assets)
    result = score_images(paths, [spec], store=store, workers=workers, batch_size=2,
                          progress=False)
    assert result.failures == [] and result.computed == len(paths)
    assert np.isfinite(result.scores[spec]).all()
    assert _stored(store) == len(paths)


def test_cli_reports_a_corrupt_model_in_one_line_and_stores_nothing(tmp_path):
    paths = _images(tmp_path / "imgs", 3)
    model = tmp_path / "bad.mat"
    model.write_bytes(b"junk")
    store = tmp_path / "s.sqlite"
    proc = subprocess.run(
        [sys.executable, "-m", "aigiqa.cli", "score", str(paths[0].parent), "--metrics",
         f"niqe:checkpoint={model}", "--store", str(store), "--no-progress"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(model) in lines[0], lines
    assert proc.stdout == ""
    assert _stored(store) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_unreadable_or_ill_fitting_checkpoint_ends_the_run(tmp_path, workers, one_torch_thread):
    paths = _images(tmp_path / "imgs", 4)
    store = tmp_path / "s.sqlite"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    wrong = tmp_path / "wrong.pt"
    torch.save({"other.weight": torch.zeros(2)}, wrong)
    for path, needle in ((junk, "cannot read checkpoint"), (wrong, "does not fit")):
        metric = TinyConv(checkpoint=str(path), device="cpu")
        with pytest.raises(AssetError, match=needle) as info:
            score_images(paths, [metric], store=store, workers=workers, batch_size=2,
                         progress=False)
        assert str(path) in str(info.value)
        assert isinstance(info.value, MetricError)  # as load_checkpoint raised before
        assert _stored(store) == 0
    good = tmp_path / "good.pt"
    TinyConv(device="cpu").save(good)
    result = score_images(paths, [TinyConv(checkpoint=str(good), device="cpu")], store=store,
                          workers=workers, batch_size=2, progress=False)
    assert result.failures == [] and _stored(store) == len(paths)


def test_a_device_that_is_not_there_ends_the_run(tmp_path, one_torch_thread):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: device=cuda is available here")
    paths = _images(tmp_path / "imgs", 3)
    store = tmp_path / "s.sqlite"
    with pytest.raises(MetricError, match="no CUDA device"):
        score_images(paths, [TinyConv(device="cuda")], store=store, progress=False)
    assert _stored(store) == 0  # not cached as a failure of every image (device is not in the key)


def test_corrupt_safetensors_is_an_asset_error(tmp_path):
    from aigiqa.metrics.alignment._common import read_state_dict

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken")
    with pytest.raises(AssetError, match="model.safetensors"):
        read_state_dict(path)


@pytest.mark.slow
def test_ray_backend_ends_the_run_on_a_corrupt_model(tmp_path, live_assets):
    pytest.importorskip("ray")
    paths = _images(tmp_path / "imgs", 4)
    model = tmp_path / "bad.mat"
    model.write_bytes(b"junk")
    store = tmp_path / "s.sqlite"
    with pytest.raises(AssetError, match="bad.mat"):
        score_images(paths, [f"niqe:checkpoint={model}"], store=store, backend="ray", workers=1,
                     batch_size=2, progress=False)
    assert _stored(store) == 0


def test_an_option_given_twice_is_refused():
    with pytest.raises(MetricError, match="'bins' is given twice"):
        parse_metric_spec("entropy:bins=64:bins=32")
    with pytest.raises(MetricError, match="given twice"):
        metric_from_spec("entropy:bins=64:bins=64")
    assert metric_from_spec("entropy:bins=64").options["bins"] == 64
