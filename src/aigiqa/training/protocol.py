"""What a training run trains, validates and tests on, what its model may read, and what the
results say about both (the protocol and the name-blind mode).

Name-blind (the default): the model of a run reads the pixels and the prompt of each image,
nothing else; a record's file name and generator id never reach it (dataset items carry the
prompt only, metrics score decoded pixels, never paths). A metric that reads them
(``reads_names = True``, e.g. one that prefixes the generator to the prompt as the NTIRE 2024
winner did) is refused unless the run passes ``allow_names=True`` (``aigiqa train
--allow-names``); then each image's text is ``metric.model_text(prompt, name, generator)``.
Prompts are passed as the database has them: a database whose prompt column holds generator
names is not cleaned.

``cross:DB[:TARGET]``: train on the training database (validation: ``val_fraction`` of its
labelled images held out, stratified by generator), test on every image of DB labelled in TARGET;
the results state the mapping between the two targets (:func:`describe`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aigiqa.databases.base import Database, Record
from aigiqa.errors import MetricError, SplitError
from aigiqa.protocols import cross_test, parse_cross
from aigiqa.splits import resolve_split
from aigiqa.training.data import VAL_NAMES, training_parts

if TYPE_CHECKING:  # pragma: no cover
    from aigiqa.metrics.learned.base import LearnedMetric
    from aigiqa.training.loop import TrainConfig

__all__ = ["RunData", "check_names", "describe", "model_texts", "run_data"]


@dataclass
class RunData:
    """The records and targets of each part (train, val, test) and what the results state."""

    records: dict[str, list[Record]]
    truth: dict[str, np.ndarray]
    target: str
    test_database: Database
    test_target: str
    protocol: dict[str, Any]


def check_names(metric: LearnedMetric, allow_names: bool) -> None:
    """MetricError when ``metric`` reads file names or generator ids and they are not allowed."""
    if getattr(metric, "reads_names", False) and not allow_names:
        raise MetricError(f"metric {metric.name!r} reads file names or generator ids; training "
                          "is name-blind unless you allow them (aigiqa train --allow-names, "
                          "TrainConfig(allow_names=True))")


def model_texts(metric: LearnedMetric, records: Sequence[Record], allow_names: bool) -> list[str]:
    """The text the model reads for each record: its prompt ("" if none) when name-blind, else
    ``metric.model_text(prompt, name, generator)``."""
    if not allow_names:
        return [rec.prompt or "" for rec in records]
    return [metric.model_text(rec.prompt or "", rec.name, rec.generator or "")
            for rec in records]


def run_data(metric: LearnedMetric, database: Database, config: TrainConfig,
             test_database: Database | None = None) -> RunData:
    """The parts of ``config.split`` (a ``cross:DB`` split tests on ``test_database``)."""
    check_names(metric, config.allow_names)
    parts = training_parts(database, config.split, config.seed, config.val_fraction)
    target = config.target or database.info.main_target
    records = {k: [database.record(n) for n in v] for k, v in parts.items()}
    test_db, test_target = database, target
    if parse_cross(config.split) is not None:
        if test_database is None:
            raise SplitError(f"split {config.split!r} tests on another database: give it "
                             "(aigiqa train --test-root PATH; train(..., test_database=DB))")
        names, test_target = cross_test(config.split, test_database)
        records["test"] = [test_database.record(n) for n in names]
        test_db = test_database
    elif test_database is not None:
        raise SplitError(f"a test database is for cross:DB splits; split {config.split!r} "
                         f"tests on {database.name}")
    truth = {k: targets(recs, test_target if k == "test" else target,
                        test_db.name if k == "test" else database.name)
             for k, recs in records.items()}
    protocol = describe(database, config, target, test_db, test_target,
                        {k: len(v) for k, v in records.items()})
    return RunData(records, truth, target, test_db, test_target, protocol)


def targets(records: list[Record], target: str, db_name: str) -> np.ndarray:
    """The ``target`` values of ``records``; MetricError naming the images without one."""
    missing = [r.name for r in records if target not in r.targets]
    if missing:
        raise MetricError(f"{db_name}: target {target!r} missing for {len(missing)} image(s)",
                          missing[:20])
    return np.array([r.targets[target] for r in records], dtype=np.float64)


def _range(db: Database) -> str:
    low, high = db.info.score_range
    return f"{low:g}\u2013{high:g}"


def describe(database: Database, config: TrainConfig, target: str, test_db: Database,
             test_target: str, sizes: dict[str, int]) -> dict[str, Any]:
    """What ``result.json`` says about the protocol: split, kind, name-blind mode, the database,
    target and size of each part, where validation comes from and the target mapping."""
    own_val = any(resolve_split(database, config.split, seed=config.seed).get(k)
                  for k in VAL_NAMES)
    held_out = ("the split's own validation part" if own_val else
                f"{config.val_fraction:g} of the training part held out, stratified by "
                f"generator (seed {config.seed})")
    same = test_db is database and test_target == target
    mapping = (f"none: the test target is the training target ({database.name} {target})"
               if same else
               f"predictions are in {database.name} {target} units (range {_range(database)});"
               f" tested against {test_db.name} {test_target} (range {_range(test_db)}). SRCC "
               "and KRCC are rank statistics (free of scale); PLCC is computed after the VQEG "
               "4-parameter logistic map fitted on the test predictions against the test "
               "target (plcc_raw: without it); RMSE is in test-target units after that map")
    kind = config.split.strip().split(":", 1)[0].lower()
    return {
        "split": config.split, "kind": kind, "name_blind": not config.allow_names,
        "train": {"database": database.name, "root": str(database.root), "target": target,
                  "images": sizes["train"]},
        "val": {"database": database.name, "target": target, "images": sizes["val"],
                "from": held_out},
        "test": {"database": test_db.name, "root": str(test_db.root), "target": test_target,
                 "images": sizes["test"]},
        "target_mapping": mapping,
    }
