"""hpsv2: strict load of an HPS-style checkpoint, the official letterbox transform, cos score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from aigiqa.errors import AssetError, MetricError  # noqa: E402
from aigiqa.metrics.alignment.hpsv2 import HPSv2, hps_transform  # noqa: E402
from tiny_weights import TINY_VIT, TINY_VIT_CONFIG, open_clip_file, register_open_clip  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tiny_hps(tmp_path_factory):
    """A reduced-depth/width config of the ViT-H-14 family (patch 14, 224 px, GELU), seeded random
    weights saved as the HPS checkpoints are: ``{"state_dict": ...}``."""
    folder = tmp_path_factory.mktemp("hps")
    register_open_clip(folder, TINY_VIT, TINY_VIT_CONFIG)
    path = folder / "HPS_tiny.pt"
    model = open_clip_file(path, TINY_VIT, seed=1, quick_gelu=False, wrapped=True,
                           logit_scale=None)
    return model, path


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for h, w in [(224, 224), (300, 180), (97, 333), (512, 512), (224, 100)]]


def test_transform_letterboxes_the_longest_side_to_224():
    from torchvision.transforms import functional as tf

    t = hps_transform(224)
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (100, 448, 3), dtype=np.uint8)
    from PIL import Image

    x = t(Image.fromarray(wide))
    assert x.shape == (3, 224, 224)
    pad_value = -torch.tensor([0.48145466, 0.4578275, 0.40821073]) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711])
    # 448x100 → 224x50, zero (black) padding of 87 rows above and below, before normalisation
    torch.testing.assert_close(x[:, :87, :], pad_value[:, None, None].expand(3, 87, 224))
    torch.testing.assert_close(x[:, 87 + 50:, :], pad_value[:, None, None].expand(3, 87, 224))
    inner = tf.resize(tf.to_tensor(wide), [50, 224], tf.InterpolationMode.BICUBIC, antialias=True)
    inner = tf.normalize(inner, [0.48145466, 0.4578275, 0.40821073],
                         [0.26862954, 0.26130258, 0.27577711])
    torch.testing.assert_close(x[:, 87:137, :], inner)
    # longest side already 224: no resize; padded (the official code skips this and then fails)
    x = t(Image.fromarray(wide[:, :224]))
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x[:, :62, :], pad_value[:, None, None].expand(3, 62, 224))


def test_equals_open_clip_forward(tiny_hps):
    model, path = tiny_hps
    images = _images()
    prompts = ["a red car", "a cat", " ".join(["long"] * 200), "a tree", "a narrow one"]
    metric = HPSv2(model=TINY_VIT, checkpoint=str(path), batch_size=2)
    ours = metric.score(images, prompts)
    from PIL import Image

    t = hps_transform(224)
    tok = open_clip.get_tokenizer("ViT-H-14")
    with torch.no_grad():
        out = model(torch.stack([t(Image.fromarray(i)) for i in images]), tok(prompts))
    ref = torch.diagonal(out[0] @ out[1].T).numpy()  # the official: features @ features.T diag
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert np.ptp(ours) > 0


def test_official_vit_h_14_keys_and_shapes_load_strictly():
    """Our ViT-H-14 has exactly the keys/shapes of the official HPSv2 model (recorded from the
    official hpsv2 code by benchmarks/alignment_fidelity.py)."""
    expected = json.loads((FIXTURES / "hpsv2_vit_h_14_state_dict.json").read_text())
    with torch.device("meta"):
        model = open_clip.create_model("ViT-H-14", pretrained=None, device="meta")
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected
    state = {k: torch.empty(s, device="meta") for k, s in expected.items()}
    model.load_state_dict(state, strict=True, assign=True)


def test_versions_and_missing_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for version, name in (("v2.0", "HPS_v2_compressed.pt"), ("v2.1", "HPS_v2.1_compressed.pt")):
        with pytest.raises(AssetError) as info:
            HPSv2(version=version)
        assert name in str(info.value) and "xswu/HPSv2" in str(info.value)
    with pytest.raises(MetricError, match="version"):
        HPSv2(version="v3")
