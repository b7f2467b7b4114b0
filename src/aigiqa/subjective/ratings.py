"""Raw ratings: read and validate a ``subject, image, score[, session]`` table and encode it.

Rules (each one raises :class:`RatingsError` naming the file and the rows at fault; nothing is
dropped silently):

- the columns ``subject``, ``image`` and ``score`` are required, ``session`` is optional; other
  columns are ignored;
- ``subject``, ``image`` and ``session`` are read as text (``"007"`` stays ``"007"``) and must not
  be empty; ``score`` must be a finite number (NaN, ``inf`` or text is an error);
- with ``scale=(lo, hi)`` every score must lie in ``[lo, hi]``;
- with ``subjects=`` / ``images=`` (the study's lists) a rating of an unknown subject or image is
  an error, and so is a listed image that has no rating at all;
- the same subject rating the same image more than once (hidden repeats, or a second session) is
  *kept*: each rating is one observation, as in ITU-R BT.500 (repetitions ``R``) and sureal's
  repetition axis. ``Encoded.n_repeated`` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aigiqa.errors import AigiqaError

REQUIRED = ("subject", "image", "score")
OPTIONAL = ("session",)
_TEXT = ("subject", "image", "session")

__all__ = ["Encoded", "RatingsError", "encode", "read_ratings", "validate_ratings"]


class RatingsError(AigiqaError):
    """A ratings table with missing columns, bad values, unknown subjects/images or bad options."""


def _where(index: pd.Index, source: str | None) -> list[str]:
    """Row labels: CSV line numbers (header = line 1) for a file, DataFrame index otherwise."""
    if source is None:
        return [f"row {i}" for i in index]
    return [f"{source} line {int(i) + 2}" for i in index]


def _fail(message: str, bad: pd.Series | pd.DataFrame, text: pd.Series | None,
          source: str | None) -> None:
    where = _where(bad.index, source)
    values = [""] * len(where) if text is None else [f": {v!r}" for v in text.loc[bad.index]]
    raise RatingsError(message, [w + v for w, v in zip(where, values, strict=True)])


def read_ratings(path: str | Path, *, scale: tuple[float, float] | None = None) -> pd.DataFrame:
    """Read and validate a ratings CSV (``subject, image, score[, session]``).

    With ``scale=(lo, hi)`` a score outside is an error naming the file and its CSV line (check
    the scale here rather than only in ``compute_mos``, which sees rows, not lines). Returns a
    DataFrame with ``subject``, ``image`` (and ``session``) as str and ``score`` as float64, in
    file order, index = 0-based data row (CSV line = index + 2).
    """
    path = Path(path)
    if not path.is_file():
        raise RatingsError(f"ratings file not found: {path}")
    try:
        frame = pd.read_csv(path, dtype={c: str for c in _TEXT}, keep_default_na=False,
                            na_values={"score": ["", "NaN", "nan", "NA"]}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RatingsError(f"{path}: not a readable CSV file ({exc})") from exc
    return validate_ratings(frame, scale=scale, source=str(path))


def validate_ratings(frame: pd.DataFrame, *, scale: tuple[float, float] | None = None,
                     subjects: Sequence[str] | None = None, images: Sequence[str] | None = None,
                     source: str | None = None) -> pd.DataFrame:
    """Check a ratings table against the rules of this module; return a clean copy.

    ``source`` names the file in messages (rows are then given as CSV line numbers).
    """
    label = source or "ratings"
    columns = [str(c).strip() for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise RatingsError(f"{label}: missing column(s) {missing}; expected "
                           f"'subject, image, score[, session]', found {columns}")
    keep = [c for c in (*REQUIRED, *OPTIONAL) if c in columns]
    out = frame[keep].copy()
    if len(out) == 0:
        raise RatingsError(f"{label}: no ratings")
    for col in (c for c in _TEXT if c in keep):
        raw = out[col]
        codes, uniques = pd.factorize(raw)  # NaN -> -1; strip only the distinct values
        text = pd.Index(uniques).astype(str).str.strip()
        bad_unique = text.isin(["", "nan", "NaN", "None", "<NA>"])
        empty = (codes < 0) | bad_unique[codes]
        if empty.any():
            _fail(f"{label}: empty {col!r} in {int(empty.sum())} row(s)", raw[empty], None, source)
        out[col] = text.to_numpy()[codes]
    raw_score = out["score"]
    score = pd.to_numeric(raw_score, errors="coerce").astype("float64")
    bad = ~np.isfinite(score.to_numpy())
    if bad.any():
        _fail(f"{label}: score is not a finite number in {int(bad.sum())} row(s)",
              raw_score[bad], raw_score, source)
    out["score"] = score
    if scale is not None:
        lo, hi = check_pair(scale, "scale")
        outside = (score < lo) | (score > hi)
        if outside.any():
            _fail(f"{label}: {int(outside.sum())} score(s) outside the scale [{lo:g}, {hi:g}]",
                  raw_score[outside], raw_score, source)
    if subjects is not None:
        _check_known(out, "subject", subjects, label, source)
    if images is not None:
        _check_known(out, "image", images, label, source)
    return out


def check_pair(value: tuple[float, float], name: str) -> tuple[float, float]:
    """``value`` as a finite (lo, hi) with lo < hi; RatingsError naming ``name`` otherwise."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise RatingsError(f"{name} must be (lo, hi), got {value!r}") from exc
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise RatingsError(f"{name} must be finite with lo < hi, got {value!r}")
    return lo, hi


def _check_known(out: pd.DataFrame, col: str, known: Sequence[str], label: str,
                 source: str | None) -> None:
    known_set = {str(k) for k in known}
    unknown = ~out[col].isin(known_set)
    if unknown.any():
        _fail(f"{label}: {int(unknown.sum())} rating(s) of unknown {col}(s) "
              f"(not in the {len(known_set)} given)", out[col][unknown], out[col], source)
    unrated = sorted(known_set - set(out[col]))
    if unrated:
        raise RatingsError(f"{label}: {len(unrated)} listed {col}(s) have no rating", unrated)


@dataclass(frozen=True)
class Encoded:
    """Ratings as flat arrays (one entry per rating) with integer codes.

    ``subject``/``image``/``group`` are int codes (``group`` = subject × session) into
    ``subjects``/``images``/``groups``; ``score`` is float64 (n_ratings,).
    """

    score: np.ndarray
    subject: np.ndarray
    image: np.ndarray
    group: np.ndarray
    subjects: np.ndarray
    images: np.ndarray
    groups: pd.DataFrame  # columns subject, session (session = "" without a session column)
    n_repeated: int

    @property
    def n_subjects(self) -> int:
        return len(self.subjects)

    @property
    def n_images(self) -> int:
        return len(self.images)


def encode(frame: pd.DataFrame, images: Sequence[str] | None = None) -> Encoded:
    """Encode a validated ratings table; image order = ``images`` if given, else first seen."""
    subj_codes, subjects = pd.factorize(frame["subject"], sort=True)
    if images is not None:
        image_index = pd.Index([str(i) for i in images])
        img_codes = image_index.get_indexer(frame["image"])
        image_names = image_index.to_numpy()
    else:
        img_codes, image_index = pd.factorize(frame["image"], sort=False)
        image_names = np.asarray(image_index)
    if "session" in frame:
        sess_codes, sessions = pd.factorize(frame["session"], sort=True)
    else:
        sess_codes, sessions = np.zeros(len(frame), dtype=np.int64), np.array([""])
    pair = subj_codes.astype(np.int64) * len(sessions) + sess_codes
    pair_ids, group_codes = np.unique(pair, return_inverse=True)
    groups = pd.DataFrame({"subject": np.asarray(subjects)[pair_ids // len(sessions)],
                           "session": np.asarray(sessions)[pair_ids % len(sessions)]})
    n_repeated = int(pd.Series(subj_codes * len(image_names) + img_codes).duplicated().sum())
    return Encoded(score=frame["score"].to_numpy(np.float64), subject=subj_codes.astype(np.int64),
                   image=img_codes.astype(np.int64), group=group_codes.astype(np.int64),
                   subjects=np.asarray(subjects), images=np.asarray(image_names), groups=groups,
                   n_repeated=n_repeated)
