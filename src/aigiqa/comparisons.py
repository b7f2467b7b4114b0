"""Paired comparisons: the one table format of preference data, and building it from rankings.

A comparisons table is a pandas DataFrame with one row per judgement:

- ``group``: the prompt (or other unit) the two images were compared within, as a string;
- ``a``, ``b``: the two image names (never equal);
- ``outcome``: ``"a"`` (a preferred), ``"b"`` (b preferred) or ``"tie"``;
- ``annotator``: who judged (None where the release does not say);
- ``source``: the file and row the judgement came from (for error messages).

Rules (documented, never a silent drop): a pair judged several times (by several annotators, or
by one annotator twice) is several rows, each a judgement; cycles (a > b > c > a) are data and
kept; a group whose images are all tied gives tie rows only. An image compared with itself, an
outcome outside the set, or a missing name is a :class:`~aigiqa.errors.ComparisonError` naming
the row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from aigiqa.errors import ComparisonError

COLUMNS = ("group", "a", "b", "outcome", "annotator", "source")
OUTCOMES = ("a", "b", "tie")


def ranking_pairs(group: str, names: Sequence[str], ranks: Sequence[float], *,
                  annotator: str | None = None, source: str = "") -> list[dict]:
    """Every pair (i < j, in list order) of a group ranked by ``ranks`` (lower is better,
    equal ranks are a tie): rows of a comparisons table."""
    rows = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            ri, rj = ranks[i], ranks[j]
            outcome = "a" if ri < rj else "b" if ri > rj else "tie"
            rows.append({"group": group, "a": names[i], "b": names[j], "outcome": outcome,
                         "annotator": annotator, "source": source})
    return rows


def comparisons_frame(rows: list[dict]) -> pd.DataFrame:
    """A comparisons table from row dicts (columns in :data:`COLUMNS` order)."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"group": str, "a": str, "b": str, "outcome": str})


def _where(frame: pd.DataFrame, i: int, label: str) -> str:
    if "source" in frame.columns:
        src = frame["source"].iloc[i]
        if isinstance(src, str) and src:
            return src
    return f"{label} row {i + 1}"


def check_comparisons(frame: pd.DataFrame, label: str = "comparisons",
                      known: set[str] | None = None) -> pd.DataFrame:
    """Validate a comparisons table; return a copy with the optional columns added.

    Raises ComparisonError listing every bad row (missing name, outcome outside
    {"a", "b", "tie"}, an image compared with itself, a name not in ``known``).
    ``label`` names the table in messages (e.g. the file it was read from).
    """
    if not isinstance(frame, pd.DataFrame):
        raise ComparisonError(f"{label}: expected a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in ("a", "b", "outcome") if c not in frame.columns]
    if missing:
        raise ComparisonError(f"{label}: missing column(s) {missing} (columns: "
                              f"{list(frame.columns)}); a comparisons table has "
                              "a, b, outcome[, group, annotator]")
    if frame.empty:
        raise ComparisonError(f"{label}: no comparisons")
    out = frame.copy()
    if "group" not in out.columns:
        out["group"] = "all"
    if "annotator" not in out.columns:
        out["annotator"] = None
    problems = []
    a = out["a"].to_numpy(dtype=object)
    b = out["b"].to_numpy(dtype=object)
    outcome = out["outcome"].to_numpy(dtype=object)
    bad_name = np.array([not (isinstance(x, str) and x) for x in a]) | \
        np.array([not (isinstance(x, str) and x) for x in b])
    bad_outcome = ~np.isin(outcome.astype(str), OUTCOMES) | \
        np.array([not isinstance(x, str) for x in outcome])
    self_pair = (a == b) & ~bad_name
    unknown = np.zeros(len(out), bool)
    if known is not None:
        unknown = ~bad_name & ~(np.isin(a.astype(str), list(known))
                                & np.isin(b.astype(str), list(known)))
    for i in np.flatnonzero(bad_name | bad_outcome | self_pair | unknown):
        where = _where(out, int(i), label)
        if bad_name[i]:
            problems.append(f"{where}: image names a={a[i]!r}, b={b[i]!r} must be non-empty "
                            "strings")
        if bad_outcome[i]:
            problems.append(f"{where}: outcome {outcome[i]!r} is not one of {list(OUTCOMES)}")
        if self_pair[i]:
            problems.append(f"{where}: image {a[i]!r} is compared with itself")
        if unknown[i]:
            names = [x for x in (a[i], b[i]) if x not in known]  # type: ignore[operator]
            problems.append(f"{where}: unknown image(s) {names}")
    if problems:
        raise ComparisonError(f"{label}: {len(problems)} bad comparison(s)", problems)
    out["group"] = out["group"].astype(str)
    return out


def read_comparisons(path) -> pd.DataFrame:
    """A comparisons table from a CSV file (columns a, b, outcome[, group, annotator]); rows
    are named ``file row N`` (the header is row 1) in errors."""
    from pathlib import Path

    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ComparisonError(f"{path}: cannot read the comparisons CSV ({exc})") from None
    frame = frame.rename(columns=lambda c: str(c).strip())
    frame["source"] = [f"{path.name} row {i + 2}" for i in range(len(frame))]
    if "annotator" in frame.columns:
        frame["annotator"] = frame["annotator"].replace("", None)
    return check_comparisons(frame, str(path))
