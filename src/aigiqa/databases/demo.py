"""The embedded demo database (``aigiqa demo``): AIGIQA-20K layout plus ``hyperparameters.csv``.

Layout (see ``aigiqa.demo.build_demo``)::

    info_train.csv info_val.csv info_test.csv   name, prompt[, mos]   (MOS 0-5)
    train/ val/ test/                            <Generator>_<NNNN>.png, 256x256
    hyperparameters.csv                          name, steps, cfg   (one row per image)

The demo is synthetic: drawn scenes, simulated generators, simulated raters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from aigiqa.databases.aigiqa20k import SPLITS, read_release_layout
from aigiqa.databases.base import Database, DatabaseInfo
from aigiqa.databases.registry import register_database
from aigiqa.databases.tables import (
    duplicate_problems,
    number_column,
    raise_problems,
    read_table,
    reject_options,
    text_column,
)
from aigiqa.demo_generators import GENERATORS
from aigiqa.errors import DatabaseError

HYPER_FILE = "hyperparameters.csv"

INFO = DatabaseInfo(
    name="demo",
    score_range=(0.0, 5.0),
    target_names=("mos",),
    citation="aigiqa demo database (synthetic), built by `aigiqa demo`.",
    description=(
        "SYNTHETIC demo in the AIGIQA-20K layout: procedurally drawn scenes with prompts, six "
        "simulated generators with blur/noise/banding/colour-cast/over-saturation/JPEG artefacts "
        "and misalignment driven by steps and cfg, MOS (0-5) from 21 simulated raters. Not real "
        "AI-generated images, not real human ratings."
    ),
)


@register_database("demo")
def read_demo(
    root: Path, *, splits: Sequence[str] = SPLITS, follow_symlinks: bool = False, **options
) -> Database:
    """The demo database from ``root``, hyper-parameters (steps: int, cfg: float) attached."""
    reject_options("demo", options)
    root = Path(root)
    db = read_release_layout(root, INFO, GENERATORS, splits=splits,
                             follow_symlinks=follow_symlinks)
    hyper = read_hyperparameters(root / HYPER_FILE)
    problems = []
    records = []
    for rec in db:
        if rec.name not in hyper:
            problems.append(f"{root / HYPER_FILE}: no row for image {rec.name!r} ({rec.source})")
            continue
        records.append(replace(rec, hyper=hyper[rec.name][1]))
    if tuple(splits) == SPLITS:  # with a subset of splits, other names are legitimately extra
        names = {rec.name for rec in db}
        problems += [f"{where}: image {name!r} is in no info file"
                     for name, (where, _) in hyper.items() if name not in names]
    raise_problems(problems, f"demo at {root}")
    return Database(INFO, records, root)


def read_hyperparameters(path: Path) -> dict[str, tuple[str, dict[str, int | float]]]:
    """Read ``hyperparameters.csv``: name → (``file row N``, {"steps": int, "cfg": float}).

    Problems (all reported in one DatabaseError): missing file or columns, empty names,
    duplicates, steps that are not positive integers, cfg that is not a finite number >= 0.
    """
    if not path.is_file():
        raise DatabaseError(f"{path}: hyper-parameter file not found (written by `aigiqa demo`)")
    table = read_table(path, ("name", "steps", "cfg"), header=True)
    problems: list[str] = []
    names = text_column(table, "name", problems)
    steps = number_column(table, "steps", problems, score_range=(1, float("inf")))
    cfg = number_column(table, "cfg", problems, score_range=(0, float("inf")))
    wheres = [table.where(i) for i in range(len(table))]
    for i, value in enumerate(steps):
        if np.isfinite(value) and value != np.round(value):
            problems.append(f"{wheres[i]}: 'steps' = {value:g} is not a whole number")
    problems += duplicate_problems(names, wheres)
    raise_problems(problems, f"{path}")
    return {
        name: (where, {"steps": int(s), "cfg": float(c)})
        for name, where, s, c in zip(names, wheres, steps, cfg, strict=True)
    }
