"""Downloads of asset files: streamed to disk, resumable, checked before they are installed.

The only code in aigiqa that fetches assets over the network, and only when asked to
(``aigiqa assets download``). A file is streamed in chunks to ``<target>.part`` beside its final
place; a broken connection is resumed with an HTTP Range request (a server that ignores Range
starts again from byte 0); the complete file is checked against its published size and sha256
and only then renamed to its final name, so a partial or wrong file is never used. A zip member
(the LIVE NIQE release) is extracted from the downloaded archive on disk. Files on the Hugging
Face hub can be fetched from a mirror with the hub's URL layout (``mirror="https://hf-mirror.com"``
or ``$AIGIQA_MIRROR``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aigiqa.assets.catalog import Asset, metric_files, other_files
from aigiqa.assets.local import asset_info, how_to_get, install_dir, known_assets, verify
from aigiqa.errors import AssetError
from aigiqa.files import atomic_write

try:  # one writer per .part file (POSIX); elsewhere concurrent downloads are not guarded
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

Progress = Callable[[int, int | None], None]
Announce = Callable[[Asset, str], None]
CHUNK = 1 << 20
#: seconds to wait before the n-th retry is ``RETRY_WAIT * n``
RETRY_WAIT = 1.0


class _Broken(Exception):
    """The transfer stopped before the end (connection dropped, timeout, short body)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One file of a ``download_for_metric`` run: where it is now (None if not fetched) and why."""

    asset: Asset
    path: Path | None
    note: str


def source_url(asset: Asset, mirror: str | None = None) -> str:
    """The URL ``asset`` is fetched from: on ``mirror`` (or ``$AIGIQA_MIRROR``) when the file is
    on the Hugging Face hub, else its official URL."""
    mirror = os.environ.get("AIGIQA_MIRROR") if mirror is None else mirror
    if mirror and asset.hub is not None:
        if not re.match(r"^https?://[^/\s]+", mirror):
            raise AssetError(f"mirror {mirror!r} is not an http(s) base URL; give one such as "
                             "https://hf-mirror.com (--mirror or $AIGIQA_MIRROR)")
        return asset.hub.url(mirror)
    return asset.url


def download(name: str, dest: str | Path | None = None, timeout: float = 60.0,
             mirror: str | None = None, retries: int = 3, progress: Progress | None = None,
             force: bool = False, announce: Announce | None = None) -> Path:
    """Fetch ``name`` from its source, check it and install it under ``dest`` (default: the
    install folder); returns its path. An installed file that passes its check is kept unless
    ``force``. ``retries``: how many times a broken transfer is resumed before giving up (the
    ``.part`` file stays, so running it again resumes). ``progress(bytes_done, total)`` is called
    as data arrives, ``announce(asset, url)`` before a transfer starts. AssetError naming the
    file, the URL and what to do on any failure; nothing is installed then.
    """
    asset = asset_info(name)
    if not asset.downloadable:
        raise AssetError(f"asset {asset.name!r} cannot be downloaded by aigiqa: "
                         f"{how_to_get(asset)}")
    target = (Path(dest) if dest is not None else install_dir()) / asset.name
    if target.is_file() and not force and verify(asset, target) is None:
        return target
    url = source_url(asset, mirror)
    if announce is not None:
        announce(asset, url)
    part = target.with_name(target.name + ".part")
    with _locked(part, asset) as fh:
        _transfer(fh, part, url, asset, timeout, retries, progress)
        if asset.member is not None:
            try:
                _extract(asset, part, url, target)
            finally:  # the archive is not kept, whether its member was good or not
                part.unlink(missing_ok=True)
        else:
            _install(asset, part, url, target)
    return target


def download_for_metric(metric: str, dest: str | Path | None = None, timeout: float = 60.0,
                        mirror: str | None = None, progress: Progress | None = None,
                        announce: Announce | None = None,
                        force: bool = False) -> list[Fetched]:
    """Fetch every file ``metric`` uses with its default options or as ``checkpoint=`` (see
    ``catalog.metric_files``) as :func:`download` does; PyPI and by-hand files are reported, not
    fetched, and so are the files it uses only with other options."""
    known = known_assets()
    files = metric_files(metric, known)
    if not files and not other_files(metric, known):
        users = sorted({m for a in known.values() for m in a.metrics})
        raise AssetError(f"no asset file is used by metric {metric!r}; metrics that use files: "
                         + ", ".join(users))
    done = []
    for asset in files:
        if asset.downloadable:
            path = download(asset.name, dest, timeout, mirror, progress=progress, force=force,
                            announce=announce)
            done.append(Fetched(asset, path, "downloaded"))
        else:
            done.append(Fetched(asset, None, how_to_get(asset)))
    for asset in other_files(metric, known):
        options = "; ".join(use.split(" ", 1)[1] for use in asset.uses
                            if use.startswith(metric + " "))
        how = f"`aigiqa assets download {asset.name}`" if asset.downloadable \
            else how_to_get(asset)
        done.append(Fetched(asset, None, f"not fetched, used only with {options}: {how}"))
    return done


@contextlib.contextmanager
def _locked(part: Path, asset: Asset) -> Iterator[IO[bytes]]:
    """``part`` opened for appending (created, folder too), locked against a second writer."""
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        fh = open(part, "a+b")  # closed below, after the transfer
    except OSError as exc:
        raise AssetError(f"asset {asset.name!r}: cannot write {part} ({exc.strerror or exc}); "
                         "make the folder writable or set AIGIQA_HOME elsewhere") from exc
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                raise AssetError(f"asset {asset.name!r}: another download is writing {part}; "
                                 "wait for it to finish") from None
        try:
            yield fh
        finally:
            if part.exists() and fh.seek(0, os.SEEK_END) == 0:  # nothing fetched (404, …)
                part.unlink()
    finally:
        fh.close()


def _transfer(fh: IO[bytes], part: Path, url: str, asset: Asset, timeout: float, retries: int,
              progress: Progress | None) -> None:
    import httpx

    broken = 0
    with httpx.Client(timeout=timeout, follow_redirects=True,
                      headers={"Accept-Encoding": "identity"}) as client:
        while True:
            try:
                _request(client, fh, url, asset, progress)
                return
            except _Broken as exc:
                broken += 1
                have = fh.seek(0, os.SEEK_END)
                if broken > retries:
                    raise AssetError(
                        f"asset {asset.name!r}: download from {url} broke off ({exc}) with "
                        f"{have} bytes in {part}; run the same command again to resume") from None
                time.sleep(RETRY_WAIT * broken)


def _request(client: Any, fh: IO[bytes], url: str, asset: Asset,
             progress: Progress | None) -> None:
    import httpx

    offset = fh.seek(0, os.SEEK_END)
    if offset and offset == asset.size:  # complete already (e.g. interrupted before the check)
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with client.stream("GET", url, headers=headers) as response:
            total = _start(response, fh, offset, url, asset)
            done = fh.seek(0, os.SEEK_END)
            for chunk in response.iter_raw():  # as received: nothing held back on a drop
                fh.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            fh.flush()
            os.fsync(fh.fileno())
    except httpx.TransportError as exc:
        fh.flush()
        raise _Broken(f"{type(exc).__name__}: {exc}") from None
    if total is not None and done != total:
        raise _Broken(f"got {done} of {total} bytes")


def _start(response: Any, fh: IO[bytes], offset: int, url: str, asset: Asset) -> int | None:
    """Check the response status; truncate ``fh`` when starting from 0; the expected total."""
    code = response.status_code
    if code == 416 and offset:  # what we have is not a prefix of the file: start again
        fh.truncate(0)
        raise _Broken("the server refused to resume (416); starting again")
    if code == 404:
        raise AssetError(f"asset {asset.name!r}: {url} answered 404 Not Found; the file has moved "
                         "or the mirror does not have it (try without --mirror, or "
                         f"{how_to_get(asset)})")
    if code >= 400:
        raise AssetError(f"asset {asset.name!r}: {url} answered HTTP {code} "
                         f"{response.reason_phrase}; try again later or {how_to_get(asset)}")
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/html") and not asset.name.endswith((".html", ".htm")):
        raise AssetError(f"asset {asset.name!r}: {url} answered with a web page, not the file (a "
                         "login, quota or confirmation page?); fetch it in a browser and run "
                         "`aigiqa assets import DIR`")
    length = response.headers.get("content-length")
    if code == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("content-range", ""))
        if match and int(match.group(1)) == offset:
            return int(match.group(2)) if match.group(2) != "*" else None
    fh.truncate(0)  # a full answer (Range ignored, or a 206 we cannot use): start from byte 0
    if code == 206:
        raise _Broken("the server answered an unusable range; starting again")
    return int(length) if length and length.isdigit() else None


def _install(asset: Asset, part: Path, url: str, target: Path) -> None:
    """Check the complete ``part`` and rename it to ``target``; remove it if it is wrong."""
    problem = verify(asset, part)
    if problem:
        part.unlink()
        raise AssetError(f"asset {asset.name!r}: the file from {url} {problem}; it was deleted "
                         "and nothing was installed (a wrong mirror or a changed upstream file?)")
    os.replace(part, target)  # same inode: its digest stays cached for the first use


def _extract(asset: Asset, archive_path: Path, url: str, target: Path) -> None:
    """Write ``asset.member`` of the zip archive at ``archive_path`` to ``target`` (checked)."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            names = [n for n in archive.namelist() if Path(n).name == asset.member]
            if not names:
                raise AssetError(f"asset {asset.name!r}: {asset.member} is not in the archive "
                                 f"from {url}")
            digest = hashlib.sha256()
            with archive.open(names[0]) as src, atomic_write(target, f"asset {asset.name}") as out:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
                if asset.sha256 is not None and digest.hexdigest() != asset.sha256:
                    raise AssetError(f"asset {asset.name!r}: {asset.member} in the archive from "
                                     f"{url} has sha256 {digest.hexdigest()}, expected "
                                     f"{asset.sha256}; nothing was installed")
    except zipfile.BadZipFile as exc:
        raise AssetError(f"asset {asset.name!r}: {url} is not a zip file; nothing was "
                         "installed") from exc
