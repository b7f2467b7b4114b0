"""The vision-language metrics on the torch base: the key hashes the weights (not their path),
registry sha256 values are used, device/dtype options, pickles without the model."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from aigiqa import assets, digests  # noqa: E402
from aigiqa.metrics.alignment.clipiqa import CLIPIQA  # noqa: E402
from aigiqa.metrics.alignment.clipscore import CLIPScore  # noqa: E402
from aigiqa.metrics.alignment.imagereward import ImageReward  # noqa: E402
from tiny_weights import open_clip_file  # noqa: E402


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "ViT-B-32.pt"
    open_clip_file(path, "ViT-B-32", seed=0)
    return path


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (96 + 16 * i, 128, 3), dtype=np.uint8) for i in range(n)]


def test_key_follows_the_weights_content_not_their_path(tmp_path):
    """Replacing the weights at the same path must not reuse the old cached scores."""
    path = tmp_path / "w.pt"
    path.write_bytes(b"first weights")
    first = CLIPScore(checkpoint=str(path)).key
    path.write_bytes(b"other weights")
    assert CLIPScore(checkpoint=str(path)).key != first
    copy = tmp_path / "elsewhere.pt"
    copy.write_bytes(b"first weights")
    assert CLIPScore(checkpoint=str(copy)).key == first  # same bytes, another path: same scores
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n")
    reward = ImageReward(checkpoint=str(copy), vocab=str(vocab)).key
    vocab.write_text("[PAD]\n[UNK]\n")  # the tokenizer file is hashed too
    assert ImageReward(checkpoint=str(copy), vocab=str(vocab)).key != reward


def test_registry_sha256_is_the_key_of_a_verified_asset(clip_file, monkeypatch, tmp_path):
    target = tmp_path / "assets" / "clip" / "ViT-B-32.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(clip_file.read_bytes())
    old = target.stat().st_mtime - 3600  # installed an hour ago (a fresh file is always rehashed)
    os.utime(target, (old, old))
    sha = assets.sha256_of(target)
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path))
    monkeypatch.setitem(assets.MODEL_FILES, "clip/ViT-B-32.pt", assets.Asset(
        "clip/ViT-B-32.pt", sha, "x", "test", "test"))
    explicit = CLIPScore(checkpoint=str(clip_file)).key  # hashed: a file of the user's
    metric = CLIPScore()  # found in $AIGIQA_HOME, verified against the registry's sha256

    def no_rehash(path):
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(digests, "sha256_of", no_rehash)
    assert metric.weights_sha256() == sha
    assert metric.key == explicit  # same bytes, same key


def test_device_and_bfloat16_on_a_vision_language_metric(clip_file):
    images, prompts = _images(), ["a red car", "a cat", "a mountain lake"]
    fp32 = CLIPScore(checkpoint=str(clip_file), device="cpu").score(images, prompts)
    bf16 = CLIPScore(checkpoint=str(clip_file), device="cpu", dtype="bfloat16")
    assert bf16.key != CLIPScore(checkpoint=str(clip_file)).key
    np.testing.assert_allclose(bf16.score(images, prompts), fp32, atol=0.05)
    assert CLIPScore(checkpoint=str(clip_file), device="cuda").resources == {"num_gpus": 1.0}


def test_pickles_without_the_model_and_scores_the_same(clip_file):
    metric = CLIPScore(checkpoint=str(clip_file), device="cpu")
    images, prompts = _images(2), ["a dog", "a boat"]
    expected = metric.score(images, prompts)
    blob = pickle.dumps(metric)
    assert len(blob) < 100_000  # no weights, no tokenizer inside
    clone = pickle.loads(blob)
    assert clone._model is None and clone.key == metric.key
    np.testing.assert_allclose(clone.score(images, prompts), expected, rtol=1e-6)


def test_clipiqa_bounds_the_pixels_of_a_forward_pass(tmp_path, monkeypatch):
    torch.manual_seed(1)
    model = open_clip.create_model("RN50", pretrained=None, force_quick_gelu=True).eval()
    path = tmp_path / "RN50.pt"
    torch.save(model.state_dict(), path)
    metric = CLIPIQA(checkpoint=str(path), batch_size=8)
    monkeypatch.setattr(CLIPIQA, "max_batch_pixels", 3 * 64 * 64)
    seen = []
    forward = metric.forward
    monkeypatch.setattr(metric, "forward", lambda m, b, p: (seen.append(tuple(b.shape)),
                                                            forward(m, b, p))[1])
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(7)]
    scores = metric.score(images)
    assert [s[0] for s in seen] == [3, 3, 1]
    single = np.array([metric.score([im])[0] for im in images])
    np.testing.assert_allclose(scores, single, atol=1e-5)
