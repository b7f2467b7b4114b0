"""HyperIQA: official checkpoint format, crops as the official demo (seeded), scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from aigiqa.errors import MetricError  # noqa: E402
from aigiqa.metrics.learned.hyperiqa import HyperIQA  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "hyperiqa_state_dict.json"


def test_official_checkpoint_loads_strictly_and_scores(tmp_path: Path) -> None:
    shapes = json.loads(FIXTURE.read_text())
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.rand(v, generator=g) + 0.5 if k.endswith("running_var")
                 else torch.randn(v, generator=g) * 0.02) for k, v in shapes.items()}
    state = {k: (v.long() if k.endswith("num_batches_tracked") else v) for k, v in state.items()}
    torch.save(state, tmp_path / "koniq_pretrained.pkl")
    metric = HyperIQA(checkpoint=str(tmp_path / "koniq_pretrained.pkl"), num_crops=1,
                      device="cpu")
    model = metric.model
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == shapes
    assert torch.equal(model.state_dict()["fc1w_conv.weight"], state["fc1w_conv.weight"])
    im = np.random.default_rng(0).integers(0, 256, (300, 260, 3), dtype=np.uint8)
    score = metric.score([im])
    batch = metric.preprocess([im])
    with torch.no_grad():
        per_crop = model(batch[0])
    assert score.shape == (1,) and np.isfinite(score).all()
    assert score[0] == pytest.approx(per_crop.mean().item(), abs=1e-5)


def test_crops_are_seeded_and_taken_from_the_512x384_resize() -> None:
    im = np.random.default_rng(1).integers(0, 256, (200, 330, 3), dtype=np.uint8)
    metric = HyperIQA(num_crops=4, seed=5)
    x = metric.transform(im)
    assert x.shape == (4, 3, 224, 224)
    assert torch.equal(x, HyperIQA(num_crops=4, seed=5).transform(im))
    assert not torch.equal(x, HyperIQA(num_crops=4, seed=6).transform(im))
    resized = np.asarray(Image.fromarray(im).resize((384, 512), Image.Resampling.BILINEAR))
    rng = np.random.default_rng(5)
    top, left = int(rng.integers(0, 289)), int(rng.integers(0, 161))
    crop = torch.from_numpy(resized[top:top + 224, left:left + 224].copy()).permute(2, 0, 1)
    mean = torch.tensor(metric.mean).view(3, 1, 1)
    std = torch.tensor(metric.std).view(3, 1, 1)
    assert torch.allclose(x[0], (crop.float() / 255 - mean) / std, atol=1e-6)
    train = metric.transform(im, np.random.default_rng(0))
    assert train.shape == (1, 3, 224, 224)


def test_resize_smaller_than_the_crop_is_an_error() -> None:
    with pytest.raises(MetricError, match="224x224"):
        HyperIQA(height=200, width=300).transform(np.zeros((50, 50, 3), np.uint8))


def test_hyper_network_learns_ten_times_faster_as_the_official_solver() -> None:
    metric = HyperIQA()
    with torch.device("meta"):
        model = metric.build_model()
    slow, fast = metric.parameter_groups(model, 2e-5)
    assert slow["lr"] == 2e-5 and fast["lr"] == pytest.approx(2e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("res.") for p in slow["params"])
    assert not any(names[id(p)].startswith("res.") for p in fast["params"])
    assert len(slow["params"]) + len(fast["params"]) == len(list(model.parameters()))
