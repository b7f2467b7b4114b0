"""pickscore: transformers CLIPModel strict load, CLIPTokenizer-equal ids, the official score."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
open_clip = pytest.importorskip("open_clip")

from aigiqa.errors import AssetError  # noqa: E402
from aigiqa.metrics.alignment.pickscore import PickScore, clip_h_config, clip_token_ids  # noqa: E402
from tiny_weights import hf_clip_folder  # noqa: E402

PROMPTS = ["a red car", "A Cat, sitting; on a SOFA!", " ".join(f"w{i}" for i in range(100)),
           "café   crème"]


@pytest.fixture(scope="module")
def hf_tokenizer():
    """transformers' CLIPTokenizer built from the CLIP BPE vocabulary that open_clip ships (the
    same vocab.json/merges.txt as laion/CLIP-ViT-H-14-laion2B-s32B-b79K)."""
    tok = open_clip.get_tokenizer("ViT-H-14")
    merges = [tuple(m) for m in sorted(tok.bpe_ranks, key=tok.bpe_ranks.get)]
    vocab = dict(tok.encoder)
    vocab["<|startoftext|>"] = vocab.pop("<start_of_text>")  # open_clip renames the two specials
    vocab["<|endoftext|>"] = vocab.pop("<end_of_text>")
    assert len(vocab) == 49408
    return transformers.CLIPTokenizer(vocab=vocab, merges=merges)


@pytest.fixture(scope="module")
def tiny_pick(tmp_path_factory):
    """A small CLIPModel saved as a hub snapshot folder (config.json + model.safetensors)."""
    folder = tmp_path_factory.mktemp("pick")
    return hf_clip_folder(folder, seed=2), folder


def test_token_ids_equal_transformers_clip_tokenizer(hf_tokenizer):
    ids, mask = clip_token_ids(PROMPTS)
    ref = hf_tokenizer(PROMPTS, padding="max_length", truncation=True, max_length=77,
                       return_tensors="pt")
    for i in range(len(PROMPTS)):
        n = int(ref["attention_mask"][i].sum())
        assert ids[i, :n].tolist() == ref["input_ids"][i, :n].tolist()
        assert mask[i].tolist() == ref["attention_mask"][i].tolist()
    assert int(mask[2].sum()) == 77  # the long prompt fills the context, ends in EOT
    assert ids[2, 76] == 49407


def test_equals_official_recipe(tiny_pick, hf_tokenizer):
    model, folder = tiny_pick
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
              for h, w in [(224, 224), (227, 301), (400, 233), (64, 90)]]
    ours = PickScore(checkpoint=str(folder), batch_size=3).score(images, PROMPTS)
    from PIL import Image

    processor = transformers.CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3)
    ref = []
    with torch.no_grad():
        for im, prompt in zip(images, PROMPTS, strict=True):  # the model card's snippet, per pair
            pix = processor(images=[Image.fromarray(im)], return_tensors="pt")
            txt = hf_tokenizer(prompt, padding=True, truncation=True, max_length=77,
                               return_tensors="pt")
            ie = model.get_image_features(**pix).pooler_output
            te = model.get_text_features(**txt).pooler_output
            ie, te = ie / ie.norm(dim=-1, keepdim=True), te / te.norm(dim=-1, keepdim=True)
            ref.append((model.logit_scale.exp() * (te @ ie.T)[0]).item())
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert np.ptp(ours) > 0


def test_bare_weight_file_uses_the_clip_h_config(tiny_pick, tmp_path):
    _, folder = tiny_pick
    lone = tmp_path / "model.safetensors"
    lone.write_bytes((folder / "model.safetensors").read_bytes())
    metric = PickScore(checkpoint=str(lone))
    with pytest.raises(AssetError, match="does not fit"):  # tiny weights vs the CLIP-H config
        metric.score([np.zeros((32, 32, 3), np.uint8)], ["x"])


def test_clip_h_config_is_the_open_clip_vit_h_14_architecture():
    """PickScore_v1 is LAION's CLIP ViT-H/14 converted to transformers: same tensor sizes."""
    with torch.device("meta"):
        hf = transformers.CLIPModel(clip_h_config()).state_dict()
        oc = open_clip.create_model("ViT-H-14", pretrained=None, device="meta").state_dict()
    assert sum(v.numel() for v in hf.values()) == sum(v.numel() for v in oc.values())
    pairs = {
        "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
        "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
        "text_model.embeddings.position_embedding.weight": "positional_embedding",
        "vision_model.encoder.layers.31.mlp.fc1.weight":
            "visual.transformer.resblocks.31.mlp.c_fc.weight",
        "text_model.encoder.layers.23.mlp.fc2.weight": "transformer.resblocks.23.mlp.c_proj.weight",
    }
    for hf_key, oc_key in pairs.items():
        assert hf[hf_key].shape == oc[oc_key].shape
    assert hf["visual_projection.weight"].shape == oc["visual.proj"].T.shape
    assert hf["text_projection.weight"].shape == oc["text_projection"].T.shape


def test_missing_weights_fail_at_creation(monkeypatch, tmp_path):
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetError) as info:
        PickScore()
    assert "model.safetensors" in str(info.value)
    assert "yuvalkirstain/PickScore_v1" in str(info.value)
