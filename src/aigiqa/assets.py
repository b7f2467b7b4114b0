"""Parameter and weight files: a registry (name → file, sha256, source) and where to find them.

Resolution order for ``asset_path(name)``: an explicit path, ``$AIGIQA_HOME/assets/<name>``, then
the user cache ``$XDG_CACHE_HOME/aigiqa/assets/<name>`` (default ``~/.cache/aigiqa/assets``).
Nothing is downloaded unless ``download`` is called.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from aigiqa.errors import AssetError


@dataclass(frozen=True, slots=True)
class Asset:
    """One registered file: ``name`` is its path relative to an assets folder."""

    name: str
    sha256: str | None  # None: not verified (no official checksum found); no check is made
    url: str
    description: str
    licence: str
    member: str | None = None  # file inside the archive at ``url``, if it is a zip

    @property
    def filename(self) -> str:
        return Path(self.name).name


_LIVE = "LIVE (UT Austin): free use with acknowledgement"

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset(
            "niqe/modelparameters.mat",
            "fa2aa4d12dd9595c3fb6bf8b4e1a15c79d5d1469238d0901c88dead195be578d",
            "http://live.ece.utexas.edu/research/quality/niqe_release.zip",
            "NIQE pristine model (mu_prisparam 1x36, cov_prisparam 36x36), LIVE release",
            _LIVE,
            member="modelparameters.mat",
        ),
        Asset(
            "brisque/allmodel",
            "8b04d6045f1b27261610c8ab1730fdcc14ec80bfab0f1ab5f703bbc2927314de",
            "https://raw.githubusercontent.com/utlive/BRISQUE/main/MATLAB/allmodel",
            "BRISQUE libsvm epsilon-SVR model (RBF, gamma 0.05), LIVE release",
            _LIVE,
        ),
        Asset(
            "brisque/allrange",
            "e47d753d96b631e1aa2dbac8c4e51ade767f2def8ce678c7130b6b3f90ee915f",
            "https://raw.githubusercontent.com/utlive/BRISQUE/main/MATLAB/allrange",
            "BRISQUE svm-scale feature ranges (36 features to [-1, 1]), LIVE release",
            _LIVE,
        ),
    )
}

#: Model weights and tokenizer files (large; not in ``ASSETS``, so ``list_assets`` and a bare
#: ``aigiqa assets download`` skip them), resolved the same way; metrics register theirs here.
MODEL_FILES: dict[str, Asset] = {}

_verified: dict[tuple[str, int, int], str] = {}


def register_model_files(*files: Asset) -> None:
    """Add weight/tokenizer files to ``MODEL_FILES`` (idempotent; metric modules call it)."""
    for asset in files:
        MODEL_FILES[asset.name] = asset


def list_assets() -> list[Asset]:
    """Every registered asset, sorted by name."""
    return [ASSETS[k] for k in sorted(ASSETS)]


def asset_info(name: str) -> Asset:
    """The registry entry of ``name``; AssetError listing the known names if unknown."""
    if name in ASSETS:
        return ASSETS[name]
    if name in MODEL_FILES:
        return MODEL_FILES[name]
    known = ", ".join(sorted(ASSETS) + sorted(MODEL_FILES))
    raise AssetError(f"unknown asset {name!r}; known: {known}")


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


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check(asset: Asset, path: Path) -> None:
    if asset.sha256 is None:
        return
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_of(path)
    if _verified[key] != asset.sha256:
        raise AssetError(
            f"asset {asset.name!r} at {path} has sha256 {_verified[key]}, expected {asset.sha256}; "
            f"replace it ({_how_to_get(asset)})"
        )


def _how_to_get(asset: Asset) -> str:
    return (
        f"run `aigiqa assets download` (from {asset.url}) on a machine with internet, or "
        f"`aigiqa assets import DIR` with a folder holding {asset.name}, or set AIGIQA_HOME "
        f"so that $AIGIQA_HOME/assets/{asset.name} exists"
    )


def asset_path(name: str, path: str | Path | None = None) -> Path:
    """Path of a registered asset, checked against its sha256.

    An explicit ``path`` wins and is used as given (no checksum: it may be a user's own model);
    otherwise the search folders are tried in order. Raises AssetError naming the file, its sha256
    and how to get it when it is nowhere.
    """
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise AssetError(f"asset file {explicit} (given for {name!r}) does not exist")
        return explicit
    asset = asset_info(name)
    tried = []
    for folder in search_dirs():
        candidate = folder / asset.name
        tried.append(str(candidate))
        if candidate.is_file():
            _check(asset, candidate)
            return candidate
    raise AssetError(
        f"asset {asset.name!r} (sha256 {asset.sha256 or 'not recorded'}) not found; "
        f"{_how_to_get(asset)}",
        [f"looked at {t}" for t in tried],
    )


def find_asset(name: str) -> Path | None:
    """Where a registered asset is installed (checksum verified), or None; for listings."""
    try:
        return asset_path(name)
    except AssetError:
        return None


#: The name the design document uses: ``assets.path("niqe/modelparameters.mat")``.
path = asset_path


def import_assets(folder: str | Path, dest: str | Path | None = None) -> list[Path]:
    """Copy every registered asset found under ``folder`` into the install folder.

    A file is found at ``folder/<name>`` or, failing that, as ``folder/<filename>``; each is
    checked against its sha256 first. Returns the installed paths; AssetError if a file fails its
    check or none is found.
    """
    src_root = Path(folder).expanduser()
    if not src_root.is_dir():
        raise AssetError(f"{src_root}: not a folder")
    target_root = Path(dest) if dest is not None else install_dir()
    installed, problems = [], []
    for asset in list_assets():
        for candidate in (src_root / asset.name, src_root / asset.filename):
            if candidate.is_file():
                break
        else:
            continue
        digest = sha256_of(candidate)
        if digest != asset.sha256:
            problems.append(f"{candidate}: sha256 {digest}, expected {asset.sha256}")
            continue
        target = target_root / asset.name
        if target.resolve() != candidate.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(candidate, target)
        installed.append(target)
    if problems:
        raise AssetError(f"{src_root}: asset file(s) failed the sha256 check", problems)
    if not installed:
        raise AssetError(
            f"{src_root}: no registered asset found; expected any of "
            + ", ".join(a.name for a in list_assets())
        )
    return installed


def download(name: str, dest: str | Path | None = None, timeout: float = 60.0) -> Path:
    """Fetch an asset from its official source, check its sha256 and install it; returns its path.

    The only function in aigiqa that touches the network for assets; never called implicitly.
    """
    import urllib.request

    asset = asset_info(name)
    target = (Path(dest) if dest is not None else install_dir()) / asset.name
    try:
        with urllib.request.urlopen(asset.url, timeout=timeout) as response:  # noqa: S310
            payload = response.read()
    except OSError as exc:
        raise AssetError(f"asset {asset.name!r}: download from {asset.url} failed ({exc})") from exc
    if asset.member is not None:
        payload = _zip_member(asset, payload)
    digest = hashlib.sha256(payload).hexdigest()
    if asset.sha256 is not None and digest != asset.sha256:
        raise AssetError(
            f"asset {asset.name!r}: file from {asset.url} has sha256 {digest}, "
            f"expected {asset.sha256}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(payload)
    Path(tmp.name).replace(target)
    return target


def _zip_member(asset: Asset, payload: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            names = [n for n in archive.namelist() if Path(n).name == asset.member]
            if not names:
                raise AssetError(f"asset {asset.name!r}: {asset.member} not in {asset.url}")
            return archive.read(names[0])
    except zipfile.BadZipFile as exc:
        raise AssetError(f"asset {asset.name!r}: {asset.url} is not a zip file") from exc
