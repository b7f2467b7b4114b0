"""Trainable classical metrics share one protocol: fit(database, split=SPEC) -> self, the result
on ``fit_result``, the weights option named ``checkpoint`` (``model=`` still accepted), and a
cache key that follows the file's content, not its path."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.errors import MetricError
from aigiqa.metrics.registry import create_metric, metric_from_spec
from synthetic import blur, natural


@pytest.fixture(autouse=True)
def _assets(live_assets):
    """The LIVE NIQE/BRISQUE files."""


def _database(root: Path, n: int = 12) -> Database:
    records = []
    for i in range(n):
        sigma = 0.2 + 3.0 * i / (n - 1)
        path = root / f"img_{i:02d}.png"
        Image.fromarray(blur(natural(200 + i, 128, 128), sigma)).save(path)
        records.append(Record(path.name, path, split="train" if i % 4 else "test",
                              targets={"mos": 5 - sigma}))
    return Database(DatabaseInfo("toy", (0.0, 5.0), ("mos",)), records, root)


@pytest.mark.parametrize("name", ["niqe", "brisque"])
def test_fit_takes_a_database_and_a_split_spec_and_returns_self(name, tmp_path):
    db = _database(tmp_path)
    metric = create_metric(name)
    assert metric.fit_result is None
    assert metric.fit(db, split="official") is metric
    assert metric.fit_result["split"] == "official" and metric.fit_result["images"] == 9
    assert metric.options["checkpoint"].startswith("fitted:")
    other = create_metric(name).fit(db, split="ratio:0.5,0.5", seed=3)
    assert other.fit_result["split"] == "ratio:0.5,0.5" and other.fit_result["images"] == 6
    assert other.key != metric.key


def test_a_split_name_where_a_spec_belongs_still_works_with_a_warning(tmp_path):
    db = _database(tmp_path)
    with pytest.warns(DeprecationWarning, match="split='official'"):
        old = create_metric("brisque").fit(db, "train")
    new = create_metric("brisque").fit(db, split="official")
    assert old.key == new.key  # the same training images, the same model


def test_niqe_fit_on_a_list_of_images_is_deprecated_but_works():
    images = [natural(40, 192, 192)]
    with pytest.warns(DeprecationWarning, match="fit_images"):
        old = create_metric("niqe").fit(images, sharpness_threshold=0.0)
    assert old.key == create_metric("niqe").fit_images(images, sharpness_threshold=0.0).key


@pytest.mark.parametrize("name", ["niqe", "brisque"])
def test_the_old_option_name_model_is_accepted_with_a_warning(name, tmp_path):
    db = _database(tmp_path)
    saved = create_metric(name).fit(db, split="official").save(tmp_path / f"{name}.model")
    with pytest.warns(DeprecationWarning, match=f"{name}'.*model= is deprecated; use checkpoint="):
        old = create_metric(name, model=str(saved))
    new = create_metric(name, checkpoint=str(saved))
    assert old.key == new.key and old.spec == new.spec
    with pytest.warns(DeprecationWarning):
        from_spec = metric_from_spec(f"{name}:model={saved}")
    assert from_spec.key == new.key
    with pytest.raises(MetricError, match="give checkpoint= only"):
        create_metric(name, model=str(saved), checkpoint=str(saved))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current name warns about nothing
        assert create_metric(name, checkpoint="live").key == create_metric(name).key


@pytest.mark.parametrize("name", ["niqe", "brisque"])
def test_the_cache_key_follows_the_file_not_its_path(name, tmp_path):
    db = _database(tmp_path)
    a = create_metric(name).fit(db, split="official")
    b = create_metric(name).fit(db, split="ratio:0.5,0.5", seed=1)
    path = a.save(tmp_path / f"{name}.model")
    key_a = create_metric(name, checkpoint=str(path)).key
    moved = tmp_path / "elsewhere" / path.name
    moved.parent.mkdir()
    shutil.copyfile(path, moved)
    assert create_metric(name, checkpoint=str(moved)).key == key_a  # same weights elsewhere
    assert b.save(path) == path  # other weights at the same path
    new = create_metric(name, checkpoint=str(path))
    assert new.key != key_a
    images = [natural(300, 128, 128)]
    assert np.isfinite(new.score(images)[0])


@pytest.mark.parametrize("name", ["niqe", "brisque"])
def test_save_writes_the_path_it_returns(name, tmp_path):
    metric = create_metric(name).fit(_database(tmp_path), split="official")
    path = metric.save(tmp_path / "model")  # no suffix: none is added
    assert path == tmp_path / "model" and path.is_file()
    assert create_metric(name, checkpoint=str(path)).key != create_metric(name).key
