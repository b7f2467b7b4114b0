"""StairIQA: official (DataParallel, six heads) checkpoint format, FiveCrop test, heads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aigiqa.errors import MetricError  # noqa: E402
from aigiqa.metrics.learned.stairiqa import StairIQA  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "stairiqa_state_dict.json"


def test_official_checkpoint_loads_strictly_and_heads_are_selected(tmp_path: Path) -> None:
    shapes = json.loads(FIXTURE.read_text())
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.rand(v, generator=g) + 0.5 if k.endswith("running_var")
                 else torch.randn(v, generator=g) * 0.02) for k, v in shapes.items()}
    state = {k: (v.long() if k.endswith("num_batches_tracked") else v) for k, v in state.items()}
    torch.save(state, tmp_path / "stairiqa.pth")
    metric = StairIQA(checkpoint=str(tmp_path / "stairiqa.pth"), head="bid", resize=72, crop=64,
                      device="cpu")
    model = metric.model
    assert {"module." + k: list(v.shape) for k, v in model.state_dict().items()} == shapes
    im = np.random.default_rng(0).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    batch = metric.preprocess([im])
    assert batch.shape == (1, 5, 3, 64, 64)
    with torch.no_grad():
        heads = model(batch[0])
    assert heads.shape == (5, 6)
    assert metric.score([im])[0] == pytest.approx(heads[:, 5].mean().item(), abs=1e-5)


def test_unknown_head_is_an_error_listing_the_heads() -> None:
    with pytest.raises(MetricError, match="koniq10k"):
        StairIQA(head="live")


def test_training_takes_one_random_crop() -> None:
    im = np.random.default_rng(0).integers(0, 256, (400, 500, 3), dtype=np.uint8)
    x = StairIQA().transform(im, np.random.default_rng(0))
    assert x.shape == (1, 3, 320, 320)
