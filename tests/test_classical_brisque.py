"""BRISQUE (LIVE release): libsvm model parsing and prediction, features, edge cases, refit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

import synthetic
from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.errors import AssetError, MetricError
from aigiqa.metrics.classical import brisque as brisque_mod
from aigiqa.metrics.registry import create_metric


@pytest.fixture(autouse=True)
def _assets(live_assets):
    """Every test here reads the LIVE parameter files from ../shared/assets."""


def natural(seed: int, h: int = 160, w: int = 192) -> np.ndarray:
    return synthetic.natural(seed, h, w)


blur = synthetic.blur


def test_live_model_parses(shared: Path):
    model = brisque_mod.load_model("live")
    assert model.support.shape == (774, 36)
    assert model.gamma == 0.05 and model.rho == -153.591
    assert np.abs(model.coef).max() == 1024.0  # libsvm -c 1024: bounded dual coefficients
    assert (model.feature_min[0], model.feature_max[0]) == (0.338, 10.0)
    assert (model.lower, model.upper) == (-1.0, 1.0) and model.from_text
    first = (shared / "assets/brisque/allmodel").read_text().splitlines()[8].split()
    assert float(first[0]) == model.coef[0] and float(first[1].split(":")[1]) == model.support[0, 0]


def test_hand_made_libsvm_model_predicts_rbf_sum(tmp_path):
    (tmp_path / "m").write_text(
        "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.5\nnr_class 2\ntotal_sv 2\nrho 0.25\n"
        "SV\n2 1:0.5 2:-0.5 \n-1 2:1 \n"
    )
    (tmp_path / "r").write_text("x\n-1 1\n1 0 10\n2 -2 2\n")
    model = brisque_mod.read_libsvm_model(tmp_path / "m", tmp_path / "r")
    x = np.array([[0.0, 0.5]])
    d1, d2 = 0.5**2 + 1.0**2, 0.0**2 + 0.5**2  # to (0.5, -0.5) and (0, 1)
    expected = 2 * np.exp(-0.5 * d1) - 1 * np.exp(-0.5 * d2) - 0.25
    assert model.predict(x)[0] == pytest.approx(expected, rel=1e-14)


def test_svm_scale_semantics_and_text_rounding(tmp_path):
    model = brisque_mod.SvrModel(
        np.zeros((1, 3)), np.zeros(1), 0.0, 1.0, np.array([0.0, 1.0, 5.0]),
        np.array([10.0, 3.0, 5.0]),
    )
    out = model.scale(np.array([[10.0, 2.0, 7.0], [0.0, 1.0, 5.0]]))
    np.testing.assert_array_equal(out, [[1.0, 0.0, 0.0], [-1.0, -1.0, 0.0]])
    # %f keeps 6 decimals of a feature, %g 6 significant digits of a scaled value
    rounded = model.scale(np.array([[1.23456789, 1.0000004, 5.0]]), text_rounding=True)
    assert rounded[0, 0] == float(f"{-1 + 2 * 0.123457:g}")
    assert rounded[0, 1] == -1.0  # 1.0000004 prints as 1.000000 == min


def test_features_are_36_finite_values():
    feats = brisque_mod.brisque_features(natural(0))
    assert feats.shape == (36,) and np.isfinite(feats).all()
    assert np.all(feats[[0, 18]] >= 0.2) and np.all(feats[[1, 19]] > 0)


def test_features_zero_padding_and_circular_shifts_differ_from_replicate():
    # a bright frame: zero padding (filter2 'same') sees a step at the border, replicate would not
    img = np.full((64, 64), 200, np.uint8)
    img[16:48, 16:48] = natural(1, 32, 32)[..., 0]
    feats = brisque_mod.brisque_features(np.dstack([img] * 3))
    assert np.isfinite(feats).all()
    assert feats[1] > 0.05  # border step raises the MSCN variance above the flat frame's 0


def test_score_grows_with_blur():
    img = natural(2)
    scores = create_metric("brisque").score([img, blur(img, 1.5), blur(img, 3.0)])
    assert np.isfinite(scores).all() and scores[0] < scores[1] < scores[2]


def test_text_rounding_changes_little():
    img = [natural(3)]
    exact = create_metric("brisque", text_rounding=False).score(img)[0]
    release = create_metric("brisque").score(img)[0]
    assert exact != release and abs(exact - release) < 0.05


def test_flat_image_is_nan_and_small_image_is_an_error():
    m = create_metric("brisque")
    assert np.isnan(m.score([np.full((64, 64, 3), 90, np.uint8)])[0])
    with pytest.raises(MetricError, match="14x14"):
        m.score([natural(4, 13, 40)])
    assert m.score([]).shape == (0,)


def _database(tmp_path: Path, n: int = 12) -> Database:
    records = []
    for i in range(n):
        sigma = 0.2 + 3.0 * i / (n - 1)
        path = tmp_path / f"img_{i:02d}.png"
        Image.fromarray(blur(natural(100 + i), sigma)).save(path)
        split = "train" if i % 4 else "test"
        records.append(Record(f"img_{i:02d}.png", path, split=split, targets={"mos": 5 - sigma}))
    return Database(DatabaseInfo("toy", (0.0, 5.0), ("mos",)), records, tmp_path)


def test_fit_on_training_split_saves_and_loads(tmp_path):
    db = _database(tmp_path)
    m = create_metric("brisque")
    live_key = m.key
    m.fit(db, split="official")
    assert m.lower_better is False  # predicts MOS now
    assert m.key != live_key and m.options["checkpoint"].startswith("fitted:")
    train = [r for r in db if r.split == "train"]
    from aigiqa.images import load_image

    images = [load_image(r.path) for r in train]
    pred = m.score(images)
    rho = stats.spearmanr(pred, [r.targets["mos"] for r in train]).statistic
    assert rho > 0.9
    path = m.save(tmp_path / "brisque_toy.npz")
    again = brisque_mod.Brisque.load(path)
    np.testing.assert_allclose(again.score(images), pred, rtol=1e-12)
    assert again.lower_better is False


def test_fit_needs_labelled_records(tmp_path):
    from aigiqa.errors import SplitError

    db = _database(tmp_path, n=4)
    with pytest.raises(SplitError, match="unknown split 'val'"):
        create_metric("brisque").fit(db, split="val")  # not a spec, and no split of that name
    with pytest.raises(MetricError, match="at least 2 labelled records in the train part"):
        create_metric("brisque").fit(db.subset([r.name for r in db][:2]),
                                     split="official")


def test_bad_saved_model(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"junk")
    with pytest.raises(AssetError, match="not a saved BRISQUE model"):  # ends a run
        create_metric("brisque", checkpoint=str(junk)).score([natural(0)])
    for name, blob in (("array.npy", None), ("zip.npz", b"PK\x03\x04broken")):
        path = tmp_path / name
        if blob is None:
            np.save(path, np.zeros(3))  # a .npy, not an .npz archive
        else:
            path.write_bytes(blob)
        with pytest.raises(AssetError, match="not a saved BRISQUE model"):
            create_metric("brisque", checkpoint=str(path)).score([natural(0)])
    shaped = tmp_path / "shaped.npz"
    np.savez(shaped, support=np.zeros((2, 5)), coef=np.zeros(2), rho=0.0, gamma=0.1,
             feature_min=np.zeros(5), feature_max=np.ones(5), lower=-1.0, upper=1.0,
             higher_better=False)
    with pytest.raises(AssetError, match=r"support \(n, 36\)"):
        create_metric("brisque", checkpoint=str(shaped)).score([natural(0)])


def test_bad_libsvm_files_are_asset_errors(tmp_path):
    model, ranges = tmp_path / "allmodel", tmp_path / "allrange"
    model.write_text("svm_type epsilon_svr\nkernel_type rbf\ngamma 0.05\nrho 1\nSV\n1 1:x\n")
    ranges.write_text("x\n-1 1\n1 0 1\n")
    with pytest.raises(AssetError, match="cannot read libsvm model"):
        brisque_mod.read_libsvm_model(model, ranges)
