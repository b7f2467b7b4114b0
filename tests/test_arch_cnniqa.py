"""CNNIQA: official checkpoint format, preprocessing as the official code, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from scipy.signal import convolve2d  # noqa: E402

from aigiqa.errors import MetricError  # noqa: E402
from aigiqa.metrics.learned.cnniqa import CNNIQA  # noqa: E402
from aigiqa.metrics.learned.networks.cnniqa import cnniqa_patches  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "cnniqa_state_dict.json"


def official_checkpoint(path: Path, fixture: Path, seed: int = 0) -> dict[str, list[int]]:
    """Write random tensors with the official keys and shapes (from the fixture) to ``path``."""
    shapes = json.loads(fixture.read_text())
    g = torch.Generator().manual_seed(seed)
    torch.save({k: torch.randn(v, generator=g) * 0.05 for k, v in shapes.items()}, path)
    return shapes


def test_official_checkpoint_loads_strictly_and_scores(tmp_path: Path) -> None:
    shapes = official_checkpoint(tmp_path / "CNNIQA-LIVE", FIXTURE)
    metric = CNNIQA(checkpoint=str(tmp_path / "CNNIQA-LIVE"), device="cpu")
    own = {k: list(v.shape) for k, v in metric.model.state_dict().items()}
    assert own == shapes
    images = [np.random.default_rng(i).integers(0, 256, (70 + 30 * i, 90, 3), dtype=np.uint8)
              for i in range(3)]
    scores = metric.score(images)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert len(set(np.round(scores, 6))) == 3
    # batching (NaN padding of the patch stacks) does not change a score
    single = [metric.score([im])[0] for im in images]
    assert np.allclose(scores, single, atol=1e-5)


def test_checkpoint_with_a_missing_key_is_refused(tmp_path: Path) -> None:
    official_checkpoint(tmp_path / "c.pt", FIXTURE)
    state = torch.load(tmp_path / "c.pt")
    del state["fc3.bias"]
    torch.save(state, tmp_path / "c.pt")
    with pytest.raises(MetricError, match="fc3.bias"):
        CNNIQA().load_checkpoint(tmp_path / "c.pt")


def test_patches_follow_the_official_grid_and_local_normalisation() -> None:
    grey = np.random.default_rng(0).integers(0, 256, (100, 130), dtype=np.uint8)
    patches = cnniqa_patches(grey)
    # official loops: range(0, 100 - 32, 32) x range(0, 130 - 32, 32) -> 3 x 4 patches
    assert patches.shape == (12, 1, 32, 32) and patches.dtype == np.float32
    p = grey[32:64, 96:128].astype(np.float64) / 255.0  # row 1, column 3
    k = np.ones((3, 3)) / 9
    mu = convolve2d(p, k, boundary="symm", mode="same")
    sd = np.sqrt(np.maximum(convolve2d(p * p, k, boundary="symm", mode="same") - mu**2, 0)) + 1
    assert np.allclose(patches[7, 0], (p - mu) / sd, atol=1e-5)
    assert np.allclose(cnniqa_patches(np.full((70, 70), 90, np.uint8)), 0.0, atol=1e-6)


def test_grey_conversion_is_pillow_l_and_training_samples_patches() -> None:
    metric = CNNIQA(train_patches=5)
    rgb = np.random.default_rng(1).integers(0, 256, (97, 161, 3), dtype=np.uint8)
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    assert torch.equal(metric.transform(rgb), torch.from_numpy(cnniqa_patches(grey)))
    a = metric.transform(rgb, np.random.default_rng(0))
    b = metric.transform(rgb, np.random.default_rng(0))
    assert a.shape == (5, 1, 32, 32) and torch.equal(a, b)


def test_image_too_small_for_one_patch_is_an_error() -> None:
    with pytest.raises(MetricError, match="32x20"):
        CNNIQA().transform(np.zeros((20, 32, 3), np.uint8))
