"""NTIRE 2024 AIGC quality challenge (image track, AIGIQA-20K) submission files.

The challenge's ``output.txt`` has one line per image, ``name,score``: the image file name as in
the info files (``DALLE2_0001.png``), a comma, the predicted score; no header, no quotes, no
spaces. Scores are written with Python's shortest round-trip repr (full double precision, as the
challenge's reference scripts do with ``str(float)``); any real number is accepted, the scale does
not matter. Submissions were ranked by (SRCC + PLCC) / 2 against the hidden MOS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from aigiqa.errors import SubmissionError

SUBMISSION_NAME = "output.txt"

__all__ = ["SUBMISSION_NAME", "read_submission", "score_submission", "write_submission"]


def write_submission(path: str | Path, names: Sequence[str], scores: Sequence[float]) -> Path:
    """Write ``name,score`` lines (no header) to ``path``; returns the path.

    names, scores: same length; names unique, non-empty, without commas, line breaks or
    surrounding spaces; scores finite numbers.
    """
    path = Path(path)
    names, scores = list(names), list(scores)
    if len(names) != len(scores):
        raise SubmissionError(f"{path}: {len(names)} names but {len(scores)} scores")
    problems: list[str] = []
    seen: dict[str, int] = {}
    lines = []
    for i, (name, score) in enumerate(zip(names, scores, strict=True)):
        if not isinstance(name, str) or not name or name != name.strip() or any(
                c in name for c in ",\r\n"):
            problems.append(f"item {i}: name {name!r} must be a non-empty string without commas, "
                            f"line breaks or surrounding spaces")
            continue
        if name in seen:
            problems.append(f"item {i}: duplicate name {name!r} (first at item {seen[name]})")
        seen.setdefault(name, i)
        try:
            value = float(score)
        except (TypeError, ValueError):
            problems.append(f"item {i} ({name}): score {score!r} is not a number")
            continue
        if not math.isfinite(value):
            problems.append(f"item {i} ({name}): score {score!r} is not finite")
            continue
        lines.append(f"{name},{value!r}\n")
    if problems:
        raise SubmissionError(f"{path}: cannot write the submission", problems)
    if not lines:
        raise SubmissionError(f"{path}: no scores to write")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _read_lines(path: Path) -> dict[str, tuple[float, int]]:
    """name → (score, line number) of a submission, or SubmissionError listing every bad line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SubmissionError(f"{path}: submission file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: cannot read the submission: {exc}") from None
    out: dict[str, tuple[float, int]] = {}
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != 2:
            problems.append(f"line {number}: expected 'name,score', got {line!r}")
            continue
        name, raw = fields[0].strip(), fields[1].strip()
        if not name:
            problems.append(f"line {number}: empty image name")
            continue
        try:
            score = float(raw)
        except ValueError:
            hint = " (the format has no header line)" if number == 1 else ""
            problems.append(f"line {number}: score {raw!r} of {name!r} is not a number{hint}")
            continue
        if not math.isfinite(score):
            problems.append(f"line {number}: score {raw!r} of {name!r} is not finite")
            continue
        if name in out:
            problems.append(f"line {number}: duplicate name {name!r} "
                            f"(first at line {out[name][1]})")
            continue
        out[name] = (score, number)
    if problems:
        raise SubmissionError(f"{path}: {len(problems)} bad line(s) in the submission", problems)
    if not out:
        raise SubmissionError(f"{path}: the submission has no scores")
    return out


def read_submission(path: str | Path) -> dict[str, float]:
    """Read a submission: image name → score, in file order."""
    return {name: score for name, (score, _) in _read_lines(Path(path)).items()}


def score_submission(path: str | Path, truth: Mapping[str, float], *,
                     fit: str = "logistic4") -> dict:
    """Evaluate a submission against ground truth (name → MOS): the :func:`evaluate` dict.

    The submission must score exactly the names of ``truth``: missing and extra names are
    SubmissionError (listing the names, with line numbers for extra ones). ``main`` is the
    challenge score (SRCC + PLCC) / 2.
    """
    from aigiqa.evaluation import evaluate

    path = Path(path)
    submitted = _read_lines(path)
    missing = [name for name in truth if name not in submitted]
    extra = [(name, line) for name, (_, line) in submitted.items() if name not in truth]
    if missing or extra:
        problems = [f"missing: {name}" for name in missing]
        problems += [f"line {line}: extra name {name!r} (not in the truth)" for name, line in extra]
        raise SubmissionError(
            f"{path}: {len(missing)} image(s) of the truth have no score and {len(extra)} "
            f"name(s) are not in the truth", problems)
    names = list(truth)
    pred = np.array([submitted[name][0] for name in names])
    return evaluate(pred, np.array([truth[name] for name in names], dtype=float), fit=fit)
