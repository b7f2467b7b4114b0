"""MANIQA: official checkpoint keys (real ViT-B/8 configuration), crops, a tiny trainable copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from aigiqa.errors import MetricError  # noqa: E402
from aigiqa.metrics.learned.maniqa import MANIQA, official_crops  # noqa: E402
from aigiqa.metrics.learned.networks.maniqa import MANIQANet, vit_backbone  # noqa: E402
from test_arch_training import random_images, training_losses  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "maniqa_state_dict.json"


class TinyMANIQA(MANIQA):
    """The same architecture at 32x32 input with a narrow 10-block ViT (fast tests)."""

    crop_size: ClassVar[int] = 32

    def build_model(self) -> torch.nn.Module:
        vit = vit_backbone(img_size=32, embed_dim=32, depth=10, num_heads=2)
        return MANIQANet(embed_dim=32, dim_mlp=32, img_size=32, window_size=2,
                         num_heads=(2, 2), vit=vit)


def test_official_configuration_has_the_official_keys_and_shapes() -> None:
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = MANIQA().build_model()
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert own == json.loads(FIXTURE.read_text())


def test_tiny_checkpoint_round_trip_and_scoring(tmp_path: Path) -> None:
    metric = TinyMANIQA(num_crops=3, seed=1, device="cpu")
    images = random_images(0, 2, 40, 50)
    scores = metric.score(images)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    metric.save(tmp_path / "tiny.pt")
    again = TinyMANIQA(num_crops=3, seed=1, device="cpu", checkpoint=str(tmp_path / "tiny.pt"))
    assert np.allclose(again.score(images), scores, atol=1e-6)


def test_crops_follow_the_official_bounds_and_are_seeded() -> None:
    im = random_images(1, 1, 230, 260)[0]
    crops = official_crops(im, 224, 20, seed=0)
    assert all(c.shape == (224, 224, 3) for c in crops)
    # np.random.randint(0, side - 224): the last row/column is never a crop origin
    assert not any(np.array_equal(c, im[6:, -224:]) for c in crops)
    x = MANIQA(num_crops=4, seed=2).transform(im)
    assert x.shape == (4, 3, 224, 224)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert torch.equal(x, MANIQA(num_crops=4, seed=2).transform(im))
    assert official_crops(im[:224, :224], 224, 2, 0)[0].shape == (224, 224, 3)


def test_bad_options_and_small_images_are_errors() -> None:
    with pytest.raises(MetricError, match="num_crops"):
        MANIQA(num_crops=0)
    with pytest.raises(MetricError, match="224x224"):
        MANIQA().transform(np.zeros((100, 300, 3), np.uint8))


def test_two_training_steps_lower_the_loss() -> None:
    losses = training_losses(TinyMANIQA(), random_images(3, 2, 40, 48), [1.0, 4.0], 1e-4)
    assert np.isfinite(losses).all()
    assert losses[1] < losses[0], losses
