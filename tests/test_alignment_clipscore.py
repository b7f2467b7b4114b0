"""clipscore: strict load of an OpenAI-format state dict, equal to open_clip's own pipeline."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from aigiqa.errors import AssetError, MetricError  # noqa: E402
from aigiqa.metrics.alignment.clipscore import CLIPScore  # noqa: E402
from tiny_weights import open_clip_file  # noqa: E402

LONG = " ".join(f"word{i}" for i in range(120))


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [(224, 224), (300, 180), (97, 333), (512, 384)]
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


@pytest.fixture(scope="module")
def random_clip(tmp_path_factory):
    """A seeded random OpenAI-architecture ViT-B/32 (QuickGELU) and its saved state dict."""
    path = tmp_path_factory.mktemp("clip") / "ViT-B-32.pt"
    return open_clip_file(path, "ViT-B-32", seed=0), path


def _reference(model, images, prompts, prefix="A photo depicts ", w=2.5) -> np.ndarray:
    """Hessel et al.'s recipe on the open_clip model: PIL preprocess, tokenize, w·max(cos, 0)."""
    from PIL import Image

    preprocess = open_clip.image_transform(224, is_train=False)
    tok = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        img = model.encode_image(torch.stack([preprocess(Image.fromarray(i)) for i in images]))
        txt = model.encode_text(tok([prefix + p for p in prompts]))
    img = img.numpy() / np.linalg.norm(img.numpy(), axis=1, keepdims=True)
    txt = txt.numpy() / np.linalg.norm(txt.numpy(), axis=1, keepdims=True)
    return w * np.clip((img * txt).sum(1), 0, None)


def test_equals_reference_batched_and_single(random_clip):
    model, path = random_clip
    images = _images()
    prompts = ["a red car", "a cat on a sofa", LONG, "abstract painting, oil"]
    metric = CLIPScore(checkpoint=str(path), batch_size=3)
    ours = metric.score(images, prompts)
    ref = _reference(model, images, prompts)
    assert ours.dtype == np.float64 and ours.shape == (4,)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    single = np.concatenate([metric.score([i], [p]) for i, p in zip(images, prompts, strict=True)])
    np.testing.assert_allclose(single, ours, atol=1e-5)


def test_long_prompt_keeps_first_75_tokens_and_ends_in_eot():
    tok = open_clip.get_tokenizer("ViT-B-32")
    ids = tok(["A photo depicts " + LONG])[0]
    full = tok.encode("A photo depicts " + LONG)
    assert ids.shape == (77,)
    assert ids[0] == tok.sot_token_id and ids[-1] == tok.eot_token_id
    assert ids[1:76].tolist() == full[:75]


def test_prefix_and_clamp_change_the_score(random_clip):
    model, path = random_clip
    images, prompts = _images()[:2], ["a red car", "a dog"]
    bare = CLIPScore(checkpoint=str(path), prefix="").score(images, prompts)
    np.testing.assert_allclose(bare, _reference(model, images, prompts, prefix=""), atol=1e-4)
    np.testing.assert_allclose(
        CLIPScore(checkpoint=str(path), prefix="A photo depicts").score(images, prompts),
        _reference(model, images, prompts), atol=1e-4)
    assert np.all(bare >= 0)


def test_state_dict_key_names_must_match(random_clip, tmp_path):
    model, _ = random_clip
    state = {"visual.extra": torch.zeros(1), **model.state_dict()}
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    metric = CLIPScore(checkpoint=str(bad))
    with pytest.raises(AssetError, match="visual.extra"):
        metric.score(_images()[:1], ["x"])


def test_missing_weights_fail_at_creation_naming_file_and_source(monkeypatch, tmp_path):
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetError) as info:
        CLIPScore()
    text = str(info.value)
    assert "ViT-B-32.pt" in text and "40d365715913c9da" in text and "openaipublic" in text
    assert "HF_HUB_OFFLINE" in text
    with pytest.raises(AssetError, match="does not exist"):
        CLIPScore(checkpoint=str(tmp_path / "nope.pt"))


def test_weights_found_in_aigiqa_home(random_clip, monkeypatch, tmp_path):
    _, path = random_clip
    from aigiqa import assets

    target = tmp_path / "assets" / "clip" / "ViT-B-32.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(path.read_bytes())
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path))
    with pytest.raises(AssetError, match="expected 40d365715913c9da"):  # a random file: sha fails
        CLIPScore()
    monkeypatch.setitem(assets.MODEL_FILES, "clip/ViT-B-32.pt", assets.Asset(
        "clip/ViT-B-32.pt", assets.sha256_of(target), "x", "test", "test"))
    assert CLIPScore().weights == target


def test_bad_inputs_are_metric_errors(random_clip):
    _, path = random_clip
    metric = CLIPScore(checkpoint=str(path))
    with pytest.raises(MetricError, match="needs a prompt"):
        metric.score(_images()[:1])
    with pytest.raises(MetricError, match=r"image 0 has shape \(8, 8, 2\)"):
        metric.score([np.zeros((8, 8, 2), np.uint8)], ["x"])
    with pytest.raises(MetricError, match="model="):
        CLIPScore(model="RN50")


def test_torchscript_archives_and_wrapped_state_dicts_are_read(tmp_path):
    """OpenAI ships TorchScript archives; HPS wraps in {"state_dict"}; DDP adds ``module.``."""
    from aigiqa.metrics.alignment._common import read_state_dict

    lin = torch.nn.Linear(3, 2)
    torch.jit.save(torch.jit.script(lin), tmp_path / "jit.pt")
    got = read_state_dict(tmp_path / "jit.pt")
    assert sorted(got) == ["bias", "weight"] and torch.equal(got["weight"], lin.weight)
    torch.save({"state_dict": {f"module.{k}": v for k, v in lin.state_dict().items()}},
               tmp_path / "wrapped.pt")
    assert sorted(read_state_dict(tmp_path / "wrapped.pt")) == ["bias", "weight"]
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AssetError, match="junk.pt"):
        read_state_dict(tmp_path / "junk.pt")


def test_modules_import_without_torch():
    """The registry imports metric modules at startup: they must not import torch & co."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('clipscore', 'clipiqa', 'pickscore', 'hpsv2', 'imagereward', 'blipscore'):\n"
        "    __import__('aigiqa.metrics.alignment.' + m)\n"
        "heavy = [m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
