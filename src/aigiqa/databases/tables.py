"""Reading annotation tables (csv / xlsx) and checking them, with rows numbered as a spreadsheet
user sees them (1-based, the header is row 1).

Readers collect every problem of a file in a ``problems`` list (one message per fault, each naming
file and row) and raise one ``DatabaseError`` at the end, so ``validate_database`` reports all.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aigiqa.errors import DatabaseError

#: Suffixes of annotation tables, in order of preference (csv is much faster to read).
TABLE_SUFFIXES = (".csv", ".xlsx", ".xls")


@dataclass(frozen=True)
class Table:
    """An annotation table: string cells (NaN where empty), canonical column names.

    ``first_row`` is the spreadsheet row number of ``frame`` row 0 (2 with a header, 1 without).
    ``sheet`` is the worksheet read from a workbook (None for csv) and ``sheets`` all of the
    workbook's sheets; rows of a workbook with several sheets are labelled with the sheet.
    """

    path: Path
    frame: pd.DataFrame
    first_row: int
    sheet: str | None = None
    sheets: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.sheet is not None and len(self.sheets) > 1:
            return f"{self.path.name} sheet {self.sheet!r}"
        return self.path.name

    def __len__(self) -> int:
        return len(self.frame)

    def where(self, i: int) -> str:
        """'file row N' for frame row ``i`` (0-based)."""
        return f"{self.label} row {self.first_row + i}"

    def has(self, column: str) -> bool:
        return column in self.frame.columns


def find_table(folder: Path, stem: str, suffixes: Sequence[str] = TABLE_SUFFIXES) -> Path | None:
    """The annotation file ``folder/stem.<suffix>``, csv preferred over xlsx; None if absent."""
    for suffix in suffixes:
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def pick_folder(root: Path, candidates: Iterable[str]) -> Path:
    """The first existing sub-folder of ``root`` among ``candidates`` ('' is root itself), else
    ``root``: where a release unpacks its images."""
    for name in candidates:
        path = root / name if name else root
        if path.is_dir():
            return path
    return root


def reject_options(database: str, options: Mapping[str, object]) -> None:
    """Raise DatabaseError naming options a reader does not know."""
    if options:
        raise DatabaseError(
            f"{database}: unknown option(s) {', '.join(sorted(map(repr, options)))}"
        )


def _sheet_name(path: Path, sheet: int | str, names: list[str]) -> str:
    """The worksheet ``sheet`` (index or name) of a workbook with sheets ``names``."""
    if isinstance(sheet, int) and not isinstance(sheet, bool) and 0 <= sheet < len(names):
        return names[sheet]
    if str(sheet) in names:  # a sheet named '2023' given as a number on the command line
        return str(sheet)
    raise DatabaseError(
        f"{path}: no sheet {sheet!r}; the workbook has {', '.join(map(repr, names))}"
    )


def _read_raw(path: Path, sheet: int | str = 0) -> tuple[pd.DataFrame, str | None, list[str]]:
    """The raw cells of a table, the sheet read (workbooks) and every sheet's name."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm", ".xls"):
            with pd.ExcelFile(path) as book:
                names = [str(n) for n in book.sheet_names]
                chosen = _sheet_name(path, sheet, names)
                frame = pd.read_excel(book, sheet_name=chosen, header=None, dtype=str)
                return frame, chosen, names
        if suffix in (".csv", ".txt", ".tsv"):
            frame = pd.read_csv(
                path,
                header=None,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                sep=_SEPARATOR[suffix],
                encoding="utf-8-sig",
            )
            return frame, None, []
    except pd.errors.EmptyDataError:
        return pd.DataFrame(), None, []
    except DatabaseError:
        raise
    except (OSError, ValueError, KeyError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DatabaseError(f"{path}: cannot read annotation table ({exc})") from exc
    except Exception as exc:  # openpyxl raises its own errors for corrupt workbooks
        raise DatabaseError(f"{path}: cannot read annotation table ({exc})") from exc
    raise DatabaseError(f"{path}: unsupported annotation file type {suffix!r} (csv or xlsx)")


_SEPARATOR = {".csv": ",", ".txt": ",", ".tsv": "\t"}
_OTHER_DELIMITERS = {";": "';'", "\t": "tabs", "|": "'|'", ",": "','"}


def _delimiter_hint(path: Path, header: list[object]) -> str:
    """'; the file seems to use ';' as delimiter …' when a header cell holds another delimiter."""
    sep = _SEPARATOR.get(path.suffix.lower())
    if sep is None:
        return ""
    cells = [c for c in header if isinstance(c, str)]
    for delimiter, label in _OTHER_DELIMITERS.items():
        if delimiter != sep and any(delimiter in c for c in cells):
            used = "tabs" if sep == "\t" else repr(sep)
            return (f"; {path.name} seems to use {label} as delimiter, but "
                    f"{path.suffix.lower()} files are read with {used} between columns")
    return ""


def _norm(cell: object) -> str:
    return str(cell).strip().lower() if isinstance(cell, str) else ""


def read_table(
    path: Path,
    columns: Sequence[str],
    *,
    required: Sequence[str] | None = None,
    header: bool | None = None,
    sheet: int | str | None = None,
) -> Table:
    """Read a csv/xlsx annotation table with or without a header row.

    ``columns`` are the release's column names in file order; they name a headerless file's
    columns by position. A header is detected when a first-row cell equals one of ``columns``
    (case and surrounding spaces ignored); ``header=True/False`` forces it. Header names are
    matched to ``columns`` case-insensitively; other columns are kept under their own names.
    ``required`` (default: all ``columns``) must be present, else a DatabaseError names the file
    and the columns it has. Cells are strings, NaN where empty.

    Workbooks: ``sheet`` (index or name) is read, by default the first; the sheet read is named
    in every error, in the rows' labels when the workbook has several sheets, and in a warning
    when it has several and ``sheet`` was not given. When required columns are absent from it,
    the error lists the other sheets; a csv whose header holds ``;`` or tabs is said to use them.
    """
    required = list(columns if required is None else required)
    raw, sheet_read, sheets = _read_raw(path, 0 if sheet is None else sheet)
    where = f"{path} sheet {sheet_read!r}" if sheet_read is not None else str(path)
    if raw.empty:
        raise DatabaseError(f"{where}: annotation table is empty")
    wanted = {c.lower(): c for c in columns}
    first = [_norm(c) for c in raw.iloc[0]]
    has_header = header if header is not None else any(c in wanted for c in first)
    if has_header:
        names = []
        for i, cell in enumerate(raw.iloc[0]):
            key = _norm(cell)
            names.append(wanted.get(key, str(cell).strip() if isinstance(cell, str) else f"col{i}"))
        frame = raw.iloc[1:].reset_index(drop=True)
        frame.columns = names
        first_row = 2
    else:
        if raw.shape[1] > len(columns):
            raise DatabaseError(
                f"{where}: no header row and {raw.shape[1]} columns; expected at most "
                f"{len(columns)} ({', '.join(columns)}) or a header row naming them"
            )
        frame = raw
        frame.columns = list(columns[: raw.shape[1]])
        first_row = 1
    missing = [c for c in required if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns))
        others = [n for n in sheets if n != sheet_read]
        also = f"; the workbook's other sheets: {', '.join(map(repr, others))}" if others else ""
        raise DatabaseError(
            f"{where}: missing column(s) {', '.join(missing)} (found: {found}); "
            f"expected {', '.join(columns)}{also}{_delimiter_hint(path, list(raw.iloc[0]))}"
        )
    if sheet is None and len(sheets) > 1:
        warnings.warn(f"{path}: read the first sheet, {sheet_read!r}, of "
                      f"{', '.join(map(repr, sheets))}", stacklevel=2)
    return Table(path, frame, first_row, sheet_read, tuple(sheets))


def text_column(
    table: Table, column: str, problems: list[str], *, required: bool = True
) -> list[str | None]:
    """Cells of ``column`` as stripped strings; an empty cell is a problem when ``required``."""
    if not table.has(column):
        return [None] * len(table)
    values = [v.strip() if isinstance(v, str) else None for v in table.frame[column].tolist()]
    if required:
        for i, v in enumerate(values):
            if not v:
                problems.append(f"{table.where(i)}: empty {column!r}")
    return [v or None for v in values]


def number_column(
    table: Table,
    column: str,
    problems: list[str],
    *,
    score_range: tuple[float, float] | None = None,
    required: bool = True,
) -> np.ndarray:
    """Cells of ``column`` as float64 (NaN where empty and not ``required``).

    Problems: an empty cell when ``required``, text that is not a number, NaN/inf, and values
    outside ``score_range`` (inclusive).
    """
    if not table.has(column):
        return np.full(len(table), np.nan)
    series = table.frame[column]
    empty = series.isna().to_numpy()
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    lo, hi = score_range if score_range is not None else (-np.inf, np.inf)
    with np.errstate(invalid="ignore"):
        outside = ~bad & ((values < lo) | (values > hi))
    for i in np.flatnonzero(bad | outside):  # in row order
        i = int(i)
        if outside[i]:
            problems.append(
                f"{table.where(i)}: {column!r} = {values[i]:g} is outside the score range "
                f"[{lo:g}, {hi:g}]"
            )
        elif not empty[i]:
            problems.append(f"{table.where(i)}: {column!r} is {series.iloc[i]!r}, not a number")
        elif required:
            problems.append(f"{table.where(i)}: empty {column!r}")
    return values


def duplicate_problems(names: Sequence[str | None], wheres: Sequence[str]) -> list[str]:
    """One problem per repeated name, naming where it repeats and where it first appeared."""
    first: dict[str, str] = {}
    problems = []
    for name, where in zip(names, wheres, strict=True):
        if name is None:
            continue
        if name in first:
            problems.append(f"{where}: duplicate name {name!r} (first at {first[name]})")
        else:
            first[name] = where
    return problems


def check_range(
    values: np.ndarray, wheres: Sequence[str], what: str, score_range: tuple[float, float]
) -> list[str]:
    """Problems for NaN/inf or out-of-range entries of ``values`` (non-table sources)."""
    lo, hi = score_range
    problems = []
    for i in np.flatnonzero(~np.isfinite(values) | (values < lo) | (values > hi)):
        v = values[i]
        reason = "is not a finite number" if not np.isfinite(v) else (
            f"is outside the score range [{lo:g}, {hi:g}]")
        problems.append(f"{wheres[i]}: {what} = {v:g} {reason}")
    return problems


def raise_problems(problems: list[str], message: str) -> None:
    """Raise one DatabaseError carrying every problem, if there are any."""
    if problems:
        raise DatabaseError(f"{message}: {len(problems)} annotation problem(s)", problems)
