"""imagereward and blipscore: official BLIP key names, strict loading, tokenisation, the scores.

Equality with the official ImageReward code (transformers 4.x) is checked by
benchmarks/alignment_fidelity.py; here: the official full-size key/shape list loads strictly, and
a tiny BLIP in the official format scores consistently.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from aigiqa.errors import AssetError  # noqa: E402
from aigiqa.metrics.alignment import _blip  # noqa: E402
from aigiqa.metrics.alignment.blipscore import BLIPScore  # noqa: E402
from aigiqa.metrics.alignment.imagereward import MEAN, STD, ImageReward  # noqa: E402
from tiny_weights import bert_vocab, blip_files  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
PROMPTS = ["a red car on the road", "A CAT on the sofa!", " ".join(["tree"] * 60), "dog"]

@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> Path:
    return bert_vocab(tmp_path_factory.mktemp("vocab") / "vocab.txt")


@pytest.fixture(scope="module")
def tiny_checkpoints(vocab, tmp_path_factory):
    """A tiny BLIP with random weights under the official key names (ImageReward.pt and
    model_large.pth); the folder holding both."""
    folder = tmp_path_factory.mktemp("blip")
    blip_files(folder, vocab, seed=3)
    return folder


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(9)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for h, w in [(224, 224), (300, 180), (97, 333), (256, 256)]]


def test_official_imagereward_keys_convert_and_load_strictly():
    """The full ImageReward key/shape list (recorded from the official code) fits our modules."""
    from transformers.models.blip.modeling_blip import BlipVisionModel
    from transformers.models.blip.modeling_blip_text import BlipTextModel

    shapes = json.loads((FIXTURES / "imagereward_state_dict.json").read_text())
    official = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    blip = {k[5:]: v for k, v in official.items() if k.startswith("blip.")}
    state = _blip.convert_state_dict(blip, (), ("vision_proj.", "text_proj."), Path("x"), "t")
    vision_cfg, text_cfg = _blip.blip_configs(state)
    assert (vision_cfg.num_hidden_layers, vision_cfg.hidden_size, vision_cfg.image_size) == (
        24, 1024, 224)
    assert (text_cfg.num_hidden_layers, text_cfg.vocab_size, text_cfg.encoder_hidden_size) == (
        12, 30524, 1024)
    with torch.device("meta"):
        model = torch.nn.Module()
        model.vision = BlipVisionModel(vision_cfg)
        model.text = BlipTextModel(text_cfg, add_pooling_layer=False)
    model.load_state_dict(state, strict=True, assign=True)
    mlp = sorted(k for k in official if k.startswith("mlp."))
    assert mlp == sorted(f"mlp.layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias"))


def test_tokenizer_truncates_to_35_with_cls_and_sep(vocab):
    tok = _blip.bert_tokenizer(vocab)
    ids, mask = _blip.tokenize(tok, PROMPTS)
    assert ids.shape == (4, 35)
    cls, sep = tok.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    assert ids[2, 0] == cls and ids[2, 34] == sep and int(mask[2].sum()) == 35
    assert tok.convert_ids_to_tokens(ids[1, :8].tolist())[:7] == [
        "[CLS]", "a", "cat", "on", "the", "sofa", "!"]
    assert len(tok) == len(vocab.read_text().splitlines()) + 2  # [DEC], [ENC]


def test_imagereward_batched_equals_single_and_is_normalised(tiny_checkpoints, vocab):
    metric = ImageReward(checkpoint=str(tiny_checkpoints / "ImageReward.pt"), vocab=str(vocab),
                         batch_size=3)
    images = _images()
    batch = metric.score(images, PROMPTS)
    single = np.array([metric.score([i], [p])[0] for i, p in zip(images, PROMPTS, strict=True)])
    np.testing.assert_allclose(batch, single, atol=1e-5)
    assert np.ptp(batch) > 0
    with torch.no_grad():  # a head that outputs 0 gives the normalised value of 0
        for layer in metric.model.head.layers:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
    np.testing.assert_allclose(metric.score(images[:1], PROMPTS[:1]), [-MEAN / STD], atol=1e-7)


def test_blipscore_is_a_cosine_and_ignores_training_tensors(tiny_checkpoints, vocab):
    metric = BLIPScore(checkpoint=str(tiny_checkpoints / "model_large.pth"), vocab=str(vocab))
    scores = metric.score(_images(), PROMPTS)
    assert np.all(np.abs(scores) <= 1) and np.ptp(scores) > 0
    same = metric.score([_images()[0]] * 2, [PROMPTS[0], PROMPTS[0]])
    assert same[0] == pytest.approx(same[1], abs=1e-6)


def test_wrong_keys_are_reported(tiny_checkpoints, vocab, tmp_path):
    state = torch.load(tiny_checkpoints / "ImageReward.pt")
    state["blip.some_head.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(AssetError, match="some_head"):
        ImageReward(checkpoint=str(bad), vocab=str(vocab)).score(_images()[:1], ["x"])
    del state["blip.some_head.weight"], state["mlp.layers.7.bias"]
    torch.save(state, bad)
    with pytest.raises(AssetError, match="layers.7.bias"):
        ImageReward(checkpoint=str(bad), vocab=str(vocab)).score(_images()[:1], ["x"])


def test_missing_files_fail_at_creation(monkeypatch, tmp_path, vocab):
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetError, match="ImageReward.pt") as info:
        ImageReward(vocab=str(vocab))
    assert "THUDM/ImageReward" in str(info.value)
    with pytest.raises(AssetError, match="model_large.pth"):
        BLIPScore(vocab=str(vocab))
    with pytest.raises(AssetError, match="bert-base-uncased"):
        BLIPScore(checkpoint=str(vocab))
