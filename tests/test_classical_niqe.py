"""NIQE (LIVE release): features, scoring, defined edge cases, fit/save/load."""

from __future__ import annotations

import numpy as np
import pytest

import synthetic
from aigiqa.errors import AssetError, MetricError
from aigiqa.metrics.classical import niqe as niqe_mod
from aigiqa.metrics.registry import create_metric, list_metrics


@pytest.fixture(autouse=True)
def _assets(live_assets):
    """Every test here reads the LIVE parameter files from ../shared/assets."""


def natural(seed: int, h: int = 192, w: int = 256) -> np.ndarray:
    return synthetic.natural(seed, h, w)


blur = synthetic.blur


def test_registered_with_metadata():
    assert "niqe" in list_metrics()
    m = create_metric("niqe")
    assert isinstance(m, niqe_mod.Niqe)
    assert m.kind == "classical" and m.lower_better and not m.needs_prompt


def test_features_shape_and_block_count():
    feats, sharp = niqe_mod.niqe_features(natural(0, 200, 300))
    assert feats.shape == (2 * 3, 36)  # floor(200/96) x floor(300/96) blocks
    assert sharp.shape == (6,) and np.all(sharp > 0)
    assert np.isfinite(feats).all()
    alphas = feats[:, [0, 2, 6, 10, 14, 18, 20, 24, 28, 32]]
    assert np.all((alphas >= 0.2) & (alphas <= 10))


def test_pristine_model_loads_from_assets():
    mu, cov = niqe_mod.load_model("live")
    assert mu.shape == (36,) and cov.shape == (36, 36)
    np.testing.assert_allclose(cov, cov.T)


def test_score_grows_with_blur_and_noise():
    img = natural(1)
    noisy = np.clip(img + np.random.default_rng(2).normal(0, 25, img.shape), 0, 255)
    scores = create_metric("niqe").score([img, blur(img, 2.0), noisy.round().astype(np.uint8)])
    assert scores.dtype == np.float64 and np.isfinite(scores).all()
    assert scores[0] < scores[1] and scores[0] < scores[2]


def test_pixels_beyond_the_last_whole_block_do_not_count():
    img = natural(3, 192, 288)
    wider = np.concatenate([img, natural(4, 192, 60)], axis=1)  # 348 → still 3 blocks wide
    m = create_metric("niqe")
    assert m.score([wider])[0] == m.score([img])[0]


def test_too_small_image_names_minimum_size():
    with pytest.raises(MetricError, match="96x96"):
        create_metric("niqe").score([natural(5, 95, 200)])


def test_flat_image_is_nan_and_partly_flat_image_is_finite():
    m = create_metric("niqe")
    flat = np.full((192, 192, 3), 128, np.uint8)
    part = natural(6, 192, 192)
    part[:, :96] = 200
    scores = m.score([flat, part])
    assert np.isnan(scores[0]) and np.isfinite(scores[1])


def test_single_block_image_scores():
    assert np.isfinite(create_metric("niqe").score([natural(7, 96, 96)])[0])


def test_block_size_option_is_validated():
    with pytest.raises(MetricError, match="block_size"):
        create_metric("niqe", block_size=95)
    assert create_metric("niqe", block_size="48").options["block_size"] == 48


def test_nan_mean_cov_follow_matlab_nanmean_and_nancov():
    feats = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0], [7.0, 10.0]])
    mean, cov = niqe_mod.nan_mean_cov(feats)
    np.testing.assert_allclose(mean, [4.0, 6.0])  # column-wise, NaN skipped
    np.testing.assert_allclose(cov, np.cov(feats[[0, 2, 3]], rowvar=False))  # complete rows


def test_distance_is_zero_for_the_model_mean_and_uses_pooled_covariance():
    rng = np.random.default_rng(8)
    feats = rng.normal(size=(50, 36))
    mu, cov = feats.mean(axis=0), np.cov(feats, rowvar=False)
    assert niqe_mod.niqe_distance(feats, mu, cov) == pytest.approx(0.0, abs=1e-9)
    shifted = mu + 1.0
    d = shifted - mu
    expected = np.sqrt(d @ np.linalg.inv(cov) @ d)
    assert niqe_mod.niqe_distance(feats, shifted, cov) == pytest.approx(expected, rel=1e-8)


def test_fit_uses_sharp_blocks_and_round_trips(tmp_path):
    images = [natural(s, 192, 288) for s in range(10, 13)]
    for img in images:  # a blurred left half: its blocks are not sharp enough to keep
        img[:, :144] = blur(img, 3.0)[:, :144]
    m = create_metric("niqe").fit_images(images, sharpness_threshold=0.75)
    mu, cov = m.params
    kept = []
    for img in images:
        feats, sharp = niqe_mod.niqe_features(img)
        kept.append(feats[sharp > 0.75 * sharp.max()])
    kept = np.concatenate(kept)
    assert 3 <= len(kept) < 18
    np.testing.assert_allclose(mu, kept.mean(axis=0))
    np.testing.assert_allclose(cov, np.cov(kept, rowvar=False))
    path = m.save(tmp_path / "model.mat")
    again = niqe_mod.Niqe.load(path)
    probe = [natural(20), blur(natural(20), 1.5)]
    np.testing.assert_allclose(again.score(probe), m.score(probe), rtol=1e-12)
    assert not np.allclose(m.score(probe), create_metric("niqe").score(probe))


def test_fit_reads_paths(tmp_path):
    from PIL import Image

    paths = []
    for s in range(2):
        p = tmp_path / f"{s}.png"
        Image.fromarray(natural(30 + s)).save(p)
        paths.append(p)
    m = create_metric("niqe").fit_images(paths, sharpness_threshold=0.0)
    feats = np.concatenate([niqe_mod.niqe_features(natural(30 + s))[0] for s in range(2)])
    np.testing.assert_allclose(m.params[0], feats.mean(axis=0))


def test_bad_model_files(tmp_path):
    with pytest.raises(AssetError, match="does not exist"):
        create_metric("niqe", checkpoint=str(tmp_path / "none.mat")).score([natural(0)])
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"junk")
    # the metric's own file is at fault, not the image: an AssetError, which ends a run
    with pytest.raises(AssetError, match="not a NIQE model"):
        create_metric("niqe", checkpoint=str(junk)).score([natural(0)])
    from scipy.io import savemat

    savemat(tmp_path / "small.mat", {"mu_prisparam": np.zeros((1, 5)),
                                     "cov_prisparam": np.eye(5)})
    with pytest.raises(AssetError, match=r"36x36.*\(5,\)"):
        create_metric("niqe", checkpoint=str(tmp_path / "small.mat")).score([natural(0)])


def test_fitted_model_changes_the_cache_key():
    m = create_metric("niqe")
    live_key = m.key
    m.fit_images([natural(40, 192, 192)], sharpness_threshold=0.0)
    assert m.key != live_key and m.spec.startswith("niqe:checkpoint=fitted:")
    assert np.isfinite(m.score([natural(41)])[0])  # the fitted model stays in use
    with pytest.raises(AssetError, match="save"):
        create_metric("niqe", checkpoint=m.options["checkpoint"]).score([natural(41)])


def test_matlab_niqemodel_field_names_are_accepted(tmp_path):
    from scipy.io import savemat

    mu, cov = niqe_mod.load_model("live")
    savemat(tmp_path / "toolbox.mat", {"Mean": mu[None, :], "Covariance": cov})
    img = [natural(42)]
    a = create_metric("niqe", checkpoint=str(tmp_path / "toolbox.mat")).score(img)
    np.testing.assert_array_equal(a, create_metric("niqe").score(img))
