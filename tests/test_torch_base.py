"""TorchMetric, the one base of the torch metrics: options, device and dtype, batching, key,
pickling, Ray resources; and the public methods training uses instead of private state.

No GPU here: CUDA is exercised where the CPU allows (device parsing and selection with
``torch.cuda`` patched, resources, dtype checks); inference in bfloat16 runs on the CPU.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from typing import ClassVar

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aigiqa.chunking import chunks  # noqa: E402
from aigiqa.errors import MetricError  # noqa: E402
from aigiqa.metrics.learned.base import to_tensor  # noqa: E402
from aigiqa.metrics.registry import list_metrics, metric_class  # noqa: E402
from aigiqa.metrics.torch_base import TORCH_DEFAULTS, TorchMetric  # noqa: E402
from aigiqa.metrics.torch_util import plan_chunks  # noqa: E402
from tiny_metrics import TinyConv  # noqa: E402


class Probe(TorchMetric):
    """Mean of a 1x1 conv of the image at its own size; records what each forward pass saw."""

    name = "test-torch-probe"
    defaults: ClassVar = dict(TORCH_DEFAULTS)

    def __init__(self, **options):
        super().__init__(**options)
        self.calls: list[dict] = []
        self.threads: set[str] = set()

    def build_model(self):
        return torch.nn.Conv2d(3, 1, 1)

    def batch_group(self, image):
        return tuple(image.shape[:2])

    def transform(self, image):
        self.threads.add(threading.current_thread().name)
        return to_tensor(image, (0.5,) * 3, (0.25,) * 3)

    def forward(self, model, batch, prompts):
        self.calls.append({"shape": tuple(batch.shape),
                           "inference": torch.is_inference_mode_enabled(),
                           "autocast": torch.is_autocast_enabled("cpu"),
                           "dtype": torch.get_autocast_dtype("cpu")})
        return model(batch).mean(dim=(1, 2, 3))


class Only32(Probe):
    name = "test-torch-only32"
    dtypes: ClassVar = ("float32",)


def _images(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


MIXED = [(40, 30), (20, 20), (40, 30), (33, 17), (20, 20), (20, 20), (64, 64)]


# Options ----------------------------------------------------------------------------------------
def test_device_and_dtype_options_are_parsed_and_checked():
    for ok in ("auto", "cpu", "cuda", "cuda:0", "cuda:3"):
        assert Probe(device=ok).options["device"] == ok
    for bad in ("tpu", "gpu", "cuda:x", "cuda:", "CPU"):
        with pytest.raises(MetricError, match="option device="):
            Probe(device=bad)
    for ok in ("float32", "bfloat16", "float16"):
        assert Probe(dtype=ok).dtype == getattr(torch, ok)
    with pytest.raises(MetricError, match="option dtype='half'"):
        Probe(dtype="half")
    with pytest.raises(MetricError, match="float32 only"):
        Only32(dtype="bfloat16")
    with pytest.raises(MetricError, match="gpus"):
        Probe(gpus="0")
    with pytest.raises(MetricError, match="batch_size"):
        Probe(batch_size="0")


def test_every_torch_metric_has_device_and_dtype():
    """The vision-language metrics had no device option before: now every torch metric has
    the same options from one base."""
    torch_metrics = [n for n in list_metrics() if metric_class(n).kind in ("alignment", "learned")
                     and metric_class(n).__module__.startswith("aigiqa.")]
    assert {"clipscore", "clipiqa", "pickscore", "hpsv2", "imagereward", "blipscore",
            "effnet-lite0", "musiq"} <= set(torch_metrics)
    for name in torch_metrics:
        cls = metric_class(name)
        assert issubclass(cls, TorchMetric), name
        assert set(TORCH_DEFAULTS) <= set(cls.defaults), name
    assert metric_class("clipiqa").__module__ == "aigiqa.metrics.alignment.clipiqa"


def test_auto_device_follows_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Probe().device == torch.device("cpu")
    with pytest.raises(MetricError, match="no CUDA device"):
        _ = Probe(device="cuda").device
    with pytest.raises(MetricError, match="no CUDA device"):
        Probe(device="cuda:1").prepare()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert Probe().device == torch.device("cuda")
    assert Probe(device="cuda:1").device == torch.device("cuda:1")
    with pytest.raises(MetricError, match="has 2 CUDA device"):
        _ = Probe(device="cuda:2").device
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(MetricError, match="does not support it"):
        Probe(device="cuda", dtype="bfloat16").prepare()


def test_resources_follow_the_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Probe(device="cpu").resources == {}
    assert Probe(device="auto").resources == {}
    assert Probe(device="cuda").resources == {"num_gpus": 1.0}
    assert Probe(device="cuda:0", gpus=0.25).resources == {"num_gpus": 0.25}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert Probe(device="auto", gpus=0.5).resources == {"num_gpus": 0.5}
    assert Probe(device="cpu").resources == {}


def test_key_leaves_out_runtime_options_but_not_the_dtype():
    base = Probe().key
    assert Probe(device="cpu", batch_size=3, gpus=0.5).key == base
    assert Probe(dtype="bfloat16").key != base


# Inference ---------------------------------------------------------------------------------------
def test_scores_keep_the_input_order_and_batches_bucket_by_size():
    images = _images(MIXED)
    metric = Probe(device="cpu", batch_size=2)
    batched = metric.score(images)
    single = np.array([Probe(device="cpu").score([im])[0] for im in images])
    np.testing.assert_allclose(batched, single, rtol=1e-6, atol=1e-7)
    shapes = [c["shape"] for c in metric.calls]
    assert all(s[0] <= 2 for s in shapes)  # batch_size bounds every pass
    assert sum(s[0] for s in shapes) == len(images)
    assert all(c["inference"] and not c["autocast"] for c in metric.calls)
    assert len({s[2:] for s in shapes}) == len(set(MIXED))  # one size per pass


def test_plan_chunks_sorts_groups_and_bounds_pixels():
    pixels = [100, 10, 50, 10, 400, 60, 55]
    groups = [()] * len(pixels)
    plan = plan_chunks(pixels, groups, batch_size=3, max_pixels=None)
    assert [pixels[i] for c in plan for i in c] == sorted(pixels)
    assert [len(c) for c in plan] == [3, 3, 1]
    bounded = plan_chunks(pixels, groups, batch_size=8, max_pixels=200)
    for c in bounded:  # padded to the largest: count x largest <= bound, or an image alone
        assert len(c) * max(pixels[i] for i in c) <= 200 or len(c) == 1
    assert sorted(i for c in bounded for i in c) == list(range(len(pixels)))
    split = plan_chunks([5, 5, 5], [(1,), (2,), (1,)], batch_size=8, max_pixels=None)
    assert split == [[0, 2], [1]]


def test_bfloat16_runs_under_autocast_on_the_cpu():
    images = _images(MIXED[:3])
    fp32 = Probe(device="cpu").score(images)
    bf16_metric = Probe(device="cpu", dtype="bfloat16")
    bf16 = bf16_metric.score(images)
    assert all(c["autocast"] and c["dtype"] == torch.bfloat16 for c in bf16_metric.calls)
    assert bf16.dtype == np.float64
    np.testing.assert_allclose(bf16, fp32, atol=0.05)
    assert not np.array_equal(bf16, fp32)  # it did run in bfloat16


def test_the_next_batch_is_prepared_in_a_background_thread(monkeypatch):
    """On an accelerator the transform of pass k+1 runs while the model runs pass k (here the
    CPU stands in: the switch that says 'accelerator' is patched)."""
    images = _images(MIXED)
    inline = Probe(device="cpu", batch_size=2)
    expected = inline.score(images)
    assert inline.threads == {threading.current_thread().name}
    overlapped = Probe(device="cpu", batch_size=2)
    monkeypatch.setattr(Probe, "_overlap", lambda self, device: True)
    np.testing.assert_array_equal(overlapped.score(images), expected)
    assert any(t.startswith("aigiqa-prepare") for t in overlapped.threads)


def test_a_transform_error_in_the_background_thread_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(Probe, "_overlap", lambda self, device: True)
    metric = Probe(device="cpu", batch_size=1)
    monkeypatch.setattr(metric, "transform", lambda image: (_ for _ in ()).throw(
        MetricError("bad image")))
    with pytest.raises(MetricError, match="bad image"):
        metric.score(_images(MIXED[:3]))


# Pickles and training --------------------------------------------------------------------------
def test_weights_set_in_memory_are_never_mistaken_for_the_default_ones():
    """A pickled copy of a metric trained in memory has the trained key: it must not score
    with default weights under it (it raises), while a copy of one on a file rebuilds."""
    metric = TinyConv(device="cpu")
    images = _images([(20, 20)] * 3)
    trained = metric.new_model()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    metric.set_model(trained, (1.0, 2.0))
    assert metric.key != TinyConv().key
    clone = pickle.loads(pickle.dumps(metric))
    assert clone.key == metric.key
    with pytest.raises(MetricError, match="set in memory"):
        clone.score(images)
    np.testing.assert_allclose(pickle.loads(pickle.dumps(TinyConv())).score(images),
                               TinyConv().score(images), rtol=1e-6)


def test_training_uses_public_methods(tmp_path, monkeypatch):
    metric = TinyConv(device="cpu")
    _ = metric.model
    with pytest.raises(MetricError, match="device="):
        metric.set_device("gpu")
    metric.set_device("cpu")
    assert metric.options["device"] == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(MetricError, match="no CUDA device"):
        metric.set_device("cuda")
    assert metric.options["device"] == "cpu"  # unchanged: the model is still on the CPU
    fsynced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (fsynced.append(fd), real_fsync(fd))[1])
    path = metric.save(tmp_path / "m.pt", {"epoch": 3}, target_affine=(0.5, 2.0))
    assert fsynced  # aigiqa.files.atomic_write: temporary file, fsync, rename
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]
    metric.use_checkpoint(path)
    assert metric.options["checkpoint"] == str(path)
    assert metric.key == TinyConv(checkpoint=str(path)).key
    np.testing.assert_allclose(TinyConv(checkpoint=str(path)).score(_images([(20, 20)])),
                               metric.score(_images([(20, 20)])) * 2 + 0.5, rtol=1e-6)


def test_training_does_not_import_the_learned_metrics():
    code = ("import sys, aigiqa.training, aigiqa.training.loop, aigiqa.training.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('aigiqa.metrics.learned')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_one_chunks_helper():
    assert [list(c) for c in chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks([], 4)) == []
    with pytest.raises(ValueError):
        list(chunks([1], 0))


def test_a_full_resolution_model_takes_mixed_sizes_in_one_call():
    """dbcnn stacks whole images: with batch_size > 1 a mix of sizes used to be an error."""
    from aigiqa.metrics.learned.dbcnn import DBCNN

    images = _images([(40, 48), (48, 40), (40, 48)])
    metric = DBCNN(batch_size=3, device="cpu")
    together = metric.score(images)
    alone = np.array([metric.score([im])[0] for im in images])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
