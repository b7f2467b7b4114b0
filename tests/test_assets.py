"""aigiqa.assets: registry, resolution order, sha256 checks, import and (offline) download."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from aigiqa import assets
from aigiqa.errors import AigiqaError, AssetError

NIQE = "niqe/modelparameters.mat"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No AIGIQA_HOME and an empty private cache unless a test sets them."""
    monkeypatch.delenv("AIGIQA_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_registry_matches_the_shared_readme_checksums(shared: Path):
    names = [a.name for a in assets.list_assets()]
    assert names == sorted(names)
    assert set(names) == {NIQE, "brisque/allmodel", "brisque/allrange"}
    for asset in assets.list_assets():
        assert assets.sha256_of(shared / "assets" / asset.name) == asset.sha256
        assert asset.url.startswith("http")


def test_missing_asset_error_names_file_sha_and_how_to_get_it():
    with pytest.raises(AssetError) as info:
        assets.asset_path(NIQE)
    text = str(info.value)
    assert NIQE in text
    assert assets.ASSETS[NIQE].sha256 in text
    assert "aigiqa assets download" in text and "aigiqa assets import" in text
    assert isinstance(info.value, AigiqaError)


def test_unknown_asset_lists_known_names():
    with pytest.raises(AssetError, match="brisque/allmodel"):
        assets.asset_path("nope/weights.pth")


def test_resolution_home_before_cache(shared: Path, monkeypatch, tmp_path):
    cache_copy = assets.cache_dir() / NIQE
    cache_copy.parent.mkdir(parents=True)
    cache_copy.write_bytes((shared / "assets" / NIQE).read_bytes())
    assert assets.asset_path(NIQE) == cache_copy
    monkeypatch.setenv("AIGIQA_HOME", str(shared))
    assert assets.asset_path(NIQE) == shared / "assets" / NIQE
    assert assets.path(NIQE) == shared / "assets" / NIQE


def test_explicit_path_wins_and_must_exist(shared: Path, monkeypatch, tmp_path):
    monkeypatch.setenv("AIGIQA_HOME", str(shared))
    own = tmp_path / "my_model.mat"
    own.write_bytes(b"anything")
    assert assets.asset_path(NIQE, own) == own
    with pytest.raises(AssetError, match="does not exist"):
        assets.asset_path(NIQE, tmp_path / "absent.mat")


def test_corrupt_file_in_search_dir_fails_checksum(monkeypatch, tmp_path):
    home = tmp_path / "home"
    bad = home / "assets" / NIQE
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the model")
    monkeypatch.setenv("AIGIQA_HOME", str(home))
    with pytest.raises(AssetError, match="expected " + assets.ASSETS[NIQE].sha256):
        assets.asset_path(NIQE)


def test_import_checks_sha_and_copies(shared: Path, tmp_path):
    dest = tmp_path / "dest"
    installed = assets.import_assets(shared / "assets", dest)
    assert sorted(p.relative_to(dest).as_posix() for p in installed) == sorted(assets.ASSETS)
    for p in installed:
        assert assets.sha256_of(p) == assets.ASSETS[p.relative_to(dest).as_posix()].sha256


def test_import_accepts_flat_folder_and_installs_into_cache(shared: Path, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "allrange").write_bytes((shared / "assets/brisque/allrange").read_bytes())
    installed = assets.import_assets(flat)
    assert installed == [assets.cache_dir() / "brisque/allrange"]
    assert assets.asset_path("brisque/allrange") == installed[0]


def test_import_rejects_tampered_file_and_empty_folder(tmp_path):
    bad = tmp_path / "bad"
    (bad / "brisque").mkdir(parents=True)
    (bad / "brisque/allmodel").write_text("svm_type epsilon_svr\n")
    with pytest.raises(AssetError, match="sha256") as info:
        assets.import_assets(bad, tmp_path / "dest")
    assert "allmodel" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssetError, match="no registered asset"):
        assets.import_assets(tmp_path / "empty", tmp_path / "dest")


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_verifies_and_unzips_without_network(shared: Path, monkeypatch, tmp_path):
    payload = (shared / "assets" / NIQE).read_bytes()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("niqe_release/modelparameters.mat", payload)
    seen = []

    def fake_urlopen(url, timeout):
        seen.append(url)
        return _Response(archive.getvalue())

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    target = assets.download(NIQE, tmp_path / "dl")
    assert seen == [assets.ASSETS[NIQE].url]
    assert hashlib.sha256(target.read_bytes()).hexdigest() == assets.ASSETS[NIQE].sha256


def test_download_rejects_wrong_bytes(monkeypatch, tmp_path):
    monkeypatch.setattr(
        "urllib.request.urlopen", lambda url, timeout: _Response(b"<html>moved</html>")
    )
    with pytest.raises(AssetError, match="expected"):
        assets.download("brisque/allrange", tmp_path / "dl")
    assert not (tmp_path / "dl/brisque/allrange").exists()


def test_find_asset_reports_installed_or_none(shared: Path, monkeypatch):
    assert assets.find_asset(NIQE) is None
    monkeypatch.setenv("AIGIQA_HOME", str(shared))
    assert assets.find_asset(NIQE) == shared / "assets" / NIQE
