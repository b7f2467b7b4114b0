"""Splits: official, seeded k-fold and ratio splits stratified by generator, CLI specs."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.errors import AigiqaError, SplitError
from aigiqa.splits import kfold_splits, official_split, ratio_split, resolve_split

INFO = DatabaseInfo(name="toy", score_range=(0.0, 5.0), target_names=("mos",))
SIZES = {"Alpha": 53, "Beta": 24, "Gamma": 7, "Delta": 2, "Epsilon": 1}


def _records() -> list[Record]:
    recs = []
    rng = random.Random(0)
    for generator, size in SIZES.items():
        for i in range(size):
            split = "train" if i % 5 else "val"
            recs.append(Record(name=f"{generator}_{i:04d}.png", path=Path(f"{generator}_{i}.png"),
                               generator=generator, split=split,
                               targets={"mos": rng.uniform(0, 5)}))
        for i in range(3):  # blind: no MOS
            recs.append(Record(name=f"{generator}_blind_{i}.png", path=Path("b.png"),
                               generator=generator, split="test"))
    return recs


@pytest.fixture
def db() -> Database:
    return Database(INFO, _records(), root="toy")


def _labelled(db: Database) -> list[str]:
    return [r.name for r in db.labelled()]


def _generator(name: str) -> str:
    return name.split("_")[0]


def test_official_split_drops_blind_records(db):
    split = official_split(db)
    assert list(split) == ["val", "train"]  # order of first appearance; blind "test" absent
    assert sorted(split["train"] + split["val"]) == sorted(_labelled(db))
    assert not any("blind" in name for names in split.values() for name in names)


def test_kfold_partitions_the_labelled_images(db):
    folds = kfold_splits(db, k=5, seed=0)
    labelled = _labelled(db)
    assert len(folds) == 5
    tests = [name for fold in folds for name in fold["test"]]
    assert sorted(tests) == sorted(labelled)  # each labelled image in exactly one test fold
    for fold in folds:
        assert not set(fold["train"]) & set(fold["test"])
        assert sorted(fold["train"] + fold["test"]) == sorted(labelled)
        assert fold["test"] == [n for n in labelled if n in set(fold["test"])]  # db order
    sizes = [len(fold["test"]) for fold in folds]
    assert max(sizes) - min(sizes) <= 1


def test_kfold_is_stratified_by_generator(db):
    folds = kfold_splits(db, k=5, seed=3)
    for generator, size in SIZES.items():
        per_fold = [sum(_generator(n) == generator for n in fold["test"]) for fold in folds]
        assert sum(per_fold) == size
        assert max(per_fold) - min(per_fold) <= 1  # as even as possible
    # the generator with a single image is in exactly one test fold and every other train part
    holders = [i for i, fold in enumerate(folds) if "Epsilon_0000.png" in fold["test"]]
    assert len(holders) == 1
    assert all("Epsilon_0000.png" in fold["train"] for i, fold in enumerate(folds)
               if i != holders[0])


def test_kfold_is_deterministic_and_independent_of_record_order(db):
    assert kfold_splits(db, 5, seed=1) == kfold_splits(db, 5, seed=1)
    assert kfold_splits(db, 5, seed=1) != kfold_splits(db, 5, seed=2)
    shuffled = _records()
    random.Random(5).shuffle(shuffled)
    other = Database(INFO, shuffled, root="toy")
    as_sets = [{k: set(v) for k, v in f.items()} for f in kfold_splits(db, 5, seed=1)]
    assert [{k: set(v) for k, v in f.items()} for f in kfold_splits(other, 5, seed=1)] == as_sets


def test_kfold_errors(db):
    with pytest.raises(SplitError, match=">= 2"):
        kfold_splits(db, k=1)
    tiny = Database(INFO, _records()[:3], root="tiny")
    with pytest.raises(SplitError, match="at least 5 labelled"):
        kfold_splits(tiny, k=5)


def test_ratio_split_proportions_and_stratification(db):
    ratios = {"train": 0.7, "val": 0.1, "test": 0.2}
    split = ratio_split(db, ratios, seed=0)
    labelled = _labelled(db)
    assert list(split) == list(ratios)
    assert sorted(sum(split.values(), [])) == sorted(labelled)
    for name, share in ratios.items():
        assert abs(len(split[name]) - share * len(labelled)) <= 1
        for generator, size in SIZES.items():
            if size >= 20:
                count = sum(_generator(n) == generator for n in split[name])
                assert abs(count - share * size) <= 2, (name, generator, count)
    assert not any("blind" in n for names in split.values() for n in names)
    assert ratio_split(db, ratios, seed=0) == split
    assert ratio_split(db, ratios, seed=1) != split
    assert ratio_split(db) == split  # default ratios are 70/10/20


@pytest.mark.parametrize(
    ("ratios", "words"),
    [({"train": 0.7, "test": 0.2}, "sum to 1"), ({"train": 1.2, "test": -0.2}, "positive"),
     ({}, "no split ratios"), ({"train": float("nan"), "test": 1.0}, "positive")],
)
def test_ratio_split_errors(db, ratios, words):
    with pytest.raises(SplitError, match=words):
        ratio_split(db, ratios)


def test_resolve_split_specs(db):
    assert resolve_split(db, "official") == official_split(db)
    assert resolve_split(db, "fold:2") == kfold_splits(db, 5)[2]
    assert resolve_split(db, "fold:1/3", seed=4) == kfold_splits(db, 3, seed=4)[1]
    assert resolve_split(db, "ratio:0.7,0.1,0.2") == ratio_split(db)
    two = resolve_split(db, "ratio:0.8,0.2", seed=2)
    assert list(two) == ["train", "test"]
    assert two == ratio_split(db, {"train": 0.8, "test": 0.2}, seed=2)


@pytest.mark.parametrize("spec", ["fold:5", "fold:0/1", "fold:x", "ratio:a,b",
                                  "ratio:0.5,0.2,0.2,0.1", "ratio:0.5,0.2", "random", ""])
def test_resolve_split_rejects_bad_specs(db, spec):
    with pytest.raises(SplitError) as info:
        resolve_split(db, spec)
    assert isinstance(info.value, AigiqaError)


def test_aigiqa20k_release_splits(shared):
    """The real release: val/test are blind, 5 folds over the 14,000 train images."""
    from aigiqa.databases.registry import load_database

    db = load_database("aigiqa20k", shared / "reference" / "aigiqa20k", check_images=False)
    official = official_split(db)
    assert list(official) == ["train"] and len(official["train"]) == 14000
    folds = kfold_splits(db, 5, seed=0)
    assert sorted(len(f["test"]) for f in folds) == [2800] * 5
    generators = {r.name: r.generator for r in db.labelled()}
    totals = Counter(generators.values())
    assert len(totals) == 15
    for fold in folds:
        counts = Counter(generators[n] for n in fold["test"])
        assert all(abs(counts[g] - totals[g] / 5) <= 1 for g in totals)
