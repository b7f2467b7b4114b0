"""Every classic learned architecture: two optimizer steps on a tiny batch lower the loss."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aigiqa.metrics.learned.cnniqa import CNNIQA  # noqa: E402
from aigiqa.metrics.learned.dbcnn import DBCNN  # noqa: E402
from aigiqa.metrics.learned.hyperiqa import HyperIQA  # noqa: E402
from aigiqa.metrics.learned.stairiqa import StairIQA  # noqa: E402


def random_images(seed: int, count: int, h: int, w: int) -> list[np.ndarray]:
    """Random RGB uint8 images (h, w, 3)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for _ in range(count)]


def training_losses(metric, images: list[np.ndarray], targets: list[float],
                    lr: float, steps: int = 2, frozen: tuple[str, ...] = ()) -> list[float]:
    """Losses (MSE) of ``steps`` Adam steps on one fixed batch, the loss of each step.

    Training mode with the same dropout masks every time (seeded), augmentation seeded.
    Parameters whose names start with one of ``frozen`` are not trained.
    """
    model = metric.new_model().train()
    for name, param in model.named_parameters():
        param.requires_grad_(not name.startswith(frozen))
    optimizer = torch.optim.Adam(metric.parameter_groups(model, lr))
    rng = np.random.default_rng(0)
    batch = metric.collate([metric.transform(im, rng) for im in images])
    y = torch.tensor(targets, dtype=torch.float32)
    losses = []
    for _ in range(steps):
        torch.manual_seed(1)
        loss = torch.nn.functional.mse_loss(metric.forward(model, batch, None), y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses


#: The torchvision ResNet-50 trunk (not the architecture's own layers, which branch off it)
TRUNK = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")

#: metric, image count and size (small where the architecture allows), learning rate, frozen.
#: HyperIQA needs 224x224 crops (fixed 7x7 hyper features), hence a single image; the ResNet-50
#: trunks are frozen to keep this busy 2-core CPU fast (their backward is plain torchvision).
CASES = {
    "cnniqa": (lambda: CNNIQA(train_patches=8), 2, (80, 96), 1e-3, ()),
    "hyperiqa": (lambda: HyperIQA(height=232, width=226), 1, (232, 226), 1e-6,
                 tuple("res." + t for t in TRUNK)),
    "dbcnn": (lambda: DBCNN(train_crop=64), 2, (72, 80), 1e-4, ()),
    "stairiqa": (lambda: StairIQA(resize=72, crop=64), 2, (72, 90), 1e-4, TRUNK),
}


@pytest.mark.parametrize("arch", sorted(CASES))
def test_two_training_steps_lower_the_loss(arch: str) -> None:
    make, count, (h, w), lr, frozen = CASES[arch]
    metric = make()
    losses = training_losses(metric, random_images(3, count, h, w), [1.0, 4.0][:count], lr,
                             frozen=frozen)
    assert all(np.isfinite(losses)), losses
    assert losses[1] < losses[0], f"{arch}: loss did not fall after the first step: {losses}"


MODULES = {"cnniqa": "cnniqa", "hyperiqa": "hyperiqa", "dbcnn": "dbcnn", "stairiqa": "stairiqa",
           "maniqa": "maniqa", "musiq": "musiq"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_registered_as_a_learned_metric_with_metadata(name: str) -> None:
    import importlib

    from aigiqa.metrics.registry import create_metric

    importlib.import_module(f"aigiqa.metrics.learned.{MODULES[name]}")  # registers it
    metric = create_metric(name)
    assert metric.name == name and metric.kind == "learned"
    assert metric.citation and metric.description and metric.lower_better is False


def test_metric_modules_import_without_torch() -> None:
    import subprocess
    import sys

    modules = ", ".join(f"aigiqa.metrics.learned.{m}" for m in MODULES.values())
    code = f"import sys, {modules}; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
