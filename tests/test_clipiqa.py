"""clipiqa: OpenAI RN50 strict load, full-resolution input, attention pool without positions."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from aigiqa.errors import AssetError, MetricError  # noqa: E402
from aigiqa.metrics.alignment.clipiqa import CLIPIQA, MEAN, STD  # noqa: E402
from tiny_weights import open_clip_file  # noqa: E402


@pytest.fixture(scope="module")
def random_rn50(tmp_path_factory):
    path = tmp_path_factory.mktemp("rn50") / "RN50.pt"
    return open_clip_file(path, "RN50", seed=4), path


def _reference_224(model, images) -> np.ndarray:
    """open_clip's own RN50 forward with the positional embedding zeroed (= not added), on
    [0, 1]-scaled, OpenAI-normalised full images (224x224 so that the embedding fits)."""
    import copy

    ref = copy.deepcopy(model)
    with torch.no_grad():
        ref.visual.attnpool.positional_embedding.zero_()
        x = torch.from_numpy(np.stack(images).astype(np.float32) / 255).permute(0, 3, 1, 2)
        x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        tok = open_clip.get_tokenizer("RN50")(["Good photo.", "Bad photo."])
        img = torch.nn.functional.normalize(ref.encode_image(x), dim=-1)
        txt = torch.nn.functional.normalize(ref.encode_text(tok), dim=-1)
        return (ref.logit_scale.exp() * img @ txt.T).softmax(-1)[:, 0].numpy()


def test_equals_open_clip_forward_without_positional_embedding(random_rn50):
    model, path = random_rn50
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(3)]
    images.append(np.full((224, 224, 3), 128, np.uint8))
    ours = CLIPIQA(checkpoint=str(path)).score(images)
    np.testing.assert_allclose(ours, _reference_224(model, images), atol=1e-5)
    assert np.all((ours > 0) & (ours < 1)) and np.ptp(ours) > 0


def test_any_size_no_resize_and_batches_by_size(random_rn50):
    _, path = random_rn50
    metric = CLIPIQA(checkpoint=str(path), batch_size=4)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, s, dtype=np.uint8)
              for s in [(96, 160, 3), (300, 200, 3), (96, 160, 3), (64, 64, 3), (300, 200, 3)]]
    batched = metric.score(images)
    single = np.array([metric.score([im])[0] for im in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    # full resolution: a 2x upscaled image is a different input, not resized back to the same
    big = np.repeat(np.repeat(images[0], 2, axis=0), 2, axis=1)
    assert abs(metric.score([big])[0] - batched[0]) > 1e-6


def test_positional_option_and_prompts_change_the_score(random_rn50):
    _, path = random_rn50
    im = [np.random.default_rng(2).integers(0, 256, (128, 192, 3), dtype=np.uint8)]
    base = CLIPIQA(checkpoint=str(path)).score(im)[0]
    pos = CLIPIQA(checkpoint=str(path), positional_embedding=True).score(im)[0]
    swapped = CLIPIQA(checkpoint=str(path), positive="Bad photo.", negative="Good photo.")
    assert abs(base - pos) > 1e-6
    np.testing.assert_allclose(swapped.score(im)[0], 1 - base, atol=1e-6)


def test_too_small_image_is_a_metric_error(random_rn50):
    _, path = random_rn50
    with pytest.raises(MetricError, match="20x16 pixels is too small"):
        CLIPIQA(checkpoint=str(path)).score([np.zeros((16, 20, 3), np.uint8)])


def test_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetError) as info:
        CLIPIQA()
    assert "RN50.pt" in str(info.value) and "afeb0e10f9e5a86d" in str(info.value)
    with pytest.raises(MetricError, match="ResNet"):
        CLIPIQA(model="ViT-B-32")
    assert CLIPIQA.needs_prompt is False
