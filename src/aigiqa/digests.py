"""sha256 of files, the one helper for weights, images, downloads and option files.

``sha256_of`` reads a file in 1 MiB blocks (never whole into memory). ``file_sha256`` remembers
the digest per (device, inode, size, mtime) in this process, so a large weight file is hashed
once and a download renamed into place keeps its entry; ``remember_sha256`` records a digest
just verified (a registry entry's) so it is not computed again.

A file modified in the last :data:`RACY_NS` is not remembered (as git's "racily clean" index
entries): file times have a coarse clock, so a file rewritten at the same size within one tick
of being hashed would keep its (size, mtime) and, remembered, its old digest.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

__all__ = ["file_sha256", "remember_sha256", "sha256_of"]

#: A file modified less than this long ago (ns) is hashed again on every call.
RACY_NS = 2_000_000_000

_digests: dict[tuple[int, int, int, int], str] = {}


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _identity(path: str | Path) -> tuple[int, int, int, int] | None:
    """(device, inode, size, mtime) of a file, or None if it changed too recently to tell."""
    info = os.stat(Path(path).expanduser())
    if time.time_ns() - info.st_mtime_ns < RACY_NS:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, computed once per process for a given (file, size, mtime)."""
    identity = _identity(path)
    if identity is None:
        return sha256_of(path)
    if identity not in _digests:
        _digests[identity] = sha256_of(path)
    return _digests[identity]


def remember_sha256(path: str | Path, sha256: str) -> None:
    """Record the sha256 of a file just verified against it: :func:`file_sha256` will not
    hash it again while it is unchanged."""
    identity = _identity(path)
    if identity is not None:
        _digests[identity] = sha256
