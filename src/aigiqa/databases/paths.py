"""Keeping the image paths an annotation file names inside the database folder.

An annotation table is input from whoever made the release: a name such as ``../../x.png``,
``/etc/passwd`` or a symbolic link in the image folder that points elsewhere must not make aigiqa
read (and score, and report on) a file outside the folder the user gave. Every reader builds its
image paths through :class:`ImageRoot`, which refuses

- absolute names (``/x.png``, ``C:\\x.png``, ``\\\\server\\x.png``),
- names with a ``..`` part (also ``a/../b.png``: with a symbolic link ``a`` the system resolves
  ``a/..`` to the link target's parent, so a purely lexical clean-up is not safe),
- names holding a NUL byte or naming no file (``""``, ``.``),
- unless ``follow_symlinks``: names whose real path (symbolic links resolved) is outside the
  boundary folder (a link to a file outside, or a sub-folder that is a link to outside).

Each refusal is a problem naming the file and row, collected with the other annotation problems.
Cost: one ``lstat`` per record plus one ``realpath`` per distinct image directory (cached).
A missing file is not a problem here (the image check reports it). The check is made when the
database is read; a file replaced by a link afterwards is not caught.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

_SEPARATORS = re.compile(r"[\\/]")
_SIMPLE = re.compile(r"[^\\/\x00]+")  # one file name, no separator (the common case, fast)
_DRIVE = re.compile(r"[A-Za-z]:")
FOLLOW_HINT = "pass follow_symlinks=True (CLI: --follow-symlinks) to follow such links"


def _inside(real: str, boundary: str) -> bool:
    return real == boundary or real.startswith(boundary.rstrip(os.sep) + os.sep)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a path relative to an image folder, or None when it can."""
    if "\x00" in name:
        return "holds a NUL byte"
    try:
        os.fsencode(name)
    except UnicodeError:
        return "cannot be a file name on this system (unencodable characters)"
    if name.startswith(("/", "\\")):
        return "is an absolute path; names must be relative to the image folder"
    if _DRIVE.match(name):
        return "starts with a drive letter; names must be relative to the image folder"
    parts = _SEPARATORS.split(name)
    if ".." in parts:
        return "has a '..' part; names must stay inside the image folder"
    if all(part in ("", ".") for part in parts):
        return "names no file"
    return None


class ImageRoot:
    """The folder (``boundary``) that every image path of a database must stay inside.

    ``boundary`` is the database root, or a folder the user chose (e.g. the ``image_dir=`` option);
    it may itself be a symbolic link (resolved once). ``follow_symlinks=True`` lets links inside it
    point anywhere (names are still checked).
    """

    def __init__(self, boundary: str | Path, *, follow_symlinks: bool = False) -> None:
        self.boundary = Path(boundary)
        self.follow_symlinks = bool(follow_symlinks)
        self._real = os.path.realpath(self.boundary)
        self._dirs: dict[str, str | None] = {}  # directory → None if inside, else its real path

    def _outside(self, directory: str) -> str | None:
        """None when ``directory``'s real path is inside the boundary, else that real path."""
        try:
            return self._dirs[directory]
        except KeyError:
            real = os.path.realpath(directory)
            out = self._dirs[directory] = None if _inside(real, self._real) else real
            return out

    def path(
        self, folder: Path, name: str, where: str, problems: list[str], *, what: str = "image name"
    ) -> Path | None:
        """``folder / name``, or None after adding a problem (``where: what 'name' …``) when the
        name or its real path leaves the boundary. ``folder`` lies inside the boundary."""
        simple = (name.isascii() and _SIMPLE.fullmatch(name) and name not in (".", "..")
                  and not _DRIVE.match(name))
        if not simple:
            why = name_problem(name)
            if why is not None:
                problems.append(f"{where}: {what} {name!r} {why}")
                return None
        path = folder / name
        if self.follow_symlinks:
            return path
        if simple:
            directory = str(folder)
            text = directory + os.sep + name  # (a little faster than os.path.join)
        else:
            text = str(path)
            directory = os.path.dirname(text)
        real_dir = self._outside(directory)
        if real_dir is not None:
            problems.append(
                f"{where}: {what} {name!r} is in {directory}, which is (through a symbolic "
                f"link) {real_dir}, outside {self.boundary}; {FOLLOW_HINT}"
            )
            return None
        try:
            mode = os.lstat(text).st_mode
        except (OSError, ValueError):  # missing or unreadable: the image check reports it
            return path
        if stat.S_ISLNK(mode):
            target = os.path.realpath(text)
            if not _inside(target, self._real):
                problems.append(
                    f"{where}: {what} {name!r} is a symbolic link to {target}, outside "
                    f"{self.boundary}; {FOLLOW_HINT}"
                )
                return None
        return path
