"""Record and Database: the contract every database reader returns."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aigiqa.errors import DatabaseError


@dataclass(frozen=True, slots=True)
class Record:
    """One image of a database.

    ``targets`` maps target names to subjective scores (``{"mos": 3.86}`` or
    ``{"quality": …, "alignment": …}``); it is empty for blind records (no public MOS).
    ``hyper`` holds generation hyper-parameters when the release gives them (cfg, steps, size…).
    ``source`` says where the record came from (file and row), for error messages.
    """

    name: str
    path: Path
    prompt: str | None = None
    generator: str | None = None
    split: str = "all"
    targets: dict[str, float] = field(default_factory=dict)
    hyper: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def blind(self) -> bool:
        return not self.targets


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """Metadata of a database: its name, MOS range, target names (main first) and citation."""

    name: str
    score_range: tuple[float, float]
    target_names: tuple[str, ...]
    citation: str = ""
    url: str = ""
    description: str = ""

    @property
    def main_target(self) -> str:
        return self.target_names[0]


class Database(Sequence[Record]):
    """Ordered records plus metadata. Names are unique; a split with no targets is blind."""

    def __init__(self, info: DatabaseInfo, records: Sequence[Record], root: str | Path) -> None:
        self.info = info
        self.root = Path(root)
        self.records: list[Record] = list(records)
        seen: dict[str, str] = {}
        problems = []
        for rec in self.records:
            if rec.name in seen:
                problems.append(f"{rec.source or rec.name}: duplicate name {rec.name!r} "
                                f"(first at {seen[rec.name]})")
            else:
                seen[rec.name] = rec.source or rec.name
        if problems:
            raise DatabaseError(f"{info.name} at {self.root}: duplicate image names", problems)
        self._index = {rec.name: i for i, rec in enumerate(self.records)}

    # Sequence protocol -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.records[i]
        return self.records[i]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"Database({self.info.name!r}, {len(self)} records, root={str(self.root)!r})"

    # Queries -------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.info.name

    def record(self, name: str) -> Record:
        """The record with this image name (KeyError naming it if absent)."""
        try:
            return self.records[self._index[name]]
        except KeyError:
            raise KeyError(f"{self.info.name}: no image named {name!r}") from None

    @property
    def splits(self) -> list[str]:
        return list(dict.fromkeys(rec.split for rec in self.records))

    @property
    def generators(self) -> list[str]:
        return sorted({rec.generator for rec in self.records if rec.generator})

    @property
    def hyper_names(self) -> list[str]:
        return list(dict.fromkeys(k for rec in self.records for k in rec.hyper))

    def labelled(self) -> list[Record]:
        """Records that carry the main target (never the blind ones)."""
        main = self.info.main_target
        return [rec for rec in self.records if main in rec.targets]

    def subset(self, names: Sequence[str] | None = None, *, split: str | None = None) -> Database:
        """A Database with the named records (in this order) or the records of one split."""
        if names is not None:
            recs = [self.record(n) for n in names]
        else:
            recs = [rec for rec in self.records if split is None or rec.split == split]
        return Database(self.info, recs, self.root)

    def to_frame(self) -> pd.DataFrame:
        """One row per record: name, path, prompt, generator, split, one column per target
        (NaN where blind) and one per hyper-parameter."""
        targets = list(self.info.target_names)
        for rec in self.records:  # extra targets (e.g. std columns) after the declared ones
            for k in rec.targets:
                if k not in targets:
                    targets.append(k)
        hyper = self.hyper_names
        rows = []
        for rec in self.records:
            row = {
                "name": rec.name,
                "path": str(rec.path),
                "prompt": rec.prompt,
                "generator": rec.generator,
                "split": rec.split,
            }
            for t in targets:
                row[t] = rec.targets.get(t, float("nan"))
            for h in hyper:
                row[h] = rec.hyper.get(h)
            rows.append(row)
        columns = ["name", "path", "prompt", "generator", "split", *targets, *hyper]
        return pd.DataFrame(rows, columns=columns)
