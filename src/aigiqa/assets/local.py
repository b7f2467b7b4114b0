"""Where asset files are on this machine: resolution order, sha256 checks, import from a folder.

Resolution order for ``asset_path(name)``: an explicit path, ``$AIGIQA_HOME/assets/<name>``, then
the user cache ``$XDG_CACHE_HOME/aigiqa/assets/<name>`` (default ``~/.cache/aigiqa/assets``); a
file of a PyPI package is looked up in that package. Nothing here touches the network.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from aigiqa.assets.catalog import CATALOG, Asset
from aigiqa.digests import file_sha256
from aigiqa.errors import AssetError
from aigiqa.files import atomic_write

#: Files registered at run time (plugin metrics; tests), resolved like the catalog's and taking
#: precedence over a catalog entry of the same name.
MODEL_FILES: dict[str, Asset] = {}

def register_model_files(*files: Asset) -> None:
    """Add files to ``MODEL_FILES`` (idempotent); for metrics outside aigiqa's own catalog."""
    for asset in files:
        MODEL_FILES[asset.name] = asset


def known_assets() -> dict[str, Asset]:
    """The catalog with the registered files over it, by name."""
    return {**CATALOG, **MODEL_FILES}


def list_assets() -> list[Asset]:
    """Every known file (the catalog and registered ones), sorted by name."""
    known = known_assets()
    return [known[k] for k in sorted(known)]


def asset_info(name: str) -> Asset:
    """The entry of ``name``; AssetError listing the known names if unknown."""
    found = MODEL_FILES.get(name) or CATALOG.get(name)
    if found is None:
        raise AssetError(f"unknown asset {name!r}; `aigiqa assets list` shows the known ones: "
                         + ", ".join(sorted(known_assets())))
    return found


def search_dirs() -> list[Path]:
    """Folders searched for assets, in order: ``$AIGIQA_HOME/assets`` (if set), the user cache."""
    dirs = []
    home = os.environ.get("AIGIQA_HOME")
    if home:
        dirs.append(Path(home).expanduser() / "assets")
    dirs.append(cache_dir())
    return dirs


def cache_dir() -> Path:
    """The user cache of assets: ``$XDG_CACHE_HOME/aigiqa/assets`` or ``~/.cache/aigiqa/assets``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "aigiqa" / "assets"


def install_dir() -> Path:
    """Where imports and downloads go: ``$AIGIQA_HOME/assets`` if set, else the user cache."""
    return search_dirs()[0]


def verify(asset: Asset, path: Path) -> str | None:
    """Why ``path`` is not ``asset`` (wrong size, sha256 or sha256 prefix), or None if it is.

    A file without a published checksum passes (not verified). Digests are cached, so a large
    file is hashed once per process.
    """
    stat = path.stat()
    if asset.size is not None and stat.st_size != asset.size:
        return f"has {stat.st_size} bytes, expected {asset.size}"
    expected = asset.sha256 or asset.sha256_prefix
    if expected is None:
        return None
    digest = file_sha256(path)
    if not digest.startswith(expected):
        return f"has sha256 {digest}, expected {expected}"
    return None


def how_to_get(asset: Asset) -> str:
    """The commands (or steps) that install ``asset``, for error messages."""
    if asset.package:
        return f"it comes with the PyPI package: pip install {asset.package}"
    place = (f"or set AIGIQA_HOME so that $AIGIQA_HOME/assets/{asset.name} exists (e.g. copy it "
             f"to {cache_dir() / asset.name})")
    if asset.manual:
        return (f"download it by hand from {asset.url} (a web page, not a direct link), then run "
                f"`aigiqa assets import DIR` with the folder holding {asset.filename}, {place}")
    return (f"run `aigiqa assets download {asset.name}` on a machine with internet (from "
            f"{asset.url}), or `aigiqa assets import DIR` with a folder holding {asset.filename}, "
            f"{place}")


def package_file(asset: Asset) -> Path | None:
    """Where the PyPI package of ``asset`` has installed the file, or None (nothing imported)."""
    top = asset.name.split("/", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))).parent / asset.name
    return candidate if candidate.is_file() else None


def asset_path(name: str, path: str | Path | None = None) -> Path:
    """Path of a known asset, checked against its size and sha256 where they are published.

    An explicit ``path`` wins and is used as given (no checksum: it may be a user's own model);
    otherwise the search folders are tried in order (a ``.part`` download is never used). Raises
    AssetError naming the file, its sha256 and the command that gets it when it is nowhere.
    """
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise AssetError(f"asset file {explicit} (given for {name!r}) does not exist")
        return explicit
    asset = asset_info(name)
    if asset.package:
        found = package_file(asset)
        if found is None:
            raise AssetError(f"asset {asset.name!r} not found; {how_to_get(asset)}")
        return found
    tried = []
    for folder in search_dirs():
        candidate = folder / asset.name
        tried.append(f"looked at {candidate}")
        if candidate.is_file():
            problem = verify(asset, candidate)
            if problem:
                raise AssetError(f"asset {asset.name!r} at {candidate} {problem}; replace it "
                                 f"({how_to_get(asset)})")
            return candidate
    raise AssetError(f"asset {asset.name!r} (sha256 {asset.sha256 or 'not recorded'}) not "
                     f"found; {how_to_get(asset)}", tried)


def find_asset(name: str) -> Path | None:
    """Where a known asset is installed (checksum verified), or None; for listings."""
    try:
        return asset_path(name)
    except AssetError:
        return None


def installed(asset: Asset) -> Path | None:
    """Where ``asset`` is, without hashing it (size checked where published); for listings."""
    if asset.package:
        return package_file(asset)
    for folder in search_dirs():
        candidate = folder / asset.name
        if candidate.is_file():
            if asset.size is not None and candidate.stat().st_size != asset.size:
                return None
            return candidate
    return None


def import_assets(folder: str | Path, dest: str | Path | None = None) -> list[Path]:
    """Copy every known asset found under ``folder`` into the install folder.

    A file is found at ``folder/<name>`` or, failing that, as ``folder/<filename>``; each is
    checked against its size and sha256 (where published) first and written whole (temporary
    file, fsync, rename). PyPI files are skipped (pip installs them). Returns the installed
    paths; AssetError if a file fails its check or none is found.
    """
    src_root = Path(folder).expanduser()
    if not src_root.is_dir():
        raise AssetError(f"{src_root}: not a folder")
    target_root = Path(dest) if dest is not None else install_dir()
    installed_paths, problems = [], []
    candidates = [a for a in list_assets() if a.package is None]
    for asset in candidates:
        for candidate in (src_root / asset.name, src_root / asset.filename):
            if candidate.is_file() and not candidate.name.endswith(".part"):
                break
        else:
            continue
        problem = verify(asset, candidate)
        if problem:
            problems.append(f"{candidate} {problem}")
            continue
        target = target_root / asset.name
        if not target.exists() or target.resolve() != candidate.resolve():
            with open(candidate, "rb") as src, atomic_write(target, f"asset {asset.name}") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        installed_paths.append(target)
    if problems:
        raise AssetError(f"{src_root}: asset file(s) failed their check; nothing was installed "
                         "for them", problems)
    if not installed_paths:
        raise AssetError(f"{src_root}: no known asset found; expected any of "
                         + ", ".join(a.name for a in candidates))
    return installed_paths
