"""The one sha256 helper: block reads, a per-process memory keyed by the file's identity, and
no memory of a file modified within the file system's coarse clock tick."""

from __future__ import annotations

import hashlib
import os

from aigiqa import digests


def _age(path, seconds):
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))


def test_digest_of_blocks_equals_hashlib(tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(3 * (1 << 20) + 17)  # more than one 1 MiB block, not a multiple
    path.write_bytes(data)
    assert digests.sha256_of(path) == hashlib.sha256(data).hexdigest()


def test_an_old_file_is_hashed_once(tmp_path, monkeypatch):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"A" * 1000)
    _age(path, 3600)
    reads = []
    real = digests.sha256_of
    monkeypatch.setattr(digests, "sha256_of", lambda p: reads.append(p) or real(p))
    first = digests.file_sha256(path)
    assert digests.file_sha256(path) == first == hashlib.sha256(b"A" * 1000).hexdigest()
    assert len(reads) == 1


def test_a_same_size_rewrite_within_one_tick_is_seen(tmp_path):
    """Rewritten in place (same inode and size) and given back its old mtime, as a coarse clock
    can: a fresh file is never remembered, so the new bytes are hashed."""
    path = tmp_path / "weights.pt"
    path.write_bytes(b"A" * 1000)
    stamp = path.stat().st_mtime_ns
    first = digests.file_sha256(path)
    with open(path, "r+b") as handle:
        handle.write(b"B" * 1000)
    os.utime(path, ns=(stamp, stamp))
    assert digests.file_sha256(path) == hashlib.sha256(b"B" * 1000).hexdigest() != first


def test_an_old_file_rewritten_gets_a_new_digest(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"A" * 1000)
    _age(path, 3600)
    first = digests.file_sha256(path)
    path.write_bytes(b"B" * 1000)  # a new mtime: a new identity
    assert digests.file_sha256(path) != first


def test_remembered_digest_is_used_for_an_old_file_only(tmp_path, monkeypatch):
    path = tmp_path / "asset.bin"
    path.write_bytes(b"C" * 10)
    digests.remember_sha256(path, "f" * 64)  # fresh: not remembered
    assert digests.file_sha256(path) == hashlib.sha256(b"C" * 10).hexdigest()
    _age(path, 3600)
    digests.remember_sha256(path, "e" * 64)  # a verified registry digest, trusted
    assert digests.file_sha256(path) == "e" * 64
