"""The contract every built-in metric keeps (as scikit-learn's ``check_estimator`` checks every
estimator): one parametrised suite over the registry, so a new metric that breaks it fails here.

For each metric: metadata valid; ``score`` gives float64 of length n on a batch of mixed sizes;
prompts required iff ``needs_prompt`` (and ignored otherwise); ``metric_from_spec(m.spec).key ==
m.key``; two calls, a fresh copy and a pickled copy give equal scores; a changed weights file at
the same path changes ``key``; torch metrics accept every device and dtype they declare.

Weights are seeded random files the setups below write (tiny architectures of the real model
families for the vision-language metrics, the real architectures for the learned ones, fitted
or perturbed parameter files for the classical ones): nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aigiqa.errors import MetricError
from aigiqa.metrics.base import KINDS
from aigiqa.metrics.registry import create_metric, list_metrics, metric_class, metric_from_spec

BUILTIN = [n for n in list_metrics() if metric_class(n).__module__.startswith("aigiqa.")]
SHAPES = [(240, 320), (256, 256), (300, 224), (231, 257)]
PROMPTS = ["a red car on the road", "a cat on a sofa", "a photo of a blue sky", "a dog"]


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SHAPES]


def _is_torch(name: str) -> bool:
    from aigiqa.metrics.torch_base import TorchMetric

    return issubclass(metric_class(name), TorchMetric)


# Setups: the options a metric is tested with, and how to write other weights at their paths ----
@dataclasses.dataclass
class Setup:
    #: options using weights written in the folder (seed 0); {} for a metric without files
    options: Callable[[Path], dict[str, Any]] = lambda folder: {}
    #: write other weights at the same paths (seed 1); None for a metric without weight files
    rewrite: Callable[[Path, Any], None] | None = None


def _niqe_file(folder: Path, seed: int) -> dict[str, Any]:
    from aigiqa.metrics.classical.niqe import Niqe

    rng = np.random.default_rng(seed)
    textured = [rng.integers(0, 256, (288, 288, 3), dtype=np.uint8) for _ in range(3)]
    path = Niqe().fit_images(textured).save(folder / "niqe.mat")
    return {"checkpoint": str(path)}


def _brisque_file(folder: Path, shift: float) -> dict[str, Any]:
    from aigiqa.metrics.classical.brisque import Brisque

    live = Brisque().model  # the LIVE model (../shared/assets), another bias for another file
    dataclasses.replace(live, rho=live.rho + shift).save(folder / "brisque.npz")
    return {"checkpoint": str(folder / "brisque.npz")}


def _open_clip(arch: str, config: dict, **saved: Any) -> Setup:
    from tiny_weights import open_clip_file, register_open_clip

    def write(folder: Path, seed: int) -> dict[str, Any]:
        register_open_clip(folder, arch, config)
        open_clip_file(folder / "weights.pt", arch, seed, **saved)
        return {"checkpoint": str(folder / "weights.pt"), "model": arch}

    return Setup(lambda folder: write(folder, 0), lambda folder, metric: write(folder, 1))


def _pickscore(folder: Path, seed: int) -> dict[str, Any]:
    from tiny_weights import hf_clip_folder

    hf_clip_folder(folder / "pick", seed)
    return {"checkpoint": str(folder / "pick")}


def _blip(which: int) -> Setup:
    from tiny_weights import bert_vocab, blip_files

    def write(folder: Path, seed: int) -> dict[str, Any]:
        vocab = bert_vocab(folder / "vocab.txt")
        return {"checkpoint": str(blip_files(folder, vocab, seed)[which]), "vocab": str(vocab)}

    return Setup(lambda folder: write(folder, 0), lambda folder, metric: write(folder, 1))


def _learned(name: str, **options: Any) -> Setup:
    """The metric's own default weights saved by ``save`` as its checkpoint; the rewrite saves
    them perturbed at the same path."""

    def write(folder: Path) -> dict[str, Any]:
        path = create_metric(name, **options).save(folder / "weights.pt")
        return {**options, "checkpoint": str(path)}

    def rewrite(folder: Path, metric: Any) -> None:
        import torch

        metric = metric_from_spec(metric.spec)  # a copy: the tested instance keeps its weights
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for parameter in metric.model.parameters():
                parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
        metric.save(folder / "weights.pt")

    return Setup(write, rewrite)


def _clip_levels(name: str) -> Setup:
    """A tiny OpenAI-shaped ViT-B/32 (registered with open_clip in the folder), random init."""
    from tiny_weights import TINY_B32, TINY_B32_CONFIG, register_open_clip

    learned = _learned(name, model=TINY_B32, pretrained="none")

    def write(folder: Path) -> dict[str, Any]:
        register_open_clip(folder, TINY_B32, TINY_B32_CONFIG)
        return learned.options(folder)

    return Setup(write, learned.rewrite)


def _fused(name: str) -> Setup:
    """A tiny PickScore-style CLIP folder, then the metric's default weights as its checkpoint."""
    from tiny_weights import hf_clip_folder

    def write(folder: Path) -> dict[str, Any]:
        hf_clip_folder(folder / "pick", 0)
        return _learned(name, clip=str(folder / "pick")).options(folder)

    return Setup(write, _learned(name).rewrite)


def _ensemble() -> Setup:
    """An ensemble (weighted mean) of sharpness and a tiny clip-prompt-levels; the rewrite
    perturbs the member's checkpoint."""
    member = _clip_levels("clip-prompt-levels")

    def write(folder: Path) -> dict[str, Any]:
        spec = ":".join(["clip-prompt-levels", "min_side=256", "patches=4",
                         *(f"{k}={v}" for k, v in member.options(folder).items())])
        config = folder / "ensemble.toml"
        config.write_text(f'[[member]]\nspec = "sharpness"\nweight = 0.25\n'
                          f'[[member]]\nspec = "{spec}"\n')
        return {"config": str(config)}

    return Setup(write, lambda folder, metric: member.rewrite(folder, metric.members[1]))


def setup_of(name: str) -> Setup:
    """How ``name`` is tested (the built-ins that read files need one here)."""
    from tiny_weights import TINY_RN, TINY_RN_CONFIG, TINY_VIT, TINY_VIT_CONFIG

    if name == "niqe":
        return Setup(lambda f: _niqe_file(f, 0), lambda f, m: _niqe_file(f, 1) and None)
    if name == "brisque":
        return Setup(lambda f: _brisque_file(f, 0.0), lambda f, m: _brisque_file(f, 0.5) and None)
    if name == "clipscore":
        return _open_clip(TINY_VIT, TINY_VIT_CONFIG)
    if name == "clipiqa":
        return _open_clip(TINY_RN, TINY_RN_CONFIG)
    if name == "hpsv2":
        return _open_clip(TINY_VIT, TINY_VIT_CONFIG, quick_gelu=False, wrapped=True,
                          logit_scale=None)
    if name == "pickscore":
        return Setup(lambda f: _pickscore(f, 0), lambda f, m: _pickscore(f, 1) and None)
    if name in ("imagereward", "blipscore"):
        return _blip(0 if name == "imagereward" else 1)
    if name == "clip-prompt-levels":
        return _clip_levels(name)
    if name == "fused-quality-alignment":
        return _fused(name)
    if name == "ensemble":
        return _ensemble()
    if metric_class(name).kind == "learned":
        faster = {"num_crops": 1} if name == "maniqa" else {}  # its 20 ViT-B/8 crops are slow
        return _learned(name, **faster)
    return Setup()


@dataclasses.dataclass
class Case:
    metric: Any
    folder: Path
    setup: Setup
    scores: np.ndarray


_CASES: dict[str, Case] = {}


@pytest.fixture
def case(request, tmp_path_factory, live_assets) -> Case:
    """The metric ``request.param`` built once for the session, with its scores of _images()."""
    name = request.param
    if name not in _CASES:
        folder = tmp_path_factory.mktemp(f"contract-{name}")
        setup = setup_of(name)
        metric = create_metric(name, **setup.options(folder))
        prompts = PROMPTS if metric.needs_prompt else None
        _CASES[name] = Case(metric, folder, setup, metric.score(_images(), prompts))
    return _CASES[name]


def _prompts(metric: Any) -> list[str] | None:
    return PROMPTS if metric.needs_prompt else None


def _each(names: list[str]):
    return pytest.mark.parametrize("case", names, indirect=True)


# The contract -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTIN)
def test_metadata_is_valid(name):
    cls = metric_class(name)
    assert cls.name == name
    assert cls.kind in KINDS
    assert isinstance(cls.lower_better, bool) and isinstance(cls.needs_prompt, bool)
    assert isinstance(cls.citation, str) and cls.citation.strip(), "no citation"
    assert isinstance(cls.version, str) and cls.version
    if cls.score_range is not None:
        low, high = cls.score_range
        assert not (math.isnan(low) or math.isnan(high)) and low < high
    assert set(cls.file_options) <= set(cls.defaults), "a file option that is not an option"
    assert set(cls.deprecated_options.values()) <= set(cls.defaults)


@_each(BUILTIN)
def test_scores_are_float64_one_per_image_of_mixed_sizes(case):
    assert case.scores.dtype == np.float64
    assert case.scores.shape == (len(SHAPES),)
    assert np.isfinite(case.scores).all()


@_each(BUILTIN)
def test_prompts_are_required_iff_the_metric_needs_them(case):
    metric = case.metric
    if metric.needs_prompt:
        with pytest.raises(MetricError, match="prompt"):
            metric.score(_images())
        with pytest.raises(MetricError, match="prompt"):
            metric.score(_images(), PROMPTS[:-1] + ["   "])
    else:  # accepted and ignored
        np.testing.assert_array_equal(metric.score(_images(), PROMPTS), case.scores)


@_each(BUILTIN)
def test_spec_gives_back_the_same_key_and_scores(case):
    again = metric_from_spec(case.metric.spec)
    assert again.key == case.metric.key
    np.testing.assert_array_equal(again.score(_images(), _prompts(again)), case.scores)


@_each(BUILTIN)
def test_two_calls_give_equal_scores(case):
    np.testing.assert_array_equal(case.metric.score(_images(), _prompts(case.metric)),
                                  case.scores)


@_each(BUILTIN)
def test_pickle_round_trip(case):
    copy = pickle.loads(pickle.dumps(case.metric))
    assert copy.key == case.metric.key and copy.spec == case.metric.spec
    np.testing.assert_array_equal(copy.score(_images(), _prompts(copy)), case.scores)


WITH_FILES = [n for n in BUILTIN if setup_of(n).rewrite is not None]


@_each(WITH_FILES)
def test_changed_weights_at_the_same_path_change_the_key(case):
    before = case.metric.key
    files = {p: p.read_bytes() for p in case.folder.rglob("*") if p.is_file()}
    case.setup.rewrite(case.folder, case.metric)
    after = metric_from_spec(case.metric.spec)
    assert after.spec == case.metric.spec  # the same options, the same paths
    assert after.key != before
    for path, data in files.items():  # the first bytes again: the key comes back
        path.write_bytes(data)
    assert metric_from_spec(case.metric.spec).key == before


def test_every_metric_that_reads_files_is_checked_with_them():
    """A metric with a weights option but no setup here would be tested without weights."""
    for name in BUILTIN:
        cls = metric_class(name)
        if "checkpoint" in cls.file_options and name not in WITH_FILES:
            pytest.fail(f"{name}: reads a checkpoint but has no rewrite in setup_of()")


TORCH = [n for n in BUILTIN if _is_torch(n)]


@_each(TORCH)
def test_device_and_every_declared_dtype_are_accepted(case):
    metric = case.metric
    options = {k: v for k, v in metric.options.items() if v != metric.defaults[k]}
    for device in ("cpu", "auto", "cuda", "cuda:0"):
        assert create_metric(metric.name, **options, device=device).key == metric.key
    image, prompt = _images()[:1], _prompts(metric)
    for dtype in metric.dtypes:
        low = create_metric(metric.name, **options, device="cpu", dtype=dtype)
        assert (low.key == metric.key) == (dtype == "float32")
        scores = low.score(image, prompt[:1] if prompt else None)
        assert scores.dtype == np.float64 and np.isfinite(scores).all(), dtype
    with pytest.raises(MetricError, match="dtype"):
        create_metric(metric.name, **options, dtype="int8")
