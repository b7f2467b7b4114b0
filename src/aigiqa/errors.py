"""The one exception family of aigiqa: every error names the file, row or option at fault."""

from __future__ import annotations


class AigiqaError(Exception):
    """Base class of every error aigiqa raises on purpose.

    ``problems`` lists every individual fault found (e.g. each missing image with its row), so a
    validation can report all of them at once; ``str(error)`` includes them.
    """

    def __init__(self, message: str, problems: list[str] | tuple[str, ...] = ()) -> None:
        self.message = message
        self.problems = list(problems)
        text = message
        if self.problems:
            shown = self.problems[:50]
            text += "\n  - " + "\n  - ".join(shown)
            if len(self.problems) > len(shown):
                text += f"\n  ... and {len(self.problems) - len(shown)} more"
        super().__init__(text)


class DatabaseError(AigiqaError):
    """An annotation file or image folder does not match the database's release format."""


class ImageError(AigiqaError):
    """An image file cannot be read: missing, empty, truncated, corrupt or a decompression bomb."""


class MetricError(AigiqaError):
    """Unknown metric, bad option, or inputs a metric cannot score."""


class EvaluationError(AigiqaError):
    """Predictions and ground truth that cannot be compared (NaN, length mismatch, too few)."""


class SubmissionError(AigiqaError):
    """An NTIRE submission file with missing, extra or duplicate names."""


class AssetError(AigiqaError):
    """A parameter or weight file is missing, unknown or fails its sha256 check."""


class SplitError(AigiqaError):
    """A split specification that cannot be applied (bad spec, fold, ratios, too few images)."""


def describe_error(exc: BaseException) -> str:
    """An error's text for a store, a report or an answer: the message of an AigiqaError (it
    names the file, row or option already), else ``Type: message``."""
    if isinstance(exc, AigiqaError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class ComparisonError(AigiqaError):
    """A paired-comparison table that cannot be used: missing columns, an outcome outside
    {"a", "b", "tie"}, an image compared with itself, or a comparison graph that is disconnected."""


class GenerateError(AigiqaError):
    """A generation plan, generators file or pipeline that cannot be used, or a failed run."""
