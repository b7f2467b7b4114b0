"""The database registry: readers by name, ``load_database`` and image validation."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aigiqa.databases.base import Database
from aigiqa.errors import AigiqaError, DatabaseError
from aigiqa.images import verify_image

Reader = Callable[..., Database]
_READERS: dict[str, Reader] = {}

#: Modules that register the built-in readers when imported.
_BUILTIN_MODULES = (
    "aigiqa.databases.aigiqa20k",
    "aigiqa.databases.agiqa",
    "aigiqa.databases.aigciqa2023",
    "aigiqa.databases.pku_aigiqa4k",
    "aigiqa.databases.evalmuse40k",
    "aigiqa.databases.generic_csv",
    "aigiqa.databases.demo",
    "aigiqa.databases.preference",
    "aigiqa.databases.pickapic",
    "aigiqa.databases.generated",
)
_loaded = False


def register_database(name: str) -> Callable[[Reader], Reader]:
    """Decorator: register ``reader(root: Path, *, follow_symlinks=False, **options) -> Database``
    under ``name``. A reader builds its image paths with ``aigiqa.databases.paths.ImageRoot``
    (names stay inside the folder; symbolic links pointing out only with ``follow_symlinks``)."""

    def wrap(reader: Reader) -> Reader:
        if name in _READERS and _READERS[name] is not reader:
            raise AigiqaError(f"database reader {name!r} is registered twice")
        _READERS[name] = reader
        return reader

    return wrap


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def list_databases() -> list[str]:
    _load_builtins()
    return sorted(_READERS)


def get_reader(name: str) -> Reader:
    _load_builtins()
    try:
        return _READERS[name]
    except KeyError:
        raise DatabaseError(
            f"unknown database {name!r}; known: {', '.join(sorted(_READERS))}"
        ) from None


def image_problems(db: Database, workers: int = 8) -> list[str]:
    """Decode every image of ``db``; return one message per missing or unreadable image."""

    def check(rec) -> str | None:
        try:
            verify_image(rec.path)
        except AigiqaError as exc:
            where = f" ({rec.source})" if rec.source else ""
            return f"{exc}{where}"
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [p for p in pool.map(check, db.records) if p]


def check_image_files(db: Database) -> None:
    """Raise DatabaseError listing every missing/unreadable image of ``db`` (not the first only)."""
    problems = image_problems(db)
    if problems:
        raise DatabaseError(
            f"{db.info.name} at {db.root}: {len(problems)} of {len(db)} images are missing "
            "or unreadable",
            problems,
        )


def load_database(
    name: str,
    root: str | Path,
    *,
    check_images: bool = True,
    follow_symlinks: bool = False,
    **options,
) -> Database:
    """Read a database from the folder its authors release; see ``list_databases()`` for names.

    With ``check_images`` every image file is opened and decoded (all problems reported at once).
    Image names that leave the folder (absolute, ``..``) are refused, and so are symbolic links
    inside it that point out, unless ``follow_symlinks``. ``options`` go to the reader.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatabaseError(f"{root}: database folder not found")
    db = get_reader(name)(root, follow_symlinks=follow_symlinks, **options)
    if check_images:
        check_image_files(db)
    return db


def validate_database(
    name: str, root: str | Path, *, follow_symlinks: bool = False, **options
) -> list[str]:
    """Every problem with a database folder: annotation errors (image paths leaving the folder
    among them), then missing/unreadable images."""
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: database folder not found"]
    try:
        db = get_reader(name)(root, follow_symlinks=follow_symlinks, **options)
    except AigiqaError as exc:
        return exc.problems or [exc.message]
    return image_problems(db)
