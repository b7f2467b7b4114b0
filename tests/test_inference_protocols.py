"""Inference protocols of the learned metrics: MANIQA crops/resize, HyperIQA demo/paper, and
the default that follows the checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from aigiqa.errors import MetricError  # noqa: E402
from aigiqa.metrics.learned._blocks import resize_bicubic  # noqa: E402
from aigiqa.metrics.learned.hyperiqa import HyperIQA  # noqa: E402
from aigiqa.metrics.learned.maniqa import MANIQA  # noqa: E402
from aigiqa.metrics.registry import metric_from_spec  # noqa: E402
from test_arch_maniqa import TinyMANIQA  # noqa: E402
from test_arch_training import random_images  # noqa: E402


def cubic_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Cubic convolution (a = -0.75), pixel-centre alignment, replicated border, separable in
    float64, rounded: OpenCV's INTER_CUBIC written out from its definition."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        matrix = np.zeros((n_out, n_in))
        a = -0.75
        for i in range(n_out):
            src = (i + 0.5) * n_in / n_out - 0.5
            base = int(np.floor(src))
            for j in range(base - 1, base + 3):
                d = abs(src - j)
                w = ((a + 2) * d**3 - (a + 3) * d**2 + 1 if d <= 1
                     else a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a if d < 2 else 0.0)
                matrix[i, min(max(j, 0), n_in - 1)] += w
        return matrix

    rows, cols = weights(image.shape[0], height), weights(image.shape[1], width)
    out = np.einsum("ih,hwc,jw->ijc", rows, image.astype(np.float64), cols, optimize=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(300, 260), (90, 150), (224, 224)])
def test_bicubic_resize_is_the_cubic_convolution_of_opencv(shape: tuple[int, int]) -> None:
    im = random_images(3, 1, *shape)[0]
    ours, ref = resize_bicubic(im, 224, 224), cubic_reference(im, 224, 224)
    assert ours.shape == (224, 224, 3) and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # rounding ties of float sums only


def test_resize_protocol_scores_the_resized_image_once() -> None:
    im = random_images(4, 1, 70, 90)[0]
    metric = TinyMANIQA(protocol="resize", num_crops=7, device="cpu")
    x = metric.transform(im)
    assert x.shape == (1, 3, 32, 32)  # num_crops is for protocol=crops only
    manual = resize_bicubic(im, 32, 32)
    # the manually resized image, scored as one 32x32 crop (the crop is the whole image)
    by_hand = TinyMANIQA(protocol="crops", num_crops=1, device="cpu")
    by_hand.set_model(metric.model)
    assert np.allclose(metric.score([im]), by_hand.score([manual]), atol=1e-6)
    assert not np.allclose(metric.score([im]), by_hand.score([im[:32, :32]]), atol=1e-4)
    flipped = metric.transform(im, np.random.default_rng(1))  # training: resized, maybe flipped
    assert flipped.shape == (1, 3, 32, 32)


def test_crops_protocol_honours_the_count_and_the_seed() -> None:
    im = random_images(5, 1, 240, 250)[0]
    x = MANIQA(protocol="crops", num_crops=6, seed=3).transform(im)
    assert x.shape == (6, 3, 224, 224)
    assert torch.equal(x, MANIQA(num_crops=6, seed=3).transform(im))  # auto: crops
    assert not torch.equal(x, MANIQA(num_crops=6, seed=4).transform(im))
    assert HyperIQA().transform(im).shape[0] == 10
    assert HyperIQA(protocol="paper").transform(im).shape[0] == 25
    assert HyperIQA(protocol="paper", num_crops=3).transform(im).shape[0] == 3


def test_auto_follows_the_checkpoint_file(tmp_path: Path) -> None:
    metric = TinyMANIQA(device="cpu")
    koniq = metric.save(tmp_path / "ckpt_koniq10k.pt")
    other = tmp_path / "mine.pt"
    other.write_bytes(koniq.read_bytes())
    kadid = tmp_path / "ckpt_kadid10k.pt"
    kadid.write_bytes(koniq.read_bytes())
    assert metric.inference_protocol() == "crops"
    assert TinyMANIQA(checkpoint=str(koniq)).inference_protocol() == "resize"
    assert TinyMANIQA(checkpoint=str(koniq)).transform(random_images(0, 1, 50, 60)[0]).shape \
        == (1, 3, 32, 32)
    assert TinyMANIQA(checkpoint=str(other)).inference_protocol() == "crops"
    assert TinyMANIQA(checkpoint=str(kadid)).inference_protocol() == "crops"
    assert TinyMANIQA(checkpoint=str(koniq), protocol="crops").inference_protocol() == "crops"
    # same bytes, other protocol: the cache key must tell them apart
    assert TinyMANIQA(checkpoint=str(koniq)).key != TinyMANIQA(checkpoint=str(other)).key
    pkl = tmp_path / "koniq_pretrained.pkl"
    pkl.write_bytes(b"not read for the protocol")
    assert HyperIQA(checkpoint=str(pkl)).inference_protocol() == "paper"
    assert HyperIQA(checkpoint=str(pkl)).crop_count() == 25
    assert HyperIQA().crop_count() == 10


def test_training_pins_the_protocol_in_the_bench_spec(tmp_path: Path) -> None:
    from aigiqa.training import bench_spec

    metric = TinyMANIQA(device="cpu", checkpoint=str(TinyMANIQA(device="cpu").save(
        tmp_path / "ckpt_koniq10k.pt")))
    metric.pin_protocol()
    assert metric.options["protocol"] == "resize"
    assert "protocol=resize" in bench_spec(metric, tmp_path / "model.pt")


@pytest.mark.parametrize("spec", ["maniqa:protocol=whole", "hyperiqa:protocol=crops"])
def test_bad_protocol_is_an_error_naming_the_option(spec: str) -> None:
    with pytest.raises(MetricError, match="protocol='(whole|crops)' is not one of auto"):
        metric_from_spec(spec)
    with pytest.raises(MetricError, match="num_crops"):
        HyperIQA(num_crops=-1)
