"""Attach a study's MOS to a database in the AIGIQA-20K release layout (e.g. one made by
``aigiqa generate run``): the ``mos`` column of ``info_train/val/test.csv``.

The MOS file is what ``aigiqa study export`` (``mos.csv``) and ``aigiqa mos`` write: a name
column ``image`` (or ``name``) and a ``mos`` column (other columns, e.g. std, ci95, n, are left
in that file). Every fault is reported at once, naming the file and row, and nothing is
written then: a name that is not in the database, a name twice, a MOS that is empty, not a
number or outside the score range, and (unless ``replace``) a MOS that would change one the
info file has already. Images the file has no MOS for keep their cell (blank: not rated; they
are counted). The info files are rewritten atomically, their other columns and order kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from aigiqa.errors import DatabaseError
from aigiqa.files import write_text

__all__ = ["AttachResult", "attach_mos"]

SPLITS = ("train", "val", "test")
NAME_COLUMNS = ("image", "name")


@dataclass
class AttachResult:
    """MOS written now, images left without MOS, per split: (with MOS, without MOS)."""

    attached: int = 0
    without: int = 0
    splits: dict[str, tuple[int, int]] = field(default_factory=dict)


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DatabaseError(f"{path}: cannot read {what} ({exc})") from None


def _info_files(root: Path) -> dict[str, tuple[Path, pd.DataFrame]]:
    files = {}
    for split in SPLITS:
        path = root / f"info_{split}.csv"
        if not path.is_file():
            other = [p.name for p in root.glob(f"info_{split}.*")]
            hint = f" ({', '.join(other)} is there: save it as csv)" if other else ""
            raise DatabaseError(f"{path}: not found{hint}; is {root} a database in the release "
                                "layout (aigiqa generate run writes one)?")
        table = _read_csv(path, "the info file")
        if "name" not in table.columns:
            raise DatabaseError(f"{path}: no 'name' column in its header (columns: "
                                f"{', '.join(table.columns)})")
        if "mos" not in table.columns:
            table["mos"] = ""
        files[split] = (path, table)
    return files


def attach_mos(root: str | Path, mos_file: str | Path, *,
               score_range: tuple[float, float] = (0.0, 5.0),
               replace: bool = False) -> AttachResult:
    """Write the MOS of ``mos_file`` into ``root``'s info files (see the module docstring)."""
    root, mos_file = Path(root), Path(mos_file)
    if not mos_file.is_file():
        raise DatabaseError(f"{mos_file}: MOS file not found (aigiqa study export writes "
                            "mos.csv)")
    files = _info_files(root)
    mos = _read_csv(mos_file, "the MOS file")
    name_column = next((c for c in NAME_COLUMNS if c in mos.columns), None)
    if name_column is None or "mos" not in mos.columns:
        raise DatabaseError(f"{mos_file}: needs a name column (image or name) and a mos column "
                            f"(columns: {', '.join(mos.columns)})")
    where_of: dict[str, tuple[str, int]] = {}  # name → (split, row index in its info file)
    for split, (_, table) in files.items():
        for i, name in enumerate(table["name"]):
            where_of.setdefault(str(name), (split, i))
    lo, hi = score_range
    problems: list[str] = []
    seen: dict[str, int] = {}
    values: dict[str, str] = {}
    for i, (name, text) in enumerate(zip(mos[name_column], mos["mos"], strict=True)):
        where = f"{mos_file} row {i + 2}"
        name, text = str(name).strip(), str(text).strip()
        if name not in where_of:
            problems.append(f"{where}: {name_column} {name!r} is not an image of {root}")
            continue
        if name in seen:
            problems.append(f"{where}: duplicate {name_column} {name!r} (also row {seen[name]})")
            continue
        seen[name] = i + 2
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            problems.append(f"{where}: mos {text!r} of {name!r} is not a number")
            continue
        if not lo <= value <= hi:
            problems.append(f"{where}: mos {value:g} of {name!r} is outside [{lo:g}, {hi:g}] "
                            f"(rescale it, e.g. aigiqa mos --target-range {lo:g},{hi:g})")
            continue
        split, row = where_of[name]
        path, table = files[split]
        old = str(table.at[row, "mos"]).strip()
        if old and not replace and (_number(old) != value):
            problems.append(f"{where}: {name!r} has MOS {old} in {path} row {row + 2} already; "
                            "pass --replace to overwrite")
            continue
        values[name] = text
    if problems:
        raise DatabaseError(f"{mos_file}: cannot attach the MOS to {root} (nothing written)",
                            problems)
    result = AttachResult(attached=len(values))
    texts = {}
    for split, (path, table) in files.items():
        table["mos"] = [values.get(str(n), str(m)) for n, m in zip(table["name"], table["mos"],
                                                                   strict=True)]
        rated = int((table["mos"].str.strip() != "").sum())
        result.splits[split] = (rated, len(table) - rated)
        result.without += len(table) - rated
        texts[path] = table.to_csv(index=False)
    for path, text in texts.items():
        write_text(path, text, path.name)
    return result


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
