"""clip-prompt-levels (IPCE / LIQE): views, scores re-derived by hand, options, training.

The equality with the official IPCE code is checked by ``benchmarks/clip_levels_reference.py``
(the official code is not part of the project); here the metric is checked against an
independent computation from open_clip's own ``encode_image`` / ``encode_text``.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.errors import MetricError
from aigiqa.metrics.learned.clip_levels import ClipPromptLevels, grid_windows, inference_windows
from aigiqa.training import TrainConfig, train
from aigiqa.training.losses import l1_loss

PROMPTS = ["a red car on the road", "a cat on a sofa", "two dogs in the snow"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def arch(tiny_clip_arch) -> str:
    return tiny_clip_arch


def _metric(arch: str, **options) -> ClipPromptLevels:
    return ClipPromptLevels(model=arch, pretrained="none", device="cpu", **options)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# Views ------------------------------------------------------------------------------------------
def test_grid_is_unfolds_row_major_windows_with_its_stride():
    for h, w, step in ((768, 1000, 32), (768, 1024, 48), (1100, 900, 48)):
        windows = grid_windows(h, w, 224)
        rows, cols = (h - 224) // step + 1, (w - 224) // step + 1
        assert len(windows) == rows * cols
        assert windows[1] == (0, step) and windows[cols] == (step, 0)
        assert windows[-1] == ((rows - 1) * step, (cols - 1) * step)
    assert inference_windows(100, 15) == [6 * i for i in range(15)]


def test_views_are_unfold_windows_of_the_normalised_image_and_the_resized_whole(arch):
    metric = _metric(arch)
    image = _image(300, 240)
    views = metric.transform(image)
    assert views.shape == (16, 3, 224, 224)
    # independently: Pillow resize of the shorter side to 768, normalise, unfold, interpolate
    from PIL import Image

    big = np.asarray(Image.fromarray(image).resize((768, 960), Image.Resampling.BILINEAR))
    x = torch.from_numpy(big.copy()).permute(2, 0, 1).float() / 255
    mean = torch.tensor(metric.mean).view(3, 1, 1)
    std = torch.tensor(metric.std).view(3, 1, 1)
    x = ((x - mean) / std)[None]
    grid = x.unfold(2, 224, 32).unfold(3, 224, 32).permute(2, 3, 0, 1, 4, 5).reshape(-1, 3, 224,
                                                                                   224)
    step = grid.shape[0] // 15
    torch.testing.assert_close(views[:15], grid[[step * i for i in range(15)]], rtol=0, atol=0)
    whole = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear",
                                            align_corners=False)[0]
    torch.testing.assert_close(views[15], whole, rtol=0, atol=1e-6)
    train_views = metric.transform(image, np.random.default_rng(3))
    assert train_views.shape == (9, 3, 224, 224)
    again = metric.transform(image, np.random.default_rng(3))
    assert torch.equal(train_views, again)
    assert _metric(arch, whole_image=False).transform(image).shape == (15, 3, 224, 224)


# Scores -----------------------------------------------------------------------------------------
def test_score_is_the_expected_level_re_derived_from_open_clip(arch):
    metric = _metric(arch)
    images = [_image(256, 256, 1), _image(240, 330, 2), _image(1030, 800, 3)]
    scores = metric.score(images, PROMPTS)
    model, tok = metric.model, metric._tokenizer
    words = ["badly", "poorly", "fairly", "well", "perfectly"]
    expected = []
    with torch.no_grad():
        for image, prompt in zip(images, PROMPTS, strict=True):
            views = metric.transform(image)
            f = model.encode_image(views, normalize=True)                         # (16, D)
            texts = [f"a photo that {w} matches '{prompt}'" for w in words]
            t = model.encode_text(tok(texts), normalize=True)                     # (5, D)
            logits = model.logit_scale.exp() * f @ t.T                            # (16, 5)
            p = (torch.softmax(logits[:15].mean(0), 0) + torch.softmax(logits[15], 0)) / 2
            level = float((p * torch.arange(1, 6)).sum())
            expected.append((level - 1) / 4 * 5)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert np.ptp(scores) > 1e-4  # the images and prompts give different scores


def test_levels_and_template_are_options(arch):
    images = [_image(256, 256, 1), _image(256, 300, 2)]
    three = _metric(arch, levels="bad,fair,good", template="{prompt}, {level} quality")
    assert three.texts(["a cat"], 1) == ["a cat, bad quality", "a cat, fair quality",
                                         "a cat, good quality"]
    scores = three.score(images, PROMPTS[:2])
    assert ((scores >= 0) & (scores <= 5)).all()
    assert not np.allclose(scores, _metric(arch).score(images, PROMPTS[:2]))


@pytest.mark.parametrize(("options", "message"), [
    ({"levels": "good"}, "levels"), ({"template": "a photo of {prompt}"}, "template"),
    ({"template": "{level} {prompt} {other}"}, "template"), ({"freeze": "all"}, "freeze"),
    ({"patches": 0}, "patches"), ({"pretrained": "laion"}, "pretrained"),
    ({"min_side": 100}, "min_side"), ({"model": "ViT-nothing"}, "open_clip architecture"),
])
def test_bad_options_are_named(arch, options, message):
    with pytest.raises(MetricError, match=message):
        ClipPromptLevels(**{"model": arch, "pretrained": "none", **options})


def test_too_few_windows_is_an_error_naming_the_options(arch):
    metric = _metric(arch, min_side=224, patches=4)
    with pytest.raises(MetricError, match="patches"):
        metric.score([_image(230, 230)], ["a cat"])


def test_random_init_is_said_unless_asked_for(arch, live_assets):
    with pytest.warns(UserWarning, match="random weights"):
        ClipPromptLevels(model=arch, device="cpu").build_model()
    assert ClipPromptLevels(model=arch, device="cpu").default_weights_id() == "random-init"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _metric(arch).build_model()


def test_official_key_names_load_strictly(arch, tmp_path):
    """An OpenAI-CLIP state dict as IPCE's training script saves it (``model_state_dict``,
    DataParallel's ``module.`` prefix, OpenAI's int entries) loads strictly; a missing key fails."""
    import open_clip

    torch.manual_seed(5)
    reference = open_clip.create_model(arch, pretrained=None, force_quick_gelu=True)
    state = {f"module.{k}": v for k, v in reference.state_dict().items()}
    state["module.context_length"] = 77
    torch.save({"epoch": 3, "model_state_dict": state}, tmp_path / "ipce.pt")
    metric = _metric(arch, checkpoint=str(tmp_path / "ipce.pt"))
    for key, value in reference.state_dict().items():
        assert torch.equal(metric.model.state_dict()[key], value)
    scores = metric.score([_image(256, 256)], ["a cat"])
    assert 0 <= scores[0] <= 5  # no aigiqa target map: IPCE's 0-5 scale
    del state["module.visual.proj"]
    torch.save({"model_state_dict": state}, tmp_path / "broken.pt")
    with pytest.raises(MetricError, match="visual.proj"):
        _metric(arch, checkpoint=str(tmp_path / "broken.pt")).prepare()


# Training ---------------------------------------------------------------------------------------
def test_steps_on_a_fixed_batch_lower_the_ipce_loss(arch):
    metric = _metric(arch, min_side=256, train_patches=3)
    model = metric.model.train()
    rng = np.random.default_rng(0)
    images = [_image(256, 256, s) for s in range(4)]
    batch = torch.stack([metric.transform(im, rng) for im in images])
    y = torch.tensor([-1.5, -0.5, 0.5, 1.5])
    optimizer = torch.optim.AdamW(metric.parameter_groups(model, 1e-3), weight_decay=0.001)
    assert not model.logit_scale.requires_grad

    def loss() -> torch.Tensor:
        return l1_loss(metric.forward(model, batch, PROMPTS + ["a dog"]), y)

    with torch.no_grad():
        before = float(loss())
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    with torch.no_grad():
        assert float(loss()) < 0.7 * before


@pytest.mark.parametrize("freeze", ["none", "image", "text"])
def test_frozen_towers_stay_as_they_are(arch, freeze):
    metric = _metric(arch, freeze=freeze)
    model = metric.model
    trainable = {n for g in metric.parameter_groups(model, 1e-4) for n, p in
                 model.named_parameters() if any(p is q for q in g["params"])}
    image = {n for n, _ in model.named_parameters() if n.startswith("visual.")}
    text = {n for n, _ in model.named_parameters()} - image - {"logit_scale"}
    assert trainable == {"none": image | text, "image": text, "text": image}[freeze]
    extractor = metric.feature_extractor(model)
    assert (extractor is not None) == (freeze == "image")


def _database(root, n: int = 12) -> Database:
    """Smooth images whose MOS falls with their noise; one prompt each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    records = []
    for i, (noise, word) in enumerate(zip(np.linspace(0, 80, n), itertools.cycle(
            ["cat", "car", "tree", "house"]))):
        base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(base).resize((256, 256), Image.Resampling.BICUBIC))
        pixels = np.clip(smooth + rng.normal(0, noise + 1e-3, smooth.shape), 0, 255)
        path = root / f"g{i % 3}_{i:04d}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        records.append(Record(name=path.name, path=path, prompt=f"a photo of a {word}",
                              generator=f"g{i % 3}", split="train" if i % 4 else "val",
                              targets={"mos": 5 - noise / 20}))
    return Database(DatabaseInfo(name="noisy", score_range=(0, 5), target_names=("mos",)),
                    records, root)


@pytest.mark.parametrize("freeze", ["none", "image"])
def test_trains_through_the_loop_and_scores_with_its_checkpoint(arch, tmp_path, freeze):
    db = _database(tmp_path)
    metric = _metric(arch, min_side=256, patches=4, train_patches=2, freeze=freeze)
    result = train(metric, db, TrainConfig(epochs=2, batch_size=4, lr=1e-4, loss="l1",
                                           out=tmp_path / "run", progress=False))
    assert len(result.history) == 2 and all(np.isfinite(h["loss"]) for h in result.history)
    val = db.subset(split="val")
    from aigiqa.images import load_image

    images, prompts = [load_image(r.path) for r in val], [r.prompt for r in val]
    trained = metric.score(images, prompts)
    again = ClipPromptLevels(**{**metric.options, "checkpoint": str(result.checkpoint)})
    np.testing.assert_allclose(again.score(images, prompts), trained, rtol=0, atol=1e-5)
    mean = np.mean([r.targets["mos"] for r in db.subset(split="train")])
    assert abs(np.mean(trained) - mean) < 3  # in MOS units (the target map is stored)


def test_fidelity_loss_is_liqes_pairwise_loss():
    from aigiqa.training import make_loss

    fidelity = make_loss("fidelity")
    y = torch.tensor([3.0, 1.0, 2.0])
    right = fidelity(torch.tensor([30.0, 10.0, 20.0]), y)  # every pair ordered, far apart
    assert float(right) == pytest.approx(0, abs=2e-4)
    assert float(fidelity(torch.zeros(3), y)) == pytest.approx(1 - 0.5 ** 0.5, abs=2e-4)
    p = 0.5 * (1 + math.erf(-1 / 2 ** 0.5))  # Φ(0 - 1); a tie in the targets: g = 0.5
    tie = 1 - math.sqrt(0.5 * p) - math.sqrt(0.5 * (1 - p))
    assert float(fidelity(torch.tensor([0.0, 1.0]), torch.ones(2))) == pytest.approx(tie, abs=1e-6)
    wrong = fidelity(torch.tensor([10.0, 30.0, 20.0]), y)
    assert float(wrong) > float(right)


# Kill -9 and resume (the loop's guarantee, through this model's random patches) ---------------
def _train_cmd(tests: str, arch_dir: str, root, out) -> list[str]:
    script = (f"import sys; sys.path.insert(0, {tests!r}); from pathlib import Path; "
              "from tiny_weights import TINY_B32, TINY_B32_CONFIG, register_open_clip; "
              f"register_open_clip(Path({arch_dir!r}), TINY_B32, TINY_B32_CONFIG); "
              "from aigiqa.training.cli import app; app()")
    spec = ("clip-prompt-levels:model=ViT-B-32-aigiqa-tiny:pretrained=none:min_side=256:"
            "patches=4:train_patches=2")
    return [sys.executable, "-c", script, "--metric", spec, "--database", "demo", "--root",
            str(root), "--out", str(out), "--epochs", "3", "--batch-size", "8", "--lr", "1e-4",
            "--loss", "l1", "--workers", "1", "--no-progress"]


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(arch, tmp_path):
    from aigiqa.demo import build_demo

    root = build_demo(tmp_path / "demo", n=30, seed=3)
    tests, arch_dir = str(Path(__file__).parent), str(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_cmd(tests, arch_dir, root, ref), env=env, check=True,
                   capture_output=True, timeout=600)
    proc = subprocess.Popen(_train_cmd(tests, arch_dir, root, killed), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def done() -> int:
        try:
            return int(torch.load(killed / "last.pt", weights_only=False)["epoch"])
        except (FileNotFoundError, EOFError, RuntimeError, KeyError):
            return 0

    deadline = time.monotonic() + 600
    while done() < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and 1 <= done() < 3
    subprocess.run(_train_cmd(tests, arch_dir, root, killed), env=env, check=True,
                   capture_output=True, timeout=600)
    a = torch.load(ref / "last.pt", weights_only=False)
    b = torch.load(killed / "last.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3 and a["history"] == b["history"]
    for key, value in a["model"].items():
        assert torch.equal(b["model"][key], value), key
