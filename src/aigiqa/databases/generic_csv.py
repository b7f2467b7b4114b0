"""A database from any csv/xlsx annotation table, the columns mapped by options.

Example::

    load_database("csv", "my_study", file="scores.csv", name_column="image",
                  prompt_column="text", target_columns={"mos": "MOS", "alignment": "align"},
                  split_column="set", generator_column="model", score_range=(1, 5))

The first target is the main one. Images are at ``image_dir/<name>`` (default: the folder);
names must stay inside that folder (no absolute names, no ``..``, no symbolic links pointing out
unless ``follow_symlinks=True``). A file without a header row needs ``columns=[...]``, its column
names in order. From the command line: ``--option file=scores.csv --option name_column=image
--option target_columns=mos=MOS,alignment=align --option score_range=1,5``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from aigiqa.databases.base import Database, DatabaseInfo, Record
from aigiqa.databases.paths import ImageRoot
from aigiqa.databases.registry import register_database
from aigiqa.databases.tables import (
    duplicate_problems,
    number_column,
    raise_problems,
    read_table,
    reject_options,
    text_column,
)
from aigiqa.errors import DatabaseError


def _targets(target_columns: str | Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(target_columns, str):
        return {target_columns: target_columns}
    if isinstance(target_columns, Mapping):
        return {str(k): str(v) for k, v in target_columns.items()}
    return {str(c): str(c) for c in target_columns}


def _score_range(score_range: object) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in score_range)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise DatabaseError(
            f"csv: option score_range must be (low, high), got {score_range!r}"
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise DatabaseError(f"csv: option score_range must have low < high, got {score_range!r}")
    return lo, hi


@register_database("csv")
def read_csv_database(
    root: Path,
    *,
    file: str | Path | None = None,
    name_column: str = "name",
    prompt_column: str | None = None,
    target_columns: str | Sequence[str] | Mapping[str, str] = "mos",
    split_column: str | None = None,
    generator_column: str | None = None,
    hyper_columns: Sequence[str] = (),
    score_range: tuple[float, float] | None = None,
    image_dir: str | Path | None = None,
    columns: Sequence[str] | None = None,
    sheet: int | str | None = None,
    name: str = "csv",
    citation: str = "",
    follow_symlinks: bool = False,
    **options,
) -> Database:
    """Read ``root/file`` (csv or xlsx) with the given column mapping; see module docstring.

    ``target_columns``: one column, a list (targets named like the columns) or a mapping
    target name → column. An empty target cell makes the record blind; non-numeric and
    out-of-``score_range`` values are problems. ``score_range`` is required. ``sheet``: the
    workbook's sheet to read (index or name; default the first).
    """
    reject_options("csv", options)
    if file is None:
        raise DatabaseError("csv: option file= (the annotation table, csv or xlsx) is required")
    if score_range is None:
        raise DatabaseError("csv: option score_range=(low, high) is required (the MOS scale)")
    root = Path(root)
    path = Path(file) if Path(file).is_absolute() else root / file
    if not path.is_file():
        raise DatabaseError(f"{path}: annotation file not found (option file=)")
    targets = _targets(target_columns)
    if not targets:
        raise DatabaseError("csv: option target_columns names no column")
    info = DatabaseInfo(name=name, score_range=_score_range(score_range),
                        target_names=tuple(targets), citation=citation)
    mapped = [name_column, prompt_column, *targets.values(), split_column, generator_column,
              *hyper_columns]
    wanted = [c for c in mapped if c is not None]
    table = read_table(path, list(columns) if columns else wanted, required=wanted,
                       header=False if columns else True, sheet=sheet)
    problems: list[str] = []
    names = text_column(table, name_column, problems)
    prompts = (text_column(table, prompt_column, problems) if prompt_column
               else [None] * len(table))
    splits = (text_column(table, split_column, problems) if split_column
              else ["all"] * len(table))
    generators = (text_column(table, generator_column, problems, required=False)
                  if generator_column else [None] * len(table))
    hyper = {c: text_column(table, c, problems, required=False) for c in hyper_columns}
    scores = {t: number_column(table, c, problems, score_range=info.score_range, required=False)
              for t, c in targets.items()}
    folder = root if image_dir is None else (
        Path(image_dir) if Path(image_dir).is_absolute() else root / image_dir)
    inside = ImageRoot(folder, follow_symlinks=follow_symlinks)
    records = []
    for i, image in enumerate(names):
        if image is None:
            continue
        image_path = inside.path(folder, image, table.where(i), problems)
        if image_path is None:
            continue
        records.append(Record(
            name=image,
            path=image_path,
            prompt=prompts[i],
            generator=generators[i],
            split=splits[i] or "all",
            targets={t: float(v[i]) for t, v in scores.items() if np.isfinite(v[i])},
            hyper={c: v[i] for c, v in hyper.items() if v[i] is not None},
            source=table.where(i),
        ))
    problems += duplicate_problems(names, [table.where(i) for i in range(len(table))])
    raise_problems(problems, f"{name} at {path}")
    return Database(info, records, root)
