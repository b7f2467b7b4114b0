"""DBCNN: official (DataParallel) checkpoint format, full-image input, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aigiqa.errors import MetricError  # noqa: E402
from aigiqa.metrics.learned.dbcnn import DBCNN  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "dbcnn_state_dict.json"


def test_official_checkpoint_loads_strictly_and_scores(tmp_path: Path) -> None:
    shapes = json.loads(FIXTURE.read_text())
    assert all(k.startswith("module.") for k in shapes)  # saved from nn.DataParallel
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.rand(v, generator=g) + 0.5 if k.endswith("running_var")
                 else torch.randn(v, generator=g) * 0.02) for k, v in shapes.items()}
    state = {k: (v.long() if k.endswith("num_batches_tracked") else v) for k, v in state.items()}
    torch.save(state, tmp_path / "net_params_best.pkl")
    metric = DBCNN(checkpoint=str(tmp_path / "net_params_best.pkl"), device="cpu")
    own = {"module." + k: list(v.shape) for k, v in metric.model.state_dict().items()}
    assert own == shapes
    assert torch.equal(metric.model.fc.weight, state["module.fc.weight"])
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (72, 100, 3), dtype=np.uint8),
              rng.integers(0, 256, (100, 36, 3), dtype=np.uint8)]  # S-CNN/VGG grids differ
    scores = metric.score(images)
    assert scores.shape == (2,) and np.isfinite(scores).all() and scores[0] != scores[1]


def test_full_image_is_used_and_mixed_sizes_need_batch_size_one() -> None:
    metric = DBCNN()
    a = np.zeros((40, 50, 3), np.uint8)
    assert metric.transform(a).shape == (3, 40, 50)
    assert DBCNN(resize=32).transform(a).shape == (3, 32, 40)
    with pytest.raises(MetricError, match="batch_size=1"):
        metric.collate([metric.transform(a), metric.transform(np.zeros((50, 50, 3), np.uint8))])
    crop = DBCNN(train_crop=32).transform(a, np.random.default_rng(0))
    assert crop.shape == (3, 32, 32)
    with pytest.raises(MetricError, match="448x448"):
        metric.transform(a, np.random.default_rng(0))
