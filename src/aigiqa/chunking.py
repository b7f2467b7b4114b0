"""Consecutive pieces of a sequence: SQL statements of bounded size, batches of images.

Pure Python (no numpy, torch or SQLAlchemy), so any module can import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items[0:size]``, ``items[size:2*size]``, … (the last may be shorter); size >= 1."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, not {size}")
    for start in range(0, len(items), size):
        yield items[start:start + size]
