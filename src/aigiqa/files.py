"""Output files: checked before the work that fills them starts, then written whole.

``check_folder`` / ``check_file`` raise one AigiqaError naming the path and what to do when an
output cannot be written (a file where a folder is wanted, a folder where a file is wanted, a
read-only or immutable file or folder), so a long run fails at its start instead of at its end.
The checks create nothing the run would not create anyway: a probe folder is made and removed
at once in the nearest existing folder. They work for root as well (they try, instead of
reading permission bits that root ignores).

``write_text`` writes to a temporary file beside the target and renames it over the target
when complete (a killed run never leaves half a file). The temporary file is created with mode
0600, so ``private=True`` files (e.g. tokens) are never readable by others, not even briefly.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from aigiqa.errors import AigiqaError

__all__ = ["atomic_write", "check_file", "check_folder", "reason", "write_text"]


def reason(exc: OSError) -> str:
    """The operating system's words for an OSError (``Permission denied``…)."""
    return exc.strerror or str(exc)


def _hint(option: str | None) -> str:
    return f" or choose another {option}" if option else ""


def check_folder(folder: str | Path, what: str, option: str | None = None) -> Path:
    """``folder`` (absolute) if it is, or can be created as, a folder this process writes in.

    ``what`` names the output in the message (e.g. "the results folder"), ``option`` the
    command-line option that chose it. Raises AigiqaError otherwise.
    """
    folder = Path(folder).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise AigiqaError(f"{folder}: {what} must be a folder, but a file is there; move the "
                          f"file away{_hint(option)}")
    existing = folder
    while not existing.exists():
        if existing.is_symlink():
            raise AigiqaError(f"{existing}: a link to nothing lies where {what} must be "
                              f"created; remove it{_hint(option)}")
        existing = existing.parent
    if not existing.is_dir():
        raise AigiqaError(f"{folder}: cannot create {what}: {existing} is a file, not a "
                          f"folder; move it away{_hint(option)}")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".aigiqa-write-check-"))
    except OSError as exc:
        if existing == folder:
            raise AigiqaError(f"{folder}: cannot write in {what} ({reason(exc)}); make it "
                              f"writable{_hint(option)}") from None
        raise AigiqaError(f"{folder}: cannot create {what} ({existing}: {reason(exc)}); make "
                          f"{existing} writable{_hint(option)}") from None
    return folder


def check_file(path: str | Path, what: str, option: str | None = None) -> Path:
    """``path`` (absolute) if the file can be written: its folder can be written in and, if the
    file exists, it is a regular file that can be opened for writing (it is not changed)."""
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise AigiqaError(f"{path}: {what} must be a file, but a folder is there; give a file "
                          f"name{_hint(option)}")
    check_folder(path.parent, f"the folder of {what}", option)
    if path.exists() and not path.is_file():
        raise AigiqaError(f"{path}: {what} must be a regular file; give a file name"
                          f"{_hint(option)}")
    if path.exists():
        try:
            with open(path, "r+b"):
                pass
        except OSError as exc:
            raise AigiqaError(f"{path}: {what} exists and cannot be written ({reason(exc)}); "
                              f"make it writable{_hint(option)}") from None
    return path


@contextlib.contextmanager
def atomic_write(path: str | Path, what: str, *, private: bool = False,
                 binary: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it is flushed, fsynced
    and renamed over ``path`` (a killed or failing writer never leaves half a file, and never
    touches an existing ``path``). The folder is created. Mode 0644, or 0600 with ``private``
    (from the moment the file exists). Text mode (``binary=False``) writes UTF-8 with no newline
    translation. Raises AigiqaError naming the file (``what`` says which output it is) if it
    cannot be written; an exception of the writer is re-raised and the temporary file removed.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        handle = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8",
                                                              newline="")
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise AigiqaError(f"{path}: cannot write {what} ({reason(exc)})") from exc
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if not private:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise AigiqaError(f"{path}: cannot write {what} ({reason(exc)})") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def write_text(path: str | Path, text: str, what: str, *, private: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write` (temporary file, fsync,
    rename); mode 0644, or 0600 with ``private``. AigiqaError naming the file if it fails."""
    with atomic_write(path, what, private=private, binary=False) as handle:
        handle.write(text)
    return Path(path)
