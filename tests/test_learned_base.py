"""LearnedMetric: options, strict checkpoint loading, save/load, cache key, cheap import."""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from aigiqa.errors import MetricError
from aigiqa.metrics.learned.base import (
    LEARNED_DEFAULTS,
    LearnedMetric,
    crop,
    resize_crop_tensor,
    resize_shorter,
)


class Toy(LearnedMetric):
    """A tiny conv regressor; official checkpoints of it carry a ``module.`` prefix."""

    name = "toy-learned"
    defaults: ClassVar = {**LEARNED_DEFAULTS, "size": 16}

    def build_model(self) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, 1))

    def transform(self, image, rng=None):
        return resize_crop_tensor(image, self.options["size"], rng, self.mean, self.std)

    def forward(self, model, batch, prompts):
        return model(batch).squeeze(-1)

    def convert_state_dict(self, state_dict):
        return {k.removeprefix("module."): v for k, v in state_dict.items()}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread."""


def _images(n: int = 5, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (20 + 3 * i, 24, 3), dtype=np.uint8) for i in range(n)]


def test_import_is_cheap():
    code = ("import sys, aigiqa.metrics.learned.base, aigiqa.metrics.learned.backbones, "
            "aigiqa.metrics.learned.prompt_regressor, aigiqa.training, aigiqa.training.cli; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_options_are_checked(tmp_path):
    with pytest.raises(MetricError, match="device"):
        Toy(device="tpu")
    with pytest.raises(MetricError, match="batch_size"):
        Toy(batch_size="0")
    with pytest.raises(MetricError, match="does not exist"):
        Toy(checkpoint=str(tmp_path / "nope.pt"))
    assert Toy().kind == "learned"


def test_default_model_is_deterministic_and_batched():
    images = _images()
    a = Toy(batch_size=2).score(images)
    b = Toy(batch_size=16).score(images)
    assert a.shape == (5,) and a.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert len(set(np.round(a, 6))) > 1


def test_bad_image_is_an_error():
    with pytest.raises(MetricError, match="image 1"):
        Toy().score([_images(1)[0], np.zeros((4, 4, 2), dtype=np.uint8)])


def test_save_and_load_round_trip_with_target_scale(tmp_path):
    metric = Toy()
    with torch.no_grad():
        for p in metric.model.parameters():
            p.add_(0.5)
    metric.set_model(metric.model, (2.0, 3.0))
    raw = Toy().score(_images())
    path = metric.save(tmp_path / "toy.pt")
    loaded = Toy(checkpoint=str(path))
    np.testing.assert_allclose(loaded.score(_images()), metric.score(_images()), rtol=1e-6)
    assert not np.allclose(loaded.score(_images()), raw)
    blob = torch.load(path, weights_only=True)
    assert blob["aigiqa"]["target_affine"] == [2.0, 3.0]
    assert blob["aigiqa"]["metric"] == "toy-learned"


def test_official_key_names_and_nesting(tmp_path):
    reference = Toy()
    state = {f"module.{k}": v + 1 for k, v in reference.model.state_dict().items()}
    for i, blob in enumerate((state, {"state_dict": state}, {"model": state}, {"params": state})):
        path = tmp_path / f"official{i}.pth"
        torch.save(blob, path)
        metric = Toy(checkpoint=str(path))
        got = metric.model.state_dict()
        for k, v in reference.model.state_dict().items():
            torch.testing.assert_close(got[k], v + 1)


def test_strict_loading_names_the_faults(tmp_path):
    good = Toy().model.state_dict()
    missing = {k: v for k, v in good.items() if k != "3.bias"}
    extra = {**good, "4.weight": torch.zeros(1)}
    shape = {**good, "3.weight": torch.zeros(1, 5)}
    for label, state, needle in (("missing", missing, "missing key 3.bias"),
                                 ("extra", extra, "unexpected key 4.weight"),
                                 ("shape", shape, "3.weight: shape (1, 5)")):
        path = tmp_path / f"{label}.pt"
        torch.save(state, path)
        with pytest.raises(MetricError, match="does not fit") as info:
            Toy(checkpoint=str(path)).score(_images(1))
        assert needle in str(info.value) and str(path) in str(info.value)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MetricError, match="cannot read checkpoint"):
        Toy(checkpoint=str(junk)).score(_images(1))


def test_key_follows_checkpoint_content(tmp_path):
    metric = Toy()
    path = tmp_path / "w.pt"
    metric.save(path)
    first = Toy(checkpoint=str(path)).key
    assert first != Toy().key
    assert Toy(checkpoint=str(path), device="cpu", batch_size=3).key == first
    with torch.no_grad():
        for p in metric.model.parameters():
            p.mul_(2)
    metric.save(path)  # retrained, same path
    assert Toy(checkpoint=str(path)).key != first


def test_pickle_drops_the_model():
    metric = Toy()
    _ = metric.model
    clone = pickle.loads(pickle.dumps(metric))
    assert clone._model is None and metric._model is not None
    np.testing.assert_allclose(clone.score(_images(2)), metric.score(_images(2)), rtol=1e-6)


def test_resize_and_crop_shapes():
    image = _images(1)[0]
    small = resize_shorter(image, 10)
    assert min(small.shape[:2]) == 10
    assert crop(small, 10, None).shape == (10, 10, 3)
    a = resize_crop_tensor(image, 10, np.random.default_rng(1), (0.5,) * 3, (0.5,) * 3)
    b = resize_crop_tensor(image, 10, np.random.default_rng(1), (0.5,) * 3, (0.5,) * 3)
    assert a.shape == (3, 10, 10)
    torch.testing.assert_close(a, b)
