"""MUSIQ: checkpoint keys of the PyTorch port (real configuration), tokens, masking, training."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aigiqa.errors import MetricError  # noqa: E402
from aigiqa.metrics.learned.musiq import MUSIQ  # noqa: E402
from aigiqa.metrics.learned.networks.musiq import MUSIQNet, multiscale_patches  # noqa: E402
from test_arch_training import random_images, training_losses  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "musiq_state_dict.json"


class TinyMUSIQ(MUSIQ):
    """The same architecture with 2 narrow layers and small scales (fast tests)."""

    longer_sides: ClassVar[tuple[int, ...]] = (32, 64)

    def build_model(self) -> torch.nn.Module:
        return MUSIQNet(hidden_size=32, mlp_dim=64, num_heads=2, num_layers=2,
                        num_class=int(self.options["num_class"]))


@pytest.mark.parametrize("num_class", [1, 10])
def test_real_configuration_has_the_port_keys_and_shapes(num_class: int) -> None:
    with torch.device("meta"):
        model = MUSIQ(num_class=num_class).build_model()
    own = {k: list(v.shape) for k, v in model.state_dict().items()}
    expected = json.loads(FIXTURE.read_text())
    if num_class == 10:  # the AVA head: Linear + Softmax
        expected["head.0.weight"] = [10, expected.pop("head.weight")[1]]
        expected["head.0.bias"] = [10]
        del expected["head.bias"]
    assert own == expected


def test_tokens_hold_every_scale_positions_and_masks() -> None:
    image = torch.rand(3, 100, 150) * 2 - 1
    tokens = multiscale_patches(image)
    original = math.ceil(100 / 32) * math.ceil(150 / 32)
    assert tokens.shape == (49 + 144 + original, 3 * 32 * 32 + 3)
    scales = tokens[:, -2]
    mask = tokens[:, -1]
    # 224: 150x224 -> 5x7 = 35 real patches of 49; 384: 256x384 -> 8x12 = 96 of 144
    assert mask[:49].sum() == 35 and mask[49:193].sum() == 96 and mask[193:].all()
    assert (scales[193:] == 2).all() and (scales[49:49 + 96] == 1).all()
    positions = tokens[:, -3]
    assert positions.min() >= 0 and positions.max() <= 99
    # 4x5 patch grid hashed onto 10x10 by nearest index: last patch -> row 7, column 8
    assert tokens[193, -3] == 0 and tokens[193 + original - 1, -3] == 7 * 10 + 8
    # SAME zero padding: 128 - 100 rows (14 on top), 160 - 150 columns (5 on the left); the
    # first original-resolution patch is the padded top-left 32x32 block, flattened (c, y, x)
    padded = torch.nn.functional.pad(image, (5, 5, 14, 14))
    assert torch.equal(tokens[193, :-3], padded[:, :32, :32].reshape(-1))


def test_padding_tokens_do_not_change_a_score_and_batches_mix_sizes() -> None:
    metric = TinyMUSIQ(device="cpu", batch_size=3)
    images = [random_images(i, 1, h, w)[0] for i, (h, w) in enumerate([(40, 70), (90, 33),
                                                                       (64, 64)])]
    together = metric.score(images)
    alone = np.array([metric.score([im])[0] for im in images])
    assert np.isfinite(together).all()
    assert np.allclose(together, alone, atol=1e-5)
    assert len(set(np.round(together, 6))) == 3


def test_bad_num_class_is_an_error() -> None:
    with pytest.raises(MetricError, match="num_class"):
        MUSIQ(num_class=0)


def test_two_training_steps_lower_the_loss() -> None:
    losses = training_losses(TinyMUSIQ(), random_images(3, 2, 48, 64), [1.0, 4.0], 1e-4)
    assert np.isfinite(losses).all()
    assert losses[1] < losses[0], losses
